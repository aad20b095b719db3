/// Advantage and return estimators over rollouts stored time-major as [T; B] tensors
/// (T steps, B = seeds x environments, flattened in any order).
module Rl.Advantage

open TorchSharp
open Rl.Tensor

let private checkSame (name: string) (reference: Tensor) (t: Tensor) =
    if t.shape <> reference.shape then
        invalidArg name $"{name}: expected shape {shapeString reference} like rewards, got {shapeString t}"

/// Generalised Advantage Estimation (Schulman et al. 2016, "High-Dimensional Continuous Control
/// Using Generalized Advantage Estimation", eq. 16), with terminated and truncated episodes told
/// apart:
///   delta_t = r_t + gamma * V(s'_t) * (1 - terminated_t) - V(s_t)
///   A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},  done_t = terminated_t or truncated_t
/// where `s'_t` is the observation step t reached (BatchStep.FinalObs: for a truncated episode the
/// observation before auto-reset, so the cut episode still bootstraps from its true next state;
/// for ongoing episodes simply the next observation).
/// Inputs: `rewards`, `values` = V(s_t), `nextValues` = V(s'_t), `terminated`, `truncated`, all
/// [T; B] (flags bool or 0/1). Returns `(advantages, returns)`, both [T; B] float32 on the
/// rewards' device, with returns = advantages + values (the critic's regression target).
/// Raises `ArgumentException` if shapes differ or `gamma`/`lambda` lie outside [0, 1].
/// The recursion runs on the host in float64 (two transfers per rollout, none per step).
let gae
    (gamma: float)
    (lambda: float)
    (rewards: Tensor)
    (values: Tensor)
    (nextValues: Tensor)
    (terminated: Tensor)
    (truncated: Tensor)
    =
    if gamma < 0.0 || gamma > 1.0 then
        invalidArg "gamma" $"gae: gamma must be in [0, 1], got {gamma}"

    if lambda < 0.0 || lambda > 1.0 then
        invalidArg "lambda" $"gae: lambda must be in [0, 1], got {lambda}"

    if rewards.dim () <> 2L then
        invalidArg "rewards" $"gae: expected [T; B] rewards, got {shapeString rewards}"

    checkSame "values" rewards values
    checkSame "nextValues" rewards nextValues
    checkSame "terminated" rewards terminated
    checkSame "truncated" rewards truncated
    let T = int rewards.shape[0]
    let B = int rewards.shape[1]
    let r = toArray rewards
    let v = toArray values
    let nv = toArray nextValues
    let term = toArray terminated
    let trunc = toArray truncated
    let adv = Array.zeroCreate<float32>(T * B)
    let last = Array.zeroCreate<float> B

    for t in T - 1 .. -1 .. 0 do
        for b in 0 .. B - 1 do
            let i = t * B + b
            let notTerm = 1.0 - term[i]
            let notDone = if term[i] <> 0.0 || trunc[i] <> 0.0 then 0.0 else 1.0
            let delta = r[i] + gamma * nv[i] * notTerm - v[i]
            last[b] <- delta + gamma * lambda * notDone * last[b]
            adv[i] <- float32 last[b]

    let advantages =
        torch.tensor(adv, device = rewards.device).reshape(int64 T, int64 B)

    let returns = advantages + values.to_type torch.float32
    advantages, returns

/// Normalises advantages to mean 0 and standard deviation 1 along the last dimension
/// (per seed when the input is [S; M]): (A - mean) / (std + 1e-8), with the unbiased std as
/// CleanRL's `ppo.py` (`mb_advantages.std()`).
let normalize (advantages: Tensor) : Tensor =
    let mean = advantages.mean ([| -1L |], keepdim = true)
    let std = advantages.std (-1L, unbiased = true, keepdim = true)
    (advantages - mean) / (std + 1e-8)

/// Discounted Monte-Carlo returns G_t = r_t + gamma * (1 - done_t) * G_{t+1}, from the end of
/// the rollout with G_T = `bootstrap` ([B], e.g. zeros or V of the last observation; truncated
/// steps restart from `nextValues` of that step when given). Inputs [T; B]; returns [T; B]
/// float32. Source: Sutton & Barto (2018), eq. 3.9.
let discountedReturns (gamma: float) (rewards: Tensor) (terminated: Tensor) (truncated: Tensor) (nextValues: Tensor) =
    checkSame "terminated" rewards terminated
    checkSame "truncated" rewards truncated
    checkSame "nextValues" rewards nextValues
    let T = int rewards.shape[0]
    let B = int rewards.shape[1]
    let r = toArray rewards
    let term = toArray terminated
    let trunc = toArray truncated
    let nv = toArray nextValues
    let out = Array.zeroCreate<float32>(T * B)
    let g = Array.zeroCreate<float> B

    for t in T - 1 .. -1 .. 0 do
        for b in 0 .. B - 1 do
            let i = t * B + b

            let next =
                if term[i] <> 0.0 then 0.0
                elif trunc[i] <> 0.0 || t = T - 1 then nv[i]
                else g[b]

            g[b] <- r[i] + gamma * next
            out[i] <- float32 g[b]

    torch.tensor(out, device = rewards.device).reshape(int64 T, int64 B)

/// Group-relative advantages of GRPO (Shao et al. 2024, "DeepSeekMath", section 4.1.2, outcome
/// supervision): each of the G outputs sampled for the same input is scored against its own
/// group, A_i = r_i - mean(r), or with `scaleByStd` A_i = (r_i - mean(r)) / (std(r) + 1e-4)
/// as in the paper's normalised reward (std: unbiased, as `torch.std` and TRL's GRPOTrainer,
/// whose eps 1e-4 this uses). The group is the LAST dimension: `rewards` [...; G] gives
/// advantages of the same shape. A group whose rewards are all equal (all correct or all wrong)
/// gets zero advantage: it carries no learning signal. Raises `ArgumentException` for a scalar
/// input or G < 2 (a group of one has no baseline).
let groupRelative (scaleByStd: bool) (rewards: Tensor) : Tensor =
    if rewards.dim () < 1L || rewards.shape[rewards.shape.Length - 1] < 2L then
        invalidArg
            "rewards"
            $"groupRelative: expected rewards [...; G] with group size G >= 2, got {shapeString rewards}"

    let r = rewards.to_type torch.float32
    let centred = r - r.mean ([| -1L |], keepdim = true)

    if scaleByStd then
        centred / (r.std (-1L, unbiased = true, keepdim = true) + 1e-4)
    else
        centred
