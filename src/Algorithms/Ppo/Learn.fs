/// Phases 2 and 3 of a PPO update: advantages (GAE, Schulman et al. 2016) and learning (epochs of
/// shuffled minibatches, the clipped or KL-penalised surrogate of Schulman et al. 2017, eqs. 7
/// and 8, and the value loss), with the learning-rate schedule.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// What the learning phase trains on, per seed over the M = T * N samples of a rollout in
/// (t, n) order: preprocessed observations [S; M; obsDim], actions [S; M] or [S; M; actDim],
/// and [S; M] old values, old log-probabilities, advantages and returns; and the old policy's
/// distribution over the M states (for the KL penalty and the `kl` diagnostic).
type Batch =
    {
        Obs: Tensor
        Action: Tensor
        Values: Tensor
        LogProbOld: Tensor
        Advantages: Tensor
        Returns: Tensor
        OldDist: Dist
    }

/// Per-seed sums over the minibatch steps of one update (update_epochs x minibatches per epoch),
/// float64 [S] each, and the sum of the pre-clip policy gradients, [S; P] (P = policy or shared
/// parameters, flattened). Divide by the step count for the means `UpdateMetrics` reports.
type LearnSums =
    {
        ActorLoss: Tensor
        CriticLoss: Tensor
        Entropy: Tensor
        ApproxKl: Tensor
        ClipFraction: Tensor
        GradNorm: Tensor
        Grad: Tensor
    }

/// One minibatch's losses per seed [S] and the policy network's pre-clip gradient norm [S].
type internal MinibatchTerms =
    {
        PolicyLoss: Tensor
        Stats: Losses.PpoStats
        Entropy: Tensor
        ValueLoss: Tensor
        GradNorm: Tensor
    }

