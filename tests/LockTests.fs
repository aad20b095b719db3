/// Tests of the run lock (`RunLock`, `run.lock`): one process at a time trains into a run folder or
/// a sweep point. A second resume of a folder that a live process holds is refused with a message
/// naming the folder and the holder, and changes no file; a lock left by a process that is gone (a
/// pid that exited, a pid now running another process) is taken over with one line and the run goes
/// on; the lock is released however a run ends (finished, failed, cancelled); a sweep does not train
/// a point that another live process holds.
module Rl.Tests.LockTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open Expecto
open Rl
open Rl.Tests.TestPaths

/// A short Pendulum run (`ResumeTests.smallPendulum`) from the repository's config.
let private small =
    ("config=" + config "ppo-pendulum.yaml") :: ResumeTests.smallPendulum
    @ [ "capture_video=false" ]

/// A run folder under `runs` stopped after its first update (a token cancelled before the start),
/// with its checkpoint: a folder to resume.
let private stoppedRun (runs: string) =
    use cts = new CancellationTokenSource()
    cts.Cancel()

    let e =
        Expect.throwsC (fun () -> Ppo.Runner.runWith cts.Token ($"runs={runs}" :: small) |> ignore) id

    match e with
    | :? Train.RunStoppedException as s -> s.RunDir
    | _ -> failtest $"expected RunStoppedException, got {e.GetType().Name}: {e.Message}"

/// Every file of a folder but its lock, with its bytes (what "changes no file" compares).
let private files (dir: string) =
    Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
    |> Array.filter (fun f -> Path.GetFileName f <> RunLock.FileName)
    |> Array.sort
    |> Array.map (fun f -> Path.GetRelativePath(dir, f), File.ReadAllBytes f)
    |> List.ofArray

/// Writes `dir`'s lock file as held by `h`.
let private writeLock (dir: string) (h: LockHolder) =
    File.WriteAllText(RunLock.pathOf dir, RunLock.format h)

/// A process that lives for 30 s (killed by `use`), to hold a lock.
let private sleeper () =
    let p = Process.Start(ProcessStartInfo("sleep", "30", UseShellExecute = false))

    { new IDisposable with
        member _.Dispose() =
            (try
                p.Kill()
                p.WaitForExit()
             with _ ->
                 ())

            p.Dispose()
    },
    p.Id

/// The pid of a process that has exited (and been reaped).
let private deadPid () =
    use p = Process.Start(ProcessStartInfo("true", UseShellExecute = false))
    p.WaitForExit()
    p.Id

/// The holder of a lock taken by process `pid` on this host.
let private heldBy (pid: int) =
    { RunLock.current () with
        Pid = pid
        StartTicks = RunLock.startTicksOf pid
        Started =
            try
                use p = Process.GetProcessById pid
                p.StartTime.ToUniversalTime()
            with _ ->
                DateTime.UtcNow
    }

/// `f ()` raises the run lock's refusal; returns its message.
let private refused (f: unit -> unit) =
    let e = Expect.throwsC f id

    match e with
    | RunLock.Refused _ -> e.Message
    | _ -> failtest $"expected the run lock's refusal, got {e.GetType().Name}: {e.Message}"

