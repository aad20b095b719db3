/// Policy and value losses with their diagnostics. Inputs carry a leading seed axis [S; M]
/// (M samples per seed); each loss returns one value per seed [S], so summing over seeds gives
/// every seed exactly the gradient of its own loss.
module Rl.Losses

open TorchSharp
open Rl.Tensor

/// Diagnostics of a PPO policy loss, one value per seed [S] (no gradient).
type PpoStats =
    {
        /// k3 estimator of KL(old || new): mean((ratio - 1) - log ratio) (Schulman, "Approximating
        /// KL Divergence", 2020; CleanRL's `approx_kl`).
        ApproxKl: Tensor
        /// Fraction of samples whose ratio left [1 - clipEps, 1 + clipEps] (CleanRL `clipfrac`).
        ClipFraction: Tensor
    }

/// PPO's clipped surrogate loss (Schulman et al. 2017, "Proximal Policy Optimization
/// Algorithms", eq. 7), negated for minimisation:
///   L = -mean( min( ratio * A, clip(ratio, 1 - eps, 1 + eps) * A ) ),  ratio = exp(logProbNew - logProbOld)
/// `logProbNew`, `logProbOld`, `advantages`: [S; M]. Returns (loss [S], stats).
/// Raises `ArgumentException` if `clipEps <= 0` or the shapes differ.
let ppoClip (clipEps: float) (logProbNew: Tensor) (logProbOld: Tensor) (advantages: Tensor) : Tensor * PpoStats =
    if clipEps <= 0.0 then
        invalidArg "clipEps" $"ppoClip: clipEps must be > 0, got {clipEps}"

    if logProbNew.shape <> logProbOld.shape || logProbNew.shape <> advantages.shape then
        invalidArg
            "logProbNew"
            $"ppoClip: shapes differ: logProbNew {shapeString logProbNew}, logProbOld {shapeString logProbOld}, advantages {shapeString advantages}"

    let logRatio = logProbNew - logProbOld
    let ratio = torch.exp logRatio
    let unclipped = -advantages * ratio
    let clipped = -advantages * torch.clamp (ratio, (1.0 - clipEps).ToScalar(), (1.0 + clipEps).ToScalar())
    let loss = torch.maximum(unclipped, clipped).mean ([| -1L |])

    let stats =
        use _ng = torch.no_grad ()

        { ApproxKl = ((ratio - 1.0) - logRatio).mean ([| -1L |])
          ClipFraction = ((ratio - 1.0).abs().gt(clipEps.ToScalar())).to_type(torch.float32).mean ([| -1L |]) }

    loss, stats

/// k3 estimator of KL(pi_theta || pi_ref) per sample, averaged per seed [S] (DeepSeekMath,
/// Shao et al. 2024, eq. 4; Schulman, "Approximating KL Divergence", 2020):
///   D = pi_ref(o|q) / pi_theta(o|q) - log(pi_ref(o|q) / pi_theta(o|q)) - 1 >= 0
/// evaluated at actions sampled from the old policy. Unbiased for samples from pi_theta, always
/// non-negative, and differentiable in `logProbNew` (GRPO adds beta times it to the loss).
/// `logProbNew`, `logProbRef`: [S; M]. Raises `ArgumentException` when the shapes differ.
let klToReference (logProbNew: Tensor) (logProbRef: Tensor) : Tensor =
    if logProbNew.shape <> logProbRef.shape then
        invalidArg "logProbRef" $"klToReference: shapes differ: logProbNew {shapeString logProbNew}, logProbRef {shapeString logProbRef}"

    let d = logProbRef - logProbNew
    (torch.exp d - d - 1.0).mean ([| -1L |])

/// Value loss 0.5 * mean((V - R)^2) per seed [S] (CleanRL / PureJaxRL convention). With
/// `clip = Some eps` the clipped variant max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)
/// (CleanRL `ppo.py` `clip_vloss`), which needs `oldValues`. Inputs [S; M].
let valueLoss (clip: float option) (values: Tensor) (oldValues: Tensor) (returns: Tensor) : Tensor =
    let unclipped = (values - returns).square ()

    match clip with
    | None -> 0.5 * unclipped.mean ([| -1L |])
    | Some eps ->
        let vClipped = oldValues + torch.clamp (values - oldValues, (-eps).ToScalar(), eps.ToScalar())
        0.5 * torch.maximum(unclipped, (vClipped - returns).square ()).mean ([| -1L |])

/// Explained variance 1 - Var(R - V) / Var(R) per seed [S] (NaN-free: 0 where Var(R) = 0).
/// 1 means the critic predicts the returns perfectly, 0 no better than a constant.
let explainedVariance (values: Tensor) (returns: Tensor) : Tensor =
    use _ng = torch.no_grad ()
    let varR = returns.var (-1L, unbiased = false)
    let varD = (returns - values).var (-1L, unbiased = false)
    torch.where (varR.gt ((0.0).ToScalar()), 1.0 - varD / varR.clamp_min ((1e-12).ToScalar()), torch.zeros_like varR)
