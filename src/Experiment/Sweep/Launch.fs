/// How a sweep is run: the launcher keys (`launcher=`, `workers=`, `slurm_*`), parsed and checked.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// How a sweep is run: where (`launcher=`) and the launcher's settings.
type Launch =
    {
        /// `launcher=`: "local" (default) or "slurm".
        Launcher: string
        /// `workers=` (local): grid points run at once, each in its own process; 1 (default) runs
        /// them one after another in this process.
        Workers: int
        /// `requeue=` (slurm, default true): a task stopped by a signal requeues itself and resumes.
        Requeue: bool
        /// `slurm_partition=`: `#SBATCH --partition`.
        Partition: string option
        /// `slurm_time=`: `#SBATCH --time` (Slurm's formats), with the stop signal sent ahead of it.
        Time: string option
        /// `slurm_cpus_per_task=`: `#SBATCH --cpus-per-task`; also each task's `threads`.
        CpusPerTask: int option
        /// `slurm_gres=`: `#SBATCH --gres`; a `gpu` resource also sets `device=cuda`.
        Gres: string option
        /// `slurm_mem=`: `#SBATCH --mem` (per node; Slurm's units, e.g. 4G).
        Mem: string option
        /// `slurm_extra=`: further sbatch options, one `#SBATCH` line each.
        Extra: string list
    }

