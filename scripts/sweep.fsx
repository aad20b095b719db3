// Hyperparameter sweep of PPO over a grid of config values, seeds batched inside each run:
//
//   dotnet fsi scripts/sweep.fsx config=ppo-mountaincar.yaml beta_1=0.8,0.9,0.95,0.99 num_seeds=10
//   dotnet fsi scripts/sweep.fsx ... workers=4                    # 4 grid points at once, 4 processes
//   dotnet fsi scripts/sweep.fsx ... launcher=slurm slurm_time=2:00:00 slurm_cpus_per_task=4
//   dotnet fsi scripts/sweep.fsx status sweep_dir=<folder>        # pending, running, done, failed
//   dotnet fsi scripts/sweep.fsx collect sweep_dir=<folder>       # summary.csv, report.html so far
//
// Arguments: config=<file or name in scripts/configs>, sweep_dir=<folder> (default
// runs/sweep-<time>; give the same folder again to resume: finished grid points are skipped,
// interrupted ones resume from their checkpoints, with Slurm only unfinished points are
// resubmitted), threshold=<return> (for steps-to-threshold), launcher=local|slurm, workers=<K>
// (local), requeue=true|false and slurm_partition, slurm_time, slurm_cpus_per_task, slurm_gres,
// slurm_mem, slurm_extra (slurm; see README "Sweeps on a cluster"), and any PPO config key as
// key=v1,v2,... Writes <sweep_dir>/points.json, <sweep_dir>/<point>/ppo-*/ per grid point,
// summary.csv and report.html (sweep.sbatch and logs/ with Slurm or workers).
// `point sweep_dir=<folder> index=<i>` runs one grid point (what workers and Slurm tasks run).
// Exit codes: 0 done (or submitted), 1 a point failed, 2 bad input, 3 stopped by a signal after
// writing checkpoints (give the same sweep again to resume).
#load "prepare.fsx"
#load "load.fsx"

open System
open System.IO
open Rl

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray
let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))

/// What starts this script again (worker processes and Slurm tasks run `<command> point ...`).
let command =
    let dotnet =
        match Environment.GetEnvironmentVariable "DOTNET_HOST_PATH" with
        | null
        | "" -> Native.which "dotnet" |> Option.defaultValue "dotnet"
        | p -> p

    [ dotnet; "fsi"; "--quiet"; Path.Combine(__SOURCE_DIRECTORY__, "sweep.fsx") ]

let value (key: string) (xs: string list) =
    xs
    |> List.tryFindBack (fun a -> a.StartsWith(key + "="))
    |> Option.map (fun a -> a.Substring(key.Length + 1))

let required (key: string) (xs: string list) =
    match value key xs with
    | Some v -> v
    | None -> raise (ConfigError("sweep", key, "", $"{key}=<...>", $"{key} is required"))

let printRows (rows: Sweep.PointSummary list) =
    for r in rows do
        printfn
            "%-40s final return %8.1f +- %6.1f  (95%% CI %8.1f .. %8.1f)  %6.1f s"
            (Sweep.Grid.pointName r.Point)
            r.Mean
            r.Std
            r.CiLow
            r.CiHigh
            r.WallSeconds

    printfn "%s" (Sweep.Summary.reading rows)

let code =
    try
        match args with
        | "point" :: rest ->
            use stop = Sweep.Point.stopOnTaskSignals ()
            let cancel = stop.Token
            let index = required "index" rest

            match Int32.TryParse index with
            | true, i ->
                Sweep.Point.runPoint cancel (required "sweep_dir" rest) i |> ignore
                0
            | _ ->
                raise (ConfigError("sweep point", "index", index, "a grid point's index (0, 1, ...)", "not a number"))
        | "status" :: rest ->
            let dir = required "sweep_dir" rest
            let points = Sweep.Status.status 5 dir

            for p in points do
                match p.State with
                | Sweep.Done run -> printfn "%3d  done     %s  (%s)" p.Index p.Name run
                | Sweep.Running s -> printfn "%3d  running  %s  (%s)" p.Index p.Name s
                | Sweep.Pending s -> printfn "%3d  pending  %s  (%s)" p.Index p.Name s
                | Sweep.Failed(why, log) ->
                    printfn "%3d  FAILED   %s  (%s)" p.Index p.Name why

                    for l in log do
                        printfn "         | %s" l

            let count f = points |> List.filter f |> List.length

            printfn
                "%d points: %d done, %d running, %d pending, %d failed"
                points.Length
                (count (fun p -> p.State.IsDone))
                (count (fun p -> p.State.IsRunning))
                (count (fun p -> p.State.IsPending))
                (count (fun p -> p.State.IsFailed))

            0
        | "collect" :: rest ->
            let dir = required "sweep_dir" rest
            let rows, missing = Sweep.Collect.collect dir
            printRows rows

            if not missing.IsEmpty then
                printfn "missing (no finished run yet): %s" (String.Join("; ", missing))

            printfn "summary: %s, report: %s" (Path.Combine(dir, "summary.csv")) (Path.Combine(dir, "report.html"))
            0
        | rest ->
            let rest =
                match rest with
                | "run" :: r -> r
                | r -> r

            use stop = Train.stopOnSignals ()
            let cancel = stop.Token

            match Sweep.Launcher.sweep cancel command root rest with
            | Sweep.Submitted _ -> 0
            | Sweep.Finished(dir, rows, missing) ->
                printRows rows
                printfn "summary: %s/summary.csv, report: %s/report.html" dir dir
                if missing.IsEmpty then 0 else 1
    with
    | ConfigError _ as e ->
        eprintfn "%s" e.Message
        2
    | :? IO.InvalidDataException
    | :? FormatException as e ->
        eprintfn "damaged file: %s" e.Message
        2
    | :? OperationCanceledException as e ->
        eprintfn "stopped: %s" e.Message
        Sweep.Folder.StoppedExitCode

exit code
