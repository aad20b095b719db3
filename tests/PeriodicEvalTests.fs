/// Tests of periodic evaluation (`eval_every`, the run driver's `evalAtBoundary`): rows at each
/// multiple and at the end, the best policy kept and reloadable, no effect on training, exact
/// resume of the log, and per-seed bests in a batched run.
module Rl.Tests.PeriodicEvalTests

open System
open System.IO
open System.Threading
open Expecto
open Rl
open Rl.Tests.TestPaths

let private smallPendulum = ResumeTests.smallPendulum @ [ "eval_episodes=2" ]

let private evalsOf (dir: string) =
    PeriodicEval.read (Path.Combine(dir, PeriodicEval.File))

let private number (key: string) (dir: string) =
    match Run.readSummary dir |> List.tryFind (fun (k, _) -> k = key) with
    | Some(_, Number v) -> v
    | Some(_, Integer v) -> float v
    | other -> failtest $"summary.json: {key} is {other}"

let private metrics (dir: string) =
    Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))

let private stopOnce (token: CancellationToken) (args: string list) =
    try
        Ppo.Runner.runWith token args |> ignore
        failtest "expected a stop"
    with :? Train.RunStoppedException as e ->
        e

[<Tests>]
let tests =
    testList
        "PeriodicEval"
        [
            test "PPO: eval_every logs each multiple and the end, keeps the best policy, and changes no metric" {
                let runs = tempDir "rl-evals"

                try
                    let plain = Ppo.Runner.run ("runs=" + runs :: "eval_every=0" :: smallPendulum)
                    let dir = Ppo.Runner.run ("runs=" + runs :: "eval_every=256" :: smallPendulum)

                    Expect.isEmpty (Metrics.differences (metrics plain) (metrics dir)) "training unchanged"
                    Expect.isFalse (File.Exists(Path.Combine(plain, PeriodicEval.File))) "no evals.csv when off"

                    let rows = evalsOf dir
                    Expect.sequenceEqual (rows |> List.map (fun r -> r.Step)) [ 256L; 512L; 640L ] "steps"
                    Expect.allEqual (rows |> List.map (fun r -> r.Episodes)) 2 "episodes per row"

                    let best = rows |> List.maxBy (fun r -> r.Mean)
                    Expect.isTrue best.Best "the best row is marked"
                    Expect.equal (number "best_eval_return_mean" dir) best.Mean "summary's best"
                    Expect.equal (number "best_step" dir) (float best.Step) "summary's best step"
                    // the last row is the final evaluation: same policy, same episodes
                    Expect.equal (List.last rows).Mean (number "eval_return_mean" dir) "final row = final eval"

                    let again =
                        Train.evaluateRun Ppo.Runner.algorithm (Path.Combine(dir, PeriodicEval.BestDir)) None

                    Expect.floatClose
                        Accuracy.veryHigh
                        (Array.average again[0])
                        best.Mean
                        "best/ reloads the best policy"
                finally
                    Directory.Delete(runs, true)
            }

            test "PPO: a run stopped and resumed around an evaluation writes the uninterrupted run's evals.csv" {
                let runs = tempDir "rl-evals"

                try
                    let args = "eval_every=256" :: "checkpoint_every=1" :: smallPendulum
                    let full = Ppo.Runner.run ("runs=" + Path.Combine(runs, "full") :: args)
                    use cts = new CancellationTokenSource()
                    cts.Cancel()
                    let first = stopOnce cts.Token ("runs=" + Path.Combine(runs, "cut") :: args)
                    Expect.equal first.Step 128L "stopped before the first evaluation"
                    let second = stopOnce cts.Token [ $"resume={first.RunDir}" ]
                    Expect.equal second.Step 256L "stopped right after it"
                    Ppo.Runner.run [ $"resume={first.RunDir}" ] |> ignore

                    Expect.equal
                        (File.ReadAllText(Path.Combine(first.RunDir, PeriodicEval.File)))
                        (File.ReadAllText(Path.Combine(full, PeriodicEval.File)))
                        "evals.csv"

                    Expect.equal
                        (number "best_eval_return_mean" first.RunDir)
                        (number "best_eval_return_mean" full)
                        "best"
                finally
                    Directory.Delete(runs, true)
            }

            test "DQN with two seeds: each seed keeps its own best in best/seed_<s>, and evaluate reads that seed" {
                let runs = tempDir "rl-evals"

                try
                    let dir =
                        Dqn.Runner.run
                            [
                                "runs=" + runs
                                "config=" + config "dqn-cartpole.yaml"
                                "total_timesteps=1500"
                                "learning_starts=400"
                                "log_every=250"
                                "eval_every=500"
                                "eval_episodes=2"
                                "num_seeds=2"
                                "seed=4"
                                "threads=1"
                            ]

                    let rows = evalsOf dir

                    Expect.sequenceEqual
                        (rows |> List.map (fun r -> r.Step, r.Seed))
                        [ 500L, 4L; 500L, 5L; 1000L, 4L; 1000L, 5L; 1500L, 4L; 1500L, 5L ]
                        "one row per seed at each evaluation"

                    for s in [ 4L; 5L ] do
                        let best = rows |> List.filter (fun r -> r.Seed = s) |> List.maxBy (fun r -> r.Mean)
                        Expect.equal (number $"best_eval_return_mean_seed_{s}" dir) best.Mean $"seed {s}'s best"
                        let folder = Path.Combine(dir, PeriodicEval.BestDir, $"seed_{s}")
                        let again = Train.evaluateRun Dqn.Runner.algorithm folder None
                        Expect.equal again.Length 1 "only the seed the folder is for"
                        Expect.floatClose Accuracy.veryHigh (Array.average again[0]) best.Mean $"seed {s} reloads"
                finally
                    Directory.Delete(runs, true)
            }

            test "evals.csv that is not one is refused naming the file and line" {
                let dir = tempDir "rl-evals"

                try
                    let path = Path.Combine(dir, PeriodicEval.File)
                    File.WriteAllText(path, PeriodicEval.header + "\n256,0,-1,0.5\n")
                    let e = Expect.throwsC (fun () -> PeriodicEval.read path |> ignore) id
                    Expect.stringContains e.Message "line 2" "names the line"
                    Expect.stringContains e.Message path "names the file"
                finally
                    Directory.Delete(dir, true)
            }
        ]