/// Parsing and checking the launcher keys.
module Launch =
    /// The sweep's own keys (not config keys, not grid axes).
    let sweepKeys =
        [
            "config"
            "sweep_dir"
            "threshold"
            "launcher"
            "workers"
            "requeue"
            "slurm_partition"
            "slurm_time"
            "slurm_cpus_per_task"
            "slurm_gres"
            "slurm_mem"
            "slurm_extra"
        ]

    let internal bad key value allowed problem =
        raise (ConfigError("sweep", key, value, allowed, problem))

    /// The seconds of a Slurm time limit (`--time`): "minutes", "minutes:seconds",
    /// "hours:minutes:seconds", "days-hours", "days-hours:minutes" or "days-hours:minutes:seconds".
    /// Raises `ConfigError` naming `slurm_time`, the value and those formats for anything else,
    /// including a zero limit.
    let slurmTimeSeconds (text: string) : int64 =
        let allowed =
            "a positive Slurm time: minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes or days-hours:minutes:seconds (e.g. 30, 2:00:00, 1-12)"

        let m =
            Text.RegularExpressions.Regex.Match(text, @"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")

        if not m.Success then
            bad "slurm_time" text allowed "not a Slurm time"

        let n (g: int) =
            if m.Groups[g].Success then int64 m.Groups[g].Value else 0L

        let parts = [ 2; 3; 4 ] |> List.filter (fun g -> m.Groups[g].Success)

        let seconds =
            match m.Groups[1].Success, parts.Length with
            | false, 1 -> n 2 * 60L // minutes
            | false, 2 -> n 2 * 60L + n 3 // minutes:seconds
            | false, _ -> n 2 * 3600L + n 3 * 60L + n 4 // hours:minutes:seconds
            | true, _ -> n 1 * 86400L + n 2 * 3600L + n 3 * 60L + n 4 // days-hours[:minutes[:seconds]]

        let sixty = [ 3; 4 ] |> List.filter (fun g -> m.Groups[g].Success && n g >= 60L)

        if not sixty.IsEmpty then
            bad "slurm_time" text allowed "minutes and seconds must be below 60"

        if seconds <= 0L then
            bad "slurm_time" text allowed "a zero time limit"

        seconds

    /// The options of `slurm_extra=` (space-separated, each starting with -). Raises
    /// `ConfigError` for a word that is not an option, and for the options the launcher sets
    /// itself (--array, --output, --error, --open-mode and their short forms).
    let private slurmExtra (v: string) : string list =
        let opts =
            v.Split([| ' '; '\t' |], StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

        for o in opts do
            if not (o.StartsWith "-") then
                bad
                    "slurm_extra"
                    v
                    "sbatch options separated by spaces, each starting with - (e.g. --account=abc --qos=low)"
                    $"'{o}' is not an option"

            let name = o.Split('=').[0]

            if
                List.contains name [ "--array"; "-a"; "--output"; "-o"; "--error"; "-e"; "--open-mode" ]
                || (name.Length > 2
                    && List.exists (fun (s: string) -> name.StartsWith s) [ "-a"; "-o"; "-e" ]
                    && not (name.StartsWith "--"))
            then
                bad
                    "slurm_extra"
                    v
                    "sbatch options other than --array, --output, --error and --open-mode (the launcher sets those)"
                    $"'{o}' is set by the launcher"

        opts

    /// Raises `ConfigError` for a key of the other launcher: `workers` with slurm, a Slurm key
    /// (`slurm_*`, `requeue`) with local.
    let private checkLauncherKeys (get: string -> string option) (launcher: string) (workers: int option) =
        let slurmGiven =
            [
                "slurm_partition"
                "slurm_time"
                "slurm_cpus_per_task"
                "slurm_gres"
                "slurm_mem"
                "slurm_extra"
                "requeue"
            ]
            |> List.filter (fun k -> (get k).IsSome)

        match launcher, workers, slurmGiven with
        | "slurm", Some w, _ ->
            bad
                "workers"
                (string w)
                "workers with launcher=local only (Slurm runs one task per grid point)"
                "not a Slurm setting"
        | "local", _, k :: _ ->
            bad k (get k).Value $"{k} with launcher=slurm only" "a Slurm setting given with launcher=local"
        | _ -> ()

    /// Parses the launcher keys of sweep arguments (`launcher`, `workers`, `requeue`, `slurm_*`).
    /// Raises `ConfigError` naming the key, the value and what is allowed for an unknown launcher, a
    /// non-positive `workers`, a `requeue` other than true/false, a malformed `slurm_time`
    /// (`slurmTimeSeconds`), `slurm_mem`, `slurm_gres`, `slurm_partition`, `slurm_cpus_per_task`
    /// or `slurm_extra` (options sbatch gets from the launcher itself: --array, --output, --error,
    /// --open-mode are refused), and for a key of the other launcher (`workers` with slurm, `slurm_*`
    /// with local).
    let parseLaunch (get: string -> string option) : Launch =
        let launcher = get "launcher" |> Option.defaultValue "local"

        if launcher <> "local" && launcher <> "slurm" then
            bad
                "launcher"
                launcher
                "local (grid points on this machine, workers=K at once) or slurm (one sbatch array task per point)"
                "unknown launcher"

        let checkRegex key (pattern: string) allowed =
            get key
            |> Option.map (fun v ->
                if not (Text.RegularExpressions.Regex.IsMatch(v, pattern)) then
                    bad key v allowed "malformed value"

                v)

        let positive key =
            get key
            |> Option.map (fun v ->
                match Int32.TryParse v with
                | true, n when n >= 1 -> n
                | _ -> bad key v "a whole number >= 1" "not a positive whole number")

        let workers = positive "workers"
        let cpus = positive "slurm_cpus_per_task"

        let requeue =
            match get "requeue" with
            | None
            | Some "true" -> true
            | Some "false" -> false
            | Some v -> bad "requeue" v "true or false" "not a boolean"

        let time =
            get "slurm_time"
            |> Option.map (fun t ->
                slurmTimeSeconds t |> ignore
                t)

        let mem =
            checkRegex
                "slurm_mem"
                @"^[1-9]\d*[KMGT]?$"
                "a positive amount in Slurm's units: megabytes, or a number with K, M, G or T (e.g. 4000, 16G)"

        let gres =
            checkRegex
                "slurm_gres"
                @"^[A-Za-z][\w.-]*(:[\w.-]+)*(,[A-Za-z][\w.-]*(:[\w.-]+)*)*$"
                "Slurm generic resources name[:type]:count, comma-separated (e.g. gpu:1, gpu:a100:2)"

        let partition =
            checkRegex
                "slurm_partition"
                @"^[\w.-]+(,[\w.-]+)*$"
                "a partition name, or several comma-separated (sinfo -s lists them)"

        let extra = get "slurm_extra" |> Option.map slurmExtra |> Option.defaultValue []
        checkLauncherKeys get launcher workers

        {
            Launcher = launcher
            Workers = workers |> Option.defaultValue 1
            Requeue = requeue
            Partition = partition
            Time = time
            CpusPerTask = cpus
            Gres = gres
            Mem = mem
            Extra = extra
        }
