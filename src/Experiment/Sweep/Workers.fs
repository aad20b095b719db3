/// The local launcher's worker processes: `workers=K` grid points at once, each its own process.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// Local worker processes.
module Workers =
    /// libc's kill(2), to stop worker processes with SIGTERM (they checkpoint and exit).
    [<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
    extern int private kill(int pid, int signal)

    /// Runs the points `indices` of sweep folder `dir` as worker processes, `workers` at once, each
    /// `command point sweep_dir=<dir> index=<i>` from `workDir` with its output appended to
    /// `logs/point-<i>.log`. When `cancel` fires, every running worker gets SIGTERM (it checkpoints
    /// and exits) and no new one starts. Returns (index, exit code) per started point.
    let internal runWorkers
        (cancel: Threading.CancellationToken)
        (command: string list)
        (workDir: string)
        (dir: string)
        (workers: int)
        (indices: int list)
        =
        let running = Collections.Generic.Dictionary<int, Diagnostics.Process>()
        let results = ResizeArray<int * int>()
        let queue = Collections.Generic.Queue<int>(indices)
        Directory.CreateDirectory(Path.Combine(dir, Folder.LogsDir)) |> ignore

        let start (i: int) =
            // sh appends the worker's stdout and stderr to its log, then becomes the worker (exec)
            let psi =
                Diagnostics.ProcessStartInfo("/bin/sh", WorkingDirectory = workDir, UseShellExecute = false)

            psi.ArgumentList.Add "-c"
            psi.ArgumentList.Add "exec \"$@\" >>\"$RL_POINT_LOG\" 2>&1 </dev/null"
            psi.ArgumentList.Add "sh"

            for a in command @ [ "point"; $"sweep_dir={dir}"; $"index={i}" ] do
                psi.ArgumentList.Add a

            psi.Environment["RL_POINT_LOG"] <- Folder.logFile dir i
            psi.Environment["RL_PROGRESS"] <- "plain"
            File.AppendAllText(Folder.logFile dir i, $"== point {i} started by a local worker at {DateTime.UtcNow:o}\n")
            printfn "[point %d] started (log: %s)" i (Folder.logFile dir i)
            running[i] <- Diagnostics.Process.Start psi

        use _reg =
            cancel.Register(fun () ->
                lock running (fun () ->
                    for KeyValue(_, p) in running do
                        try
                            if not p.HasExited then
                                kill (p.Id, 15) |> ignore
                        with _ ->
                            ()))

        while queue.Count > 0 || running.Count > 0 do
            lock running (fun () ->
                while running.Count < workers && queue.Count > 0 && not cancel.IsCancellationRequested do
                    start (queue.Dequeue()))

            if not cancel.IsCancellationRequested || running.Count > 0 then
                let finished =
                    lock running (fun () -> running |> Seq.filter (fun kv -> kv.Value.HasExited) |> List.ofSeq)

                for KeyValue(i, p) in finished do
                    p.WaitForExit()
                    let code = p.ExitCode
                    lock running (fun () -> running.Remove i |> ignore)
                    p.Dispose()
                    results.Add(i, code)

                    match code with
                    | 0 -> printfn "[point %d] finished" i
                    | Folder.StoppedExitCode -> printfn "[point %d] stopped after writing its checkpoint" i
                    | c -> eprintfn "[point %d] FAILED with exit code %d (log: %s)" i c (Folder.logFile dir i)

                if finished.IsEmpty then
                    Threading.Thread.Sleep 200

            if cancel.IsCancellationRequested then
                queue.Clear()

        List.ofSeq results
