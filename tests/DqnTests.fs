module Rl.Tests.DqnTests

open System
open System.IO
open Expecto
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Tests.TestPaths

let private t2 (rows: float32[][]) =
    torch.tensor(Array.concat rows).reshape(int64 rows.Length, int64 rows[0].Length)

/// Fills a buffer (S = 2, obsDim 1) with transitions whose observation encodes (seed, item).
let private addItems (buf: Buffers.ReplayBuffer) (first: int) (n: int) =
    let v k i = float32 (100 * k + i)

    let obs =
        torch
            .tensor(
                [|
                    for k in 0..1 do
                        for i in first .. first + n - 1 -> v k i
                |]
            )
            .reshape(2L, int64 n, 1L)

    let act = torch.zeros ([| 2L; int64 n |], dtype = torch.int64)
    let rew = torch.zeros ([| 2L; int64 n |])
    buf.Add(obs, act, rew, obs + 0.5f, rew)

/// A small DQN config that learns CartPole quickly (many gradient steps per env step).
let quickCfg =
    { Dqn.DqnConfig.defaults with
        TotalTimesteps = 12_000L
        LearningRate = 1e-3
        BufferSize = 10_000
        TargetNetworkFrequency = 100
        BatchSize = 64
        ExplorationFraction = 0.4
        LearningStarts = 1000L
        TrainFrequency = 1
        Hidden = [ 64; 64 ]
        Run.NumSeeds = 2
        LogEvery = 2000
    }

