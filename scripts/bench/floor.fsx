// The eager-call floor (`bench.fsx floor`, CPU): what one libtorch call costs through TorchSharp
// on tiny tensors, what recording + backward costs per autograd node, a 64-unit MLP's gradients by
// autograd, by hand under no_grad and as one custom autograd function (checked equal first), and
// PPO's clip surrogate eager vs TorchScript; medians of interleaved rounds.
module BenchFloor

open System
open System.Diagnostics
open TorchSharp
open Rl
open BenchCommon

/// Median microseconds per call of each case, the cases run in turns (`rounds` rounds of `calls`
/// calls each, after a warm-up) so that a busy machine slows them alike.
let interleaved (rounds: int) (calls: int) (cases: (string * (unit -> unit)) list) =
    for _, f in cases do
        for _ in 1..200 do
            f ()

    let times = cases |> List.map (fun _ -> ResizeArray<float>())

    for _ in 1..rounds do
        for (_, f), t in List.zip cases times do
            let clock = Stopwatch.StartNew()

            for _ in 1..calls do
                f ()

            t.Add(clock.Elapsed.TotalMilliseconds * 1000.0 / float calls)

    [
        for (name, _), t in List.zip cases times ->
            let sorted = Seq.sort t |> Array.ofSeq
            name, sorted[sorted.Length / 2]
    ]

/// PPO Pendulum's critic network (default config: 3 -> 64 -> 64 -> 1, ReLU) for S seeds, weights
/// [S; in; out] and biases [S; 1; out] as `Nn.SeededLinear` holds them (its tensors belong to the
/// caller's dispose scope), with the three ways
/// to get the gradient of a mean squared error (`bench.fsx floor`): libtorch's autograd, the
/// gradient written out by hand under no_grad (no graph recorded), and the MLP as one
/// TorchSharp custom autograd function (`SingleTensorFunction`) whose backward is the hand-written one.
type FloorMlp(S: int64, B: int64) =
    let mk (shape: int64[]) =
        (torch.randn shape * 0.1).requires_grad_(true)

    let ps =
        [|
            mk [| S; 3L; 64L |]
            mk [| S; 1L; 64L |]
            mk [| S; 64L; 64L |]
            mk [| S; 1L; 64L |]
            mk [| S; 64L; 1L |]
            mk [| S; 1L; 1L |]
        |]

    let x = torch.randn ([| S; B; 3L |])
    let target = torch.randn ([| S; B; 1L |])
    let handGrads = ps |> Array.map torch.zeros_like

    /// The network on input x [S; B; 3] with parameters w [|W1; b1; W2; b2; W3; b3|]: the two
    /// hidden activations and the output [S; B; 1].
    static member Layers(x: torch.Tensor, w: torch.Tensor[]) =
        let h1 = torch.nn.functional.relu (torch.bmm (x, w[0]) + w[1])
        let h2 = torch.nn.functional.relu (torch.bmm (h1, w[2]) + w[3])
        h1, h2, torch.bmm (h2, w[4]) + w[5]

    /// The gradients of mean((y - target)^2) given the activations, [|dW1; db1; dW2; db2; dW3; db3|]
    /// (ReLU's derivative from its output, as libtorch's threshold_backward).
    static member Backward
        (x: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor, dy: torch.Tensor)
        =
        let layer (input: torch.Tensor) (dz: torch.Tensor) =
            torch.bmm (input.transpose (1L, 2L), dz), dz.sum ([| 1L |], true)

        let gW3, gb3 = layer h2 dy
        let dz2 = torch.bmm(dy, w3.transpose (1L, 2L)).mul(h2.gt (0.0f.ToScalar()))
        let gW2, gb2 = layer h1 dz2
        let dz1 = torch.bmm(dz2, w2.transpose (1L, 2L)).mul(h1.gt (0.0f.ToScalar()))
        let gW1, gb1 = layer x dz1
        [| gW1; gb1; gW2; gb2; gW3; gb3 |]

    member _.Parameters = ps
    member _.Input = x
    member _.Target = target
    member _.Forward() = FloorMlp.Layers(x, ps)

    /// libtorch's autograd: forward recorded, loss, backward into the parameters' .grad.
    member _.Autograd() =
        use scope = torch.NewDisposeScope()
        let _, _, y = FloorMlp.Layers(x, ps)
        (y - target).square().mean().backward()

    /// No graph: forward under no_grad, the hand-written backward into preallocated gradients.
    member _.ByHand() =
        use _ng = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let h1, h2, y = FloorMlp.Layers(x, ps)
        let dy = (y - target).mul((2.0 / float (S * B)).ToScalar())

        for g, d in Array.zip handGrads (FloorMlp.Backward(x, h1, h2, ps[2], ps[4], dy)) do
            g.copy_ d |> ignore

    member _.HandGrads = handGrads

    /// Zeroes the parameters' .grad (between autograd runs).
    member _.ZeroGrad() =
        for p in ps do
            if not (isNull p.grad) then
                p.grad.zero_ () |> ignore

