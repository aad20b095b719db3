/// Optimizers from config, learning-rate schedules and per-seed global-norm gradient clipping.
module Rl.Optim

open System
open TorchSharp
open TorchSharp.Modules

/// Optimizer choice with its hyperparameters.
type OptimizerKind =
    /// Adam (Kingma & Ba 2015) with beta1, beta2, eps. Note TorchSharp's own default beta2 is
    /// 0.99; we always pass it explicitly (PyTorch's and optax's default is 0.999).
    | Adam of beta1: float * beta2: float * eps: float
    /// RMSprop (Tieleman & Hinton 2012) with smoothing `alpha` and eps.
    | RmsProp of alpha: float * eps: float
    /// Plain SGD with optional momentum.
    | Sgd of momentum: float

/// Allowed optimizer names in configs.
let optimizerNames = [ "adam"; "rmsprop"; "sgd" ]

/// Makes an optimizer over `parameters` with learning rate `lr`.
/// Raises `ArgumentException` if `lr <= 0`.
let make (kind: OptimizerKind) (lr: float) (parameters: Parameter seq) : torch.optim.Optimizer =
    if not (lr > 0.0) then
        invalidArg "lr" $"learning rate must be > 0, got {lr}"

    match kind with
    | Adam(b1, b2, eps) -> torch.optim.Adam(parameters, lr, b1, b2, eps)
    | RmsProp(alpha, eps) -> torch.optim.RMSProp(parameters, lr, alpha, eps)
    | Sgd momentum -> torch.optim.SGD(parameters, lr, momentum)

/// Sets the learning rate of every parameter group.
let setLearningRate (optimizer: torch.optim.Optimizer) (lr: float) =
    for g in optimizer.ParamGroups do
        g.LearningRate <- lr

/// Linear annealing (CleanRL `ppo.py`: frac = 1 - (iteration - 1) / num_iterations):
/// the learning rate for update `update` (1-based) of `numUpdates`, from `lr0` down to
/// lr0 / numUpdates at the last update.
let linearSchedule (lr0: float) (numUpdates: int) (update: int) : float =
    lr0 * (1.0 - float (update - 1) / float numUpdates)

/// Raises `ArgumentException` unless `maxNorm > 0` (a gradient clip's bound).
let private checkMaxNorm (maxNorm: float) =
    if not (maxNorm > 0.0) then
        invalidArg "maxNorm" $"maxNorm must be > 0, got {maxNorm}"

/// The per-seed clip coefficients min(1, maxNorm / (norm + 1e-6)) for norms [S]
/// (`torch.nn.utils.clip_grad_norm_`'s).
let private clipCoefficient (maxNorm: float) (norm: torch.Tensor) =
    (maxNorm / (norm + 1e-6)).clamp_max((1.0).ToScalar())

/// Global-norm gradient clipping done separately for each seed (parameters carry a leading
/// seed axis of size S): seed k's norm is sqrt(sum over all parameters of the squared
/// gradients in slice k), and its gradients are scaled by min(1, maxNorm / (norm + 1e-6)), as
/// `torch.nn.utils.clip_grad_norm_` does for one model. Returns the pre-clip norms [S] (no
/// gradient). Parameters without a gradient are skipped. Raises `ArgumentException` if
/// `maxNorm <= 0` or a parameter's leading size is not S.
let clipGradNormPerSeed (seeds: int) (maxNorm: float) (parameters: Parameter seq) : torch.Tensor =
    checkMaxNorm maxNorm

    use _ng = torch.no_grad ()

    let grads =
        [
            for p in parameters do
                match p.grad with
                | null -> ()
                | g when g.numel () = 0L -> ()
                | g ->
                    if g.shape[0] <> int64 seeds then
                        invalidArg
                            "parameters"
                            $"clipGradNormPerSeed: parameter of shape %A{g.shape} has no leading seed axis of size {seeds}"

                    yield g
        ]

    if grads.IsEmpty then
        torch.zeros (int64 seeds)
    else
        // One norm over the concatenated gradients (fewer small ops than a norm per tensor).
        let norm =
            torch.cat([| for g in grads -> g.reshape (int64 seeds, -1L) |], 1L).norm(1, p = 2.0f)

        let coef = clipCoefficient maxNorm norm
        // coef shaped [S; 1; ...] once per gradient rank
        let shaped =
            grads
            |> List.map (fun g -> int (g.dim ()))
            |> List.distinct
            |> List.map (fun d -> d, coef.reshape (Array.append [| int64 seeds |] (Array.create (d - 1) 1L)))
            |> dict

        for g in grads do
            g.mul_ shaped[int (g.dim ())] |> ignore

        norm