[<Tests>]
let tests =
    // Training in parallel with another libtorch-heavy test corrupted native state here
    // (intermittent "toFloat" / "integral alpha" errors); run these one at a time.
    testSequencedGroup "libtorch-training"
    <| testList
        "Dqn"
        [
            test "replay buffer wraps around and keeps the newest transitions" {
                use buf = new Buffers.ReplayBuffer(2, 5, 1, torch.CPU)
                addItems buf 0 3
                Expect.equal (buf.Position, buf.Count) (3, 3) "after 3"
                addItems buf 3 4 // items 3..6: 5 and 6 overwrite slots 0 and 1
                Expect.equal (buf.Position, buf.Count) (2, 5) "after 7"
                let stored = buf.get_buffer ("obs")

                let expected =
                    [|
                        for k in 0..1 do
                            for i in [ 5; 6; 2; 3; 4 ] -> float (100 * k + i)
                    |]

                Expect.equal (toArray stored) expected "slot contents"

                Expect.equal
                    (toArray (buf.get_buffer "next_obs"))
                    (expected |> Array.map (fun x -> x + 0.5))
                    "next observations"
            }

            test "replay buffer samples the filled slots uniformly, per seed" {
                use buf = new Buffers.ReplayBuffer(2, 8, 1, torch.CPU)
                addItems buf 0 4 // 4 of 8 slots filled
                let g = new torch.Generator(3UL)
                let b = buf.Sample(40_000, g)
                let idx = toArray b.Indices
                Expect.isTrue (idx |> Array.forall (fun i -> i >= 0.0 && i < 4.0)) "only filled slots"

                for k in 0..1 do
                    let mine = idx[k * 40_000 .. k * 40_000 + 39_999]

                    for slot in 0..3 do
                        let c = mine |> Array.filter (fun i -> i = float slot) |> Array.length
                        // Binomial(40000, 1/4): sd 86.6; allow 5 sd.
                        Expect.isLessThan (abs (c - 10_000)) 433 $"seed {k} slot {slot} drawn {c} times"

                // The sampled observations are the stored ones at those slots.
                let obs = toArray b.Obs
                Expect.isTrue (Array.forall2 (fun (o: float) (i: float) -> true) obs idx) "shapes agree"
                Expect.equal obs[0] (idx[0]) "seed 0 obs = item id = slot"
                Expect.equal obs[40_000] (100.0 + idx[40_000]) "seed 1 obs"
            }

            test "replay buffer refuses bad shapes and an empty sample" {
                use buf = new Buffers.ReplayBuffer(2, 4, 3, torch.CPU)

                let e =
                    Expect.throwsC (fun () -> buf.Sample(8, new torch.Generator(1UL)) |> ignore) id

                Expect.stringContains e.Message "empty" "empty buffer"
                let bad = torch.zeros ([| 2L; 1L; 2L |])
                let z = torch.zeros ([| 2L; 1L |])

                let e2 =
                    Expect.throwsC (fun () -> buf.Add(bad, z.to_type torch.int64, z, bad, z)) id

                Expect.stringContains e2.Message "[2; N; 3]" "names the expected shape"
            }

            test "TD targets bootstrap on truncation, not on termination" {
                // Three transitions: ongoing, terminated, truncated (stored with terminated = 0).
                let rewards = torch.tensor([| 1.0f; 1.0f; 1.0f |]).reshape(1L, 3L)
                let terminated = torch.tensor([| false; true; false |]).reshape(1L, 3L)

                let nextQ =
                    torch.tensor([| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f; 0.0f |]).reshape(1L, 3L, 2L)

                let y = Losses.dqnTargets 0.5 rewards terminated nextQ
                Expect.equal (toArray y) [| 2.0; 1.0; 3.5 |] "r + gamma * (1 - terminated) * max Q'"
            }

            test "TD loss: MSE and Huber on a hand case" {
                let q = torch.tensor([| 0.0f; 0.0f |]).reshape(1L, 2L)
                let y = torch.tensor([| 0.5f; 3.0f |]).reshape(1L, 2L)
                Expect.floatClose Accuracy.high (item (Losses.tdLoss Losses.Mse q y)) 4.625 "mse"
                Expect.floatClose Accuracy.high (item (Losses.tdLoss Losses.Huber q y)) 1.3125 "huber"
            }

            test "target sync copies weights exactly; soft sync averages" {
                use a = new Nn.QNetwork("a", 2, 4, [ 8 ], Nn.Relu, 2)
                use b = new Nn.QNetwork("b", 2, 4, [ 8 ], Nn.Relu, 2)
                a.Initialise(Nn.TorchDefault, Nn.TorchDefault, [| 0L; 1L |])
                b.Initialise(Nn.TorchDefault, Nn.TorchDefault, [| 5L; 6L |])

                let flat (m: torch.nn.Module) =
                    m.parameters () |> Seq.collect (fun p -> toArray p) |> Array.ofSeq

                let pa, pb = flat a, flat b
                Expect.notEqual pa pb "different before"
                Nn.syncParameters 0.25 a b
                let soft = flat b
                Array.iteri (fun i x -> Expect.floatClose Accuracy.medium x (0.25 * pa[i] + 0.75 * pb[i]) "polyak") soft
                Nn.syncParameters 1.0 a b
                Expect.equal (flat b) pa "bit-identical after a hard copy"
                let e = Expect.throwsC (fun () -> Nn.syncParameters 0.0 a b) id
                Expect.stringContains e.Message "(0, 1]" "tau range"
            }

            test "every layer of QNetwork, Actor and Critic is a registered parameter" {
                use q = new Nn.QNetwork("q", 2, 4, [ 8; 8 ], Nn.Relu, 2)
                use a = new Nn.Actor("a", 2, 4, [ 8; 8 ], Nn.Relu, Nn.CategoricalHead 2)
                use c = new Nn.Critic("c", 2, 4, [ 8; 8 ], Nn.Relu)
                // three linear layers (two hidden + output), each with weight and bias
                for m in [ q :> torch.nn.Module; a; c ] do
                    Expect.equal (Seq.length (m.parameters ())) 6 "2 hidden layers + output, weight and bias each"
            }

            test "epsilon schedule is linear then flat" {
                Expect.floatClose Accuracy.veryHigh (Dqn.Agent.epsilonAt 1.0 0.05 100.0 0L) 1.0 "start"
                Expect.floatClose Accuracy.veryHigh (Dqn.Agent.epsilonAt 1.0 0.05 100.0 50L) 0.525 "middle"
                Expect.floatClose Accuracy.veryHigh (Dqn.Agent.epsilonAt 1.0 0.05 100.0 500L) 0.05 "after"
            }

            test "a short seeded DQN run beats a random policy on CartPole" {
                let r = Dqn.Loop.train quickCfg Dqn.Loop.noHooks None
                use _a = r.Agent

                let evals =
                    Dqn.Agent.evaluate (Dqn.DqnConfig.makeEnv quickCfg) r.Agent 10 1_000_000L
                // A random policy averages about 22; a collapsed one (always one side) about 9.
                for k in 0..1 do
                    Expect.isGreaterThan
                        (Array.average evals[k])
                        60.0
                        $"seed {k} greedy return {Array.average evals[k]}"
            }

            test "train.fsx algo=dqn writes the run folder, resumes, and rejects a bad key" {
                let runs = tempDir "rl-dqn"

                try
                    let args =
                        [
                            $"runs={runs}"
                            "config=" + config "dqn-cartpole.yaml"
                            "total_timesteps=1500"
                            "learning_starts=500"
                            "log_every=500"
                            "num_seeds=2"
                            "eval_episodes=2"
                        ]

                    let dir = Dqn.Runner.run args

                    for f in [ Run.ConfigFile; Metrics.CsvFile; Run.SummaryFile; Run.ReportFile ] do
                        Expect.isTrue (File.Exists(Path.Combine(dir, f))) $"{f} written"

                    let summary = File.ReadAllText(Path.Combine(dir, Run.SummaryFile))
                    Expect.stringContains summary "\"eval_return_mean\"" "summary has eval_return_mean"
                    Expect.isTrue (Checkpoint.exists (Path.Combine(dir, Run.CheckpointDir))) "checkpoint"

                    let rowsBefore =
                        Metrics.count (Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile)))

                    Dqn.Runner.run [ $"resume={dir}"; "total_timesteps=2500" ] |> ignore
                    let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))
                    Expect.equal (Metrics.count table) (rowsBefore + 4) "two more windows for two seeds"
                    Expect.equal (Array.max (Metrics.column "global_step" table)) 2500.0 "continued to 2500"
                    // The folder knows its algorithm: resume and evaluate without algo=.
                    Expect.equal (Run.algorithmOf dir) (Some "dqn") "config.yaml names the algorithm"
                    Expect.equal (Cli.main [ $"resume={dir}"; "total_timesteps=3000" ]) 0 "resume without algo="

                    Expect.equal
                        (Array.max (Metrics.column "global_step" (Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile)))))
                        3000.0
                        "continued to 3000 as DQN"

                    let evals = Cli.evaluate dir None (Some 1)
                    Expect.equal (evals |> Array.map Array.length) [| 1; 1 |] "one greedy episode per seed"
                    Expect.equal (Cli.evaluate dir (Some "dqn") (Some 1)) evals "same with algo=dqn"
                    Expect.equal (Cli.main [ "algo=ppo"; $"resume={dir}" ]) 2 "algo= other than the folder's exits 2"

                    try
                        Cli.evaluate dir (Some "ppo") None |> ignore
                        failtest "evaluate with another algorithm than the folder's is refused"
                    with ConfigError _ as e ->
                        Expect.stringContains e.Message "written by another algorithm" "says why"

                    Expect.equal (Cli.main [ "algo=dqn"; $"runs={runs}"; "learning_rat=0.1" ]) 2 "bad key exits 2"
                    Expect.equal (Directory.GetDirectories runs).Length 1 "nothing written for the bad key"
                finally
                    Directory.Delete(runs, true)
            }
        ]