[<Tests>]
let tests =
    testList
        "Lock"
        [
            test
                "a resume of a folder that a live process holds is refused, naming the folder and holder, and changes no file" {
                let runs = tempDir "rl-lock"

                try
                    let dir = stoppedRun runs
                    Expect.isFalse (File.Exists(RunLock.pathOf dir)) "the stopped run released its lock"
                    let before = files dir

                    Expect.isTrue
                        (List.exists (fun (f: string, _) -> f.StartsWith Run.CheckpointDir) before)
                        "a checkpoint to resume"

                    let holder, sleepPid = sleeper ()
                    use _holder = holder

                    for h, mentions in
                        [
                            // this very process, another live process here, a process on another host
                            heldBy Environment.ProcessId, [ string Environment.ProcessId; "this very process" ]
                            heldBy sleepPid, [ string sleepPid; "still running" ]
                            { heldBy sleepPid with
                                Host = "node-elsewhere"
                            },
                            [ "node-elsewhere"; "cannot be checked from host" ]
                        ] do
                        writeLock dir h
                        let lockBytes = File.ReadAllBytes(RunLock.pathOf dir)

                        let message =
                            refused (fun () -> Ppo.Runner.run [ $"resume={dir}"; "learning_rate=0.001" ] |> ignore)

                        printfn "refused: %s" message

                        for m in [ dir; RunLock.pathOf dir; h.Host; "process started"; "wait" ] @ mentions do
                            Expect.stringContains message m $"the refusal names '{m}'"

                        Expect.isFalse (message.Contains '\n') "one line"
                        Expect.equal (files dir) before "metrics.csv, checkpoint/, config.yaml: unchanged byte for byte"

                        Expect.equal
                            (File.ReadAllBytes(RunLock.pathOf dir))
                            lockBytes
                            "the holder's lock is left as it was"

                    // the holder is gone (and its lock deleted): the resume goes on and finishes
                    holder.Dispose()
                    File.Delete(RunLock.pathOf dir)
                    Expect.equal (Ppo.Runner.run [ $"resume={dir}" ]) dir "resumed"
                    Expect.isTrue (File.Exists(Path.Combine(dir, Run.SummaryFile))) "finished"
                    Expect.isFalse (File.Exists(RunLock.pathOf dir)) "released after the run"
                finally
                    Directory.Delete(runs, true)
            }

            test "a lock left by a process that is gone is taken over with one line, and the resumed run finishes" {
                let runs = tempDir "rl-lock"

                try
                    let me = RunLock.current ()
                    let ticks = me.StartTicks |> Option.defaultValue 0L

                    let stale =
                        [
                            "no longer running",
                            { heldBy (deadPid ()) with
                                StartTicks = Some 12345L
                            }
                            "another process",
                            { me with
                                StartTicks = Some(ticks - 1L)
                            }
                            "same Slurm job",
                            { me with
                                Host = "node-crashed"
                                SlurmJob = "4242"
                            }
                        ]

                    // RunLock.acquire itself: the line printed, the new lock this process's
                    for why, h in stale do
                        let dir = tempDir "rl-lock-dir"

                        try
                            writeLock dir h

                            let previousJob = Environment.GetEnvironmentVariable "SLURM_JOB_ID"

                            if h.SlurmJob <> "" then
                                Environment.SetEnvironmentVariable("SLURM_JOB_ID", h.SlurmJob)

                            try
                                use held = RunLock.acquire dir
                                let line = held.Replaced |> Option.defaultValue ""
                                printfn "took over (%s): %s" why line
                                Expect.stringContains line "taking over" why
                                Expect.stringContains line (string h.Pid) $"{why}: names the old pid"
                                Expect.stringContains line h.Host $"{why}: names the old host"
                                Expect.equal (RunLock.holderOf dir |> Option.map _.Pid) (Some Environment.ProcessId) why
                            finally
                                Environment.SetEnvironmentVariable("SLURM_JOB_ID", previousJob)

                            Expect.isFalse (File.Exists(RunLock.pathOf dir)) $"{why}: released"
                        finally
                            Directory.Delete(dir, true)

                    // an unreadable lock (cut short) is taken over too
                    let dir = tempDir "rl-lock-dir"

                    try
                        File.WriteAllText(RunLock.pathOf dir, """{"pid": 12""")
                        use held = RunLock.acquire dir
                        Expect.stringContains (held.Replaced |> Option.defaultValue "") "unreadable" "damaged lock"
                    finally
                        Directory.Delete(dir, true)

                    // through a resume: a dead pid's lock, then one with a wrong start time
                    let run = stoppedRun runs
                    writeLock run (snd stale[0])
                    Expect.equal (Ppo.Runner.run [ $"resume={run}" ]) run "resumed over a dead pid's lock"
                    Expect.isTrue (File.Exists(Path.Combine(run, Run.SummaryFile))) "finished"
                    Expect.isFalse (File.Exists(RunLock.pathOf run)) "released"
                    let run2 = stoppedRun (Path.Combine(runs, "b"))
                    writeLock run2 (snd stale[1])
                    Expect.equal (Ppo.Runner.run [ $"resume={run2}" ]) run2 "resumed over a reused pid's lock"
                    Expect.isFalse (File.Exists(RunLock.pathOf run2)) "released"
                finally
                    Directory.Delete(runs, true)
            }

            test "the lock is held while a run trains and released after it finishes, fails or is cancelled" {
                let runs = tempDir "rl-lock"

                try
                    // finished: held during training by this process, gone afterwards
                    let seen = ResizeArray<int option>()

                    let options =
                        { Train.DriveOptions.Default with
                            OnProgress =
                                fun _ _ _ ->
                                    if seen.Count = 0 then
                                        let dir = Directory.GetDirectories runs |> Array.exactlyOne
                                        seen.Add(RunLock.holderOf dir |> Option.map _.Pid)
                        }

                    let outcome =
                        Train.run options Ppo.Runner.algorithm (Train.FromArgs($"runs={runs}" :: small))

                    Expect.equal (List.ofSeq seen) [ Some Environment.ProcessId ] "held by this process while training"
                    Expect.isFalse (File.Exists(RunLock.pathOf outcome.Dir)) "released after a finished run"

                    // failed: an exception while training, and a bad override after the lock was taken
                    let failing =
                        { Train.DriveOptions.Default with
                            OnProgress = fun _ _ _ -> failwith "simulated failure"
                        }

                    let e =
                        Expect.throwsC
                            (fun () ->
                                Train.run failing Ppo.Runner.algorithm (Train.FromArgs($"runs={runs}/failed" :: small))
                                |> ignore)
                            id

                    Expect.stringContains e.Message "simulated failure" "the failure comes through"

                    let failed =
                        Directory.GetDirectories(Path.Combine(runs, "failed")) |> Array.exactlyOne

                    Expect.isFalse (File.Exists(RunLock.pathOf failed)) "released after a failed run"

                    // cancelled: stopped after its first update, released, then resumable
                    let stopped = stoppedRun (Path.Combine(runs, "stopped"))
                    Expect.isFalse (File.Exists(RunLock.pathOf stopped)) "released after a cancelled run"

                    let bad =
                        Expect.throwsC
                            (fun () -> Ppo.Runner.run [ $"resume={stopped}"; "learning_rate=-1" ] |> ignore)
                            id

                    match bad with
                    | ConfigError _ -> Expect.stringContains bad.Message "learning_rate" "the bad override is named"
                    | _ -> failtest $"expected a ConfigError, got {bad.GetType().Name}: {bad.Message}"

                    Expect.isFalse (File.Exists(RunLock.pathOf stopped)) "released after a refused config"
                    Expect.equal (Ppo.Runner.run [ $"resume={stopped}" ]) stopped "the cancelled run resumes"
                    Expect.isFalse (File.Exists(RunLock.pathOf stopped)) "released after the resumed run"
                finally
                    Directory.Delete(runs, true)
            }

            test "a sweep does not train a point that another live process holds; the other points are trained" {
                let dir = tempDir "rl-lock-sweep"

                try
                    // every key=value is an axis of the grid (one value each but beta_1's two)
                    let axes =
                        [
                            "num_envs", "2"
                            "num_steps", "32"
                            "num_minibatches", "2"
                            "update_epochs", "1"
                            "total_timesteps", "128"
                            "eval_episodes", "1"
                            "threads", "1"
                        ]

                    let args =
                        [ $"sweep_dir={dir}"; "config=" + config "ppo-cartpole.yaml" ]
                        @ [ for k, v in axes -> $"{k}={v}" ]
                        @ [ "beta_1=0.8,0.9" ]

                    let pointOf beta = axes @ [ "beta_1", beta ]
                    let held = Path.Combine(dir, Sweep.Grid.pointName (pointOf "0.8"))
                    let free = Path.Combine(dir, Sweep.Grid.pointName (pointOf "0.9"))
                    Directory.CreateDirectory held |> ignore
                    let holder, sleepPid = sleeper ()
                    use _holder = holder
                    writeLock held (heldBy sleepPid)
                    let lockBytes = File.ReadAllBytes(RunLock.pathOf held)

                    match Sweep.Launcher.sweep CancellationToken.None [ "unused" ] repoRoot.Value args with
                    | Sweep.Finished(_, rows, missing) ->
                        Expect.equal (rows |> List.map (fun r -> r.Point)) [ pointOf "0.9" ] "the free point ran"
                        Expect.equal missing [ Path.GetFileName held ] "the held point is reported unfinished"
                    | o -> failtest $"expected a finished sweep, got {o}"

                    Expect.isSome (Sweep.Summary.finishedRun free) "the free point finished"
                    Expect.isFalse (File.Exists(RunLock.pathOf free)) "the free point's lock released"

                    Expect.equal
                        (Directory.GetFileSystemEntries held |> Array.map Path.GetFileName)
                        [| RunLock.FileName |]
                        "nothing trained into the held point"

                    Expect.equal (File.ReadAllBytes(RunLock.pathOf held)) lockBytes "its lock is left as it was"
                    Expect.isFalse (File.Exists(Sweep.Folder.stateFile dir 0)) "its state file is not written"

                    // a worker or Slurm task given the point (`sweep.fsx point`) is refused: exit code 2
                    let message =
                        refused (fun () -> Sweep.Point.runPoint CancellationToken.None dir 0 |> ignore)

                    Expect.stringContains message (string sleepPid) "names the holder"
                    Expect.stringContains message held "names the point's folder"

                    // the holder gone: the same sweep again trains the point
                    holder.Dispose()

                    match Sweep.Launcher.sweep CancellationToken.None [ "unused" ] repoRoot.Value args with
                    | Sweep.Finished(_, rows, missing) ->
                        Expect.equal rows.Length 2 "both points finished"
                        Expect.isEmpty missing "none missing"
                    | o -> failtest $"expected a finished sweep, got {o}"

                    Expect.isFalse (File.Exists(RunLock.pathOf held)) "the taken-over lock released"
                finally
                    Directory.Delete(dir, true)
            }
        ]
