module Rl.Tests.NnTests

open System
open Expecto
open TorchSharp
open Rl
open Rl.Nn

let private close (a: torch.Tensor) (b: torch.Tensor) tol = Tensor.item ((a - b).abs().max()) < tol

[<Tests>]
let tests =
    testList
        "Nn"
        [
            test "SeededLinear applies each seed's own weights" {
                use l = new SeededLinear("l", 2, 3, 4)
                l.Initialise(TorchDefault, initGenerators "t" [| 1L; 2L |])
                let x = torch.randn (2L, 5L, 3L)
                let y = l.forward x

                for k in 0L .. 1L do
                    let expected = x[k].matmul(l.Weight[k]) + l.Bias[k]
                    Expect.isTrue (close y[k] expected 1e-6) $"seed {k}"
            }

            test "gSDE's std per state is the std of the noise h W over exploration matrices" {
                let g = Seed.generator torch.CPU 3L
                let h = torch.randn ([| 1L; 3L; 8L |], generator = g) // three states, F = 8
                let logSigma = torch.randn ([| 1L; 8L; 2L |], generator = g) * 0.5
                let n = 40000
                let w = Sde.sampleMatrices [| g |] logSigma n // [1; n; 8; 2]
                let std = Sde.std h logSigma // [1; 3; 2]

                for b in 0L .. 2L do
                    let hb = h[0L, b].expand(int64 n, -1L).unsqueeze 0 // the state b in every env
                    let noise = Sde.noise hb w // [1; n; 2]
                    let empirical = noise.std(1L).squeeze 0

                    Expect.isTrue
                        (close (empirical / std[0L, b] - 1.0) (torch.zeros 2L) 0.02)
                        $"state {b}: empirical {Tensor.toArray empirical} vs {Tensor.toArray std[0L, b]}"

                    Expect.isTrue
                        (close (noise.mean [| 1L |]) (torch.zeros 2L) (0.03 * Tensor.item (std[0L, b].max())))
                        "zero mean"
            }

            test "gSDE's std is the same for seed k alone or in a batch, and trains only sigma" {
                let g = Seed.generator torch.CPU 4L
                let h = torch.randn ([| 3L; 5L; 64L |], generator = g)

                let logSigma =
                    (torch.randn ([| 3L; 64L; 1L |], generator = g) * 0.3).requires_grad_ true

                let batch = Sde.std h logSigma

                for k in 0L .. 2L do
                    let alone = Sde.std (h[k].unsqueeze 0) (logSigma[k].unsqueeze 0)
                    Expect.sequenceEqual (Tensor.toArray alone) (Tensor.toArray batch[k]) $"seed {k} to the bit"

                let hg = h.requires_grad_ true
                (Sde.std hg logSigma).sum().backward()
                Expect.isNull hg.grad "no gradient reaches the features (learn_features = false)"
                Expect.isNotNull logSigma.grad "sigma gets a gradient"
            }

            test "seed k's initial weights are the same alone or inside a batch of seeds" {
                let head = GaussianHead(1, Some 2.0, Softplus)
                use batch = new Actor("actor", 3, 3, [ 64; 64 ], Relu, head)
                batch.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, [| 7L; 8L; 9L |])
                use alone = new Actor("actor", 1, 3, [ 64; 64 ], Relu, head)
                alone.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, [| 8L |])

                for (pb, pa) in Seq.zip (batch.parameters ()) (alone.parameters ()) do
                    Expect.isTrue (close pb[1] pa[0] 0.0 || Tensor.item ((pb[1] - pa[0]).abs().max()) = 0.0) "identical"

                let first = Seq.head (batch.parameters ())
                Expect.isFalse (close first[0] first[1] 1e-3) "seeds differ"
            }

            test "every layer is registered: optimizers and checkpoints see the hidden layers" {
                use actor =
                    new Actor("a", 2, 3, [ 64; 64 ], Relu, GaussianHead(1, Some 2.0, Softplus))

                use critic = new Critic("c", 2, 3, [ 64; 64 ], Relu)

                let count (m: TorchSharp.torch.nn.Module) =
                    m.parameters () |> Seq.sumBy (fun p -> p.numel ())
                // per seed: trunk (3*64 + 64) + (64*64 + 64) = 4416; mean head 65; sigma head 65
                Expect.equal (count actor) (2L * (4416L + 65L + 65L)) "actor parameters, 2 seeds"
                Expect.equal (count critic) (2L * (4416L + 65L)) "critic parameters, 2 seeds"

                let names =
                    actor.named_parameters () |> Seq.map (fun struct (n, _) -> n) |> List.ofSeq

                Expect.isTrue (names |> List.exists (fun n -> n.Contains "layers")) $"hidden layers named: %A{names}"
            }

            test "orthogonal init gives orthonormal columns scaled by the gain" {
                use l = new SeededLinear("l", 1, 8, 4)
                l.Initialise(Orthogonal 2.0, initGenerators "o" [| 3L |])
                let w = l.Weight[0] // [8; 4]
                let gram = w.t().matmul w / 4.0
                Expect.isTrue (close gram (torch.eye 4L) 1e-5) "W^T W = gain^2 I"
            }

            test "Normal log-probability and entropy match TorchSharp's distribution" {
                let mean = torch.tensor([| 0.3f; -1.0f |]).reshape(1L, 2L, 1L)
                let std = torch.tensor([| 0.5f; 2.0f |]).reshape(1L, 2L, 1L)
                let a = torch.tensor([| 1.0f; 0.0f |]).reshape(1L, 2L, 1L)
                use d = torch.distributions.Normal(mean, std)
                let lp = Dist.logProb (Normal(mean, std)) a
                Expect.isTrue (close lp (d.log_prob(a).sum(-1L)) 1e-5) "log_prob"
                Expect.isTrue (close (Dist.entropy (Normal(mean, std))) (d.entropy().sum(-1L)) 1e-5) "entropy"
            }

            test "Categorical log-probability and entropy match hand values" {
                let p = [| 0.2; 0.3; 0.5 |]
                let lp = torch.tensor(p |> Array.map (log >> float32)).reshape(1L, 1L, 3L)
                let d = Categorical lp
                let a = torch.tensor([| 2L |]).reshape(1L, 1L)
                Expect.floatClose Accuracy.medium (Tensor.item (Dist.logProb d a)) (log 0.5) "log p(2)"

                Expect.floatClose
                    Accuracy.medium
                    (Tensor.item (Dist.entropy d))
                    (-(p |> Array.sumBy (fun x -> x * log x)))
                    "entropy"

                Expect.equal (Tensor.item (Dist.mode d)) 2.0 "mode"
            }

            test "sampling is reproducible from the generators and follows the distribution" {
                let mean = torch.full ([| 1L; 20000L; 1L |], (1.5).ToScalar())
                let std = torch.full ([| 1L; 20000L; 1L |], (0.5).ToScalar())

                let draw () =
                    Dist.sample [| Seed.generator torch.CPU 5L |] (Normal(mean, std))

                let a, b = draw (), draw ()
                Expect.isTrue (close a b 0.0 || Tensor.item ((a - b).abs().max()) = 0.0) "same seed, same draws"
                Expect.floatClose { absolute = 0.02; relative = 0.0 } (Tensor.item (a.mean ())) 1.5 "mean"
                Expect.floatClose { absolute = 0.02; relative = 0.0 } (Tensor.item (a.std ())) 0.5 "std"

                let lp =
                    (torch.tensor ([| 0.1f; 0.6f; 0.3f |] |> Array.map log)).reshape(1L, 1L, 3L).expand(1L, 30000L, 3L)

                let s = Dist.sample [| Seed.generator torch.CPU 6L |] (Categorical lp)

                let freq =
                    [|
                        for i in 0L .. 2L -> Tensor.item (s.eq(torch.tensor i).to_type(torch.float32).mean())
                    |]

                Expect.floatClose { absolute = 0.015; relative = 0.0 } freq[1] 0.6 "Gumbel-max frequencies"
            }

            test "per-seed sampling: seed k draws the same alone or in a batch" {
                let mean = torch.zeros (2L, 4L, 1L)
                let std = torch.ones (2L, 4L, 1L)

                let both =
                    Dist.sample [| Seed.generator torch.CPU 1L; Seed.generator torch.CPU 2L |] (Normal(mean, std))

                let alone =
                    Dist.sample
                        [| Seed.generator torch.CPU 2L |]
                        (Normal(mean.narrow (0L, 1L, 1L), std.narrow (0L, 1L, 1L)))

                Expect.equal (Tensor.toArray both[1]) (Tensor.toArray alone[0]) "seed 2's draws"
            }

            test "the seed actor squashes the mean to the action bound" {
                use actor = new Actor("a", 1, 3, [ 16 ], Relu, GaussianHead(1, Some 2.0, Softplus))
                actor.Initialise(TorchDefault, TorchDefault, [| 0L |])

                match actor.Dist(torch.randn (1L, 100L, 3L) * 100.0) with
                | Normal(m, s) ->
                    Expect.isLessThanOrEqual (Tensor.item (m.abs().max())) 2.0 "|mu| <= 2"
                    Expect.isGreaterThan (Tensor.item (s.min ())) 0.0 "sigma > 0"
                | _ -> failtest "expected a Normal"
            }
        ]
