module Rl.Tests.GrpoTests

open System
open System.IO
open Expecto
open TorchSharp
open Rl
open Rl.Tests.TestPaths

let private t (xs: float list) =
    torch.tensor (Array.ofList (List.map float32 xs))

let private close (a: float[]) (b: float seq) (msg: string) =
    let b = Array.ofSeq b
    Expect.equal a.Length b.Length $"{msg}: length"

    for i in 0 .. a.Length - 1 do
        Expect.floatClose { absolute = 1e-5; relative = 1e-5 } a[i] b[i] $"{msg}[{i}]"

/// A learnable synthetic "MNIST": 10 random sparse prototypes in [0, 1]^784 plus noise.
let synthetic (n: int) (seed: int64) : Mnist.Dataset =
    use _scope = torch.NewDisposeScope()
    let g = Seed.generator torch.CPU 12345L

    let protos =
        torch.rand ([| 10L; 784L |], generator = g)
        * torch.rand([| 10L; 784L |], generator = g).gt((0.7).ToScalar())

    let g2 = Seed.generator torch.CPU seed
    let labels = torch.randint (0L, 10L, [| int64 n |], generator = g2)
    let noise = torch.rand ([| int64 n; 784L |], generator = g2) * 0.5

    let images =
        (protos.index_select (0L, labels) + noise).clamp(0.0.ToScalar(), 1.0.ToScalar())

    {
        Images = images.DetachFromDisposeScope()
        Labels = labels.DetachFromDisposeScope()
    }

/// A small, fast GRPO config.
let small =
    { Grpo.GrpoConfig.defaults with
        Epochs = 1
        BatchSize = 32
        GroupSize = 8
        Lr = 3e-3
        LogEvery = 10
    }

