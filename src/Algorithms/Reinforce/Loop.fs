/// The REINFORCE loop: per update, play `episodes_per_batch` complete episodes per seed, take one
/// policy step on the Monte-Carlo returns (minus the baseline) and `critic_epochs` value steps,
/// and log one metrics row per seed.
namespace Rl.Reinforce

open System
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// One metrics row per seed per update.
type ReinforceMetrics =
    {
        Seed: int64
        Iteration: int
        /// Environment steps of this seed so far.
        Step: int64
        /// Mean undiscounted return of this update's episodes.
        EpisodicReturn: float
        ActorLoss: float
        /// Mean squared error of V(s) against G_t over the batch's real steps.
        CriticLoss: float
        /// Policy gradient norm.
        GradNorm: float
    }

/// What `train` returns.
type TrainResult =
    {
        Agent: Agent
        Metrics: ReinforceMetrics list
        /// `(iteration, variance)` for every measurement requested by `varianceEvery`.
        Variance: (int * GradVariance) list
        WallSeconds: float
    }

/// Hooks through which a caller (the run driver) watches a run.
type Hooks =
    {
        /// Called after every update with the update's metrics rows, one per seed.
        OnIteration: Agent -> ReinforceMetrics[] -> unit
    }

/// Metrics rows and training REINFORCE.
module Loop =
    /// Hooks that do nothing.
    let noHooks = { OnIteration = fun _ _ -> () }

    /// Metric names in CSV column order, with TensorBoard tags.
    let metricColumns =
        [
            "iteration", "charts/iteration"
            "global_step", ""
            "episodic_return", "charts/episodic_return"
            "actor_loss", "losses/policy_loss"
            "critic_loss", "losses/value_loss"
            "grad_norm", "losses/grad_norm"
        ]

    /// The metric values of one row, in `metricColumns` order.
    let metricValues (m: ReinforceMetrics) =
        [|
            float m.Iteration
            float m.Step
            m.EpisodicReturn
            m.ActorLoss
            m.CriticLoss
            m.GradNorm
        |]

    /// Trains REINFORCE for `cfg.Iterations` updates, calling `hooks.OnIteration` after each; every
    /// `varianceEvery` updates (0: never) measures `gradientVariance` over `varianceBatches` batches
    /// before the update. Deterministic for a config on the CPU. Raises `ArgumentException` for
    /// Iterations or EpisodesPerBatch < 1.
    let trainWith (hooks: Hooks) (cfg: ReinforceConfig) (varianceEvery: int) (varianceBatches: int) : TrainResult =
        if cfg.Iterations < 1 || cfg.EpisodesPerBatch < 1 then
            invalidArg
                "cfg"
                $"Reinforce.train: Iterations and EpisodesPerBatch must be >= 1, got {cfg.Iterations} and {cfg.EpisodesPerBatch}"

        let device = Native.device cfg.Run.Device

        if cfg.Run.Threads > 0 then
            Native.setThreads cfg.Run.Threads

        let S = cfg.Run.NumSeeds
        let E = cfg.EpisodesPerBatch
        use env = Envs.makeBatched cfg.EnvId (S * E) device
        Seed.setGlobal cfg.Run.Seed
        let agent = Agent.make cfg env.ObservationSpace.FlatSize env.ActionSpace device
        let gen = Seed.generator device (Seed.derive cfg.Run.Seed "reinforce-policy")
        let metrics = ResizeArray()
        let variances = ResizeArray()
        let steps = Array.zeroCreate<int64> S
        let clock = Diagnostics.Stopwatch.StartNew()

        for it in 1 .. cfg.Iterations do
            use scope = torch.NewDisposeScope()

            if varianceEvery > 0 && (it = 1 || it % varianceEvery = 0) then
                variances.Add(
                    it,
                    Agent.gradientVariance cfg agent env varianceBatches E (Seed.derive cfg.Run.Seed $"variance/{it}")
                )

            let batch =
                Agent.collect cfg.Gamma agent env E (Seed.derive cfg.Run.Seed $"env/{it}") gen
            // Actor step (baseline from the critic before it sees this batch).
            let loss = Agent.policyLoss agent cfg.Baseline batch E
            agent.ActorOpt.ZeroGrad()
            loss.sum().backward()

            let gradNorm = agent.ActorOpt.GradNormPerSeed()

            agent.ActorOpt.Step()
            // Critic steps: MSE of V(s) against G_t on real steps.
            let n = batch.Mask.sum([| 1L |]).clamp_min((1.0).ToScalar())
            let mutable vLoss = torch.zeros ([| int64 S |], device = device)

            for _ in 1 .. max 1 cfg.CriticEpochs do
                let v = agent.Critic.forward batch.Obs
                vLoss <- ((v - batch.Returns).square() * batch.Mask).sum([| 1L |]) / n
                agent.CriticOpt.ZeroGrad()
                vLoss.sum().backward()
                agent.CriticOpt.Step()

            let l, vl, g = toArray loss, toArray vLoss, toArray gradNorm

            let rows =
                [|
                    for k in 0 .. S - 1 ->
                        steps[k] <- steps[k] + batch.Steps[k]

                        {
                            Seed = agent.Seeds[k]
                            Iteration = it
                            Step = steps[k]
                            EpisodicReturn = Array.average batch.EpisodeReturns[k]
                            ActorLoss = l[k]
                            CriticLoss = vl[k]
                            GradNorm = g[k]
                        }
                |]

            metrics.AddRange rows
            hooks.OnIteration agent rows

        {
            Agent = agent
            Metrics = List.ofSeq metrics
            Variance = List.ofSeq variances
            WallSeconds = clock.Elapsed.TotalSeconds
        }

    /// `trainWith noHooks`.
    let train (cfg: ReinforceConfig) (varianceEvery: int) (varianceBatches: int) : TrainResult =
        trainWith noHooks cfg varianceEvery varianceBatches