/// `FloorMlp`'s MLP as one custom autograd node: inputs x and the six parameters.
type FloorMlpFunction() =
    inherit torch.autograd.SingleTensorFunction<FloorMlpFunction>()
    override _.Name = "FloorMlp"

    override _.forward(ctx, vars) =
        let x = vars[0] :?> torch.Tensor
        let w = vars[1..] |> Array.map (fun v -> v :?> torch.Tensor)
        let h1, h2, y = FloorMlp.Layers(x, w)
        ctx.save_for_backward (Collections.Generic.List [ x; h1; h2; w[2]; w[4] ])
        y

    override _.backward(ctx, dy) =
        let v = ctx.get_saved_variables ()
        let grads = FloorMlp.Backward(v[0], v[1], v[2], v[3], v[4], dy)
        Collections.Generic.List(Array.append [| null |] grads)

/// Per-op cases on [1; 64] float32: one add disposed by hand or by a dispose scope, a multiply by
/// a Scalar or by `cachedHalf` (a cached 0-dim tensor), and reading the shape two ways.
let private perOpCosts (cachedHalf: torch.Tensor) =
    use a = torch.randn (1L, 64L)
    use b = torch.randn (1L, 64L)
    let half = (0.5).ToScalar()

    let perOp =
        interleaved
            7
            20000
            [
                "add, tensor + tensor, disposed by hand", (fun () -> (a.add b).Dispose())
                "add, in a new dispose scope (the scope included)",
                (fun () ->
                    use scope = torch.NewDisposeScope()
                    a.add b |> ignore)
                "mul by a Scalar (libtorch wraps it in a tensor)", (fun () -> (a.mul half).Dispose())
                "mul by a cached 0-dim tensor", (fun () -> (a.mul cachedHalf).Dispose())
                "Tensor.shape (pinned array, native callback)", (fun () -> a.shape |> ignore)
                "Tensor.sizes (dim + size per axis)", (fun () -> Tensor.sizes a |> ignore)
            ]

    printfn "%-52s %10s" "per call" "us"

    for name, us in perOp do
        printfn "%-52s %10.2f" name us

/// The backward engine's cost per node: 16 multiplies by `cachedHalf` recorded and
/// differentiated, against the same 16 under no_grad.
let private backwardPerNode (cachedHalf: torch.Tensor) =
    use w = torch.randn(1L, 64L).requires_grad_(true)

    let chain (record: bool) () =
        use _ng = torch.set_grad_enabled record
        use scope = torch.NewDisposeScope()
        let mutable y = w

        for _ in 1..16 do
            y <- y.mul cachedHalf

        if record then
            y.sum().backward()
            w.grad.zero_ () |> ignore

    let chains = interleaved 7 2000 [ "backward", chain true; "no_grad", chain false ]
    let withBackward, noGrad = snd chains[0], snd chains[1]
    printfn "%-52s %10.2f" "recording + backward, per node (16 multiplies)" ((withBackward - noGrad) / 16.0)

