module Rl.Tests.LossTests

open System
open Expecto
open TorchSharp
open Rl
open Rl.Nn

let private vec (xs: float list) =
    torch.tensor(xs |> List.map float32 |> Array.ofList).reshape(1L, int64 xs.Length)

[<Tests>]
let tests =
    testList
        "Losses"
        [
            test "PPO clip loss at ratio 1 equals -mean(advantages), zero KL and clip fraction" {
                let lp = vec [ -1.0; -0.5; -2.0; -0.1 ]
                let adv = vec [ 1.0; -2.0; 0.5; 3.0 ]
                let loss, stats = Losses.ppoClip 0.2 lp lp adv
                Expect.floatClose Accuracy.high (Tensor.item loss) (-(1.0 - 2.0 + 0.5 + 3.0) / 4.0) "loss"
                Expect.floatClose Accuracy.high (Tensor.item stats.ApproxKl) 0.0 "kl"
                Expect.floatClose Accuracy.high (Tensor.item stats.ClipFraction) 0.0 "clipfrac"
            }

            test "PPO clip loss hand case mixes clipped and unclipped terms" {
                // ratios 1.5 (adv +1 -> clipped to 1.2), 0.5 (adv +1 -> unclipped 0.5),
                // 1.5 (adv -1 -> unclipped -1.5), 0.5 (adv -1 -> clipped -0.8)
                let old = vec [ 0.0; 0.0; 0.0; 0.0 ]
                let nw = vec [ log 1.5; log 0.5; log 1.5; log 0.5 ]
                let adv = vec [ 1.0; 1.0; -1.0; -1.0 ]
                let loss, stats = Losses.ppoClip 0.2 nw old adv
                Expect.floatClose Accuracy.medium (Tensor.item loss) (-(1.2 + 0.5 - 1.5 - 0.8) / 4.0) "loss"
                Expect.floatClose Accuracy.high (Tensor.item stats.ClipFraction) 1.0 "all ratios outside [0.8, 1.2]"
            }

            test "PPO clip: gradient vanishes exactly where the clip binds, in the right direction" {
                let grad (ratio: float) (adv: float) =
                    let lp = torch.tensor ([| float32 (log ratio) |], requires_grad = true)

                    let loss, _ =
                        Losses.ppoClip 0.2 (lp.reshape (1L, 1L)) (torch.zeros (1L, 1L)) (vec [ adv ])

                    loss.sum().backward()
                    Tensor.item lp.grad

                Expect.equal (grad 1.5 1.0) 0.0 "A > 0, ratio above 1 + eps: no push further up"
                Expect.isLessThan (grad 0.5 1.0) 0.0 "A > 0, ratio below 1 - eps: gradient still raises the probability"
                Expect.equal (grad 0.5 -1.0) 0.0 "A < 0, ratio below 1 - eps: no push further down"

                Expect.isGreaterThan
                    (grad 1.5 -1.0)
                    0.0
                    "A < 0, ratio above 1 + eps: gradient still lowers the probability"

                Expect.isLessThan (grad 1.1 1.0) 0.0 "inside the range the gradient is the surrogate's"
            }

            test "PPO clip loss is computed per seed row" {
                let lp = torch.zeros (2L, 3L)
                let adv = torch.tensor([| 1.0f; 2.0f; 3.0f; -1.0f; -1.0f; -1.0f |]).reshape(2L, 3L)
                let loss, _ = Losses.ppoClip 0.2 lp lp adv
                Expect.sequenceEqual (Tensor.toArray loss) [| -2.0; 1.0 |] "one loss per seed"
            }

            test "PPO clip rejects a non-positive clip range and mismatched shapes" {
                let a = torch.zeros (1L, 3L)
                Expect.throwsT<ArgumentException> (fun () -> Losses.ppoClip 0.0 a a a |> ignore) "eps"

                Expect.throwsT<ArgumentException>
                    (fun () -> Losses.ppoClip 0.2 a (torch.zeros (1L, 2L)) a |> ignore)
                    "shape"
            }

            test "value loss is half the MSE; the clipped variant takes the larger error" {
                let v = vec [ 1.0; 2.0 ]
                let ret = vec [ 0.0; 4.0 ]

                Expect.floatClose
                    Accuracy.high
                    (Tensor.item (Losses.valueLoss None v v ret))
                    (0.5 * (1.0 + 4.0) / 2.0)
                    "plain"

                let old = vec [ 0.0; 4.0 ] // old values already equal the returns
                // clipped predictions: 0 + clip(1, -0.5, 0.5) = 0.5 (error 0.25 < 1), 4 + clip(-2) = 3.5 (0.25 < 4)
                Expect.floatClose
                    Accuracy.high
                    (Tensor.item (Losses.valueLoss (Some 0.5) v old ret))
                    (0.5 * (1.0 + 4.0) / 2.0)
                    "max keeps the unclipped error"

                let old2 = vec [ 2.0; 1.0 ]
                // clipped: 2 + clip(-1) = 1.5 (err 2.25 > 1), 1 + clip(1) = 1.5 (err 6.25 > 4)
                Expect.floatClose
                    Accuracy.high
                    (Tensor.item (Losses.valueLoss (Some 0.5) v old2 ret))
                    (0.5 * (2.25 + 6.25) / 2.0)
                    "max takes the clipped error"
            }

            test "KL-penalty surrogate hand case: -mean(ratio * A - beta * KL)" {
                // ratios 1.1 and 0.9, advantages +1 and -1, KL 0.1 and 0.2, beta 0.5
                let old = vec [ 0.0; 0.0 ]
                let nw = vec [ log 1.1; log 0.9 ]
                let adv = vec [ 1.0; -1.0 ]
                let kl = vec [ 0.1; 0.2 ]
                let beta = torch.tensor ([| 0.5f |])
                let loss, stats = Losses.ppoKlPenalty beta 0.2 nw old adv kl
                Expect.floatClose Accuracy.medium (Tensor.item loss) (-((1.1 - 0.05) + (-0.9 - 0.1)) / 2.0) "loss"
                Expect.floatClose Accuracy.high (Tensor.item stats.ClipFraction) 0.0 "both ratios inside [0.8, 1.2]"
                let k3 = ((1.1 - 1.0) - log 1.1 + (0.9 - 1.0) - log 0.9) / 2.0

                Expect.floatClose
                    Accuracy.medium
                    (Tensor.item stats.ApproxKl)
                    k3
                    "the same k3 statistic as the clipped loss"
            }

            test "KL-penalty surrogate: with no KL it is the clipped loss inside the clip range; beta is per seed" {
                // two seeds, ratios inside [0.8, 1.2]: min(rA, clip(r)A) = rA
                let old = torch.zeros (2L, 3L)
                let nw = torch.tensor([| 0.1f; -0.1f; 0.05f; 0.0f; 0.15f; -0.05f |]).reshape(2L, 3L)
                let adv = torch.tensor([| 1.0f; -2.0f; 0.5f; 3.0f; -1.0f; 2.0f |]).reshape(2L, 3L)
                let clipLoss, _ = Losses.ppoClip 0.2 nw old adv

                let noKl, _ =
                    Losses.ppoKlPenalty (torch.tensor [| 1.0f; 3.0f |]) 0.2 nw old adv (torch.zeros (2L, 3L))

                Expect.sequenceEqual (Tensor.toArray noKl) (Tensor.toArray clipLoss) "equal per seed"
                let kl = torch.full ([| 2L; 3L |], (0.1f).ToScalar())

                let withKl, _ =
                    Losses.ppoKlPenalty (torch.tensor [| 1.0f; 3.0f |]) 0.2 nw old adv kl

                let d = Array.map2 (-) (Tensor.toArray withKl) (Tensor.toArray clipLoss)
                Expect.floatClose Accuracy.medium d[0] 0.1 "seed 0 pays beta 1 * KL 0.1"
                Expect.floatClose Accuracy.medium d[1] 0.3 "seed 1 pays beta 3 * KL 0.1"
            }

            test "KL-penalty surrogate: the penalty's gradient pulls the policy back to the old one" {
                // one Gaussian state: old N(0, 1), new N(mu, 1); zero advantage, so only beta * KL acts
                let mu = torch.tensor ([| 0.5f |], requires_grad = true)
                let newDist = Normal(mu.reshape (1L, 1L, 1L), torch.ones (1L, 1L, 1L))
                let oldDist = Normal(torch.zeros (1L, 1L, 1L), torch.ones (1L, 1L, 1L))
                let lp = Dist.logProb newDist (torch.zeros (1L, 1L, 1L))

                let loss, _ =
                    Losses.ppoKlPenalty
                        (torch.tensor [| 2.0f |])
                        0.2
                        lp
                        (lp.detach ())
                        (vec [ 0.0 ])
                        (Dist.kl oldDist newDist)

                loss.sum().backward()
                // d/dmu of beta * mu^2 / 2 = beta * mu = 1.0
                Expect.floatClose Accuracy.medium (Tensor.item mu.grad) 1.0 "gradient beta * mu, towards the old mean"
            }

            test "adaptive KL coefficient: the PPO paper's rule, with its boundaries" {
                let target = 0.01
                Expect.equal (Losses.adaptKlBeta target 0.005 1.0) 0.5 "d < target / 1.5: halve"
                Expect.equal (Losses.adaptKlBeta target 0.02 1.0) 2.0 "d > 1.5 target: double"
                Expect.equal (Losses.adaptKlBeta target 0.01 1.0) 1.0 "near the target: keep"
                Expect.equal (Losses.adaptKlBeta target (target / 1.5) 1.0) 1.0 "exactly target / 1.5: keep"
                Expect.equal (Losses.adaptKlBeta target (target * 1.5) 1.0) 1.0 "exactly 1.5 target: keep"
                Expect.throwsT<ArgumentException> (fun () -> Losses.adaptKlBeta 0.0 0.01 1.0 |> ignore) "target 0"
                Expect.throwsT<ArgumentException> (fun () -> Losses.adaptKlBeta 0.01 0.01 0.0 |> ignore) "beta 0"
            }

            test "analytic KL: Gaussian and categorical hand values, zero for equal distributions" {
                let p = Normal(torch.zeros (1L, 1L, 1L), torch.ones (1L, 1L, 1L))

                let q =
                    Normal(torch.ones (1L, 1L, 1L), torch.full ([| 1L; 1L; 1L |], (2.0f).ToScalar()))
                // log(2/1) + (1 + 1) / (2 * 4) - 1/2
                Expect.floatClose Accuracy.medium (Tensor.item (Dist.kl p q)) (log 2.0 + 0.25 - 0.5) "Normal"
                Expect.floatClose Accuracy.high (Tensor.item (Dist.kl p p)) 0.0 "KL(p || p) = 0"

                let cat (ps: float32[]) =
                    Categorical(torch.log(torch.tensor ps).reshape(1L, 1L, 2L))

                let c = Dist.kl (cat [| 0.5f; 0.5f |]) (cat [| 0.9f; 0.1f |])

                Expect.floatClose
                    Accuracy.medium
                    (Tensor.item c)
                    (0.5 * log (0.5 / 0.9) + 0.5 * log (0.5 / 0.1))
                    "Categorical"

                Expect.throwsT<ArgumentException> (fun () -> Dist.kl p (cat [| 0.5f; 0.5f |]) |> ignore) "kinds differ"
            }

            test "explained variance: 1 for perfect values, 0 for a constant" {
                let ret = vec [ 1.0; 2.0; 3.0; 4.0 ]
                Expect.floatClose Accuracy.high (Tensor.item (Losses.explainedVariance ret ret)) 1.0 "perfect"

                Expect.floatClose
                    Accuracy.high
                    (Tensor.item (Losses.explainedVariance (vec [ 2.5; 2.5; 2.5; 2.5 ]) ret))
                    0.0
                    "mean"
            }
        ]
