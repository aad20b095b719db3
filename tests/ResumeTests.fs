/// Tests of exact resume: `SeededRandom` draws System.Random's stream and saves its state,
/// `Snapshot` round-trips tensors and generators bit for bit, every environment continues
/// identically from a saved state, and a PPO run stopped at an update boundary (cancellation,
/// or a kill after its last checkpoint) and resumed ends with the metrics of an uninterrupted run.
module Rl.Tests.ResumeTests

open System
open System.IO
open System.Threading
open Expecto
open TorchSharp
open Rl
open Rl.Tests.TestPaths

/// Draws a mix of every System.Random call from `r`.
let private draws (r: Random) =
    [
        for i in 0..199 do
            match i % 6 with
            | 0 -> float (r.Next())
            | 1 -> float (r.Next 17)
            | 2 -> float (r.Next(-5, 1000))
            | 3 -> float (r.Next(Int32.MinValue, Int32.MaxValue)) // a range above Int32.MaxValue
            | 4 ->
                let b = Array.zeroCreate<byte> 3
                r.NextBytes b
                float b[0] + 256.0 * float b[1] + 65536.0 * float b[2]
            | _ -> r.NextDouble()
    ]

/// Steps a single env with a fixed action pattern, `n` steps, resetting when an episode ends.
let private stepSingle (env: IEnv) (n: int) =
    [
        for t in 0 .. n - 1 do
            let action =
                match env.ActionSpace with
                | Space.Discrete(k, start) -> Action.Discrete(start + t % k)
                | Space.Box(low, _, _) ->
                    Action.Continuous(Array.init low.Length (fun i -> 0.3 * float (t % 5 - 2 + i)))

            let r = env.Step action

            if r.Terminated || r.Truncated then
                env.Reset None |> ignore

            yield r
    ]

/// Steps a batched env `n` times with a fixed action pattern; returns every field as host values.
let private stepBatched (env: IBatchedEnv) (n: int) =
    [
        for t in 0 .. n - 1 do
            let N = int64 env.NumEnvs

            let action =
                match env.ActionSpace with
                | Space.Discrete(k, start) ->
                    torch
                        .arange(N, dtype = torch.int64)
                        .add((int64 (t + start)).ToScalar())
                        .remainder((int64 k).ToScalar())
                | Space.Box(low, _, _) ->
                    torch.full ([| N; int64 low.Length |], (0.3 * float (t % 5 - 2)).ToScalar(), dtype = torch.float32)

            let r = env.Step action

            yield
                [
                    Tensor.toArray r.Obs
                    Tensor.toArray r.Reward
                    Tensor.toArray r.Terminated
                    Tensor.toArray r.Truncated
                    Tensor.toArray r.EpisodeReturn
                ]
    ]

let private smallCartPole =
    [
        "config=" + config "ppo-cartpole.yaml"
        "num_envs=2"
        "num_steps=32"
        "num_minibatches=2"
        "update_epochs=1"
        "total_timesteps=384"
        "eval_episodes=1"
        "threads=1"
    ]

/// A short Pendulum run (5 updates of 2 x 64 steps), for tests that resume or evaluate.
let smallPendulum =
    [
        "num_envs=2"
        "num_steps=64"
        "minibatch_size=64"
        "update_epochs=1"
        "total_timesteps=640"
        "eval_episodes=1"
        "threads=1"
    ]

/// Runs `args` uninterrupted, then stopped after its first update (a token cancelled before the
/// start) and resumed; returns the differences of the two metrics tables and the stop's step.
let private stopAndResume (args: string list) =
    let runs = tempDir "rl-resume"

    try
        let full = Ppo.Runner.run ("runs=" + Path.Combine(runs, "full") :: args)
        use cts = new CancellationTokenSource()
        cts.Cancel()

        let stopped =
            Expect.throwsC
                (fun () ->
                    Ppo.Runner.runWith cts.Token ("runs=" + Path.Combine(runs, "cut") :: args)
                    |> ignore)
                (fun e ->
                    match e with
                    | :? Train.RunStoppedException as s -> s
                    | _ -> failtest $"expected RunStoppedException, got {e.GetType().Name}: {e.Message}")

        Expect.isTrue stopped.Resumable "PPO resumes"
        Expect.isFalse (File.Exists(Path.Combine(stopped.RunDir, Run.SummaryFile))) "no summary for a stopped run"
        let resumed = Ppo.Runner.run [ $"resume={stopped.RunDir}" ]
        Expect.equal resumed stopped.RunDir "same folder"

        let read (d: string) =
            Metrics.readCsv (Path.Combine(d, Metrics.CsvFile))

        Metrics.differences (read full) (read resumed), stopped.Step
    finally
        Directory.Delete(runs, true)