[<Tests>]
let tests =
    testList
        "Grpo"
        [
            test "group advantage: reward minus group mean; all-correct and all-wrong groups give zero" {
                let r =
                    t [ 1.0; 0.0; 0.0; 1.0; 1.0; 1.0; 1.0; 1.0; 0.0; 0.0; 0.0; 0.0 ]
                    |> fun x -> x.reshape (3L, 4L)

                close
                    (Tensor.toArray (Advantage.groupRelative false r))
                    [ 0.5; -0.5; -0.5; 0.5; 0.; 0.; 0.; 0.; 0.; 0.; 0.; 0. ]
                    "centred"
                // std of [1, 0, 0, 1] (unbiased) = sqrt(1/3)
                let s = 0.5 / (sqrt (1.0 / 3.0) + 1e-4)

                close
                    (Tensor.toArray (Advantage.groupRelative true r))
                    [ s; -s; -s; s; 0.; 0.; 0.; 0.; 0.; 0.; 0.; 0. ]
                    "std-scaled"
                // one correct of four: 0.75 and -0.25
                close
                    (Tensor.toArray (Advantage.groupRelative false (t [ 0.0; 0.0; 1.0; 0.0 ])))
                    [ -0.25; -0.25; 0.75; -0.25 ]
                    "one correct"
            }

            test "group advantage refuses a group of one" {
                let e =
                    Expect.throwsC (fun () -> Advantage.groupRelative false (torch.ones (3L, 1L)) |> ignore) id

                Expect.stringContains e.Message "G >= 2" "says what is allowed"
                Expect.stringContains e.Message "[3; 1]" "names the shape"
            }

            test "k3 KL to the reference: zero for equal policies, the hand value otherwise, never negative" {
                let lp = t [ log 0.5; log 0.2 ] |> fun x -> x.reshape (1L, 2L)
                close (Tensor.toArray (Losses.klToReference lp lp)) [ 0.0 ] "equal"
                // pi_ref / pi = 0.5 at both samples: 0.5 - log 0.5 - 1
                let lpRef = lp + log 0.5
                close (Tensor.toArray (Losses.klToReference lp lpRef)) [ 0.5 - log 0.5 - 1.0 ] "hand value"
                let g = Seed.generator torch.CPU 1L
                let a = torch.randn ([| 2L; 50L |], generator = g)
                let b = torch.randn ([| 2L; 50L |], generator = g)

                Expect.isTrue
                    (Tensor.toArray (Losses.klToReference a b) |> Array.forall (fun v -> v >= 0.0))
                    "non-negative"

                Expect.throwsT<ArgumentException>
                    (fun () -> Losses.klToReference a (b.narrow (1L, 0L, 3L)) |> ignore)
                    "shapes must agree"
            }

            test "GRPO loss equals the PPO surrogate over the group advantages (+ beta KL - entropy bonus)" {
                let g = Seed.generator torch.CPU 7L
                let S, B, G = 2L, 5L, 4L

                let logProbs =
                    torch.nn.functional.log_softmax (torch.randn ([| S; B; 10L |], generator = g), -1L)

                let actions = torch.randint (0L, 10L, [| S; B; G |], generator = g)
                let gathered = logProbs.gather (-1L, actions) // [S; B; G]: log pi(a) of each sampled guess
                let logProbOld = gathered + 0.3 * torch.randn ([| S; B; G |], generator = g)
                let logProbRef = gathered + 0.2 * torch.randn ([| S; B; G |], generator = g)

                let rewards =
                    (torch.randint (0L, 2L, [| S; B; G |], generator = g)).to_type torch.float32

                let adv = Advantage.groupRelative true rewards
                let flat (x: torch.Tensor) = x.reshape (S, B * G)
                let ppo, stats = Losses.ppoClip 0.2 (flat gathered) (flat logProbOld) (flat adv)
                let parts = Grpo.Learn.loss 0.2 0.0 0.0 logProbs actions logProbOld logProbRef adv
                close (Tensor.toArray parts.Loss) (Tensor.toArray ppo) "beta = 0: exactly PPO's clipped surrogate"
                close (Tensor.toArray parts.Stats.ClipFraction) (Tensor.toArray stats.ClipFraction) "same clip fraction"

                Expect.isTrue
                    (Tensor.toArray stats.ClipFraction |> Array.exists (fun c -> c > 0.0))
                    "the case exercises the clip"

                let kl = Losses.klToReference (flat gathered) (flat logProbRef)
                let ent = -(logProbs.exp () * logProbs).sum(-1L).mean([| 1L |])

                let withKl =
                    Grpo.Learn.loss 0.2 0.04 0.01 logProbs actions logProbOld logProbRef adv

                close (Tensor.toArray withKl.Loss) (Tensor.toArray (ppo + 0.04 * kl - 0.01 * ent)) "PPO + beta KL - c H"
            }

            test "memory: a known module and seed 004's 8B-parameter arithmetic" {
                use actor = new Nn.Actor("a", 1, 784, [ 128; 128 ], Nn.Relu, Nn.CategoricalHead 10)
                use critic = new Nn.Critic("c", 1, 784, [ 128; 128 ], Nn.Relu)
                let adam = Optim.Adam(0.9, 0.999, 1e-8)
                // 784*128+128 + 128*128+128 + 128*10+10
                Expect.equal (Memory.parameterCount [ actor ]) 118_282L "actor parameters"
                Expect.equal (Memory.parameterCount [ critic ]) 117_121L "critic parameters"
                let f = Memory.ofModules adam torch.ScalarType.Float32 [ actor ]

                Expect.equal
                    (f.ParameterBytes, f.GradientBytes, f.OptimizerBytes, f.TotalBytes)
                    (473_128L, 473_128L, 946_256L, 1_892_512L)
                    "fp32 + Adam"

                let ppo =
                    Memory.ofModules adam torch.ScalarType.Float32 [ actor :> torch.nn.Module; critic ]

                Expect.equal ppo.Parameters 235_403L "PPO: actor + critic"
                let big = Memory.estimate adam torch.ScalarType.BFloat16 8_000_000_000L

                Expect.equal
                    (big.ParameterBytes, big.GradientBytes, big.OptimizerBytes, big.TotalBytes)
                    (16_000_000_000L, 16_000_000_000L, 32_000_000_000L, 64_000_000_000L)
                    "16 + 16 + 32 = 64 GB"

                Expect.equal (Memory.formatBytes big.TotalBytes) "64.0 GB" "readable"

                Expect.equal
                    (Memory.estimate (Optim.Sgd 0.0) torch.ScalarType.Float32 10L).OptimizerBytes
                    0L
                    "plain SGD keeps no state"

                Expect.stringContains (Memory.table [ "8B bf16", big ]) "32.0 GB" "table"
                Expect.equal (Memory.parseDtype "bf16") torch.ScalarType.BFloat16 "dtype names"
                let e = Expect.throwsC (fun () -> Memory.parseDtype "int4" |> ignore) id
                Expect.stringContains e.Message "bfloat16" "lists the allowed dtypes"
            }

            test "a short seeded run on synthetic digits learns far above chance, and repeats exactly" {
                let data () : Grpo.Data =
                    {
                        Train = synthetic 2048 1L
                        Test = synthetic 512 2L
                    }

                use d1 = data ()
                let r1 = Grpo.Loop.train d1 small Grpo.Loop.noHooks
                use _a1 = r1.Agent
                let acc = r1.EpochAccuracy[0][0]
                Expect.isGreaterThan acc 0.9 $"test accuracy {acc} after one epoch of 64 updates (chance 0.1)"
                let first = r1.Metrics.Head.RewardMean
                let last = (List.last r1.Metrics).RewardMean
                Expect.isGreaterThan last (first + 0.2) $"mean sampled reward rises ({first} -> {last})"
                use d2 = data ()
                let r2 = Grpo.Loop.train d2 small Grpo.Loop.noHooks
                use _a2 = r2.Agent

                let text (r: Grpo.TrainResult) =
                    r.Metrics
                    |> List.map (fun m -> Grpo.Loop.metricValues m |> Array.take 11 |> Array.map (sprintf "%.17g"))

                Expect.equal (text r2) (text r1) "same seed, same metrics (time columns aside)"
            }

            test "bad GRPO config values are refused naming key, value and what is allowed" {
                let e =
                    Expect.throwsC
                        (fun () ->
                            Grpo.Runner.run [ "group_size=1"; "config=" + config "grpo-mnist.yaml" ]
                            |> ignore)
                        id

                Expect.stringContains e.Message "group_size" "key"
                Expect.stringContains e.Message ">= 2" "allowed"

                let e =
                    Expect.throwsC
                        (fun () ->
                            Grpo.Runner.run [ "batch_size=100"; "train_size=50"; "config=" + config "grpo-mnist.yaml" ]
                            |> ignore)
                        id

                Expect.stringContains e.Message "batch_size" "cross-field check names the key"
            }

            test
                "train.fsx algo=grpo: a short run on real MNIST writes summary, metrics, checkpoint and report, well above chance" {
                MnistTests.requireMnist ()
                let runs = tempDir "rl-grpo-runs"

                try
                    let code =
                        Cli.main
                            [
                                "algo=grpo"
                                "config=" + config "grpo-mnist.yaml"
                                $"runs={runs}"
                                "train_size=6000"
                                "test_size=1000"
                                "epochs=1"
                                "batch_size=32"
                                "lr=3e-3"
                                "num_seeds=2"
                            ]

                    Expect.equal code 0 "exit code 0"
                    let dir = Directory.GetDirectories runs |> Array.exactlyOne
                    let summary = Run.readSummary dir |> Map.ofList

                    let acc =
                        match summary["test_accuracy"] with
                        | Number a -> a
                        | v -> failtest $"test_accuracy is {v}"

                    Expect.isTrue (acc >= 0.0 && acc <= 1.0) "a fraction"
                    Expect.isGreaterThan acc 0.4 $"test accuracy {acc} after 187 updates on 6,000 images (chance 0.1)"

                    for f in [ Metrics.CsvFile; Run.ReportFile; Run.ConfigFile ] do
                        Expect.isTrue (File.Exists(Path.Combine(dir, f))) $"{f} written"

                    Expect.isTrue (Checkpoint.exists (Path.Combine(dir, Run.CheckpointDir))) "checkpoint written"
                    let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))
                    Expect.equal (Metrics.bySeed table |> List.map fst) [ 0; 1 ] "two seeds in one run"

                    try
                        Cli.evaluate dir None None |> ignore
                        failtest "a GRPO run folder cannot be evaluated from its folder"
                    with ConfigError _ as e ->
                        Expect.stringContains e.Message "grpo runs do not reload their policy" "says why"
                finally
                    Directory.Delete(runs, true)
            }
        ]
