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
        [ for p in parameters do
              match p.grad with
              | null -> ()
              | g when g.numel () = 0L -> ()
              | g ->
                  if g.shape[0] <> int64 seeds then
                      invalidArg "parameters" $"clipGradNormPerSeed: parameter of shape %A{g.shape} has no leading seed axis of size {seeds}"

                  yield g ]

    if grads.IsEmpty then
        torch.zeros (int64 seeds)
    else
        let sq =
            grads
            |> List.map (fun g -> g.reshape(int64 seeds, -1L).square().sum (1L))
            |> List.reduce (+)

        let norm = sq.sqrt ()
        let coef = (maxNorm / (norm + 1e-6)).clamp_max ((1.0).ToScalar())

        for g in grads do
            let shape = Array.append [| int64 seeds |] (Array.create (int (g.dim ()) - 1) 1L)
            g.mul_ (coef.reshape shape) |> ignore

        norm