/// Advantages, minibatch steps and the learning phase.
module Learn =
    /// Phase 2, advantages (Schulman et al. 2016, GAE): the old policy's values and log-probabilities
    /// of the rollout, then `Advantage.gae` over time-major [T; S*N] views (truncated steps
    /// bootstrap from V(final obs)); with `NormAdvBatch` the advantages are normalised once per
    /// seed over the whole rollout (seed 001). No gradient.
    let advantages (cfg: PpoConfig) (agent: Agent) (obsStats: RunningMeanStd option) (r: Rollout) : Batch =
        use _ng = torch.no_grad ()
        let S, T, N = r.Obs.shape[0], r.Obs.shape[1], r.Obs.shape[2]
        let M = T * N
        let obsDim = r.Obs.shape[3]

        let flat (x: Tensor) =
            Normalizers.preprocess obsStats (x.reshape (S, M, obsDim))

        let obs = flat r.Obs

        let action =
            if r.Action.dim () = 3L then
                r.Action.reshape (S, M)
            else
                r.Action.reshape (S, M, r.Action.shape[3])

        let values = agent.Value obs // [S; M]
        let nextValues = agent.Value(flat r.FinalObs)
        let oldDist = agent.Dist obs
        let logProbOld = Dist.logProb oldDist action
        // GAE wants time-major [T; B]: [S; T; N] -> [T; S*N], and back to [S; M] in (t, n) order.
        let tm (x: Tensor) =
            x.reshape(S, T, N).permute(1L, 0L, 2L).reshape(T, S * N)

        let back (x: Tensor) =
            x.reshape(T, S, N).permute(1L, 0L, 2L).reshape(S, M)

        let adv, ret =
            Advantage.gae
                cfg.Gamma
                cfg.GaeLambda
                (tm r.Reward)
                (tm values)
                (tm nextValues)
                (tm r.Terminated)
                (tm r.Truncated)

        {
            Obs = obs
            Action = action
            Values = values
            LogProbOld = logProbOld
            Advantages =
                (if cfg.NormAdvBatch then
                     Advantage.normalize (back adv)
                 else
                     back adv)
            Returns = back ret
            OldDist = oldDist
        }

    /// The rows of every field of `batch` at the indices `idx` [S; B]: a minibatch (the old
    /// distribution too when `withOldDist`, else it is left whole and must not be used).
    let internal minibatchOf (withOldDist: bool) (idx: Tensor) (batch: Batch) : Batch =
        let take = takeRows idx

        {
            Obs = take batch.Obs
            Action = take batch.Action
            Values = take batch.Values
            LogProbOld = take batch.LogProbOld
            Advantages = take batch.Advantages
            Returns = take batch.Returns
            OldDist =
                (if withOldDist then
                     Dist.takeRows idx batch.OldDist
                 else
                     batch.OldDist)
        }

    /// One gradient step on a minibatch `mb` (advantages already normalised as configured). The
    /// surrogate is the clipped one, or with `cfg.KlPenalty` the KL-penalised one with coefficients
    /// `klBeta` [S]. Shared network: one loss (surrogate + vf_coef * value loss - ent_coef *
    /// entropy), one backward pass, one clipped step (seed 001); separate networks: an actor step
    /// (surrogate - ent_coef * entropy), then a critic step. `onPolicyGrad` runs after the policy's
    /// backward pass, before clipping (it records the gradient for the diagnostics).
    let internal minibatchStep
        (cfg: PpoConfig)
        (agent: Agent)
        (klBeta: Tensor)
        (onPolicyGrad: unit -> unit)
        (mb: Batch)
        : MinibatchTerms =
        // Surrogate [S], its statistics and the mean entropy [S].
        let policyTerms dist =
            let logProbNew = Dist.logProb dist mb.Action

            let pgLoss, stats =
                if cfg.KlPenalty then
                    Losses.ppoKlPenalty
                        klBeta
                        cfg.ClipEps
                        logProbNew
                        mb.LogProbOld
                        mb.Advantages
                        (Dist.kl mb.OldDist dist)
                else
                    Losses.ppoClip cfg.ClipEps logProbNew mb.LogProbOld mb.Advantages

            pgLoss, stats, (Dist.entropy dist).mean([| 1L |])

        // Value regression on the GAE returns, [S] (clipped around the old values if clip_vloss > 0).
        let valueTerm v =
            Losses.valueLoss (if cfg.ClipVloss > 0.0 then Some cfg.ClipVloss else None) v mb.Values mb.Returns

        // Profile sections (bench.fsx profile): learn.forward (networks and losses), learn.backward,
        // learn.clip (clipping and the gradient diagnostics), learn.step (optimizer).
        let backward (opt: Optim.FlatOptimizer) (loss: Tensor) =
            Profile.section "learn.backward" (fun () ->
                opt.ZeroGrad()
                loss.sum().backward())

        let optimizerStep (opt: Optim.FlatOptimizer) =
            Profile.section "learn.step" (fun () -> opt.Step())

        let stepPolicy (loss: Tensor) =
            backward agent.ActorOpt loss

            let gradNorm =
                Profile.section "learn.clip" (fun () ->
                    onPolicyGrad ()

                    if cfg.MaxGradNorm > 0.0 then
                        agent.ActorOpt.ClipGradNormPerSeed cfg.MaxGradNorm
                    else
                        agent.ActorOpt.GradNormPerSeed())

            optimizerStep agent.ActorOpt
            gradNorm

        match agent.Shared with
        | Some net ->
            let loss, pgLoss, stats, entropy, vLoss =
                Profile.section "learn.forward" (fun () ->
                    let dist, v = net.DistValue mb.Obs
                    let pgLoss, stats, entropy = policyTerms dist
                    let vLoss = valueTerm v
                    pgLoss + cfg.VfCoef * vLoss - cfg.EntCoef * entropy, pgLoss, stats, entropy, vLoss)

            let gradNorm = stepPolicy loss

            {
                PolicyLoss = pgLoss
                Stats = stats
                Entropy = entropy
                ValueLoss = vLoss
                GradNorm = gradNorm
            }
        | None ->
            let pgLoss, stats, entropy =
                Profile.section "learn.forward" (fun () -> policyTerms (agent.Actor.Dist mb.Obs))

            let gradNorm = stepPolicy (pgLoss - cfg.EntCoef * entropy)

            let vLoss =
                Profile.section "learn.forward" (fun () -> valueTerm (agent.Critic.forward mb.Obs))

            backward agent.CriticOpt vLoss

            if cfg.MaxGradNorm > 0.0 then
                Profile.section "learn.clip" (fun () -> agent.CriticOpt.ClipGradNormPerSeed cfg.MaxGradNorm)
                |> ignore

            optimizerStep agent.CriticOpt

            {
                PolicyLoss = pgLoss
                Stats = stats
                Entropy = entropy
                ValueLoss = vLoss
                GradNorm = gradNorm
            }

    /// Phase 3, learn (Schulman et al. 2017, Algorithm 1, "optimize surrogate L wrt theta, with K
    /// epochs and minibatch size M"; CleanRL ppo.py's "optimizing the policy and value network"):
    /// `cfg.UpdateEpochs` passes, each over a fresh permutation per seed (drawn from `shuffleGens`,
    /// one generator per seed) cut into `cfg.MinibatchesPerEpoch` minibatches of
    /// `cfg.MinibatchLength` samples, one `minibatchStep` each. Gradient norms are clipped per seed
    /// to `cfg.MaxGradNorm` (0 = no clipping). Advantages are normalised per minibatch when
    /// `cfg.NormAdv` and not `cfg.NormAdvBatch`. `klBeta` holds each seed's KL coefficient (used
    /// with `cfg.KlPenalty` only). Tensors it returns belong to the caller's scope.
    let learn
        (cfg: PpoConfig)
        (agent: Agent)
        (shuffleGens: torch.Generator[])
        (klBeta: float[])
        (batch: Batch)
        : LearnSums =
        let S = agent.Seeds.Length
        let M = batch.Obs.shape[1]
        let device = batch.Obs.device
        let B = cfg.MinibatchLength

        let beta =
            if cfg.KlPenalty then
                torch.tensor (klBeta, dtype = torch.float32, device = device)
            else
                null

        // Rows: policy loss, value loss, entropy, approx KL, clip fraction, gradient norm; [6; S]
        // float64, summed over the minibatch steps on the device and read once per update.
        let sums = torch.zeros ([| 6L; int64 S |], dtype = torch.float64, device = device)

        // Sum over minibatches of the pre-clip policy gradient, in the flat buffer's layout [S * P]
        // (gathered into [S; P] once, after the last minibatch).
        let gradSum = torch.zeros_like agent.ActorOpt.Grad

        let addGrad () =
            use _ng = torch.no_grad ()
            gradSum.add_ agent.ActorOpt.Grad |> ignore

        for _epoch in 1 .. cfg.UpdateEpochs do
            use epochScope = torch.NewDisposeScope()

            let perm =
                torch.stack([| for g in shuffleGens -> torch.randperm (M, generator = g) |], 0L).``to`` device

            for j in 0 .. cfg.MinibatchesPerEpoch - 1 do
                use mbScope = torch.NewDisposeScope()

                let mb =
                    Profile.section "learn.gather" (fun () ->
                        let mb = minibatchOf cfg.KlPenalty (perm.narrow (1L, int64 (j * B), int64 B)) batch

                        if cfg.NormAdv && not cfg.NormAdvBatch then
                            { mb with
                                Advantages = Advantage.normalize mb.Advantages
                            }
                        else
                            mb)

                let terms =
                    Profile.section "learn.minibatch" (fun () -> minibatchStep cfg agent beta addGrad mb)

                use _ng = torch.no_grad ()

                Profile.section "learn.sums" (fun () ->
                    let row =
                        torch.stack (
                            [|
                                terms.PolicyLoss
                                terms.ValueLoss
                                terms.Entropy
                                terms.Stats.ApproxKl
                                terms.Stats.ClipFraction
                                terms.GradNorm
                            |],
                            0L
                        )

                    sums.add_ (row.to_type torch.float64) |> ignore)

        {
            ActorLoss = sums[0]
            CriticLoss = sums[1]
            Entropy = sums[2]
            ApproxKl = sums[3]
            ClipFraction = sums[4]
            GradNorm = sums[5]
            Grad = agent.ActorOpt.PerSeed gradSum
        }

    /// Sets both learning rates for update `update` (1-based; annealed linearly to 0 over the run
    /// when `AnnealLr`) and returns the policy's.
    let internal setLearningRates (cfg: PpoConfig) (agent: Agent) (update: int) =
        let policyLr = if cfg.SharedNetwork then cfg.Lr else cfg.ActorLr

        let at lr =
            if cfg.AnnealLr then
                Optim.linearSchedule lr cfg.NumUpdates update
            else
                lr

        Optim.setLearningRate agent.ActorOpt.Optimizer (at policyLr)

        if not cfg.SharedNetwork then
            Optim.setLearningRate agent.CriticOpt.Optimizer (at cfg.CriticLr)

        at policyLr
