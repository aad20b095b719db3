module Rl.Tests.OptimTests

open System
open Expecto
open TorchSharp
open TorchSharp.Modules
open Rl
open Rl.Nn

/// Two copies of one seeded 3-64-64-2 Q-network for S = 2 (same initial weights): one stepped by
/// TorchSharp's optimizer parameter by parameter, one by a `FlatOptimizer`.
let private twinMlps () =
    let make () =
        let m = new QNetwork("m", 2, 3, [ 64; 64 ], Tanh, 2)
        m.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, [| 5L; 6L |])
        m

    make (), make ()

/// The same loss for both twins: a squared error against fixed targets on the same inputs.
let private lossOf (m: QNetwork) (x: torch.Tensor) =
    let y = m.forward x
    (y - torch.linspace(-2.0, 2.0, y.numel ()).reshape(y.shape)).square().mean([| 1L; 2L |]).sum()

/// Same shape and bit-identical values.
let private same (a: torch.Tensor) (b: torch.Tensor) =
    a.shape = b.shape && a.equal(b).all().item<bool>()

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

            test "a flat optimizer steps bit-identically to the optimizer over the parameters one by one" {
                use _scope = torch.NewDisposeScope()
                let x = torch.randn (2L, 32L, 3L, generator = new torch.Generator(7UL))

                for kind in [ Optim.Adam(0.9, 0.999, 1e-5); Optim.RmsProp(0.99, 1e-8); Optim.Sgd 0.0 ] do
                    let a, b = twinMlps ()
                    let opt = Optim.make kind 3e-3 (a.parameters ())
                    use flat = Optim.makeFlat kind 3e-3 2 (b.parameters ())

                    for step in 1..4 do
                        opt.zero_grad ()
                        (lossOf a x).backward()
                        flat.ZeroGrad()
                        (lossOf b x).backward()
                        let gA = Optim.flatGradPerSeed 2 (a.parameters ())
                        Expect.isTrue (same (flat.GradPerSeed()) (gA)) $"{kind}: step {step} gradients"
                        let nA = Optim.clipGradNormPerSeed 2 0.5 (a.parameters ())
                        let nB = flat.ClipGradNormPerSeed 0.5
                        Expect.isTrue (same nA nB) $"{kind}: step {step} pre-clip norms"
                        opt.step () |> ignore
                        flat.Step()

                    for (pa: Parameter), (pb: Parameter) in Seq.zip (a.parameters ()) (b.parameters ()) do
                        Expect.isTrue (same pa pb) $"{kind}: parameter {pa.shape} after 4 steps"

                    // the module's parameters are the buffer: stepping changed what forward sees,
                    // bit for bit also for one sample (each parameter is 64-byte aligned, as a
                    // tensor of its own, so matmul takes the same code path)
                    Expect.isTrue (same (a.forward x) (b.forward x)) $"{kind}: outputs"
                    let one = x.narrow (1L, 0L, 1L)
                    Expect.isTrue (same (a.forward one) (b.forward one)) $"{kind}: outputs for one sample"

                    for p in b.parameters () do
                        Expect.equal (p.storage_offset () % 16L) 0L $"{kind}: parameter {p.shape} starts on 64 bytes"

                    let mA, vA = Optim.adamMomentNorms 2 opt
                    let mB, vB = flat.AdamMomentNorms()
                    // NaN for RMSprop and SGD (no Adam moments); as text so that NaN equals NaN
                    let text (t: torch.Tensor) =
                        Tensor.toArray t |> Array.map (fun v -> v.ToString "R")

                    Expect.sequenceEqual (text mB) (text mA) $"{kind}: first-moment norms"
                    Expect.sequenceEqual (text vB) (text vA) $"{kind}: second-moment norms"
            }

            test "a module behind a flat optimizer saves and loads into the buffer" {
                use _scope = torch.NewDisposeScope()
                let a, b = twinMlps ()
                use flat = Optim.makeFlat (Optim.Adam(0.9, 0.999, 1e-8)) 1e-2 2 (b.parameters ())
                let x = torch.randn (2L, 8L, 3L, generator = new torch.Generator(3UL))
                flat.ZeroGrad()
                (lossOf b x).backward()
                flat.Step()
                let path = IO.Path.GetTempFileName()

                try
                    b.save path |> ignore
                    a.load path |> ignore
                    Expect.isTrue (same (a.forward x) (b.forward x)) "saved from the buffer"
                    // load a fresh module's weights back into the flat one: the buffer changes
                    let c, _ = twinMlps ()
                    c.save path |> ignore
                    b.load path |> ignore
                    Expect.isTrue (same (b.forward x) (c.forward x)) "loaded into the buffer"

                    let fromModule =
                        torch.cat ([| for p in c.parameters () -> p.detach().reshape(2L, -1L) |], 1L)

                    Expect.isTrue (same (flat.PerSeed flat.Buffer) fromModule) "buffer holds the loaded values"
                finally
                    IO.File.Delete path
            }

            test "a flat optimizer refuses parameters without the seed axis and an empty list" {
                let p = new Parameter(torch.zeros (3L, 2L))

                Expect.throwsC (fun () -> Optim.makeFlat (Optim.Sgd 0.0) 1e-3 2 [ p ] |> ignore) (fun e ->
                    Expect.stringContains e.Message "leading seed axis of size 2" "names the rule")

                Expect.throwsT<ArgumentException>
                    (fun () -> Optim.makeFlat (Optim.Sgd 0.0) 1e-3 2 [] |> ignore)
                    "no parameter"
            }
        ]
