module Rl.Tests.OptimTests

open System
open Expecto
open TorchSharp
open TorchSharp.Modules
open Rl

[<Tests>]
let tests =
    testList
        "Optim"
        [
            test "per-seed gradient clipping returns pre-clip norms and clips each seed alone" {
                let p1 = new Parameter(torch.zeros (2L, 2L))
                let p2 = new Parameter(torch.zeros (2L, 1L))
                // seed 0: grads (3, 0) and (4) -> norm 5; seed 1: (0.3, 0) and (0.4) -> norm 0.5
                p1.grad <- torch.tensor([| 3.0f; 0.0f; 0.3f; 0.0f |]).reshape(2L, 2L)
                p2.grad <- torch.tensor([| 4.0f; 0.4f |]).reshape(2L, 1L)
                let norms = Optim.clipGradNormPerSeed 2 1.0 [ p1; p2 ]
                let n = Tensor.toArray norms
                Expect.floatClose Accuracy.medium n[0] 5.0 "seed 0 norm"
                Expect.floatClose Accuracy.medium n[1] 0.5 "seed 1 norm"
                let g1 = Tensor.toArray p1.grad
                let g2 = Tensor.toArray p2.grad
                Expect.floatClose Accuracy.low g1[0] (3.0 / 5.0) "seed 0 scaled to norm 1"
                Expect.floatClose Accuracy.low g2[0] (4.0 / 5.0) "seed 0 scaled to norm 1"
                Expect.floatClose Accuracy.medium g1[2] 0.3 "seed 1 untouched"
                Expect.floatClose Accuracy.medium g2[1] 0.4 "seed 1 untouched"
            }

            test "linear schedule starts at lr0 and ends at lr0 / numUpdates" {
                Expect.floatClose Accuracy.high (Optim.linearSchedule 3e-4 10 1) 3e-4 "first"
                Expect.floatClose Accuracy.high (Optim.linearSchedule 3e-4 10 10) 3e-5 "last"
            }

            test "optimizers refuse a non-positive learning rate" {
                let p = new Parameter(torch.zeros (1L))

                Expect.throwsT<ArgumentException>
                    (fun () -> Optim.make (Optim.Adam(0.9, 0.999, 1e-8)) 0.0 [ p ] |> ignore)
                    "lr 0"
            }
        ]
