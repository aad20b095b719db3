/// Where every grid point of a sweep folder stands: pending, queued, running, done or failed.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// Where a grid point stands.
type PointState =
    /// Not started, queued, or stopped and waiting to be resumed (the text says which).
    | Pending of string
    /// A worker or task is running it (the text: where, since when).
    | Running of string
    /// Finished: the run folder.
    | Done of string
    /// Failed: the reason and the last lines of its log.
    | Failed of string * string list

/// One grid point's status.
type PointStatus =
    {
        /// Its index in points.json (the Slurm array task id).
        Index: int
        /// Its folder name (`pointName`).
        Name: string
        State: PointState
    }

/// The status of every point.
module Status =
    /// The Slurm job ids submitted for sweep folder `dir` (from slurm-jobs.txt), oldest first.
    let jobIds (dir: string) : string list =
        let path = Path.Combine(dir, Folder.JobsFile)

        if File.Exists path then
            File.ReadAllLines path
            |> Array.choose (fun l ->
                match l.Split(' ', StringSplitOptions.RemoveEmptyEntries) with
                | [||] -> None
                | xs -> Some xs[0])
            |> List.ofArray
        else
            []

    /// The array tasks of `jobs` that Slurm still holds (squeue): array index -> (state, reason),
    /// e.g. 3 -> ("PENDING", "BeginTime"). Empty when there are no jobs or squeue is missing or fails
    /// (jobs that ended long ago are no longer known to squeue).
    let queuedTasks (jobs: string list) : Map<int, string * string> =
        match jobs, Native.which "squeue" with
        | [], _
        | _, None -> Map.empty
        | _, Some squeue ->
            let code, out, _ =
                Native.capture [] None squeue [ "-h"; "-r"; "-j"; String.Join(",", jobs); "-o"; "%i|%T|%r" ]

            if code <> 0 then
                Map.empty
            else
                [
                    for line in out.Split('\n', StringSplitOptions.RemoveEmptyEntries) do
                        match line.Trim().Split('|') with
                        | [| id; state; reason |] when id.Contains '_' ->
                            match Int32.TryParse(id.Substring(id.IndexOf '_' + 1)) with
                            | true, i -> yield i, (state, reason)
                            | _ -> ()
                        | _ -> ()
                ]
                |> Map.ofList

    /// The status of every grid point of sweep folder `dir`, in grid order: done when its folder has
    /// a finished run; otherwise Slurm's view when squeue still lists the point's task (running, or
    /// pending with Slurm's reason); otherwise its state file: failed (with the last `logLines` lines
    /// of its log), running (a worker process on this machine that is still alive), stopped (pending,
    /// resumes from its checkpoint when resubmitted), or pending when it never started. A state file
    /// saying running whose process or task is gone is reported as failed. Raises `ConfigError` when
    /// `dir` has no points.json.
    let status (logLines: int) (dir: string) : PointStatus list =
        let dir = Path.GetFullPath dir
        let spec = Folder.readSpec dir
        let queued = queuedTasks (jobIds dir)

        [
            for i, p in List.indexed spec.Points ->
                let name = Grid.pointName p
                let pointDir = Path.Combine(dir, name)

                let log () =
                    Folder.tailLines logLines (Folder.logFile dir i)

                let stateText =
                    let f = Folder.stateFile dir i

                    if File.Exists f then (File.ReadAllText f).Trim() else ""

                let word = stateText.Split(' ').[0]

                let state =
                    match Summary.finishedRun pointDir, queued.TryFind i with
                    | Some run, _ -> Done run
                    | None, Some("RUNNING", _) ->
                        Running(
                            if word = "running" then
                                $"Slurm: {stateText}"
                            else
                                "Slurm: task started, run not begun yet"
                        )
                    | None, Some(st, reason) when word = "stopped" ->
                        Pending $"stopped with a checkpoint, requeued: Slurm {st} ({reason})"
                    | None, Some(st, reason) -> Pending $"Slurm {st} ({reason})"
                    | None, None ->
                        match word with
                        | "failed" -> Failed(stateText.Substring(7), log ())
                        | "stopped" -> Pending $"{stateText}; resumes from its checkpoint when the sweep is given again"
                        | "running" ->
                            let field (k: string) =
                                stateText.Split(' ')
                                |> Array.tryFind (fun s -> s.StartsWith(k + "="))
                                |> Option.map (fun s -> s.Substring(k.Length + 1))

                            let alive =
                                match field "host", field "pid", field "job" with
                                | _, _, Some _ -> false // a Slurm task squeue no longer lists
                                | Some h, Some pid, None when h = Environment.MachineName ->
                                    Directory.Exists $"/proc/{pid}"
                                | _ -> true // another machine: trust the state file

                            if alive then
                                Running stateText
                            else
                                Failed("its task ended without finishing (killed, or out of memory/time?)", log ())
                        | "done" -> Pending "a run was reported done but its folder has no summary.json"
                        | _ when Folder.resumableRun pointDir |> Option.isSome ->
                            Pending "an interrupted run with a checkpoint; resumes when the sweep is given again"
                        | _ -> Pending "not started"

                {
                    Index = i
                    Name = name
                    State = state
                }
        ]
