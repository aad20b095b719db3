/// One grid point run in this process, as a local worker or a Slurm task runs it: skipped when
/// finished, resumed from its checkpoint when interrupted, its state file kept up to date.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// Running one grid point.
module Point =
    let private writeState (dir: string) (index: int) (text: string) =
        Files.writeTextAtomic (Folder.stateFile dir index) (text.Replace('\n', ' ') + "\n")

    /// Signal handling (`Train.SignalStop`, keep it with `use`) whose token the first SIGTERM or
    /// SIGINT cancels and that keeps the process alive through every later one, for a point task
    /// (`sweep.fsx point`): a task can get its stop signal twice (Slurm's `scancel --signal=TERM
    /// --full` reaches both the batch script, which forwards it, and the run; Ctrl+C reaches local
    /// workers from the terminal and from the sweep that started them), and the second must not end
    /// the run before its checkpoint (`Train.stopOnSignals` would). Slurm's SIGKILL after its
    /// KillWait still ends a task that does not stop.
    let stopOnTaskSignals () : Train.SignalStop = Train.stopOnSignalsWith false

    /// Runs grid point `index` of sweep folder `dir` (read from its points.json) in this process, as
    /// a worker process or Slurm task does: a point with a finished run is skipped; a point whose run
    /// folder has a checkpoint but no summary.json is resumed from it (`resume=<run dir>`, exact:
    /// the resumed run ends with the metrics of an uninterrupted one); attempts without a checkpoint
    /// are deleted and the point starts afresh with its overrides and the spec's task overrides.
    /// `cancel` stops the run at the next update boundary after writing its checkpoint (the run then
    /// raises an `OperationCanceledException`, `Train.RunStoppedException`). Writes the point's
    /// state file (running, then done, stopped or failed with the reason). The point's folder is
    /// locked (`RunLock`, `<point>/run.lock`) while it is trained, so two processes never train one
    /// point at once. Returns the finished run folder. Raises `ConfigError` for an index outside the
    /// grid, and (source "run lock", `RunLock.Refused`) when another live process trains the point:
    /// then nothing is written, not even the point's state file.
    let runPoint (cancel: Threading.CancellationToken) (dir: string) (index: int) : string =
        let dir = Path.GetFullPath dir
        let spec = Folder.readSpec dir

        if index < 0 || index >= spec.Points.Length then
            raise (
                ConfigError(
                    "sweep point",
                    "index",
                    string index,
                    $"0 .. {spec.Points.Length - 1} (the grid points of {Path.Combine(dir, Folder.SpecFile)})",
                    "no such grid point"
                )
            )

        let p = spec.Points[index]
        let pointDir = Path.Combine(dir, Grid.pointName p)
        let label = $"[point {index}/{spec.Points.Length}] {Grid.pointName p}"
        Directory.CreateDirectory(Path.Combine(dir, Folder.LogsDir)) |> ignore

        match Summary.finishedRun pointDir with
        | Some d ->
            printfn "%s: finished, skipped" label
            writeState dir index $"done {d}"
            d
        | None ->
            // one process per point: a second sweep, worker or Slurm task given a point that another
            // live process trains is refused here, before it deletes, starts or writes anything
            Directory.CreateDirectory pointDir |> ignore
            use _lock = RunLock.acquire pointDir

            let args =
                match Folder.resumableRun pointDir with
                | Some run ->
                    printfn "%s: resuming %s from its checkpoint" label run
                    [ $"resume={run}" ]
                | None ->
                    // attempts stopped before their first checkpoint hold nothing to resume
                    if Directory.Exists pointDir then
                        for d in Directory.GetDirectories pointDir do
                            if not (File.Exists(Path.Combine(d, Run.SummaryFile))) then
                                Directory.Delete(d, true)

                    printfn "%s" label

                    [ $"config={spec.Config}"; $"runs={pointDir}" ]
                    @ [ for k, v in p -> $"{k}={v}" ]
                    @ spec.TaskOverrides

            let job =
                match Environment.GetEnvironmentVariable "SLURM_ARRAY_JOB_ID" with
                | null
                | "" -> ""
                | j ->
                    let task = Environment.GetEnvironmentVariable "SLURM_ARRAY_TASK_ID"
                    $" job={j}_{task}"

            writeState
                dir
                index
                $"running host={Environment.MachineName} pid={Environment.ProcessId}{job} since={DateTime.UtcNow:o}"

            try
                let run = Ppo.Runner.runWith cancel args
                writeState dir index $"done {run}"
                run
            with
            | :? OperationCanceledException as e ->
                writeState dir index $"stopped at {DateTime.UtcNow:o}: {e.Message}"
                reraise ()
            | e ->
                writeState dir index $"failed {e.GetType().Name}: {e.Message}"
                reraise ()