/// The MLP's forward + gradients for `S` seeds at B = 64, by autograd, by hand under no_grad and
/// as one custom autograd function (the gradients checked against autograd's first), beside the
/// forward alone.
let private mlpGradients (S: int64) =
    use scope = torch.NewDisposeScope()
    let mlp = FloorMlp(S, 64L)
    let ps = mlp.Parameters

    let custom () =
        use scope = torch.NewDisposeScope()

        let y = FloorMlpFunction.apply (mlp.Input, ps[0], ps[1], ps[2], ps[3], ps[4], ps[5])

        (y - mlp.Target).square().mean().backward()

    // The gradients agree before anything is timed.
    mlp.ZeroGrad()
    mlp.Autograd()
    let reference = ps |> Array.map (fun p -> p.grad.clone ())
    mlp.ByHand()
    mlp.ZeroGrad()
    custom ()

    let maxDiff (gs: torch.Tensor[]) =
        Array.map2 (fun (r: torch.Tensor) (g: torch.Tensor) -> (r - g).abs().max().item<float32>()) reference gs
        |> Array.max

    let byHandDiff = maxDiff mlp.HandGrads
    let customDiff = maxDiff (ps |> Array.map (fun p -> p.grad))

    let rows =
        interleaved
            7
            (if S = 1L then 2000 else 500)
            [
                "autograd (forward recorded, backward)",
                (fun () ->
                    mlp.Autograd()
                    mlp.ZeroGrad())
                "by hand under no_grad", mlp.ByHand
                "custom autograd function (SingleTensorFunction)",
                (fun () ->
                    custom ()
                    mlp.ZeroGrad())
                "forward only, no_grad (the floor of any method)",
                (fun () ->
                    use _ng = torch.no_grad ()
                    use scope = torch.NewDisposeScope()
                    mlp.Forward() |> ignore)
            ]

    let autogradUs = snd rows[0]

    printfn
        "\nMLP 3-64-64-1 ReLU, mean squared error, forward + gradients, S = %d, B = 64 (max |grad - autograd's|: by hand %g, custom function %g)"
        S
        byHandDiff
        customDiff

    printfn "%-52s %10s %12s" "method" "us" "vs autograd"

    for name, us in rows do
        printfn "%-52s %10.1f %11.2fx" name us (autogradUs / us)

/// PPO's clip surrogate at S = 1, B = 64, forward + backward: the four lines eager, and the same
/// lines compiled by TorchScript (`torch.jit.compile`).
let private clipSurrogate () =
    let script =
        "def clip_loss(lp_new: Tensor, lp_old: Tensor, adv: Tensor, clip_eps: float):\n"
        + "    ratio = torch.exp(lp_new - lp_old)\n"
        + "    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)\n"
        + "    return torch.maximum(-adv * ratio, -adv * clipped).mean(-1)\n"

    use unit = torch.jit.compile script
    use lpOld = torch.randn (1L, 64L)
    use adv = torch.randn (1L, 64L)

    let clipCase (loss: torch.Tensor -> torch.Tensor) () =
        use scope = torch.NewDisposeScope()
        let lp = torch.randn(1L, 64L).requires_grad_(true)
        (loss lp).sum().backward()

    // The same four lines as the script (Losses.ppoClip also computes its statistics).
    let eager (lp: torch.Tensor) =
        let ratio = torch.exp (lp - lpOld)
        let clipped = torch.clamp (ratio, (1.0 - 0.2).ToScalar(), (1.0 + 0.2).ToScalar())
        torch.maximum(-adv * ratio, -adv * clipped).mean([| -1L |])

    let scripted (lp: torch.Tensor) =
        unit.invoke ("clip_loss", lp, lpOld, adv, 0.2) :?> torch.Tensor

    let clipRows =
        interleaved 7 2000 [ "eager", clipCase eager; "TorchScript", clipCase scripted ]

    printfn "\nPPO clip surrogate, S = 1, B = 64, forward + backward"
    printfn "%-52s %10s %12s" "method" "us" "vs eager"

    for name, us in clipRows do
        printfn "%-52s %10.1f %11.2fx" name us (snd clipRows[0] / us)

/// The eager-call floor (issue 16): what one libtorch call costs through TorchSharp on tiny
/// tensors, and three ways to differentiate a 64-unit MLP, side by side at equal work (same
/// shapes, same loss; the hand-written gradients are checked against autograd's first). Per-op
/// cases on [1; 64] float32; the MLP is PPO Pendulum's critic trunk at a minibatch of 64 for 1 and
/// 16 seeds; the clip surrogate (8 ops) eager vs TorchScript (`torch.jit.compile`).
let benchFloor () =
    Native.setThreads threads
    printfn "## eager-call floor (CPU, %d thread(s); median of 7 interleaved rounds)" threads
    use cachedHalf = torch.tensor 0.5f
    perOpCosts cachedHalf
    backwardPerNode cachedHalf

    for S in [ 1L; 16L ] do
        mlpGradients S

    clipSurrogate ()
