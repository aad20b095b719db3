module Rl.Tests.WrapperTests

open System
open Expecto
open TorchSharp
open Rl
open Rl.Wrappers

/// Mean and variance of a pseudo-sample of weight `eps` (mean 0, var 1) merged with the data:
/// what RunningMeanStd converges to, computed directly.
let private direct (eps: float) (xs: float[]) =
    let n = float xs.Length
    let total = n + eps
    let mean = Array.sum xs / total

    let m2 =
        eps * 1.0
        + eps * mean * mean
        + (xs |> Array.sumBy (fun x -> (x - mean) * (x - mean)))

    mean, m2 / total

[<Tests>]
let tests =
    testList
        "Wrappers"
        [
            test
                "RunningMeanStd over batches equals the direct mean and variance (with Gymnasium's 1e-4 prior), per seed" {
                let rng = Random 1

                let batches =
                    [ for b in 1..5 -> Array.init (3 + b) (fun _ -> rng.NextDouble() * 10.0 - 2.0) ]

                // two seeds: seed 1 sees the negated, shifted stream, and keeps statistics of its own
                let s = RunningMeanStd(2, 1, torch.CPU)

                for b in batches do
                    let pair =
                        torch.tensor (Array.append b (b |> Array.map (fun x -> 3.0 - x)), dtype = torch.float64)

                    s.Update(pair.reshape (2L, -1L, 1L))

                for seed, xs in
                    [
                        0, Array.concat batches
                        1, Array.concat batches |> Array.map (fun x -> 3.0 - x)
                    ] do
                    let mean, var = direct 1e-4 xs
                    let m = Tensor.toArray s.Mean
                    let v = Tensor.toArray s.Var
                    Expect.floatClose Accuracy.veryHigh m[seed] mean $"mean of seed {seed}"
                    Expect.floatClose Accuracy.veryHigh v[seed] var $"var of seed {seed}"

                Expect.floatClose Accuracy.veryHigh s.Count (1e-4 + float (List.sumBy Array.length batches)) "count"

                let copy = RunningMeanStd(2, 1, torch.CPU)
                copy.Load(s.Save())
                Expect.equal (Tensor.toArray copy.Mean) (Tensor.toArray s.Mean) "Save/Load keeps the mean exactly"
                Expect.equal (Tensor.toArray copy.Var) (Tensor.toArray s.Var) "and the variance"
                Expect.throwsT<FormatException> (fun () -> copy.Load "1\n0 0\n1") "malformed text refused"

                Expect.throwsT<ArgumentException>
                    (fun () -> s.Update(torch.zeros (3L, 4L, 1L)))
                    "wrong seed count refused"
            }

            test "NormalizeObservation returns (obs - mean) / sqrt(var + 1e-8) of the updated statistics" {
                use env = new NormalizeObservation(Envs.makeBatched Pendulum.Id 64 torch.CPU)
                let ienv = env :> IBatchedEnv
                let raw = env.Inner.Reset 4L
                env.UpdateStatistics <- true
                let obs = ienv.Reset 4L
                let expected = RunningMeanStd(1, 3, torch.CPU)
                expected.Update(raw.unsqueeze 0L)
                let mean = Tensor.toArray env.Statistics.Mean
                let var = Tensor.toArray env.Statistics.Var
                Expect.equal mean (Tensor.toArray expected.Mean) "mean updated with the reset observations"
                Expect.equal var (Tensor.toArray expected.Var) "var updated with the reset observations"

                for j in 0..2 do
                    let col = raw.select(1, int64 j).``to`` torch.float64
                    let z = (col - mean[j]) / Math.Sqrt(var[j] + 1e-8)

                    Expect.isTrue
                        (obs.select(1, int64 j).``to``(torch.float64).allclose(z, atol = 1e-6))
                        $"component {j}"

                // after some steps the normalised observations have mean ~0 and std ~1
                let g = new torch.Generator(1UL)
                let mutable all = []

                for _ in 1..50 do
                    let r = ienv.Step(Pendulum.actionSpace.SampleBatch(64, g, torch.CPU))
                    all <- r.Obs :: all

                let z = torch.cat (List.toArray all, 0L)
                let m: torch.Tensor = z.mean ([| 0L |])
                let sd: torch.Tensor = z.std (0L)
                Expect.isLessThan (m.abs().max().item<float32>()) 0.3f "mean near 0"
                Expect.isLessThan ((sd - 1.0f).abs().max().item<float32>()) 0.3f "std near 1"
            }

            test "NormalizeObservation statistics can be set and frozen; clip bounds the output" {
                use env =
                    new NormalizeObservation(Envs.makeBatched CartPole.Id 8 torch.CPU, clip = 0.5)

                let ienv = env :> IBatchedEnv

                let fixedSave =
                    env.Statistics.Set([| 0.0; 0.0; 0.0; 0.0 |], [| 1e-6; 1e-6; 1e-6; 1e-6 |], 10.0)
                    env.Statistics.Save()

                env.UpdateStatistics <- false
                let obs = ienv.Reset 0L
                Expect.equal (env.Statistics.Save()) fixedSave "frozen"
                Expect.isTrue (obs.abs().le(0.5f.ToScalar()).all().item<bool>()) "clipped to 0.5"
                Expect.isTrue (obs.abs().eq(0.5f.ToScalar()).any().item<bool>()) "some values hit the clip"

                Expect.throwsT<ArgumentException>
                    (fun () -> env.Statistics.Set([| 0.0 |], [| 1.0 |], 10.0))
                    "wrong length"
            }

            test "NormalizeReward divides by the std of the discounted return, reset on termination" {
                // CartPole pays 1 per step: G_t = 1 + 0.9 G_{t-1} while no copy terminates
                use env = new NormalizeReward(Envs.makeBatched CartPole.Id 4 torch.CPU, gamma = 0.9)
                let ienv = env :> IBatchedEnv
                ienv.Reset 0L |> ignore
                let mutable g = 0.0
                let stats = RunningMeanStd(1, 1, torch.CPU)

                for t in 1..5 do
                    let r = ienv.Step(torch.tensor ([| 0L; 1L; 0L; 1L |]))
                    Expect.isFalse (r.Terminated.any().item<bool>()) "no termination in 5 steps"
                    g <- 1.0 + 0.9 * g
                    stats.Update(torch.full ([| 1L; 4L; 1L |], g.ToScalar(), dtype = torch.float64))
                    let expected = 1.0 / Math.Sqrt((Tensor.item stats.Var) + 1e-8)

                    for x in r.Reward.data<float32>().ToArray() do
                        Expect.floatClose Accuracy.medium (float x) expected $"step {t}"

                    Expect.isTrue (r.EpisodeReturn.eq(0.0f.ToScalar()).all().item<bool>()) "raw episode stats untouched"

                Expect.floatClose
                    Accuracy.veryHigh
                    (Tensor.item env.Statistics.Var)
                    (Tensor.item stats.Var)
                    "statistics"
                // termination clears the accumulator of that copy
                env.Accumulated <- torch.tensor ([| 5.0; 5.0; 5.0; 5.0 |])
                Expect.equal (env.Accumulated.data<float>().ToArray()) [| 5.0; 5.0; 5.0; 5.0 |] "settable"
            }

            test "EpisodeStatistics records the return and length of every finished episode" {
                let env = EpisodeStatistics(Envs.make CartPole.Id)
                let ienv = env :> IEnv
                let rng = Random 2

                for ep in 0..4 do
                    ienv.Reset(Some(int64 ep)) |> ignore
                    let mutable fin = false
                    let mutable steps = 0

                    while not fin do
                        let r = ienv.Step(Action.Discrete(rng.Next 2))
                        steps <- steps + 1
                        fin <- r.Terminated || r.Truncated

                    Expect.equal env.EpisodeLengths[ep] steps "length"
                    Expect.equal env.EpisodeReturns[ep] (float steps) "CartPole return = length"

                Expect.equal env.EpisodeReturns.Count 5 "five episodes"
            }

            test "ClipActionBatched clips into the box before the env; discrete passes through" {
                use inner =
                    new MountainCarContinuous.BatchedEnv(2, torch.CPU, dtype = torch.float64)

                use env = new ClipActionBatched(inner)
                let ienv = env :> IBatchedEnv
                ienv.Reset 0L |> ignore
                let r = ienv.Step(torch.tensor (array2D [ [ 3.0f ]; [ -0.5f ] ]))
                let rewards = r.Reward.data<float32>().ToArray()
                Expect.floatClose Accuracy.medium (float rewards[0]) -0.1 "3 clipped to 1 costs 0.1"
                Expect.floatClose Accuracy.medium (float rewards[1]) -0.025 "-0.5 unchanged"
            }
        ]
