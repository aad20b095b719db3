/// Tests of sweep grid parsing, summary statistics and a small resumable sweep.
module Rl.Tests.SweepTests

open System
open System.IO
open Expecto
open Rl
open Rl.Tests.TestPaths

let private cartpole () =
    Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (config "ppo-cartpole.yaml")

let private expectConfigError (args: string list) (mentions: string list) =
    let e =
        Expect.throwsC (fun () -> Sweep.Grid.parseGrid Ppo.PpoConfig.fields (cartpole ()) args |> ignore) id

    match e with
    | ConfigError _ ->
        for m in mentions do
            Expect.stringContains e.Message m $"the message names '{m}'"
    | _ -> failtest $"expected a ConfigError, got {e.GetType().Name}: {e.Message}"


/// Every non-timing value of two metrics files is the same (NaN equals NaN), with the same columns.
let expectSameMetrics (a: string) (b: string) (what: string) =
    let ta, tb = Metrics.readCsv a, Metrics.readCsv b

    let cols (t: MetricsTable) =
        Metrics.columns t |> List.filter (Metrics.isTimingColumn >> not)

    Expect.equal (cols tb) (cols ta) $"{what}: same columns"
    Expect.equal (Metrics.differences ta tb) [] $"{what}: same values"

/// The comparable part of a summary row (not the wall time or the folder).
let summaryKey (r: Sweep.PointSummary) =
    r.Point, r.Finals, r.Mean, r.Std, r.CiLow, r.CiHigh, r.StepsToThreshold

/// libc kill(2), to send a sweep process SIGTERM.
[<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
extern int kill(int pid, int signal)

/// The files of a folder with their contents (what "the folder stays as it was" compares).
let folderState (dir: string) =
    if Directory.Exists dir then
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
        |> Array.sort
        |> Array.map (fun f -> f, File.ReadAllText f)
        |> List.ofArray
    else
        []

let private sweepScript =
    [
        "dotnet"
        "fsi"
        "--quiet"
        Path.Combine(repoRoot.Value, "scripts", "sweep.fsx")
    ]

let private sweepWith (args: string list) =
    Sweep.Launcher.sweep Threading.CancellationToken.None sweepScript repoRoot.Value args

/// A bad sweep argument raises one ConfigError naming each of `mentions`, and leaves an existing
/// sweep folder (holding one file) as it was.
let private expectRefused (args: string list) (mentions: string list) =
    let dir = tempDir "rl-sweep-bad"

    try
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "unchanged")
        let before = folderState dir

        let e =
            Expect.throwsC
                (fun () ->
                    sweepWith ([ $"sweep_dir={dir}"; "config=" + config "ppo-cartpole.yaml" ] @ args)
                    |> ignore)
                id

        match e with
        | ConfigError _ ->
            for m in mentions do
                Expect.stringContains e.Message m $"the message names '{m}'"
        | _ -> failtest $"expected a ConfigError, got {e.GetType().Name}: {e.Message}"

        Expect.equal (folderState dir) before "the sweep folder stays as it was"
    finally
        Directory.Delete(dir, true)

