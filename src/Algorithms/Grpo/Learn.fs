/// One GRPO update (DeepSeekMath, Algorithm 1): a group of G guesses per image sampled from the
/// old policy and scored, group-relative advantages, and the clipped objective with its optional
/// KL penalty to the reference policy (eq. 3), for `update_epochs` gradient steps.
namespace Rl.Grpo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// Loss terms of one GRPO step, per seed [S].
type LossParts =
    {
        /// The whole loss: Policy + beta * Kl - entCoef * Entropy.
        Loss: Tensor
        /// PPO clipped surrogate over the group advantages (`Losses.ppoClip`).
        Policy: Tensor
        /// k3 KL to the reference policy (`Losses.klToReference`).
        Kl: Tensor
        /// Mean entropy of the policy over the batch's images.
        Entropy: Tensor
        /// PPO diagnostics (approx KL to the old policy, clip fraction).
        Stats: Losses.PpoStats
    }

/// One batch's group, sampled from the old policy (no gradient).
type internal Group =
    {
        /// G guesses per image, [S; B; G].
        Actions: Tensor
        /// log pi_old and log pi_ref of each guess, [S; B; G].
        LogProbOld: Tensor
        LogProbRef: Tensor
        /// 1 for a right guess, else 0, [S; B; G].
        Rewards: Tensor
        /// Exact KL(pi_old || pi_ref) over the 10 digits, mean per seed [S] (for the log; the
        /// penalty uses the k3 estimate).
        KlRef: Tensor
    }

/// The GRPO loss, sampling a group and learning on it.
module Learn =
    /// The GRPO objective (DeepSeekMath eq. 3, outcome supervision, one-token outputs), negated for
    /// minimisation, for a batch: `logProbs` [S; B; 10] of the current policy, `actions` [S; B; G]
    /// sampled from the old policy, `logProbOld`, `logProbRef`, `advantages` [S; B; G]. It is PPO's
    /// clipped surrogate over the B * G samples with the group advantages, plus `beta` times the k3
    /// KL to the reference, minus `entCoef` times the entropy.
    let loss
        (clipEps: float)
        (beta: float)
        (entCoef: float)
        (logProbs: Tensor)
        (actions: Tensor)
        (logProbOld: Tensor)
        (logProbRef: Tensor)
        (advantages: Tensor)
        : LossParts =
        let S, B, G = actions.shape[0], actions.shape[1], actions.shape[2]
        let flat (x: Tensor) = x.reshape (S, B * G)
        let grouped = Categorical(logProbs.unsqueeze(2).expand(-1L, -1L, G, -1L))
        let logProbNew = flat (Dist.logProb grouped actions)

        let policy, stats =
            Losses.ppoClip clipEps logProbNew (flat logProbOld) (flat advantages)

        let kl = Losses.klToReference logProbNew (flat logProbRef)
        let entropy = (Dist.entropy (Categorical logProbs)).mean([| 1L |])

        {
            Loss = policy + beta * kl - entCoef * entropy
            Policy = policy
            Kl = kl
            Entropy = entropy
            Stats = stats
        }

    /// Phase 2: G guesses per image from the old policy (`sampleGens[k]` drives seed k), scored
    /// against the labels `y` [S; B] (DeepSeekMath, Algorithm 1, "sample G outputs ... compute
    /// rewards"). No gradient.
    let internal sampleGroup (agent: Agent) (sampleGens: torch.Generator[]) (G: int) (x: Tensor) (y: Tensor) : Group =
        use _ng = torch.no_grad ()
        let lpOld = Agent.logProbsOf agent.Actor x

        let grouped (lp: Tensor) =
            Categorical(lp.unsqueeze(2).expand(-1L, -1L, int64 G, -1L))

        let actions = Dist.sample sampleGens (grouped lpOld) // [S; B; G]
        let rewards = actions.eq(y.unsqueeze 2).to_type torch.float32 // [S; B; G]
        let lpRef = Agent.logProbsOf agent.Reference x

        {
            Actions = actions
            LogProbOld = Dist.logProb (grouped lpOld) actions
            LogProbRef = Dist.logProb (grouped lpRef) actions
            Rewards = rewards
            KlRef = (lpOld.exp () * (lpOld - lpRef)).sum(-1L).mean([| 1L |])
        }

    /// Phase 4: `cfg.UpdateEpochs` gradient steps of the GRPO loss on one batch (DeepSeekMath,
    /// Algorithm 1, "for GRPO iteration = 1, ..., mu"), each clipped per seed to `cfg.MaxGradNorm`.
    /// Adds the steps' mean approx KL, clip fraction, entropy, policy loss and gradient norm, per
    /// seed, to `sums[2..6]`.
    let internal learnGroup
        (cfg: GrpoConfig)
        (agent: Agent)
        (sums: Tensor[])
        (x: Tensor)
        (group: Group)
        (advantages: Tensor)
        =
        for _ in 1 .. cfg.UpdateEpochs do
            use _inner = torch.NewDisposeScope()
            let lp = Agent.logProbsOf agent.Actor x

            let parts =
                loss cfg.ClipEps cfg.Beta cfg.EntCoef lp group.Actions group.LogProbOld group.LogProbRef advantages

            agent.Optimizer.ZeroGrad()
            parts.Loss.sum().backward()

            let gradNorm =
                if cfg.MaxGradNorm > 0.0 then
                    agent.Optimizer.ClipGradNormPerSeed cfg.MaxGradNorm
                else
                    agent.Optimizer.GradNormPerSeed()

            agent.Optimizer.Step()
            use _ng = torch.no_grad ()
            let w = 1.0 / float cfg.UpdateEpochs

            let add (i: int) (t: Tensor) =
                sums[i].add_(t.detach().to_type(torch.float64) * w) |> ignore

            add 2 parts.Stats.ApproxKl
            add 3 parts.Stats.ClipFraction
            add 4 parts.Entropy
            add 5 parts.Policy
            add 6 gradNorm

    /// Phases 2 to 4 of one update on a batch (DeepSeekMath, Algorithm 1): `sampleGroup` of
    /// images `x` [S; B; 784] with labels `y` [S; B], group-relative advantages (no critic,
    /// `Advantage.groupRelative`), `learnGroup`; adds the batch's KL to the reference, mean reward
    /// and fraction of groups with one reward for all guesses (zero advantages) to `sums` (the
    /// running sums since the last metrics row, see `Loop.rowsOf`).
    let internal update
        (cfg: GrpoConfig)
        (agent: Agent)
        (sampleGens: torch.Generator[])
        (sums: Tensor[])
        (x: Tensor)
        (y: Tensor)
        =
        let group = sampleGroup agent sampleGens cfg.GroupSize x y
        sums[1].add_(group.KlRef.to_type torch.float64) |> ignore
        let advantages = Advantage.groupRelative cfg.ScaleByStd group.Rewards
        learnGroup cfg agent sums x group advantages
        use _ng = torch.no_grad ()
        sums[0].add_(group.Rewards.mean([| 1L; 2L |]).to_type torch.float64) |> ignore
        let flat = group.Rewards.amax ([| 2L |]) - group.Rewards.amin ([| 2L |]) // [S; B]

        sums[7].add_(flat.eq(0.0f.ToScalar()).to_type(torch.float64).mean([| 1L |]))
        |> ignore
