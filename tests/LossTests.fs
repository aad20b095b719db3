module Rl.Tests.LossTests

open System
open Expecto
open TorchSharp
open Rl

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