[<Tests>]
let tests =
    testList
        "Ppo.sweep"
        [
            test "grid parsing: comma lists, cartesian product, point names" {
                let axes =
                    Sweep.Grid.parseGrid
                        Ppo.PpoConfig.fields
                        (cartpole ())
                        [ "beta_1=0.8,0.9, 0.95"; "num_seeds=4"; "activation=relu,tanh" ]

                Expect.equal axes.Length 3 "three axes"
                Expect.equal axes[0].Values [ "0.8"; "0.9"; "0.95" ] "values trimmed, in order"
                let pts = Sweep.Grid.points axes
                Expect.equal pts.Length 6 "3 x 1 x 2 points"
                Expect.equal pts[0] [ "beta_1", "0.8"; "num_seeds", "4"; "activation", "relu" ] "first axis slowest"
                Expect.equal pts[1] [ "beta_1", "0.8"; "num_seeds", "4"; "activation", "tanh" ] "last axis fastest"
                Expect.equal (Sweep.Grid.pointName pts[0]) "beta_1=0.8,num_seeds=4,activation=relu" "name"
                Expect.equal (Sweep.Grid.points []) [ [] ] "no axes: one point"
            }

            test "grid errors: unknown key, empty list, non-numeric value, repeated key" {
                expectConfigError [ "beta1=0.9" ] [ "beta1"; "beta_1" ]
                expectConfigError [ "beta_1=" ] [ "beta_1"; "empty" ]
                expectConfigError [ "beta_1=,," ] [ "beta_1"; "empty" ]
                expectConfigError [ "beta_1=0.9,fast" ] [ "beta_1"; "fast" ]
                expectConfigError [ "num_seeds=2.5" ] [ "num_seeds"; "2.5" ]
                expectConfigError [ "beta_1=0.9"; "beta_1=0.8" ] [ "beta_1"; "more than once" ]
            }

            test "bootstrap CI of the mean: brackets the mean, degenerate cases, reproducible" {
                let xs = [| 1.0; 2.0; 3.0; 4.0; 5.0; 6.0; 7.0; 8.0; 9.0; 10.0 |]
                let lo, hi = Sweep.Stats.bootstrapCi 0.95 2000 0 xs
                Expect.isTrue (lo < 5.5 && 5.5 < hi) $"contains the mean: {lo} .. {hi}"
                // the mean's standard error is 2.87 / sqrt 10 = 0.91: a 95 % interval is about +-1.8
                Expect.isTrue (hi - lo > 2.5 && hi - lo < 4.5) $"width {hi - lo}"
                Expect.equal (Sweep.Stats.bootstrapCi 0.95 2000 0 xs) (lo, hi) "same seed, same interval"
                Expect.equal (Sweep.Stats.bootstrapCi 0.95 100 0 [| 3.0; 3.0; 3.0 |]) (3.0, 3.0) "no spread"
                Expect.equal (Sweep.Stats.bootstrapCi 0.95 100 0 [| 4.0 |]) (4.0, 4.0) "one value"
                Expect.throwsT<ArgumentException> (fun () -> Sweep.Stats.bootstrapCi 1.5 100 0 xs |> ignore) "level"
            }

            test "steps to threshold and final returns per seed" {
                Expect.equal
                    (Sweep.Stats.stepsToThreshold 100.0 [| 1.0; 2.0; 3.0 |] [| 50.0; nan; 120.0 |])
                    (Some 3.0)
                    "first crossing"

                Expect.equal (Sweep.Stats.stepsToThreshold 500.0 [| 1.0; 2.0 |] [| 50.0; 60.0 |]) None "never"
                let t = Metrics.empty [ "seed"; "episodic_return" ]

                for s, r in [ 0.0, 1.0; 1.0, 10.0; 0.0, 3.0; 1.0, nan; 0.0, 5.0; 1.0, 30.0 ] do
                    Metrics.addRow [| s; r |] t

                // three updates per seed; the last 50 % = 2 updates: seed 0 (3, 5), seed 1 (NaN, 30)
                Expect.equal (Sweep.Stats.finalReturns 0.5 t) [| 4.0; 30.0 |] "per seed"
                // with episode counts, updates weigh by the episodes that ended in them
                let w = Metrics.empty [ "episodic_return"; "episodes" ]

                for r, n in [ -200.0, 16.0; -90.0, 1.0; -120.0, 3.0; -100.0, 0.0 ] do
                    Metrics.addRow [| r; n |] w

                let weighted = Sweep.Stats.finalReturns 0.75 w

                Expect.floatClose
                    Accuracy.veryHigh
                    weighted[0]
                    ((-90.0 - 360.0) / 4.0)
                    "last 3 updates: 1 x -90 and 3 x -120 (an update with 0 episodes has no weight)"
            }

            test "steps to threshold use each seed's recent episodes, not one lucky update" {
                // update means and episode counts: window of at least 3 episodes, walking back
                let r =
                    Sweep.Stats.recentReturns 3 [| -90.0; nan; -200.0; -100.0; -110.0 |] [| 1.0; 0.0; 2.0; 4.0; 1.0 |]

                Expect.isTrue (Double.IsNaN r[0] && Double.IsNaN r[1]) "fewer than 3 episodes yet"
                Expect.floatClose Accuracy.veryHigh r[2] ((-90.0 - 400.0) / 3.0) "updates 0-2 weighted"
                Expect.equal r[3] -100.0 "update 3 alone holds 4 episodes"
                Expect.floatClose Accuracy.veryHigh r[4] ((-110.0 - 400.0) / 5.0) "updates 3-4 weighted"
                Expect.throwsT<ArgumentException> (fun () -> Sweep.Stats.recentReturns 0 [||] [||] |> ignore) "min 1"

                // a MountainCar-like start: in the first update only short, successful episodes end
                // episode (-90); the per-update mean would cross -130 at step 100 already
                let t = Metrics.empty [ "seed"; "global_step"; "episodic_return"; "episodes" ]

                for step, r0, r1 in [ 100.0, -90.0, -90.0; 200.0, -200.0, -200.0; 300.0, -120.0, -125.0 ] do
                    Metrics.addRow [| 0.0; step; r0; 10.0 |] t
                    Metrics.addRow [| 1.0; step; r1; 10.0 |] t

                for step, r0, r1 in [ 400.0, -110.0, -100.0; 500.0, -100.0, -100.0 ] do
                    Metrics.addRow [| 0.0; step; r0; 20.0 |] t
                    Metrics.addRow [| 1.0; step; r1; 20.0 |] t

                Expect.equal
                    (Sweep.Stats.thresholdStep -130.0 t)
                    (Some 400.0)
                    "first step where both seeds' last 20 episodes average >= -130"

                Expect.equal (Sweep.Stats.thresholdStep -50.0 t) None "never"
            }

            test "reading: best point, overlap or separation of intervals, fastest to threshold, all equal" {
                let row (v: string) mean lo hi steps (finals: float[]) : Sweep.PointSummary =
                    {
                        Point = [ "lr", "1e-3"; "beta_1", v ]
                        RunDir = ""
                        Finals = finals
                        Mean = mean
                        Std =
                            (if finals |> Array.distinct |> Array.length = 1 then
                                 0.0
                             else
                                 1.0)
                        CiLow = lo
                        CiHigh = hi
                        StepsToThreshold = steps
                        WallSeconds = 1.0
                    }

                let a = row "0.8" 400.0 380.0 420.0 30000.0 [| 390.0; 410.0 |]
                let b = row "0.9" 300.0 250.0 390.0 nan [| 260.0; 340.0 |]
                let c = row "0.99" 100.0 50.0 150.0 nan [| 60.0; 140.0 |]
                let overlap = Sweep.Summary.reading [ c; b; a ]
                Expect.stringContains overlap "Highest mean final return: beta_1=0.8 (400" "best point"
                Expect.stringContains overlap "overlaps those of beta_1=0.9:" "b's interval reaches a's"
                Expect.isFalse (overlap.Contains "0.99:") "c's interval is clear"
                Expect.stringContains overlap "beta_1=0.8 at 30000 steps; 1 of 3 points" "fastest"
                let clear = Sweep.Summary.reading [ c; a ]
                Expect.stringContains clear "clear of every other point" "separated"
                Expect.stringContains clear "1 of 2 points reached it" "fastest among the two"

                let flat =
                    [
                        for v in [ "0.8"; "0.9" ] -> row v -200.0 -200.0 -200.0 nan [| -200.0; -200.0 |]
                    ]

                Expect.stringContains (Sweep.Summary.reading flat) "same final return -200 on every seed" "all equal"
                Expect.equal (Sweep.Summary.reading []) "" "no rows"
            }

            test "launcher errors name the key, the value and what is allowed, before anything is written" {
                expectRefused [ "launcher=pbs" ] [ "'launcher'"; "'pbs'"; "local"; "slurm" ]
                expectRefused [ "workers=0" ] [ "'workers'"; "'0'"; ">= 1" ]
                expectRefused [ "launcher=slurm"; "workers=2" ] [ "'workers'"; "launcher=local" ]
                expectRefused [ "slurm_time=10" ] [ "'slurm_time'"; "launcher=slurm" ]
                expectRefused [ "launcher=slurm"; "slurm_time=2h" ] [ "'slurm_time'"; "'2h'"; "hours:minutes:seconds" ]
                expectRefused [ "launcher=slurm"; "slurm_time=1:75" ] [ "'slurm_time'"; "'1:75'"; "below 60" ]
                expectRefused [ "launcher=slurm"; "slurm_time=0" ] [ "'slurm_time'"; "zero" ]
                expectRefused [ "launcher=slurm"; "slurm_mem=lots" ] [ "'slurm_mem'"; "'lots'"; "16G" ]
                expectRefused [ "launcher=slurm"; "slurm_gres=gpu 1" ] [ "'slurm_gres'"; "gpu:1" ]
                expectRefused [ "launcher=slurm"; "slurm_cpus_per_task=two" ] [ "'slurm_cpus_per_task'"; "'two'" ]

                expectRefused
                    [ "launcher=slurm"; "slurm_extra=--array=0-9" ]
                    [ "'slurm_extra'"; "--array"; "set by the launcher" ]

                expectRefused [ "launcher=slurm"; "slurm_extra=account" ] [ "'slurm_extra'"; "starting with -" ]
                expectRefused [ "launcher=slurm"; "requeue=maybe" ] [ "'requeue'"; "true or false" ]
                // a GPU gres sets device=cuda, which CartPole's sync envs refuse: caught before sbatch
                expectRefused [ "launcher=slurm"; "slurm_gres=gpu:1" ] [ "vectorization_mode" ]
                // a bad grid is still the config's own error
                expectRefused [ "launcher=slurm"; "beta1=0.9" ] [ "'beta1'" ]
            }

            test "launcher=slurm without sbatch on PATH: one error, nothing written" {
                let path = Environment.GetEnvironmentVariable "PATH"
                let empty = tempDir "rl-empty-path"

                try
                    Environment.SetEnvironmentVariable("PATH", empty)
                    expectRefused [ "launcher=slurm" ] [ "'launcher'"; "'slurm'"; "sbatch was not found on PATH" ]
                finally
                    Environment.SetEnvironmentVariable("PATH", path)
                    Directory.Delete(empty, true)
            }

            test "Slurm times and array specs" {
                Expect.equal (Sweep.Launch.slurmTimeSeconds "30") 1800L "minutes"
                Expect.equal (Sweep.Launch.slurmTimeSeconds "5:30") 330L "minutes:seconds"
                Expect.equal (Sweep.Launch.slurmTimeSeconds "2:00:00") 7200L "hours:minutes:seconds"
                Expect.equal (Sweep.Launch.slurmTimeSeconds "1-12") 129600L "days-hours"
                Expect.equal (Sweep.Launch.slurmTimeSeconds "1-0:30") 88200L "days-hours:minutes"
                Expect.equal (Sweep.Launch.slurmTimeSeconds "0-1:00:10") 3610L "days-hours:minutes:seconds"
                Expect.equal (Sweep.Slurm.arraySpec [ 0; 1; 2; 3 ]) "0-3" "one range"
                Expect.equal (Sweep.Slurm.arraySpec [ 5; 0; 1; 3 ]) "0-1,3,5" "ranges and singles, sorted"
            }

            test
                "the array script: one task per point, the launcher's #SBATCH lines, SIGTERM forwarded, requeue on a stop" {
                let launch =
                    Sweep.Launch.parseLaunch (fun k ->
                        Map.tryFind
                            k
                            (Map.ofList
                                [
                                    "launcher", "slurm"
                                    "slurm_partition", "gpu"
                                    "slurm_time", "2:00:00"
                                    "slurm_cpus_per_task", "4"
                                    "slurm_gres", "gpu:1"
                                    "slurm_mem", "16G"
                                    "slurm_extra", "--account=rl --qos=low"
                                ]))

                let script =
                    Sweep.Slurm.sbatchScript
                        launch
                        [ "dotnet"; "fsi"; "/repo/scripts/sweep.fsx" ]
                        "/repo"
                        "/runs/s1"
                        [ 0; 1; 3 ]

                let lines = script.Split('\n') |> List.ofArray

                for l in
                    [
                        "#!/bin/bash"
                        "#SBATCH --array=0-1,3"
                        "#SBATCH --output=/runs/s1/logs/point-%a.log"
                        "#SBATCH --open-mode=append"
                        "#SBATCH --partition=gpu"
                        "#SBATCH --time=2:00:00"
                        "#SBATCH --cpus-per-task=4"
                        "#SBATCH --gres=gpu:1"
                        "#SBATCH --mem=16G"
                        "#SBATCH --requeue"
                        "#SBATCH --signal=B:TERM@120"
                        "#SBATCH --account=rl"
                        "#SBATCH --qos=low"
                        "trap stop TERM INT"
                        "'dotnet' 'fsi' '/repo/scripts/sweep.fsx' point sweep_dir='/runs/s1' index=\"$SLURM_ARRAY_TASK_ID\" &"
                        "        scontrol requeue \"$task\""
                    ] do
                    Expect.contains lines l $"script line {l}"

                Expect.equal
                    (Sweep.Slurm.taskOverrides launch [ [ "beta_1", "0.9" ] ])
                    [ "device=cuda"; "threads=4" ]
                    "a gpu gres runs on cuda, threads follow the CPUs per task"

                Expect.equal
                    (Sweep.Slurm.taskOverrides launch [ [ "threads", "2" ] ])
                    [ "device=cuda" ]
                    "a swept threads wins"

                let noRequeue = { launch with Requeue = false }

                let s2 = Sweep.Slurm.sbatchScript noRequeue [ "dotnet" ] "/repo" "/runs/s1" [ 0 ]
                Expect.stringContains s2 "#SBATCH --no-requeue" "requeue=false"
                Expect.isFalse (s2.Contains "scontrol requeue") "no self-requeue"
            }

            test
                "workers=2 gives the metrics of workers=1, also when SIGTERM stops the sweep mid-run and it is resumed; status, collect" {
                let one = tempDir "rl-sweep-w1"
                let two = tempDir "rl-sweep-w2"

                try
                    let args =
                        [
                            "config=" + config "ppo-cartpole.yaml"
                            "threshold=20"
                            "num_envs=4"
                            "num_steps=32"
                            "total_timesteps=12800"
                            "num_seeds=2"
                            "beta_1=0.8,0.9"
                            "eval_episodes=1"
                        ]

                    let rows (o: Sweep.Outcome) =
                        match o with
                        | Sweep.Finished(_, rows, []) -> rows
                        | o -> failtest $"expected a finished sweep, got {o}"

                    let a = rows (sweepWith ($"sweep_dir={one}" :: args))

                    // workers=2 from the command line, stopped by SIGTERM once both points are training
                    let psi =
                        Diagnostics.ProcessStartInfo(
                            "dotnet",
                            WorkingDirectory = repoRoot.Value,
                            UseShellExecute = false,
                            RedirectStandardOutput = true,
                            RedirectStandardError = true
                        )

                    for x in
                        [ "fsi"; "--quiet"; Path.Combine(repoRoot.Value, "scripts", "sweep.fsx") ]
                        @ [ $"sweep_dir={two}"; "workers=2" ]
                        @ args do
                        psi.ArgumentList.Add x

                    use sweepProcess = Diagnostics.Process.Start psi
                    let out = sweepProcess.StandardOutput.ReadToEndAsync()
                    let err = sweepProcess.StandardError.ReadToEndAsync()

                    let rowsOf (i: int) =
                        let point = Path.Combine(two, Sweep.Grid.pointName a[i].Point)

                        if Directory.Exists point then
                            Directory.GetFiles(point, Metrics.CsvFile, SearchOption.AllDirectories)
                            |> Array.sumBy (fun f -> File.ReadAllLines(f).Length - 1)
                        else
                            0

                    let clock = Diagnostics.Stopwatch.StartNew()

                    while (rowsOf 0 < 2 || rowsOf 1 < 2)
                          && clock.Elapsed.TotalSeconds < 120.0
                          && not sweepProcess.HasExited do
                        Threading.Thread.Sleep 100

                    Expect.isFalse sweepProcess.HasExited "the sweep is still running when signalled"
                    kill (sweepProcess.Id, 15) |> ignore
                    sweepProcess.WaitForExit()
                    let output = out.Result + err.Result

                    Expect.equal
                        sweepProcess.ExitCode
                        Sweep.Folder.StoppedExitCode
                        $"exit code 3 after a stop: {output}"

                    Expect.stringContains output "stopped after writing its checkpoint" "the workers stopped"

                    for i in 0..1 do
                        Expect.stringContains
                            (File.ReadAllText(Sweep.Folder.stateFile two i))
                            "stopped"
                            $"point {i} stopped"

                    // the same sweep again: both points resume from their checkpoints
                    let b = rows (sweepWith ([ $"sweep_dir={two}"; "workers=2" ] @ args))

                    for i in 0..1 do
                        Expect.stringContains
                            (File.ReadAllText(Sweep.Folder.logFile two i))
                            "resuming"
                            $"point {i} resumed"

                    Expect.equal (b |> List.map summaryKey) (a |> List.map summaryKey) "same summary"

                    for x, y in List.zip a b do
                        expectSameMetrics
                            (Path.Combine(x.RunDir, Metrics.CsvFile))
                            (Path.Combine(y.RunDir, Metrics.CsvFile))
                            (Sweep.Grid.pointName x.Point)

                    for i in 0..1 do
                        Expect.stringContains
                            (File.ReadAllText(Sweep.Folder.logFile two i))
                            "wrote metrics.csv"
                            "each worker's output is in its point's log"

                    // point 1 interrupted after its last checkpoint: pending, missing from collect
                    let run1 = b[1].RunDir
                    File.Delete(Path.Combine(run1, Run.SummaryFile))
                    File.Delete(Sweep.Folder.stateFile two 1)
                    let st = Sweep.Status.status 5 two
                    Expect.isTrue st[0].State.IsDone "point 0 done"

                    match st[1].State with
                    | Sweep.Pending why -> Expect.stringContains why "checkpoint" "point 1 can resume"
                    | s -> failtest $"point 1: {s}"

                    let rows1, missing = Sweep.Collect.collect two
                    Expect.equal (rows1 |> List.map summaryKey) [ summaryKey a[0] ] "collect: the finished point"
                    Expect.equal missing [ Sweep.Grid.pointName b[1].Point ] "and names the missing one"

                    Expect.stringContains
                        (File.ReadAllText(Path.Combine(two, "report.html")))
                        "no finished run yet"
                        "report says so"

                    // a failed point shows the last lines of its log
                    File.WriteAllText(Sweep.Folder.stateFile two 1, "failed IOException: disk full\n")
                    File.AppendAllText(Sweep.Folder.logFile two 1, "line a\nline b\nUnhandled exception: disk full\n")

                    let failedNow = Sweep.Status.status 2 two

                    match failedNow[1].State with
                    | Sweep.Failed(why, log) ->
                        Expect.stringContains why "disk full" "the reason"
                        Expect.equal log [ "line b"; "Unhandled exception: disk full" ] "the log's last lines"
                    | s -> failtest $"point 1: {s}"

                    // the folder again: point 1 is resumed from its checkpoint in the same run folder
                    let c = rows (sweepWith ($"sweep_dir={two}" :: args))
                    Expect.equal c[1].RunDir run1 "the same run folder"
                    Expect.equal (Directory.GetDirectories(Path.GetDirectoryName run1)).Length 1 "no new attempt"
                    Expect.equal (c |> List.map summaryKey) (a |> List.map summaryKey) "same summary after the resume"

                    expectSameMetrics
                        (Path.Combine(a[1].RunDir, Metrics.CsvFile))
                        (Path.Combine(run1, Metrics.CsvFile))
                        "resumed point"

                    Expect.isTrue (Sweep.Status.status 5 two |> List.forall (fun p -> p.State.IsDone)) "all done"

                    // another grid in the same folder is refused
                    let e =
                        Expect.throwsC
                            (fun () -> sweepWith ([ $"sweep_dir={two}" ] @ args @ [ "beta_1=0.7" ]) |> ignore)
                            id

                    Expect.stringContains e.Message "more than once" "a repeated key is refused"

                    let e =
                        Expect.throwsC
                            (fun () ->
                                sweepWith (
                                    [ $"sweep_dir={two}" ]
                                    @ (args |> List.map (fun a -> if a.StartsWith "beta_1" then "beta_1=0.7" else a))
                                )
                                |> ignore)
                            id

                    Expect.stringContains e.Message "holds another sweep" "a folder holds one grid"
                finally
                    for d in [ one; two ] do
                        Directory.Delete(d, true)
            }

            test "a small sweep runs every grid point and resumes by skipping finished points" {
                let dir = tempDir "rl-sweep"

                try
                    let args =
                        [
                            "config=" + config "ppo-cartpole.yaml"
                            $"sweep_dir={dir}"
                            "threshold=30"
                            "total_timesteps=1024"
                            "num_seeds=2"
                            "beta_1=0.8,0.9"
                            "eval_episodes=1"
                        ]

                    let _, rows = Sweep.Launcher.runPpo args
                    Expect.equal rows.Length 2 "two points"

                    for r in rows do
                        Expect.equal r.Finals.Length 2 "two seeds per point"

                        Expect.isTrue
                            (Double.IsFinite r.Mean && r.CiLow <= r.Mean && r.Mean <= r.CiHigh)
                            "mean inside its CI"

                    for f in [ "summary.csv"; "report.html" ] do
                        Expect.isTrue (File.Exists(Path.Combine(dir, f))) $"{f} written"

                    let report = File.ReadAllText(Path.Combine(dir, "report.html"))
                    // every point's line and the plain-language reading, in that order
                    let rowAt (name: string) = report.IndexOf $"<tr><th>{name}</th>"
                    let pointRows = rows |> List.map (fun r -> rowAt (Sweep.Grid.pointName r.Point))

                    for at in pointRows do
                        Expect.isGreaterThan at 0 "a line per point in the report"

                    Expect.isGreaterThan (rowAt "reading") (List.max pointRows) "the reading follows the point lines"

                    let csv = File.ReadAllLines(Path.Combine(dir, "summary.csv"))

                    Expect.stringContains
                        csv[0]
                        "beta_1,eval_episodes,final_return_mean,final_return_std,ci95_low,ci95_high,steps_to_threshold"
                        "header"

                    Expect.equal csv.Length 3 "header + 2 rows"

                    for line in csv[1..] do
                        // the last field, the run folder, is quoted because point names hold commas
                        let q = line.IndexOf '"'
                        Expect.isGreaterThan q 0 "run folder quoted"
                        Expect.isTrue (line.EndsWith "\"") "quoted to the end"

                        Expect.equal
                            (line.Substring(0, q).Split(',').Length)
                            (csv[0].Split(',').Length)
                            $"every row has a value per header column: {line}"

                    let stamp = File.GetLastWriteTimeUtc(Path.Combine(rows[0].RunDir, "metrics.csv"))
                    // an interrupted third point: a folder without a finished run is redone
                    let _, again = Sweep.Launcher.runPpo args

                    Expect.equal
                        (again |> List.map (fun r -> r.RunDir))
                        (rows |> List.map (fun r -> r.RunDir))
                        "same run folders"

                    Expect.equal
                        (File.GetLastWriteTimeUtc(Path.Combine(rows[0].RunDir, "metrics.csv")))
                        stamp
                        "finished point not rerun"
                finally
                    Directory.Delete(dir, true)
            }
        ]
