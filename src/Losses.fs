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

/// k3 approx KL and clip fraction of importance ratios [S; M], per seed [S] (no gradient).
let private ratioStats (clipEps: float) (ratio: Tensor) (logRatio: Tensor) : PpoStats =
    use _ng = torch.no_grad ()

    {
        ApproxKl = ((ratio - 1.0) - logRatio).mean([| -1L |])
        ClipFraction = ((ratio - 1.0).abs().gt(clipEps.ToScalar())).to_type(torch.float32).mean([| -1L |])
    }

/// PPO's clipped surrogate loss (Schulman et al. 2017, "Proximal Policy Optimization
/// Algorithms", eq. 7), negated for minimisation:
///   L = -mean( min( ratio * A, clip(ratio, 1 - eps, 1 + eps) * A ) ),  ratio = exp(logProbNew - logProbOld)
/// `logProbNew`, `logProbOld`, `advantages`: [S; M]. Returns (loss [S], stats).
/// Raises `ArgumentException` if `clipEps <= 0` or the shapes differ.
let ppoClip (clipEps: float) (logProbNew: Tensor) (logProbOld: Tensor) (advantages: Tensor) : Tensor * PpoStats =
    if clipEps <= 0.0 then
        invalidArg "clipEps" $"ppoClip: clipEps must be > 0, got {clipEps}"

    if not (sameShape logProbNew logProbOld && sameShape logProbNew advantages) then
        invalidArg
            "logProbNew"
            $"ppoClip: shapes differ: logProbNew {shapeString logProbNew}, logProbOld {shapeString logProbOld}, advantages {shapeString advantages}"

    let logRatio = logProbNew - logProbOld
    let ratio = torch.exp logRatio
    let unclipped = -advantages * ratio

    let clipped =
        -advantages
        * torch.clamp (ratio, (1.0 - clipEps).ToScalar(), (1.0 + clipEps).ToScalar())

    let loss = torch.maximum(unclipped, clipped).mean([| -1L |])
    loss, ratioStats clipEps ratio logRatio

/// PPO's surrogate with an adaptive KL penalty instead of the clip (Schulman et al. 2017,
/// "Proximal Policy Optimization Algorithms", section 4, eq. 8; seed 003's "PPO1"), negated for
/// minimisation:
///   L = -mean( ratio * A - beta * KL[pi_old(.|s), pi(.|s)] ),  ratio = exp(logProbNew - logProbOld)
/// `logProbNew`, `logProbOld`, `advantages` and `kl` (each state's KL(old || new), e.g.
/// `Dist.kl oldDist newDist`) are [S; M]; `beta` is [S], one coefficient per seed (see
/// `adaptKlBeta`). Returns (loss [S], stats) with the same statistics as `ppoClip` (k3 approx KL,
/// and the fraction of ratios outside [1 - clipEps, 1 + clipEps], reported for comparison only).
/// Raises `ArgumentException` if `clipEps <= 0` or the shapes differ.
let ppoKlPenalty
    (beta: Tensor)
    (clipEps: float)
    (logProbNew: Tensor)
    (logProbOld: Tensor)
    (advantages: Tensor)
    (kl: Tensor)
    : Tensor * PpoStats =
    if clipEps <= 0.0 then
        invalidArg "clipEps" $"ppoKlPenalty: clipEps must be > 0, got {clipEps}"

    if
        not (sameShape logProbNew logProbOld)
        || not (sameShape logProbNew advantages)
        || not (sameShape logProbNew kl)
        || not (hasShape [| logProbNew.size 0 |] beta)
    then
        invalidArg
            "logProbNew"
            $"ppoKlPenalty: shapes differ: logProbNew {shapeString logProbNew}, logProbOld {shapeString logProbOld}, advantages {shapeString advantages}, kl {shapeString kl}, beta {shapeString beta} (want [S])"

    let logRatio = logProbNew - logProbOld
    let ratio = torch.exp logRatio
    let loss = -(ratio * advantages - beta.unsqueeze (-1L) * kl).mean([| -1L |])
    loss, ratioStats clipEps ratio logRatio