/// Norms per seed of tensors laid out as [S; ...] (one per parameter): sqrt of the sum over the
/// tensors of the squares in seed slice k, summed tensor by tensor in float64; [S] float64 (zeros
/// for no tensors).
let private normsPerSeed (seeds: int) (tensors: torch.Tensor seq) : torch.Tensor =
    let squares =
        tensors
        |> Seq.map (fun t -> t.to_type(torch.float64).reshape(int64 seeds, -1L).square().sum(1L))
        |> Seq.toArray

    if squares.Length = 0 then
        torch.zeros (int64 seeds, dtype = torch.float64)
    else
        (Array.reduce (+) squares).sqrt()

/// Per-seed norms ([S], [S] float64) of Adam's `exp_avg` and `exp_avg_sq` over every state of
/// `optimizer`, each state's tensor cut by `pieces` into [S; ...] tensors; zeros without a state,
/// NaN for an optimizer that is not Adam. No gradient.
let private momentNorms
    (seeds: int)
    (optimizer: torch.optim.Optimizer)
    (pieces: torch.Tensor -> torch.Tensor seq)
    : torch.Tensor * torch.Tensor =
    use _ng = torch.no_grad ()

    match optimizer with
    | :? Modules.Adam as adam ->
        let states =
            adam.state_dict().State
            |> Seq.choose (fun s ->
                match s with
                | :? Modules.Adam.State as st -> Some st
                | _ -> None)
            |> Seq.toArray

        let norm (f: Modules.Adam.State -> torch.Tensor) =
            normsPerSeed seeds (states |> Seq.collect (fun st -> pieces (f st)))

        norm (fun s -> s.exp_avg), norm (fun s -> s.exp_avg_sq)
    | _ ->
        let n = torch.full (int64 seeds, nan, dtype = torch.float64)
        n, n.clone ()

