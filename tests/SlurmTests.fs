/// Sweeps through a real one-node Slurm cluster on this machine (Debian's slurm-wlm and munge):
/// the test writes slurm.conf and cgroup.conf into a temporary folder, starts munged, slurmctld
/// and slurmd on localhost (free ports), runs a 4-point CartPole sweep with launcher=slurm,
/// stops one task with SIGTERM mid-run so it checkpoints, requeues itself and resumes, and checks
/// that `collect` gives the summary (and every point the metrics) of launcher=local. Without
/// root or without the packages the tests are skipped with one line saying why.
module Rl.Tests.SlurmTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Runtime.InteropServices
open Expecto
open Rl
open Rl.Tests.TestPaths

/// libc geteuid(2): 0 when this process runs as root.
[<DllImport("libc")>]
extern uint32 geteuid()

/// libc kill(2), to stop the daemons by pid with SIGTERM.
[<DllImport("libc", SetLastError = true)>]
extern int kill(int pid, int signal)

/// The programs the cluster needs.
let private programs =
    [
        "munged"
        "slurmctld"
        "slurmd"
        "sbatch"
        "squeue"
        "scontrol"
        "scancel"
        "sinfo"
    ]

/// Why the cluster cannot run here, if it cannot.
let skipReason () : string option =
    let missing =
        programs
        |> List.filter (fun p ->
            (Native.which p).IsNone
            && not (File.Exists $"/usr/sbin/{p}")
            && not (File.Exists $"/usr/bin/{p}"))

    if geteuid () <> 0u then
        Some "Slurm tests skipped: they start munged, slurmctld and slurmd, which needs root (CI runs as root)"
    elif not missing.IsEmpty then
        let names = String.Join(", ", missing)

        Some
            $"Slurm tests skipped: {names} not installed (as root: apt-get install -y slurm-wlm munge, or dotnet fsi build.fsx Setup)"
    else
        None

let private exe (name: string) =
    match Native.which name with
    | Some p -> p
    | None ->
        if File.Exists $"/usr/sbin/{name}" then
            $"/usr/sbin/{name}"
        else
            $"/usr/bin/{name}"

/// Runs a Slurm client command; returns the exit code and its output.
let slurm (name: string) (args: string list) : int * string =
    let code, out, err = Native.capture [] None (exe name) args
    code, (out + "\n" + err).Trim()

let private freePort () =
    let l = new TcpListener(IPAddress.Loopback, 0)
    l.Start()
    let port = (l.LocalEndpoint :?> IPEndPoint).Port
    l.Stop()
    port

/// What to show when a wait times out (set by the test: the points' status, the queue, logs).
let mutable private diagnose: unit -> string = fun () -> ""

let private waitFor (seconds: float) (what: string) (f: unit -> bool) =
    let sw = Stopwatch.StartNew()

    while not (f ()) do
        if sw.Elapsed.TotalSeconds > seconds then
            failtest $"timed out after {seconds} s waiting for {what}\n{diagnose ()}"

        Threading.Thread.Sleep 200