/// The PPO paper's rule for the KL coefficient (Schulman et al. 2017, section 4): after an
/// update whose mean KL(old || new) is `d`, halve beta when d < target / 1.5, double it when
/// d > target * 1.5, else keep it. Raises `ArgumentException` if `target <= 0` or `beta <= 0`.
let adaptKlBeta (target: float) (d: float) (beta: float) : float =
    if target <= 0.0 then
        invalidArg "target" $"adaptKlBeta: target must be > 0, got {target}"

    if beta <= 0.0 then
        invalidArg "beta" $"adaptKlBeta: beta must be > 0, got {beta}"

    if d < target / 1.5 then beta / 2.0
    elif d > target * 1.5 then beta * 2.0
    else beta

/// k3 estimator of KL(pi_theta || pi_ref) per sample, averaged per seed [S] (DeepSeekMath,
/// Shao et al. 2024, eq. 4; Schulman, "Approximating KL Divergence", 2020):
///   D = pi_ref(o|q) / pi_theta(o|q) - log(pi_ref(o|q) / pi_theta(o|q)) - 1 >= 0
/// evaluated at actions sampled from the old policy. Unbiased for samples from pi_theta, always
/// non-negative, and differentiable in `logProbNew` (GRPO adds beta times it to the loss).
/// `logProbNew`, `logProbRef`: [S; M]. Raises `ArgumentException` when the shapes differ.
let klToReference (logProbNew: Tensor) (logProbRef: Tensor) : Tensor =
    if not (sameShape logProbNew logProbRef) then
        invalidArg
            "logProbRef"
            $"klToReference: shapes differ: logProbNew {shapeString logProbNew}, logProbRef {shapeString logProbRef}"

    let d = logProbRef - logProbNew
    (torch.exp d - d - 1.0).mean([| -1L |])

/// Value loss 0.5 * mean((V - R)^2) per seed [S] (CleanRL / PureJaxRL convention). With
/// `clip = Some eps` the clipped variant max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)
/// (CleanRL `ppo.py` `clip_vloss`), which needs `oldValues`. Inputs [S; M].
let valueLoss (clip: float option) (values: Tensor) (oldValues: Tensor) (returns: Tensor) : Tensor =
    let unclipped = (values - returns).square()

    match clip with
    | None -> 0.5 * unclipped.mean ([| -1L |])
    | Some eps ->
        let vClipped =
            oldValues + torch.clamp (values - oldValues, (-eps).ToScalar(), eps.ToScalar())

        0.5 * torch.maximum(unclipped, (vClipped - returns).square()).mean([| -1L |])

/// Explained variance 1 - Var(R - V) / Var(R) per seed [S] (NaN-free: 0 where Var(R) = 0).
/// 1 means the critic predicts the returns perfectly, 0 no better than a constant.
let explainedVariance (values: Tensor) (returns: Tensor) : Tensor =
    use _ng = torch.no_grad ()
    let varR = returns.var (-1L, unbiased = false)
    let varD = (returns - values).var(-1L, unbiased = false)
    torch.where (varR.gt ((0.0).ToScalar()), 1.0 - varD / varR.clamp_min ((1e-12).ToScalar()), torch.zeros_like varR)

/// Which regression loss DQN applies to the TD error.
type TdLossKind =
    /// Mean squared error (seed 004 module 3.3; CleanRL `dqn.py`: `F.mse_loss`).
    | Mse
    /// Huber (smooth L1) with threshold 1: 0.5 d^2 for |d| <= 1, |d| - 0.5 otherwise (Mnih et al.
    /// 2015, "Human-level control through deep reinforcement learning", Methods: error clipping).
    | Huber

    /// Parses "mse" or "huber" (case-insensitive); raises `ArgumentException` otherwise.
    static member Parse(s: string) =
        match s.Trim().ToLowerInvariant() with
        | "mse" -> Mse
        | "huber" -> Huber
        | _ -> invalidArg "loss" $"unknown TD loss '{s}'; allowed: mse, huber"