/// A network's trainable parameters held in one contiguous buffer, with an optimizer that steps
/// that one buffer: Adam, RMSprop and SGD update every element as they would update the
/// parameters one by one (the same operations on the same values, so results are bit-identical),
/// but with a handful of native calls per step instead of several per parameter; per-seed
/// gradient clipping and the gradient and Adam-moment diagnostics are a few calls too.
///
/// Layout: each parameter [S; ...] keeps its own shape and becomes a contiguous view of the buffer
/// (parameter by parameter, in `parameters` order, each starting on a 64-byte boundary); its
/// gradient is a view of one gradient buffer that `backward` accumulates into. `PerSeed`
/// gathers a buffer-shaped tensor into [S; P] (seed k's parameters flattened and concatenated in
/// order, P values per seed), the layout of `flatGradPerSeed`. The parameters stay the module's own objects, so `Module.save`/`load`,
/// `state_dict` and forward passes see no difference; do not move the module to another device
/// afterwards (moving replaces its tensors and breaks the views), nor set its gradients to null.
/// Parameters that do not require a gradient are left out of the buffer.
///
/// Raises `ArgumentException` when `lr <= 0`, when there is no trainable parameter, when they
/// differ in device or dtype, or when one has no leading seed axis of size `seeds`. Source: the
/// optimizers are TorchSharp's (`torch.optim.Adam`, `RMSProp`, `SGD`); parameters as views of one
/// flat buffer are PyTorch FSDP's `FlatParameter`, used here for PyTorch's reason for its
/// `foreach`/`fused` optimizers: fewer, larger kernel calls.
type FlatOptimizer(kind: OptimizerKind, lr: float, seeds: int, parameters: Parameter seq) =
    let parameters = parameters |> Seq.filter (fun p -> p.requires_grad) |> Seq.toArray

    do
        if parameters.Length = 0 then
            invalidArg "parameters" "FlatOptimizer: no parameter that requires a gradient"

        let p0 = parameters[0]

        for p in parameters do
            if p.dim () = 0L || p.shape[0] <> int64 seeds then
                invalidArg
                    "parameters"
                    $"FlatOptimizer: parameter of shape %A{p.shape} has no leading seed axis of size {seeds}"

            if string p.device <> string p0.device || p.dtype <> p0.dtype then
                invalidArg
                    "parameters"
                    $"FlatOptimizer: parameters on {p0.device}/{p0.dtype} and {p.device}/{p.dtype}; all must share one device and dtype"

    let device = parameters[0].device
    let dtype = parameters[0].dtype
    let numels = parameters |> Array.map (fun p -> p.numel ())
    // Each parameter starts on a 64-byte boundary, as a tensor of its own would: matmul kernels
    // pick their code path by alignment, and an unaligned weight gives other last bits in some
    // shapes. The padding between parameters is never read by a network and stays zero.
    let align = max 1L (64L / int64 parameters[0].ElementSize)
    let roundUp (n: int64) = (n + align - 1L) / align * align

    let offsets =
        numels
        |> Array.scan (fun start n -> roundUp (start + n)) 0L
        |> Array.truncate numels.Length

    let total = roundUp (offsets[numels.Length - 1] + numels[numels.Length - 1])
    let perSeedSize = Array.sum numels / int64 seeds

    let buffer =
        new Parameter(torch.zeros ([| total |], dtype = dtype, device = device))

    let grad =
        torch.zeros([| total |], dtype = dtype, device = device).DetachFromDisposeScope()

    do buffer.DetachFromDisposeScope() |> ignore

    let segment (t: torch.Tensor) (i: int) =
        t.narrow(0L, offsets[i], numels[i]).view(parameters[i].shape)

    do
        use _ng = torch.no_grad ()

        for i in 0 .. parameters.Length - 1 do
            let p = parameters[i]
            let view = segment buffer i
            view.copy_ p |> ignore
            p.set_ view |> ignore
            p.grad <- segment grad i

        buffer.grad <- grad

    // Index of buffer element for [S; P] position (k, j): parameter i's block holds seed k's n_i
    // values at offsets[i] + k * n_i.
    let perSeedIndex, seedOfElement =
        let gather = Array.zeroCreate<int64>(int (perSeedSize * int64 seeds))
        // padding elements count as seed 0's; their gradient is always zero
        let seedOf = Array.zeroCreate<int64>(int total)
        let mutable j = 0

        for k in 0 .. seeds - 1 do
            for i in 0 .. parameters.Length - 1 do
                let n = numels[i] / int64 seeds

                for e in 0L .. n - 1L do
                    let src = offsets[i] + int64 k * n + e
                    gather[j] <- src
                    seedOf[int src] <- int64 k
                    j <- j + 1

        torch.tensor(gather, device = device).DetachFromDisposeScope(),
        torch.tensor(seedOf, device = device).DetachFromDisposeScope()

    let optimizer = make kind lr [ buffer ]

    /// The TorchSharp optimizer over the one buffer (what checkpoints save and load, and what
    /// carries the learning rate).
    member _.Optimizer: torch.optim.Optimizer = optimizer

    /// The parameters, in buffer order (the module's own objects, now views of the buffer).
    member _.Parameters = parameters

    /// The parameter buffer (a leaf whose gradient is `Grad`): every parameter's S * n_i values,
    /// each block starting on a 64-byte boundary (zero padding between blocks).
    member _.Buffer: torch.Tensor = buffer

    /// The gradient buffer, laid out as `Buffer`; each parameter's `grad` is a view of it.
    member _.Grad = grad

    /// Seeds S (the parameters' leading size).
    member _.Seeds = seeds

    /// Values per seed P.
    member _.PerSeedSize = perSeedSize

    /// Zeroes every gradient (one call; the gradient views stay in place).
    member _.ZeroGrad() =
        use _ng = torch.no_grad ()
        grad.zero_ () |> ignore

    /// One optimizer step over the buffer.
    member _.Step() = optimizer.step () |> ignore

    /// `x`, laid out like the buffer, gathered into [S; P] (a copy without the padding).
    member _.PerSeed(x: torch.Tensor) : torch.Tensor =
        x.index_select(0L, perSeedIndex).view(int64 seeds, perSeedSize)

    /// The gradients as [S; P] (a copy; what `flatGradPerSeed` returns for the same parameters).
    member o.GradPerSeed() : torch.Tensor =
        use _ng = torch.no_grad ()
        o.PerSeed grad

    /// The global gradient norm per seed, sqrt of the sum of squares over seed k's gradients,
    /// [S] (no gradient; the gradients are left as they are).
    member o.GradNormPerSeed() : torch.Tensor =
        use _ng = torch.no_grad ()
        o.GradPerSeed().norm(1, p = 2.0f)

    /// Global-norm clipping per seed, as `clipGradNormPerSeed`: seed k's gradients are scaled by
    /// min(1, maxNorm / (norm_k + 1e-6)). Returns the pre-clip norms [S] (no gradient). Raises
    /// `ArgumentException` if `maxNorm <= 0`.
    member o.ClipGradNormPerSeed(maxNorm: float) : torch.Tensor =
        checkMaxNorm maxNorm
        use _ng = torch.no_grad ()
        let norm = o.GradNormPerSeed()

        grad.mul_ ((clipCoefficient maxNorm norm).index_select(0L, seedOfElement))
        |> ignore

        norm

    /// Norms per seed of Adam's first- and second-moment estimates, as `adamMomentNorms` over the
    /// parameters one by one: ([S], [S]) float64; NaN for an optimizer that is not Adam, zeros
    /// before the first step.
    member _.AdamMomentNorms() : torch.Tensor * torch.Tensor =
        // The one state's moments, cut back into the parameters' blocks.
        momentNorms seeds optimizer (fun t -> [ for i in 0 .. parameters.Length - 1 -> segment t i ])

    interface IDisposable with
        member _.Dispose() =
            optimizer.Dispose()
            perSeedIndex.Dispose()
            seedOfElement.Dispose()

