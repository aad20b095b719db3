/// Phase 4 of a PPO update: the metrics row of each seed (losses, KL, clip fraction, explained
/// variance, gradient norms and cosines, Adam moment norms, timings), its CSV columns and
/// CleanRL's TensorBoard tags, and the divergence check.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// One update's diagnostics for one seed.
type UpdateMetrics =
    {
        Seed: int64
        /// 1-based update index.
        Update: int
        /// Environment steps done by this seed so far.
        Step: int64
        /// Mean return of the episodes that ended during this update (NaN if none ended).
        EpisodicReturn: float
        /// Mean length of those episodes (NaN if none ended).
        EpisodicLength: float
        /// Episodes that ended during this update.
        Episodes: int
        ActorLoss: float
        CriticLoss: float
        Entropy: float
        ApproxKl: float
        ClipFraction: float
        ExplainedVariance: float
        /// Actor gradient norm before clipping (mean over minibatches).
        GradNorm: float
        /// Mean policy standard deviation over the rollout (NaN for discrete actions).
        SigmaMean: float
        /// Actor learning rate used in this update.
        Lr: float
        /// Environment steps per second over all seeds, this update.
        Sps: float
        /// Seconds spent collecting, computing GAE and learning in this update.
        RolloutSeconds: float
        GaeSeconds: float
        LearnSeconds: float
        /// Norm of Adam's first-moment estimate (exp_avg) of the policy network (the shared
        /// network when shared) after this update; NaN for other optimizers.
        AdamMNorm: float
        /// Norm of Adam's second-moment estimate (exp_avg_sq), likewise.
        AdamVNorm: float
        /// Cosine similarity of this update's mean pre-clip policy gradient with the previous
        /// update's (NaN at the first update).
        GradCosPrev: float
        /// Cosine similarity of this update's mean pre-clip gradient with the EMA (decay 0.99)
        /// of the earlier updates' gradients (NaN at the first update).
        GradCosEma: float
        /// Mean over the rollout's states of KL(old policy || updated policy), analytic, after
        /// this update's epochs (the PPO paper's d).
        Kl: float
        /// The KL coefficient beta used in this update (Loss = "kl_penalty"; NaN for "clip").
        KlBeta: float
    }

/// Wall-clock seconds of one update's phases.
type internal PhaseSeconds =
    {
        Rollout: float
        Gae: float
        Learn: float
    }