/// A one-node Slurm cluster on localhost in a temporary folder: munged, slurmctld and slurmd in
/// the foreground as child processes (stopped by their pids on Dispose), SLURM_CONF pointing at
/// its slurm.conf for this process and the jobs it submits.
type Cluster() =
    let dir = tempDir "rl-slurm"
    let conf = Path.Combine(dir, "slurm.conf")
    let previousConf = Environment.GetEnvironmentVariable "SLURM_CONF"
    let daemons = Collections.Generic.List<string * Process>()

    let memoryMb =
        File.ReadAllLines "/proc/meminfo"
        |> Array.find (fun l -> l.StartsWith "MemTotal:")
        |> fun l -> int64 (l.Split(' ', StringSplitOptions.RemoveEmptyEntries).[1]) / 1024L
        |> fun mb -> max 1000L (mb * 9L / 10L)

    let start (name: string) (args: string list) =
        // sh sends the daemon's own output to its log file, then becomes the daemon (exec)
        let psi = ProcessStartInfo("/bin/sh", UseShellExecute = false)
        psi.ArgumentList.Add "-c"
        psi.ArgumentList.Add "exec \"$@\" >>\"$RL_DAEMON_LOG\" 2>&1 </dev/null"
        psi.ArgumentList.Add "sh"
        psi.ArgumentList.Add(exe name)

        for a in args do
            psi.ArgumentList.Add a

        psi.Environment["RL_DAEMON_LOG"] <- Path.Combine(dir, "log", $"{name}.out")
        psi.Environment["SLURM_CONF"] <- conf
        daemons.Add((name, Process.Start psi))

    let mutable stopped = false

    /// Cancels what is left (so no slurmstepd outlives the daemons), stops the daemons by pid,
    /// restores SLURM_CONF and deletes the folder; once.
    let stop () =
        if not stopped then
            stopped <- true
            // cancel what is left so no slurmstepd outlives the daemons, then stop them by pid
            slurm "scancel" [ "--user=root" ] |> ignore

            try
                waitFor 40.0 "the queue to empty" (fun () ->
                    match slurm "squeue" [ "-h" ] with
                    | 0, out -> out.Trim() = ""
                    | _ -> true)
            with _ ->
                ()

            for name, proc in Seq.rev daemons do
                if not proc.HasExited then
                    kill (proc.Id, 15) |> ignore

                if not (proc.WaitForExit 10000) then
                    eprintfn "%s (pid %d) did not stop on SIGTERM; killing it" name proc.Id
                    proc.Kill()
                    proc.WaitForExit()

                proc.Dispose()

            Environment.SetEnvironmentVariable("SLURM_CONF", previousConf)

            try
                Directory.Delete(dir, true)
            with _ ->
                ()

    do
        try
            for d in [ "state"; "spool"; "log"; "munge" ] do
                Directory.CreateDirectory(Path.Combine(dir, d)) |> ignore

            File.SetUnixFileMode(
                Path.Combine(dir, "munge"),
                UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute
            )

            let key = Path.Combine(dir, "munge", "munge.key")
            File.WriteAllBytes(key, Security.Cryptography.RandomNumberGenerator.GetBytes 1024)
            File.SetUnixFileMode(key, UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
            let socket = Path.Combine(dir, "munge", "munge.socket")
            let cpus = Environment.ProcessorCount
            let p (parts: string * string) = Path.Combine(fst parts, snd parts)
            let p3 (a: string, b: string, c: string) = Path.Combine(a, b, c)

            File.WriteAllText(
                conf,
                String.concat
                    "\n"
                    [
                        "# one-node test cluster written by tests/SlurmTests.fs"
                        "ClusterName=rltest"
                        "SlurmctldHost=localhost"
                        "SlurmUser=root"
                        "SlurmdUser=root"
                        "AuthType=auth/munge"
                        "CredType=cred/munge"
                        // cred_expire: how long a requeued job is held (120 s by default); releasing it
                        // sooner makes slurmd refuse it ("Job credential revoked")
                        $"AuthInfo=socket={socket},cred_expire=10"
                        $"SlurmctldPort={freePort ()}"
                        $"SlurmdPort={freePort ()}"
                        "StateSaveLocation=" + p (dir, "state")
                        "SlurmdSpoolDir=" + p (dir, "spool")
                        "SlurmctldPidFile=" + p (dir, "slurmctld.pid")
                        "SlurmdPidFile=" + p (dir, "slurmd.pid")
                        "SlurmctldLogFile=" + p3 (dir, "log", "slurmctld.log")
                        "SlurmdLogFile=" + p3 (dir, "log", "slurmd.log")
                        "ProctrackType=proctrack/linuxproc"
                        "TaskPlugin=task/none"
                        "SelectType=select/cons_tres"
                        "SelectTypeParameters=CR_Core"
                        "SchedulerType=sched/backfill"
                        "MpiDefault=none"
                        "ReturnToService=2"
                        "JobRequeue=1"
                        "KillWait=30"
                        "MinJobAge=300"
                        "SlurmctldTimeout=30"
                        "SlurmdTimeout=30"
                        "JobAcctGatherType=jobacct_gather/none"
                        "AccountingStorageType=accounting_storage/none"
                        "JobCompType=jobcomp/none"
                        $"NodeName=localhost CPUs={cpus} RealMemory={memoryMb} State=UNKNOWN"
                        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP"
                        ""
                    ]
            )

            // Debian's Slurm 22.05 has no cgroup-free plugin and slurmd always loads one (the jobs
            // use task/none and proctrack/linuxproc): autodetect picks v1 or v2; on v2 it sets up
            // its own cgroup folders instead of asking systemd (no systemd on a CI machine)
            File.WriteAllText(p (dir, "cgroup.conf"), "CgroupPlugin=autodetect\nIgnoreSystemd=yes\n")
            Environment.SetEnvironmentVariable("SLURM_CONF", conf)

            start
                "munged"
                [
                    "--foreground"
                    "--force"
                    $"--socket={socket}"
                    $"--key-file={key}"
                    "--pid-file=" + p3 (dir, "munge", "munged.pid")
                    "--log-file=" + p3 (dir, "log", "munged.log")
                    "--seed-file=" + p3 (dir, "munge", "munged.seed")
                ]

            waitFor 10.0 "munged's socket" (fun () -> File.Exists socket)
            start "slurmctld" [ "-D"; "-f"; conf ]
            start "slurmd" [ "-D"; "-f"; conf; "-N"; "localhost" ]

            let idle () =
                match slurm "sinfo" [ "-h"; "-o"; "%T" ] with
                | 0, out -> out.Trim() = "idle"
                | _ -> false

            let clock = Stopwatch.StartNew()

            while not (idle ()) && clock.Elapsed.TotalSeconds < 30.0 do
                Threading.Thread.Sleep 200

            if not (idle ()) then
                let logs =
                    [ "slurmctld.log"; "slurmd.log"; "slurmd.out"; "slurmctld.out"; "munged.out" ]
                    |> List.collect (fun f -> Sweep.Folder.tailLines 10 (p3 (dir, "log", f)))
                    |> String.concat "\n"

                failtest $"the one-node Slurm cluster in {dir} did not come up within 30 s; its logs:\n{logs}"
        with _ ->
            stop ()
            reraise ()

    /// The cluster's folder (slurm.conf, state, logs).
    member _.Dir = dir

    /// The daemons' logs (for a failure message).
    member _.Logs() =
        [ "slurmctld.log"; "slurmd.log" ]
        |> List.collect (fun f -> Sweep.Folder.tailLines 15 (Path.Combine(dir, "log", f)))
        |> String.concat "\n"

    interface IDisposable with
        member _.Dispose() = stop ()

/// The command that starts scripts/sweep.fsx (what a task runs).
let private command =
    [
        "dotnet"
        "fsi"
        "--quiet"
        Path.Combine(repoRoot.Value, "scripts", "sweep.fsx")
    ]

/// The tiny 4-point CartPole grid of the test (2 seeds a point, 60 updates of 128 steps).
let private grid =
    [
        "config=" + config "ppo-cartpole.yaml"
        "threshold=25"
        "num_envs=4"
        "num_steps=32"
        "total_timesteps=7680"
        "num_seeds=2"
        "eval_episodes=1"
        "beta_1=0.8,0.9"
        "ent_coef=0.0,0.01"
    ]

[<Tests>]
let tests =
    testList
        "Ppo.sweep.slurm"
        [
            testCase
                "a one-node Slurm cluster: 4-point sweep, a task stopped by SIGTERM resumes, collect = local, only unfinished points are resubmitted; a bad partition is refused"
            <| fun () ->
                match skipReason () with
                | Some why ->
                    printfn "%s" why
                    skiptest why
                | None ->
                    let clock = Stopwatch.StartNew()
                    let localDir = tempDir "rl-sweep-local"
                    let slurmDir = tempDir "rl-sweep-slurm"

                    try
                        use cluster = new Cluster()
                        printfn "cluster up in %.1f s (%s)" clock.Elapsed.TotalSeconds cluster.Dir

                        // a partition the cluster does not have: sbatch's refusal, before anything is written
                        let before = SweepTests.folderState slurmDir

                        let e =
                            Expect.throwsC
                                (fun () ->
                                    Sweep.Launcher.sweep
                                        Threading.CancellationToken.None
                                        command
                                        repoRoot.Value
                                        ([ $"sweep_dir={slurmDir}"; "launcher=slurm"; "slurm_partition=nope" ] @ grid)
                                    |> ignore)
                                id

                        for m in [ "slurm_partition"; "'nope'"; "debug"; "sbatch refused" ] do
                            Expect.stringContains e.Message m $"the refusal names {m}"

                        Expect.equal (SweepTests.folderState slurmDir) before "the sweep folder stays as it was"

                        // the reference: the same grid with launcher=local
                        let local =
                            match
                                Sweep.Launcher.sweep
                                    Threading.CancellationToken.None
                                    command
                                    repoRoot.Value
                                    ([ $"sweep_dir={localDir}" ] @ grid)
                            with
                            | Sweep.Finished(_, rows, []) -> rows
                            | o -> failtest $"local sweep: {o}"

                        printfn "local sweep done at %.1f s" clock.Elapsed.TotalSeconds

                        let jobId =
                            match
                                Sweep.Launcher.sweep
                                    Threading.CancellationToken.None
                                    command
                                    repoRoot.Value
                                    ([
                                        $"sweep_dir={slurmDir}"
                                        "launcher=slurm"
                                        "slurm_partition=debug"
                                        "slurm_time=10"
                                        "slurm_cpus_per_task=1"
                                     ]
                                     @ grid)
                            with
                            | Sweep.Submitted(_, Some id, [ 0; 1; 2; 3 ]) -> id
                            | o -> failtest $"slurm sweep: {o}"

                        let script = File.ReadAllText(Path.Combine(slurmDir, Sweep.Folder.ScriptFile))

                        for l in
                            [
                                "#SBATCH --array=0-3"
                                "#SBATCH --partition=debug"
                                "#SBATCH --time=10"
                                "#SBATCH --cpus-per-task=1"
                                "#SBATCH --requeue"
                                "#SBATCH --signal=B:TERM@60"
                            ] do
                            Expect.stringContains script l "sweep.sbatch line"

                        let spec = Sweep.Folder.readSpec slurmDir

                        diagnose <-
                            fun () ->
                                let st =
                                    Sweep.Status.status 5 slurmDir
                                    |> List.map (fun p -> $"point {p.Index}: {p.State}")
                                    |> String.concat "\n"

                                let _, queue = slurm "squeue" [ "-r"; "-o"; "%i %T %r %S" ]
                                let _, job = slurm "scontrol" [ "show"; "job"; $"{jobId}_3" ]

                                let log3 =
                                    Sweep.Folder.tailLines 30 (Sweep.Folder.logFile slurmDir 3)
                                    |> String.concat "\n"

                                $"{st}\n{queue}\n{job}\n{log3}\n{cluster.Logs()}"

                        let dir3 = Path.Combine(slurmDir, Sweep.Grid.pointName spec.Points[3])

                        let rowsSoFar () =
                            if Directory.Exists dir3 then
                                Directory.GetFiles(dir3, Metrics.CsvFile, SearchOption.AllDirectories)
                                |> Array.sumBy (fun f ->
                                    try
                                        (Metrics.readCsv f |> Metrics.rows).Length
                                    with _ ->
                                        0)
                            else
                                0

                        // stop point 3 mid-run: SIGTERM to the batch shell and its children
                        waitFor 120.0 "point 3's first metrics rows" (fun () -> rowsSoFar () >= 4)
                        let rowsAtStop = rowsSoFar ()

                        let code, out = slurm "scancel" [ "--signal=TERM"; "--full"; $"{jobId}_3" ]

                        Expect.equal code 0 $"scancel --signal=TERM: {out}"

                        printfn
                            "point 3 signalled at %.1f s after %d metrics rows"
                            clock.Elapsed.TotalSeconds
                            rowsAtStop

                        // the task checkpoints, exits 3 and requeues itself; Slurm holds the requeued
                        // task for the credential lifetime (cred_expire, 10 s here), then starts it
                        waitFor 60.0 "point 3 to be requeued" (fun () ->
                            File.Exists(Sweep.Folder.logFile slurmDir 3)
                            && (File.ReadAllText(Sweep.Folder.logFile slurmDir 3)).Contains "requeueing")

                        waitFor 150.0 "every point to finish (sweep.fsx status)" (fun () ->
                            let st = Sweep.Status.status 5 slurmDir

                            match
                                st
                                |> List.tryPick (fun p ->
                                    match p.State with
                                    | Sweep.Failed(w, log) -> Some(p, w, log)
                                    | _ -> None)
                            with
                            | Some(p, w, log) ->
                                let lines = String.Join("\n", log)
                                failtest $"point {p.Index} failed: {w}\n{lines}\n{cluster.Logs()}"
                            | None -> st |> List.forall (fun p -> p.State.IsDone))

                        printfn "slurm sweep done at %.1f s" clock.Elapsed.TotalSeconds

                        let log3 = File.ReadAllText(Sweep.Folder.logFile slurmDir 3)
                        // the task's story, as its log tells it
                        for l in log3.Split('\n') do
                            if
                                l.StartsWith "=="
                                || l.Contains "received"
                                || l.Contains "resum"
                                || l.Contains "stopped"
                            then
                                printfn "  point 3 | %s" l

                        Expect.stringContains log3 "restart 1" "point 3 ran again after its requeue"
                        Expect.stringContains log3 "resuming" "and resumed from its checkpoint"

                        Expect.equal (Directory.GetDirectories dir3).Length 1 "one run folder: resumed, not restarted"

                        let rows, missing = Sweep.Collect.collect slurmDir
                        Expect.isEmpty missing "nothing missing"

                        Expect.equal
                            (rows |> List.map SweepTests.summaryKey)
                            (local |> List.map SweepTests.summaryKey)
                            "collect gives the summary of launcher=local"

                        for r, l in List.zip rows local do
                            SweepTests.expectSameMetrics
                                (Path.Combine(l.RunDir, Metrics.CsvFile))
                                (Path.Combine(r.RunDir, Metrics.CsvFile))
                                (Sweep.Grid.pointName r.Point)

                        for f in [ "summary.csv"; "report.html" ] do
                            Expect.isTrue (File.Exists(Path.Combine(slurmDir, f))) $"{f} written"

                        // the folder again: nothing is left to submit
                        match
                            Sweep.Launcher.sweep
                                Threading.CancellationToken.None
                                command
                                repoRoot.Value
                                [ $"sweep_dir={slurmDir}"; "launcher=slurm"; "slurm_partition=debug" ]
                        with
                        | Sweep.Submitted(_, None, []) -> ()
                        | o -> failtest $"resubmitting a finished sweep: {o}"

                        // point 1 loses its summary (as if its task died after the last checkpoint):
                        // giving the folder again submits that point alone, which resumes
                        File.Delete(Path.Combine(rows[1].RunDir, Run.SummaryFile))

                        let again =
                            match
                                Sweep.Launcher.sweep
                                    Threading.CancellationToken.None
                                    command
                                    repoRoot.Value
                                    [ $"sweep_dir={slurmDir}"; "launcher=slurm"; "slurm_partition=debug" ]
                            with
                            | Sweep.Submitted(_, Some id, [ 1 ]) -> id
                            | o -> failtest $"resubmitting an unfinished point: {o}"

                        Expect.stringContains
                            (File.ReadAllText(Path.Combine(slurmDir, Sweep.Folder.ScriptFile)))
                            "#SBATCH --array=1"
                            "the script names the one point"

                        waitFor 90.0 $"point 1 to finish again (job {again})" (fun () ->
                            let st = Sweep.Status.status 5 slurmDir
                            st[1].State.IsDone)

                        let rows2, _ = Sweep.Collect.collect slurmDir

                        Expect.equal
                            (rows2 |> List.map SweepTests.summaryKey)
                            (local |> List.map SweepTests.summaryKey)
                            "the same summary after the resubmission"

                        Expect.equal
                            (Sweep.Status.jobIds slurmDir)
                            [ jobId; again ]
                            "both jobs recorded in slurm-jobs.txt"

                        printfn "Slurm test: %.1f s" clock.Elapsed.TotalSeconds
                    finally
                        for d in [ localDir; slurmDir ] do
                            try
                                Directory.Delete(d, true)
                            with _ ->
                                ()
        ]