/// A `FlatOptimizer` of `kind` with learning rate `lr` over the trainable `parameters` of one
/// network with a leading seed axis of size `seeds`.
let makeFlat (kind: OptimizerKind) (lr: float) (seeds: int) (parameters: Parameter seq) =
    new FlatOptimizer(kind, lr, seeds, parameters)

/// Parses an optimizer name ("adam", "rmsprop", "sgd") with the config's beta1, beta2 and eps:
/// Adam(beta1, beta2, eps); RMSprop with smoothing alpha = beta2 and eps (optax `rmsprop`'s
/// decay plays beta2's role); SGD without momentum. Raises `ArgumentException` for another name.
let kindOf (name: string) (beta1: float) (beta2: float) (eps: float) : OptimizerKind =
    match name.Trim().ToLowerInvariant() with
    | "adam" -> Adam(beta1, beta2, eps)
    | "rmsprop" -> RmsProp(beta2, eps)
    | "sgd" -> Sgd 0.0
    | s -> invalidArg "optimizer" $"unknown optimizer '{s}'; allowed: adam, rmsprop, sgd"

/// The gradients of `parameters` (leading seed axis S) flattened and concatenated per seed:
/// [S; P] where P is the number of parameters per seed (a copy; zeros for a parameter without a
/// gradient).
let flatGradPerSeed (seeds: int) (parameters: Parameter seq) : torch.Tensor =
    use _ng = torch.no_grad ()

    torch.cat (
        [|
            for p in parameters ->
                match p.grad with
                | null -> torch.zeros_like(p).reshape(int64 seeds, -1L)
                | g -> g.reshape (int64 seeds, -1L)
        |],
        1L
    )

/// Cosine similarity per seed of two [S; P] tensors: <a_k, b_k> / (|a_k| |b_k|), [S] float64.
/// NaN for a seed where either vector is zero (no direction to compare).
let cosineSimilarityPerSeed (a: torch.Tensor) (b: torch.Tensor) : torch.Tensor =
    use _ng = torch.no_grad ()
    let a = a.to_type torch.float64
    let b = b.to_type torch.float64
    let dot = (a * b).sum(1L)
    let na = a.square().sum(1L).sqrt()
    let nb = b.square().sum(1L).sqrt()
    let den = na * nb
    torch.where (den.gt ((0.0).ToScalar()), dot / den.clamp_min ((1e-300).ToScalar()), torch.full_like (den, nan))

/// Norms per seed of Adam's first- and second-moment estimates (`exp_avg`, `exp_avg_sq` in
/// TorchSharp's `Adam.State`, the raw, not bias-corrected, running averages): sqrt of the sum
/// over all parameters of the squares in seed slice k. Parameters must carry a leading seed axis
/// S. Returns ([S], [S]) float64; NaN for an optimizer that is not Adam.
let adamMomentNorms (seeds: int) (optimizer: torch.optim.Optimizer) : torch.Tensor * torch.Tensor =
    momentNorms seeds optimizer Seq.singleton