/// The DQN TD target (seed 004 module 3.2; Mnih et al. 2015, eq. 2 with the target network):
///   y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
/// `nextQ` = Q_target(s', .) [S; M; nActions] where s' is the observation the step reached (the
/// final observation before any auto-reset); `rewards`, `terminated` (bool or 0/1) [S; M].
/// Only termination stops the bootstrap: a step cut by the time limit (truncated) still
/// bootstraps from its true next state, because its future exists (Pardo et al. 2018, "Time
/// Limits in Reinforcement Learning"). Returns [S; M] float32 without gradient.
/// Raises `ArgumentException` for mismatched shapes or gamma outside [0, 1].
let dqnTargets (gamma: float) (rewards: Tensor) (terminated: Tensor) (nextQ: Tensor) : Tensor =
    if gamma < 0.0 || gamma > 1.0 then
        invalidArg "gamma" $"dqnTargets: gamma must be in [0, 1], got {gamma}"

    if
        not (sameShape rewards terminated)
        || nextQ.dim () <> 3L
        || not (hasShape [| nextQ.size 0; nextQ.size 1 |] rewards)
    then
        invalidArg
            "nextQ"
            $"dqnTargets: expected rewards [S; M], terminated [S; M], nextQ [S; M; nActions], got {shapeString rewards}, {shapeString terminated}, {shapeString nextQ}"

    use _ng = torch.no_grad ()
    let notTerm = 1.0 - terminated.to_type torch.float32
    let maxNext = nextQ.amax ([| -1L |])
    (rewards.to_type torch.float32 + gamma * notTerm * maxNext).detach()

/// The DQN loss per seed [S]: the mean over the batch of MSE or Huber of the TD error
/// `targets - qTaken` (seed 004 module 3.2: Loss = (TD target - Q_online(S, A))^2), where
/// `qTaken` = Q_online(s, a) [S; M] (with gradient) and `targets` [S; M] from `dqnTargets`.
/// The MSE is the plain mean square (CleanRL's `F.mse_loss`, no factor 1/2). Raises
/// `ArgumentException` when the shapes differ.
let tdLoss (kind: TdLossKind) (qTaken: Tensor) (targets: Tensor) : Tensor =
    if not (sameShape qTaken targets) then
        invalidArg "targets" $"tdLoss: shapes differ: qTaken {shapeString qTaken}, targets {shapeString targets}"

    let d = targets - qTaken

    match kind with
    | Mse -> d.square().mean([| -1L |])
    | Huber ->
        let a = d.abs ()
        let perSample = torch.where (a.le ((1.0).ToScalar()), 0.5 * d.square (), a - 0.5)
        perSample.mean ([| -1L |])

/// The REINFORCE loss per seed [S] (Williams 1992; Sutton & Barto 2018, sec. 13.3-13.4,
/// REINFORCE with baseline): the negated score-function estimate of the policy gradient,
///   L = -(1 / E) * sum_t mask_t * log pi(a_t | s_t) * (G_t - b(s_t))
/// with `logProbs` log pi(a_t|s_t) [S; M] (with gradient), `returns` G_t [S; M], `baselines`
/// b(s_t) [S; M] (zeros for plain REINFORCE; treated as constants: they are detached), `mask`
/// [S; M] 1 for steps that belong to a collected episode and 0 for padding, and `episodes` E
/// the number of episodes per seed, so the gradient is the average over episodes of
/// sum_t grad log pi * (G_t - b) (the estimator of grad J whose variance seed 004 module 4.3
/// discusses). Raises `ArgumentException` for mismatched shapes or `episodes < 1`.
let reinforce (episodes: int) (logProbs: Tensor) (returns: Tensor) (baselines: Tensor) (mask: Tensor) : Tensor =
    if episodes < 1 then
        invalidArg "episodes" $"reinforce: episodes must be >= 1, got {episodes}"

    for name, t in [ "returns", returns; "baselines", baselines; "mask", mask ] do
        if not (sameShape t logProbs) then
            invalidArg
                name
                $"reinforce: {name} has shape {shapeString t}, logProbs {shapeString logProbs}; they must match"

    let weight = (returns - baselines.detach ()).detach() * mask.to_type torch.float32
    -(logProbs * weight).sum([| -1L |]) / float episodes