/// Metrics rows and the diagnostics behind them.
module Diagnostics =
    /// Metric names, in CSV column order, with CleanRL's TensorBoard tags.
    let metricColumns =
        [
            "update", "charts/update"
            "global_step", ""
            "episodic_return", "charts/episodic_return"
            "episodic_length", "charts/episodic_length"
            "episodes", "charts/episodes"
            "actor_loss", "losses/policy_loss"
            "critic_loss", "losses/value_loss"
            "entropy", "losses/entropy"
            "approx_kl", "losses/approx_kl"
            "clip_fraction", "losses/clipfrac"
            "explained_variance", "losses/explained_variance"
            "grad_norm", "losses/grad_norm"
            "sigma_mean", "charts/sigma_mean"
            "lr", "charts/learning_rate"
            "sps", "charts/SPS"
            "rollout_s", "time/rollout_s"
            "gae_s", "time/gae_s"
            "learn_s", "time/learn_s"
            "adam_m_norm", "optim/adam_m_norm"
            "adam_v_norm", "optim/adam_v_norm"
            "grad_cos_prev", "optim/grad_cos_prev"
            "grad_cos_ema", "optim/grad_cos_ema"
            "kl", "losses/kl"
            "kl_beta", "losses/kl_beta"
        ]

    /// The metric values of one row, in `metricColumns` order.
    let metricValues (m: UpdateMetrics) =
        [|
            float m.Update
            float m.Step
            m.EpisodicReturn
            m.EpisodicLength
            float m.Episodes
            m.ActorLoss
            m.CriticLoss
            m.Entropy
            m.ApproxKl
            m.ClipFraction
            m.ExplainedVariance
            m.GradNorm
            m.SigmaMean
            m.Lr
            m.Sps
            m.RolloutSeconds
            m.GaeSeconds
            m.LearnSeconds
            m.AdamMNorm
            m.AdamVNorm
            m.GradCosPrev
            m.GradCosEma
            m.Kl
            m.KlBeta
        |]

    /// Decay of the exponential moving average of past policy gradients (`grad_cos_ema`).
    let internal gradEmaDecay = 0.99

    /// Seed 001's gradient diagnostics: the cosine similarity per seed of this update's mean policy
    /// gradient `g` [S; P] with the previous update's and with the moving average of past ones (NaN
    /// when there is none yet); then moves that history, kept in `progress`, on.
    let internal gradCosines (progress: Progress) (g: Tensor) : float[] * float[] =
        use _ng = torch.no_grad ()
        let S = int g.shape[0]

        let cosineWith (h: Tensor) =
            if isNull h then
                Array.create S nan
            else
                toArray (Optim.cosineSimilarityPerSeed g h)

        let cp = cosineWith progress.PrevGrad
        let ce = cosineWith progress.EmaGrad

        if isNull progress.EmaGrad then
            progress.EmaGrad <- torch.zeros_like(g).DetachFromDisposeScope()

        progress.EmaGrad.mul_(gradEmaDecay.ToScalar()).add_(g * (1.0 - gradEmaDecay))
        |> ignore

        if not (isNull progress.PrevGrad) then
            progress.PrevGrad.Dispose()

        progress.PrevGrad <- g.clone().DetachFromDisposeScope()
        cp, ce

    /// The PPO paper's d for one update: the mean over the batch's states of KL(old policy ||
    /// updated policy), analytic (`Dist.kl`), per seed. No gradient; one read to the host.
    let internal policyKl (agent: Agent) (batch: Batch) : float[] =
        use _ng = torch.no_grad ()
        toArray ((Dist.kl batch.OldDist (agent.Dist batch.Obs)).mean([| 1L |]))

    /// Phase 4, log: one `UpdateMetrics` row per seed from the rollout, the batch, the learning sums
    /// and the optimizer state (means over the update's minibatch steps), read to the host once;
    /// `steps_per_second` counts the update's whole time on `clock`, these reads included.
    let internal metricsRows
        (cfg: PpoConfig)
        (agent: Agent)
        (progress: Progress)
        (lr: float)
        (clock: Stopwatch)
        (seconds: PhaseSeconds)
        (kl: float[])
        (klBeta: float[])
        (r: Rollout)
        (batch: Batch)
        (sums: LearnSums)
        : UpdateMetrics[] =
        let seeds = agent.Seeds
        let S = seeds.Length
        let T = cfg.NumSteps
        let nSteps = float (cfg.UpdateEpochs * cfg.MinibatchesPerEpoch)
        let mNorm, vNorm = agent.ActorOpt.AdamMomentNorms()
        let cosPrev, cosEma = gradCosines progress (sums.Grad / nSteps)
        let mNorm, vNorm = toArray mNorm, toArray vNorm
        let explVar = toArray (Losses.explainedVariance batch.Values batch.Returns)
        let h (t: Tensor) = toArray t
        let actorL, criticL, ent = h sums.ActorLoss, h sums.CriticLoss, h sums.Entropy
        let approxKl, clipF, grad = h sums.ApproxKl, h sums.ClipFraction, h sums.GradNorm
        let epRet, epLen, epN = h r.EpisodeReturnSum, h r.EpisodeLengthSum, h r.EpisodeCount
        let sigma = h r.SigmaSum
        let isDiscrete = r.Action.dim () = 3L
        let sps = float (cfg.BatchSize * S) / clock.Elapsed.TotalSeconds

        [|
            for k in 0 .. S - 1 ->
                {
                    Seed = seeds[k]
                    Update = progress.Update
                    Step = progress.GlobalStep
                    EpisodicReturn = (if epN[k] > 0.0 then epRet[k] / epN[k] else nan)
                    EpisodicLength = (if epN[k] > 0.0 then epLen[k] / epN[k] else nan)
                    Episodes = int epN[k]
                    ActorLoss = actorL[k] / nSteps
                    CriticLoss = criticL[k] / nSteps
                    Entropy = ent[k] / nSteps
                    ApproxKl = approxKl[k] / nSteps
                    ClipFraction = clipF[k] / nSteps
                    ExplainedVariance = explVar[k]
                    GradNorm = grad[k] / nSteps
                    SigmaMean = (if isDiscrete then nan else sigma[k] / float T)
                    Lr = lr
                    Sps = sps
                    RolloutSeconds = seconds.Rollout
                    GaeSeconds = seconds.Gae
                    LearnSeconds = seconds.Learn
                    AdamMNorm = mNorm[k]
                    AdamVNorm = vNorm[k]
                    GradCosPrev = cosPrev[k]
                    GradCosEma = cosEma[k]
                    Kl = kl[k]
                    KlBeta = (if cfg.KlPenalty then klBeta[k] else nan)
                }
        |]

    /// Raises `TrainingDivergedException` when a loss or statistic of a row is NaN or infinite.
    let internal checkFinite (rows: UpdateMetrics[]) =
        for r in rows do
            for name, v in
                [
                    "actor_loss", r.ActorLoss
                    "critic_loss", r.CriticLoss
                    "entropy", r.Entropy
                    "approx_kl", r.ApproxKl
                ] do
                if Double.IsNaN v || Double.IsInfinity v then
                    raise (Train.TrainingDivergedException(r.Update, name, v))
