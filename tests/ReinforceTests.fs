module Rl.Tests.ReinforceTests

open System
open System.IO
open Expecto
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Tests.TestPaths

[<Tests>]
let tests =
    // Training in parallel with another libtorch-heavy test corrupted native state here
    // (intermittent "toFloat" / "integral alpha" errors); run these one at a time.
    testSequencedGroup "libtorch-training"
    <| testList
        "Reinforce"
        [
            test "returns of a hand-made episode" {
                // rewards 1, 1, 1, terminated at the end; gamma 0.5: G = 1.75, 1.5, 1
                let r = torch.ones ([| 3L; 1L |])
                let term = torch.tensor([| 0.0f; 0.0f; 1.0f |]).reshape(3L, 1L)

                let g =
                    Advantage.discountedReturns 0.5 r term (torch.zeros_like r) (torch.zeros_like r)

                Expect.equal (toArray g) [| 1.75; 1.5; 1.0 |] "G_t"
            }

            test "REINFORCE loss on a hand case, baseline detached, padding ignored" {
                let logpLeaf = torch.tensor ([| -1.0f; -2.0f; -3.0f |], requires_grad = true)
                let logp = logpLeaf.reshape (1L, 3L)
                let g = torch.tensor([| 2.0f; 1.0f; 9.0f |]).reshape(1L, 3L)
                let bLeaf = torch.tensor ([| 0.5f; 0.0f; 0.0f |], requires_grad = true)
                let b = bLeaf.reshape (1L, 3L)
                let mask = torch.tensor([| 1.0f; 1.0f; 0.0f |]).reshape(1L, 3L)
                let loss = Losses.reinforce 1 logp g b mask
                // -(-1 * 1.5 + -2 * 1) = 3.5
                Expect.floatClose Accuracy.high (item loss) 3.5 "value"
                loss.sum().backward()
                Expect.equal (toArray logpLeaf.grad) [| -1.5; -1.0; 0.0 |] "d loss / d log pi = -(G - b) on real steps"
                Expect.isTrue (isNull bLeaf.grad) "no gradient into the baseline"
            }

            test "collected CartPole episodes carry the exact discounted returns" {
                let cfg =
                    { Reinforce.ReinforceConfig.defaults with
                        Run.NumSeeds = 2
                    }

                use env = Envs.makeBatched cfg.EnvId 6 torch.CPU
                use agent = Reinforce.Agent.make cfg 4 env.ActionSpace torch.CPU
                let batch = Reinforce.Agent.collect 0.9 agent env 3 11L (new torch.Generator(5UL))
                let mask = toArray batch.Mask
                let g = toArray batch.Returns
                let T = int batch.Mask.shape[1] / 3

                for k in 0..1 do
                    for e in 0..2 do
                        let len = [ 0 .. T - 1 ] |> List.sumBy (fun t -> mask[k * T * 3 + t * 3 + e]) |> int
                        // CartPole pays 1 per step: G_0 = (1 - gamma^L) / (1 - gamma), and L = the return.
                        let expected = (1.0 - 0.9 ** float len) / 0.1
                        Expect.floatClose Accuracy.medium (g[k * T * 3 + e]) expected "G_0"
                        Expect.equal (float len) (batch.EpisodeReturns[k][e]) "episode length = return"
            }

            test "train.fsx algo=reinforce: config, metrics per update and seed, evaluation, summary and report" {
                let runs = tempDir "rl-reinforce-runs"

                try
                    let code =
                        Cli.main
                            [
                                "algo=reinforce"
                                "config=" + config "reinforce-cartpole.yaml"
                                $"runs={runs}"
                                "iterations=3"
                                "num_seeds=2"
                                "eval_episodes=2"
                            ]

                    Expect.equal code 0 "exit code 0"
                    let dir = Directory.GetDirectories runs |> Array.exactlyOne
                    let table = Metrics.readCsv (Path.Combine(dir, "metrics.csv"))

                    Expect.sequenceEqual
                        (Metrics.column "iteration" table)
                        [| 1.0; 1.0; 2.0; 2.0; 3.0; 3.0 |]
                        "per update and seed"

                    Expect.sequenceEqual (Metrics.column "seed" table) [| 0.0; 1.0; 0.0; 1.0; 0.0; 1.0 |] "seed column"
                    let summary = Run.readSummary dir |> Map.ofList

                    for key in [ "eval_return_mean"; "eval_return_mean_seed_0"; "eval_return_mean_seed_1" ] do
                        Expect.isTrue (summary.ContainsKey key) $"{key} in summary.json"

                    Expect.stringContains
                        (File.ReadAllText(Path.Combine(dir, "config.yaml")))
                        "iterations: 3"
                        "resolved config"

                    Expect.isTrue (File.Exists(Path.Combine(dir, "report.html"))) "report"

                    // the same config and seeds give the same metrics as Reinforce.Loop.train itself
                    let cfg =
                        { Config.load
                              Reinforce.ReinforceConfig.fields
                              Reinforce.ReinforceConfig.defaults
                              (config "reinforce-cartpole.yaml") with
                            Iterations = 3
                            Run.NumSeeds = 2
                        }

                    let direct = Reinforce.Loop.train cfg 0 0
                    (direct.Agent :> IDisposable).Dispose()

                    Expect.sequenceEqual
                        (Metrics.column "actor_loss" table)
                        (direct.Metrics |> List.map (fun m -> m.ActorLoss) |> Array.ofList)
                        "the driver adds nothing to the training"
                finally
                    Directory.Delete(runs, true)
            }

            test "train.fsx algo=reinforce refuses resume, continuous actions and unknown keys before writing" {
                let runs = tempDir "rl-reinforce-runs"

                try
                    let run args =
                        Cli.main (
                            [
                                "algo=reinforce"
                                "config=" + config "reinforce-cartpole.yaml"
                                $"runs={runs}"
                            ]
                            @ args
                        )

                    Expect.equal (run [ $"resume={runs}" ]) 2 "resume refused"
                    Expect.equal (run [ "env_id=Pendulum-v1" ]) 2 "continuous actions refused"
                    Expect.equal (run [ "iteratons=3" ]) 2 "unknown key refused"

                    Expect.throwsC
                        (fun () ->
                            Reinforce.Runner.run [ "env_id=Pendulum-v1"; "config=" + config "reinforce-cartpole.yaml" ]
                            |> ignore)
                        (fun e -> Expect.stringContains e.Message "discrete actions" "says why")

                    Expect.isEmpty (Directory.GetDirectories runs) "nothing written"
                finally
                    Directory.Delete(runs, true)
            }

            test "a short seeded REINFORCE run beats a random policy on CartPole" {
                let cfg =
                    { Reinforce.ReinforceConfig.defaults with
                        Run.NumSeeds = 2
                        Iterations = 30
                    }

                let r = Reinforce.Loop.train cfg 0 0
                use _a = r.Agent

                let mean its =
                    r.Metrics
                    |> List.filter (fun m -> its m.Iteration)
                    |> List.averageBy (fun m -> m.EpisodicReturn)

                let first, last = mean (fun i -> i <= 5), mean (fun i -> i > 25)
                Expect.isGreaterThan last 50.0 $"last 5 updates average {last} (random: about 22)"
                Expect.isGreaterThan last (1.5 * first) $"improves from {first}"
            }
        ]
