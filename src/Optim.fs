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

/// Global-norm gradient clipping done separately for each seed (parameters carry a leading
/// seed axis of size S): seed k's norm is sqrt(sum over all parameters of the squared
/// gradients in slice k), and its gradients are scaled by min(1, maxNorm / (norm + 1e-6)), as
/// `torch.nn.utils.clip_grad_norm_` does for one model. Returns the pre-clip norms [S] (no
/// gradient). Parameters without a gradient are skipped. Raises `ArgumentException` if
/// `maxNorm <= 0` or a parameter's leading size is not S.
let clipGradNormPerSeed (seeds: int) (maxNorm: float) (parameters: Parameter seq) : torch.Tensor =
    if not (maxNorm > 0.0) then
        invalidArg "maxNorm" $"maxNorm must be > 0, got {maxNorm}"

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

        let coef = (maxNorm / (norm + 1e-6)).clamp_max((1.0).ToScalar())
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
            if states.Length = 0 then
                torch.zeros (int64 seeds, dtype = torch.float64)
            else
                states
                |> Array.map (fun st -> (f st).to_type(torch.float64).reshape(int64 seeds, -1L).square().sum(1L))
                |> Array.reduce (+)
                |> fun t -> t.sqrt ()

        norm (fun s -> s.exp_avg), norm (fun s -> s.exp_avg_sq)
    | _ ->
        let n = torch.full (int64 seeds, nan, dtype = torch.float64)
        n, n.clone ()
