/// Tests of sweep grid parsing, summary statistics and a small resumable sweep.
module Rl.Tests.SweepTests

open System
open System.IO
open Expecto
open Rl
open Rl.Tests.TestPaths

let private cartpole () =
    Config.load Ppo.fields Ppo.seedDefaults (config "ppo-cartpole.yaml")

let private expectConfigError (args: string list) (mentions: string list) =
    let e =
        Expect.throwsC (fun () -> Sweep.parseGrid Ppo.fields (cartpole ()) args |> ignore) id

    match e with
    | ConfigError _ ->
        for m in mentions do
            Expect.stringContains e.Message m $"the message names '{m}'"
    | _ -> failtest $"expected a ConfigError, got {e.GetType().Name}: {e.Message}"

[<Tests>]
let tests =
    testList
        "Ppo.sweep"
        [
            test "grid parsing: comma lists, cartesian product, point names" {
                let axes =
                    Sweep.parseGrid
                        Ppo.fields
                        (cartpole ())
                        [ "beta_1=0.8,0.9, 0.95"; "num_seeds=4"; "activation=relu,tanh" ]

                Expect.equal axes.Length 3 "three axes"
                Expect.equal axes[0].Values [ "0.8"; "0.9"; "0.95" ] "values trimmed, in order"
                let pts = Sweep.points axes
                Expect.equal pts.Length 6 "3 x 1 x 2 points"
                Expect.equal pts[0] [ "beta_1", "0.8"; "num_seeds", "4"; "activation", "relu" ] "first axis slowest"
                Expect.equal pts[1] [ "beta_1", "0.8"; "num_seeds", "4"; "activation", "tanh" ] "last axis fastest"
                Expect.equal (Sweep.pointName pts[0]) "beta_1=0.8,num_seeds=4,activation=relu" "name"
                Expect.equal (Sweep.points []) [ [] ] "no axes: one point"
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
                let lo, hi = Sweep.bootstrapCi 0.95 2000 0 xs
                Expect.isTrue (lo < 5.5 && 5.5 < hi) $"contains the mean: {lo} .. {hi}"
                // the mean's standard error is 2.87 / sqrt 10 = 0.91: a 95 % interval is about +-1.8
                Expect.isTrue (hi - lo > 2.5 && hi - lo < 4.5) $"width {hi - lo}"
                Expect.equal (Sweep.bootstrapCi 0.95 2000 0 xs) (lo, hi) "same seed, same interval"
                Expect.equal (Sweep.bootstrapCi 0.95 100 0 [| 3.0; 3.0; 3.0 |]) (3.0, 3.0) "no spread"
                Expect.equal (Sweep.bootstrapCi 0.95 100 0 [| 4.0 |]) (4.0, 4.0) "one value"
                Expect.throwsT<ArgumentException> (fun () -> Sweep.bootstrapCi 1.5 100 0 xs |> ignore) "level"
            }

            test "steps to threshold and final returns per seed" {
                Expect.equal
                    (Sweep.stepsToThreshold 100.0 [| 1.0; 2.0; 3.0 |] [| 50.0; nan; 120.0 |])
                    (Some 3.0)
                    "first crossing"

                Expect.equal (Sweep.stepsToThreshold 500.0 [| 1.0; 2.0 |] [| 50.0; 60.0 |]) None "never"
                let t = Metrics.empty [ "seed"; "episodic_return" ]

                for s, r in [ 0.0, 1.0; 1.0, 10.0; 0.0, 3.0; 1.0, nan; 0.0, 5.0; 1.0, 30.0 ] do
                    Metrics.addRow [| s; r |] t

                // three updates per seed; the last 50 % = 2 updates: seed 0 (3, 5), seed 1 (NaN, 30)
                Expect.equal (Sweep.finalReturns 0.5 t) [| 4.0; 30.0 |] "per seed"
                // with episode counts, updates weigh by the episodes that ended in them
                let w = Metrics.empty [ "episodic_return"; "episodes" ]

                for r, n in [ -200.0, 16.0; -90.0, 1.0; -120.0, 3.0; -100.0, 0.0 ] do
                    Metrics.addRow [| r; n |] w

                let weighted = Sweep.finalReturns 0.75 w

                Expect.floatClose
                    Accuracy.veryHigh
                    weighted[0]
                    ((-90.0 - 360.0) / 4.0)
                    "last 3 updates: 1 x -90 and 3 x -120 (an update with 0 episodes has no weight)"
            }

            test "steps to threshold use each seed's recent episodes, not one lucky update" {
                // update means and episode counts: window of at least 3 episodes, walking back
                let r =
                    Sweep.recentReturns 3 [| -90.0; nan; -200.0; -100.0; -110.0 |] [| 1.0; 0.0; 2.0; 4.0; 1.0 |]

                Expect.isTrue (Double.IsNaN r[0] && Double.IsNaN r[1]) "fewer than 3 episodes yet"
                Expect.floatClose Accuracy.veryHigh r[2] ((-90.0 - 400.0) / 3.0) "updates 0-2 weighted"
                Expect.equal r[3] -100.0 "update 3 alone holds 4 episodes"
                Expect.floatClose Accuracy.veryHigh r[4] ((-110.0 - 400.0) / 5.0) "updates 3-4 weighted"
                Expect.throwsT<ArgumentException> (fun () -> Sweep.recentReturns 0 [||] [||] |> ignore) "min 1"

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
                    (Sweep.thresholdStep -130.0 t)
                    (Some 400.0)
                    "first step where both seeds' last 20 episodes average >= -130"

                Expect.equal (Sweep.thresholdStep -50.0 t) None "never"
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
                let overlap = Sweep.reading [ c; b; a ]
                Expect.stringContains overlap "Highest mean final return: beta_1=0.8 (400" "best point"
                Expect.stringContains overlap "overlaps those of beta_1=0.9:" "b's interval reaches a's"
                Expect.isFalse (overlap.Contains "0.99:") "c's interval is clear"
                Expect.stringContains overlap "beta_1=0.8 at 30000 steps; 1 of 3 points" "fastest"
                let clear = Sweep.reading [ c; a ]
                Expect.stringContains clear "clear of every other point" "separated"
                Expect.stringContains clear "1 of 2 points reached it" "fastest among the two"

                let flat =
                    [
                        for v in [ "0.8"; "0.9" ] -> row v -200.0 -200.0 -200.0 nan [| -200.0; -200.0 |]
                    ]

                Expect.stringContains (Sweep.reading flat) "same final return -200 on every seed" "all equal"
                Expect.equal (Sweep.reading []) "" "no rows"
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

                    let _, rows = Sweep.runPpo args
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
                    let pointRows = rows |> List.map (fun r -> rowAt (Sweep.pointName r.Point))

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
                    let _, again = Sweep.runPpo args

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
