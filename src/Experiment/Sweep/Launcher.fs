/// Sweeps end to end: the arguments checked and resolved into a grid, then the points run here
/// (one after another or by worker processes) or submitted to Slurm.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// What a sweep did.
type Outcome =
    /// Run here (launcher=local): the sweep folder, the summary rows and the missing points.
    | Finished of dir: string * rows: PointSummary list * missing: string list
    /// Submitted to Slurm: the sweep folder, the job id (None when nothing needed submitting)
    /// and the array indices submitted.
    | Submitted of dir: string * jobId: string option * indices: int list

/// The sweep: plan, run or submit.
module Launcher =
    /// What a sweep's arguments resolve to, checked: the launcher, the sweep folder (absolute)
    /// and the spec its points.json holds (the base config file, absolute, and the grid).
    type internal Plan =
        {
            Launch: Launch
            Dir: string
            Spec: SweepSpec
        }

    /// The base config file: `config=` (a file, or a name in scripts/configs; default
    /// ppo-cartpole.yaml), or the existing folder's own when it is given alone.
    let private configPath (given: string option) (existing: SweepSpec option) (gridArgs: string list) =
        match given, existing with
        | None, Some s when gridArgs.IsEmpty -> s.Config // the folder alone: its own grid
        | c, _ ->
            let c = c |> Option.defaultValue "scripts/configs/ppo-cartpole.yaml"

            if File.Exists c then
                Path.GetFullPath c
            else
                Path.GetFullPath(Path.Combine("scripts", "configs", c))

    /// The axes and points of an existing folder's own grid (the folder given alone).
    let private ownGrid (s: SweepSpec) : Axis list * (string * string) list list =
        let axes =
            [
                for k in s.Keys ->
                    {
                        Key = k
                        Values =
                            s.Points
                            |> List.choose (List.tryFind (fun (kk, _) -> kk = k))
                            |> List.map snd
                            |> List.distinct
                    }
            ]

        axes, s.Points

    let private threshold (given: string option) (existing: SweepSpec option) =
        match given with
        | Some t ->
            match Double.TryParse(t, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
            | true, v -> Some v
            | _ -> Launch.bad "threshold" t "a number (the return level for steps-to-threshold)" "not a number"
        | None -> existing |> Option.bind (fun s -> s.Threshold)

    /// Resolves and checks a sweep's arguments (see `sweep`) without writing anything: the
    /// launcher keys, the grid, every point's full config with the task overrides, and that an
    /// existing folder holds this same config and grid. Raises `ConfigError` naming what is wrong.
    let internal plan (args: string list) : Plan =
        let special, rest =
            args
            |> List.partition (fun a -> Launch.sweepKeys |> List.exists (fun k -> a.StartsWith(k + "=")))

        let get (key: string) =
            special
            |> List.tryFindBack (fun a -> a.StartsWith(key + "="))
            |> Option.map (fun a -> a.Substring(key.Length + 1))

        let launch = Launch.parseLaunch get

        let dir =
            get "sweep_dir"
            |> Option.defaultValue (Path.Combine("runs", "sweep-" + DateTime.UtcNow.ToString "yyyyMMdd-HHmmss"))
            |> Path.GetFullPath

        let existing =
            if File.Exists(Path.Combine(dir, Folder.SpecFile)) then
                Some(Folder.readSpec dir)
            else
                None

        let configPath = configPath (get "config") existing rest
        let baseCfg = Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults configPath

        let axes, grid =
            match existing with
            | Some s when rest.IsEmpty && get "config" |> Option.isNone -> ownGrid s
            | _ ->
                let axes = Grid.parseGrid Ppo.PpoConfig.fields baseCfg rest
                axes, Grid.points axes

        let taskOverrides = Slurm.taskOverrides launch grid

        // Validate every point's full config (with the task overrides) before anything is written.
        for p in grid do
            Config.resolve
                Ppo.PpoConfig.fields
                Ppo.PpoConfig.seedDefaults
                Ppo.PpoConfig.validate
                (Some configPath)
                ([ for k, v in p -> $"{k}={v}" ] @ taskOverrides)
            |> ignore

        let spec =
            {
                Config = configPath
                EnvId = baseCfg.EnvId
                Threshold = threshold (get "threshold") existing
                Keys = axes |> List.map (fun a -> a.Key)
                Points = grid
                TaskOverrides = taskOverrides
            }

        let sep = "; "

        match existing with
        | Some s when s.Config <> spec.Config || s.Points <> spec.Points ->
            Launch.bad
                "sweep_dir"
                dir
                $"a new folder, or this folder's own config and grid ({s.Config}; {s.Points.Length} points: {String.Join(sep, s.Points |> List.map Grid.pointName)})"
                "the folder holds another sweep"
        | _ -> ()

        {
            Launch = launch
            Dir = dir
            Spec = spec
        }

    /// The indices of the grid points of sweep folder `dir` without a finished run.
    let private unfinished (dir: string) (grid: (string * string) list list) =
        [
            for i, p in List.indexed grid do
                if (Summary.finishedRun (Path.Combine(dir, Grid.pointName p))).IsNone then
                    yield i
        ]

    /// What folder `dir` holds of `files` now, to put back when a submission fails: returns a
    /// function that rewrites those files as they were (deleting the ones that did not exist) and
    /// removes `dir` and its logs folder if they did not exist and are empty.
    let private snapshot (dir: string) (files: string list) : unit -> unit =
        let saved =
            files
            |> List.map (fun f -> f, (if File.Exists f then Some(File.ReadAllBytes f) else None))

        let created =
            [ dir; Path.Combine(dir, Folder.LogsDir) ]
            |> List.filter (Directory.Exists >> not)

        fun () ->
            for f, before in saved do
                match before with
                | Some bytes -> Files.writeBytesAtomic f bytes
                | None -> File.Delete f

            for d in List.rev created do
                if Directory.Exists d && Directory.GetFileSystemEntries(d).Length = 0 then
                    Directory.Delete d

    /// Submits the unfinished points of `plan` not still queued as one Slurm array job (see
    /// `sweep`); restores the folder's files when sbatch refuses the job.
    let private submit (command: string list) (workDir: string) (plan: Plan) : Outcome =
        let launch, dir, spec = plan.Launch, plan.Dir, plan.Spec
        let grid = spec.Points

        let sbatch =
            match Native.which "sbatch" with
            | Some s -> s
            | None ->
                Launch.bad
                    "launcher"
                    "slurm"
                    "local, or slurm on a machine with Slurm's sbatch on PATH (a login node of the cluster)"
                    "sbatch was not found on PATH"

        let queued = Status.queuedTasks (Status.jobIds dir)
        let open' = unfinished dir grid
        let todo = open' |> List.filter (fun i -> not (queued.ContainsKey i))

        // sbatch checks partition, time, gres and memory against the cluster without submitting
        let script =
            Slurm.sbatchScript launch command workDir dir (if todo.IsEmpty then [ 0 .. grid.Length - 1 ] else todo)

        match Native.capture [] (Some script) sbatch [ "--test-only" ] with
        | 0, _, _ -> ()
        | _, out, err -> Slurm.sbatchRefused launch ((err + " " + out).Trim())

        if todo.IsEmpty then
            printfn
                "nothing to submit: %d of %d points finished, %d still queued (sweep.fsx status sweep_dir=%s)"
                (grid.Length - open'.Length)
                grid.Length
                open'.Length
                dir

            Submitted(dir, None, [])
        else
            let scriptPath = Path.Combine(dir, Folder.ScriptFile)
            let restore = snapshot dir [ Path.Combine(dir, Folder.SpecFile); scriptPath ]
            Directory.CreateDirectory(Path.Combine(dir, Folder.LogsDir)) |> ignore
            Folder.writeSpec dir spec
            Files.writeTextAtomic scriptPath script

            match Native.capture [] None sbatch [ "--parsable"; scriptPath ] with
            | 0, out, _ ->
                let jobId = out.Split(';').[0].Trim()
                File.AppendAllText(Path.Combine(dir, Folder.JobsFile), $"{jobId} {Slurm.arraySpec todo}\n")

                printfn
                    "submitted Slurm job %s: %d array task(s), points %s of %d (script: %s)"
                    jobId
                    todo.Length
                    (Slurm.arraySpec todo)
                    grid.Length
                    scriptPath

                printfn
                    "follow it:  squeue -j %s    sacct -j %s    (logs: %s)"
                    jobId
                    jobId
                    (Path.Combine(dir, Folder.LogsDir))

                printfn "per point:  dotnet fsi scripts/sweep.fsx status sweep_dir=%s" dir
                printfn "results:    dotnet fsi scripts/sweep.fsx collect sweep_dir=%s" dir
                Submitted(dir, Some jobId, todo)
            | _, out, err ->
                restore ()
                Slurm.sbatchRefused launch ((err + " " + out).Trim())

    /// Runs the unfinished points of `plan` here, one after another or by worker processes, then
    /// collects the summary (see `sweep`).
    let private runHere (cancel: Threading.CancellationToken) (command: string list) (workDir: string) (plan: Plan) =
        let launch, dir, spec = plan.Launch, plan.Dir, plan.Spec
        let grid = spec.Points

        Directory.CreateDirectory dir |> ignore
        Folder.writeSpec dir spec
        let todo = unfinished dir grid

        for i, p in List.indexed grid do
            if not (List.contains i todo) then
                printfn "[point %d/%d] %s: finished, skipped" i grid.Length (Grid.pointName p)

        if launch.Workers <= 1 then
            for i in todo do
                try
                    Point.runPoint cancel dir i |> ignore
                with RunLock.Refused _ as e ->
                    // another process trains this point: leave it to that one, go on with the rest
                    eprintfn "[point %d/%d] %s: skipped: %s" i grid.Length (Grid.pointName grid[i]) e.Message
        else
            let results = Workers.runWorkers cancel command workDir dir launch.Workers todo

            if cancel.IsCancellationRequested then
                raise (
                    OperationCanceledException(
                        $"sweep stopped: the running points wrote their checkpoints; give sweep_dir={dir} again to resume them"
                    )
                )

            let failed = results |> List.filter (fun (_, c) -> c <> 0)

            for i, code in failed do
                eprintfn
                    "point %d (%s) failed with exit code %d; last lines of its log:"
                    i
                    (Grid.pointName grid[i])
                    code

                for l in Folder.tailLines 15 (Folder.logFile dir i) do
                    eprintfn "    %s" l

        let rows, missing = Collect.collect dir

        if not missing.IsEmpty then
            eprintfn "%d of %d points have no finished run: %s" missing.Length grid.Length (String.Join("; ", missing))

        printfn "sweep folder: %s" dir
        Finished(dir, rows, missing)

    /// Runs a PPO sweep. `args`: `config=` (a file, or a name in scripts/configs; default
    /// ppo-cartpole.yaml), `sweep_dir=` (default `runs/sweep-<timestamp>`), `threshold=` (return
    /// level for steps-to-threshold), the launcher keys (`Launch.parseLaunch`: `launcher=local|slurm`,
    /// `workers=`, `requeue=`, `slurm_partition=`, `slurm_time=`, `slurm_cpus_per_task=`,
    /// `slurm_gres=`, `slurm_mem=`, `slurm_extra=`) and grid axes `key=v1,v2,...` (any PPO config
    /// key; seeds are batched inside each run through `num_seeds`). `command` is the program and
    /// arguments that start `scripts/sweep.fsx` (worker processes and Slurm tasks run
    /// `command point sweep_dir=<dir> index=<i>` from `workDir`, the repository root).
    ///
    /// Everything is checked before anything is written: the grid and every point's full config,
    /// the launcher keys, for Slurm that `sbatch` is on PATH and that sbatch accepts the script
    /// (`sbatch --test-only`: partition, gres, time); a failed check raises one `ConfigError` naming
    /// the key, the value and what is allowed, and leaves the sweep folder as it was. An existing
    /// sweep folder must hold the same config and grid (its points.json); then only its unfinished
    /// points run (local) or are submitted (Slurm: points neither finished nor still queued).
    ///
    /// Local: every point runs in its own folder `<sweep_dir>/<pointName>/` (a point with a
    /// checkpoint but no summary.json is resumed, `Point.runPoint`), one after another in this process
    /// (`workers=1`) or `workers` at once as separate processes; then `summary.csv` and `report.html`
    /// (`Collect.collect`). A point that another live process trains (it holds the point's lock, see
    /// `Point.runPoint`) is not trained twice: with `workers=1` it is skipped with a line, a worker
    /// process or Slurm task given it is refused (exit code 2, the reason in its log); either way it is
    /// listed among the points without a finished run. `cancel` stops the current runs at their next
    /// update boundary after a checkpoint and raises `OperationCanceledException`. Slurm: writes
    /// points.json and sweep.sbatch, submits it with `sbatch --parsable`, records the job id in
    /// slurm-jobs.txt and prints how to follow it.
    let sweep
        (cancel: Threading.CancellationToken)
        (command: string list)
        (workDir: string)
        (args: string list)
        : Outcome =
        let plan = plan args

        match plan.Launch.Launcher with
        | "slurm" -> submit command workDir plan
        | _ -> runHere cancel command workDir plan

    /// Runs a PPO sweep with the local launcher in this process (see `sweep`; the working folder is
    /// the repository root, whose scripts/sweep.fsx starts worker processes when `workers` > 1) and
    /// returns the sweep folder and the summary rows. Raises `ConfigError` for bad input before
    /// anything is written, and `InvalidOperationException` for `launcher=slurm` (use `sweep`).
    let runPpo (args: string list) : string * PointSummary list =
        let root = Directory.GetCurrentDirectory()

        match
            sweep
                Threading.CancellationToken.None
                [ "dotnet"; "fsi"; "--quiet"; Path.Combine(root, "scripts", "sweep.fsx") ]
                root
                args
        with
        | Finished(dir, rows, _) -> dir, rows
        | Submitted _ -> invalidOp "Sweep.Launcher.runPpo runs sweeps here; use Sweep.Launcher.sweep for launcher=slurm"