[<Tests>]
let tests =
    testList
        "Resume"
        [
            test "SeededRandom draws exactly System.Random's stream for the same seed" {
                for seed in [ 0; 1; 42; -7; 1_000_000_007; Int32.MaxValue; Int32.MinValue ] do
                    Expect.sequenceEqual (draws (SeededRandom seed)) (draws (Random seed)) $"seed {seed}"
            }

            test "SeededRandom's saved state continues the stream; a bad state is refused" {
                let r = SeededRandom 5
                draws r |> ignore
                let saved = r.State
                let next = draws r
                let other = SeededRandom 99
                other.State <- saved
                Expect.sequenceEqual (draws other) next "restored generator continues identically"

                Expect.throwsT<ArgumentException> (fun () -> other.State <- [| 1; 2 |]) "58 ints"

                Expect.throwsT<ArgumentException>
                    (fun () -> other.State <- Array.append [| 60; 0 |] (Array.zeroCreate 56))
                    "indices in range"
            }

            test "Snapshot round-trips tensors bit for bit and generator states" {
                let t = (torch.tensor [| 1.5f; Single.NaN; -0.0f; Single.Epsilon |]).reshape(2L, 2L)

                let back = Snapshot.toTensor torch.CPU (Snapshot.ofTensor t)
                Expect.equal back.shape t.shape "shape"
                Expect.equal back.dtype t.dtype "dtype"
                Expect.sequenceEqual (back.bytes.ToArray()) (t.bytes.ToArray()) "bytes"
                let i = torch.tensor [| 3L; -9L |]

                Expect.sequenceEqual
                    (Tensor.toArray (Snapshot.toTensor torch.CPU (Snapshot.ofTensor i)))
                    [| 3.0; -9.0 |]
                    "int64"

                use g = new torch.Generator(7UL, torch.CPU)
                let saved = Snapshot.ofGenerator g
                let a = Tensor.toArray (torch.rand ([| 5L |], generator = g))
                use g2 = new torch.Generator(1UL, torch.CPU)
                Snapshot.restoreGenerator g2 saved
                Expect.sequenceEqual (Tensor.toArray (torch.rand ([| 5L |], generator = g2))) a "same draws"
                let bad = Snapshot.parse """{"dtype": "Float32", "shape": [3], "data": "AAAA"}"""
                Expect.throwsT<FormatException> (fun () -> Snapshot.toTensor torch.CPU bad |> ignore) "size mismatch"
                Expect.throwsT<FormatException> (fun () -> Snapshot.parse "{" |> ignore) "not JSON"
            }

            test "every single env continues identically from a saved state; another id is refused" {
                for id in Envs.ids do
                    let env = Envs.make id
                    env.Reset(Some 3L) |> ignore
                    stepSingle env 57 |> ignore
                    let saved = (env :?> IEnvSnapshot).SaveState()
                    let expected = stepSingle env 300
                    let copy = Envs.make id
                    (copy :?> IEnvSnapshot).LoadState saved
                    Expect.sequenceEqual (stepSingle copy 300) expected $"{id}: same 300 steps (with resets)"

                let cart = (Envs.make CartPole.Id :?> IEnvSnapshot).SaveState()

                Expect.throwsC (fun () -> (Envs.make Pendulum.Id :?> IEnvSnapshot).LoadState cart) (fun e ->
                    Expect.stringContains e.Message "CartPole-v1" "names the saved env")
            }

            test "batched envs and SyncVectorEnv continue identically from a saved state" {
                for id in Envs.ids do
                    for make in [ Envs.makeBatched; Envs.makeSync ] do
                        use env = make id 3 torch.CPU
                        env.Reset 11L |> ignore
                        stepBatched env 41 |> ignore
                        let saved = (env :?> IEnvSnapshot).SaveState()
                        let expected = stepBatched env 250
                        use copy = make id 3 torch.CPU
                        copy.Reset 999L |> ignore
                        (copy :?> IEnvSnapshot).LoadState saved

                        Expect.sequenceEqual
                            (stepBatched copy 250)
                            expected
                            $"{id} ({env.GetType().Name}): same 250 steps"

                use four = Envs.makeBatched CartPole.Id 4 torch.CPU
                four.Reset 0L |> ignore
                use three = Envs.makeBatched CartPole.Id 3 torch.CPU

                Expect.throwsC
                    (fun () -> (three :?> IEnvSnapshot).LoadState((four :?> IEnvSnapshot).SaveState()))
                    (fun e -> Expect.stringContains e.Message "3 copies" "names the copies")
            }

            test "a PPO run stopped by cancellation and resumed has an uninterrupted run's metrics" {
                // one seed on SyncVectorEnv, two seeds fused into one SyncVectorEnv
                for args in [ smallCartPole; smallCartPole @ [ "num_seeds=2" ] ] do
                    let diffs, step = stopAndResume args
                    Expect.equal step 64L "stopped after the first update"
                    Expect.isEmpty diffs $"identical metrics for {args}"
                // Pendulum: one tensor-batched env per seed; two seeds fused into one batched env;
                // reward scaling and the KL penalty's beta carried over too
                for args in
                    [
                        smallPendulum
                        smallPendulum @ [ "num_seeds=2"; "norm_reward=true" ]
                        smallPendulum @ [ "loss=kl_penalty" ]
                    ] do
                    let diffs, _ = stopAndResume args
                    Expect.isEmpty diffs $"identical metrics for {args}"
            }

            test "a DQN run stopped by cancellation and resumed has an uninterrupted run's metrics" {
                let runs = tempDir "rl-resume"

                let args =
                    [
                        "config=" + config "dqn-cartpole.yaml"
                        "total_timesteps=1500"
                        "learning_starts=400"
                        "log_every=250"
                        "eval_episodes=1"
                        "threads=1"
                    ]

                let stopOnce (token: CancellationToken) (args: string list) =
                    try
                        Train.driveWith token Dqn.Runner.algorithm args |> ignore
                        failtest "expected a stop"
                    with :? Train.RunStoppedException as e ->
                        e

                try
                    for extra in [ []; [ "num_seeds=2" ] ] do
                        let full = Dqn.Runner.run (("runs=" + Path.Combine(runs, "full")) :: args @ extra)

                        use cts = new CancellationTokenSource()
                        cts.Cancel()
                        // stop after the first window, and again after the second (inside learning)
                        let first =
                            stopOnce cts.Token (("runs=" + Path.Combine(runs, "cut")) :: args @ extra)

                        Expect.equal first.Step 250L "stopped after the first window"
                        let second = stopOnce cts.Token [ $"resume={first.RunDir}" ]
                        Expect.equal second.Step 500L "then after the second"
                        Dqn.Runner.run [ $"resume={first.RunDir}" ] |> ignore

                        let read (d: string) =
                            Metrics.readCsv (Path.Combine(d, Metrics.CsvFile))

                        Expect.isEmpty
                            (Metrics.differences (read full) (read first.RunDir))
                            $"identical metrics for {extra}"

                        Directory.Delete(runs, true)
                        Directory.CreateDirectory runs |> ignore
                finally
                    Directory.Delete(runs, true)
            }

            test "a resume after a kill drops the metrics rows logged after the last checkpoint" {
                let runs = tempDir "rl-resume"

                let stopWith (token: CancellationToken) (args: string list) =
                    try
                        Ppo.Runner.runWith token args |> ignore
                        failtest "expected a stop"
                    with :? Train.RunStoppedException as e ->
                        e

                try
                    let full = Ppo.Runner.run ("runs=" + Path.Combine(runs, "full") :: smallCartPole)
                    use cts = new CancellationTokenSource()
                    cts.Cancel()
                    // stop after update 1, resume and stop after update 2: the checkpoint holds update 2
                    let first =
                        stopWith cts.Token ("runs=" + Path.Combine(runs, "cut") :: smallCartPole)

                    let second = stopWith cts.Token [ $"resume={first.RunDir}" ]
                    Expect.equal second.Step 128L "checkpoint at update 2"
                    // update 3 was logged, then the process was killed before its next checkpoint
                    let csv = Path.Combine(first.RunDir, Metrics.CsvFile)
                    let fullRows = File.ReadAllLines(Path.Combine(full, Metrics.CsvFile))
                    File.AppendAllLines(csv, [ fullRows[3] ])
                    Expect.equal (File.ReadAllLines csv).Length 4 "header + updates 1-3"
                    Ppo.Runner.run [ $"resume={first.RunDir}" ] |> ignore

                    let read (d: string) =
                        Metrics.readCsv (Path.Combine(d, Metrics.CsvFile))

                    Expect.isEmpty
                        (Metrics.differences (read full) (read first.RunDir))
                        "update 3 once, identical to the full run"
                finally
                    Directory.Delete(runs, true)
            }
        ]
