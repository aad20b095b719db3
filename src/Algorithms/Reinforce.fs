/// REINFORCE, the Monte-Carlo policy gradient (Williams 1992; Sutton & Barto 2018, sec. 13.3),
/// with and without a learned state-value baseline (sec. 13.4), for discrete actions (seed 004
/// module 4). Each iteration plays `EpisodesPerBatch` complete episodes per seed with the current
/// policy, computes the discounted return G_t of every step, and takes one gradient step on
/// `Losses.reinforce`. S seeds train as one batched computation (see `Nn`).
///
/// `gradientVariance` measures what seed 004 module 4.3 describes: the variance of the
/// gradient estimate over repeated batches, with b = 0 and with b = V(s), on the same batches.
module Rl.Reinforce

open System
open TorchSharp
open Rl.Tensor
open Rl.Nn

/// REINFORCE hyperparameters.
type ReinforceConfig =
    {
        /// Environment id (discrete actions), e.g. "CartPole-v1".
        EnvId: string
        /// Policy updates.
        Iterations: int
        /// Complete episodes per seed per update.
        EpisodesPerBatch: int
        /// Discount factor.
        Gamma: float
        /// Policy (Adam) learning rate.
        Lr: float
        /// Value-network (Adam) learning rate.
        CriticLr: float
        /// Full-batch gradient steps of the value network per update.
        CriticEpochs: int
        /// Subtract the learned V(s) from the return (REINFORCE with baseline); the critic is
        /// trained either way, so `gradientVariance` can compare both estimators.
        Baseline: bool
        /// Hidden layer sizes of the policy and the value network.
        Hidden: int list
        /// Hidden activation.
        Activation: Activation
        /// Seed(s), device, threads and the optimizer's beta_1, beta_2, adam_eps (`RunSettings`).
        Run: RunSettings
        /// Evaluation episodes of the deterministic (most likely action) policy after training.
        EvalEpisodes: int
        /// Base seed of the evaluation environments: training seed s evaluates on starts drawn
        /// from EvalSeed + s.
        EvalSeed: int64
    }

    /// The seed values trained: `Run.Seeds`.
    member c.Seeds = c.Run.Seeds

/// Defaults for CartPole-v1: 8 episodes per update, gamma 0.99, Adam 1e-2 (policy) and 1e-2
/// (value, 10 full-batch steps per update), 64-64 tanh networks, with the baseline.
let defaults =
    {
        EnvId = "CartPole-v1"
        Iterations = 100
        EpisodesPerBatch = 8
        Gamma = 0.99
        Lr = 1e-2
        CriticLr = 1e-2
        CriticEpochs = 10
        Baseline = true
        Hidden = [ 64; 64 ]
        Activation = Tanh
        Run = RunSettings.Defaults
        EvalEpisodes = 10
        EvalSeed = 1_000_000L
    }

/// Policy, value network and their optimizers for S seeds.
type Agent =
    {
        Actor: Actor
        Critic: Critic
        /// Adam over the policy's parameters in one flat buffer.
        ActorOpt: Optim.FlatOptimizer
        /// Adam over the critic's parameters in one flat buffer.
        CriticOpt: Optim.FlatOptimizer
        Device: torch.Device
        Seeds: int64[]
    }

    interface IDisposable with
        member a.Dispose() =
            (a.ActorOpt :> IDisposable).Dispose()
            (a.CriticOpt :> IDisposable).Dispose()
            a.Actor.Dispose()
            a.Critic.Dispose()

/// Builds the categorical policy and the value network (PyTorch default initialisation) with
/// Adam. Raises `ArgumentException` for a non-discrete action space.
let makeAgent (cfg: ReinforceConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
    let n =
        match actionSpace with
        | Space.Discrete(n, _) -> n
        | other ->
            invalidArg
                "actionSpace"
                $"REINFORCE here needs a discrete action space, got {other}; allowed: CartPole-v1, Acrobot-v1, MountainCar-v0, FrozenLake-v1"

    let seeds = cfg.Seeds
    let S = seeds.Length

    let actor =
        new Actor("pi", S, obsDim, cfg.Hidden, cfg.Activation, CategoricalHead n)

    let critic = new Critic("v", S, obsDim, cfg.Hidden, cfg.Activation)
    actor.Initialise(TorchDefault, TorchDefault, seeds)
    critic.Initialise(TorchDefault, TorchDefault, seeds)
    actor.``to`` device |> ignore
    critic.``to`` device |> ignore
    let adam = Optim.Adam(cfg.Run.Beta1, cfg.Run.Beta2, cfg.Run.AdamEps)

    {
        Actor = actor
        Critic = critic
        ActorOpt = Optim.makeFlat adam cfg.Lr S (actor.parameters ())
        CriticOpt = Optim.makeFlat adam cfg.CriticLr S (critic.parameters ())
        Device = device
        Seeds = seeds
    }

/// A batch of complete episodes: E per seed, padded to the longest (T steps). Tensors are
/// [S; T * E] (step-major within a seed: index t * E + e), on the agent's device.
type EpisodeBatch =
    {
        /// [S; T*E; obsDim] observations.
        Obs: Tensor
        /// [S; T*E] int64 actions.
        Actions: Tensor
        /// [S; T*E] discounted returns G_t of each step (0 on padding).
        Returns: Tensor
        /// [S; T*E] 1 for real steps, 0 for padding after the episode ended.
        Mask: Tensor
        /// Per seed, the undiscounted return of each of its E episodes.
        EpisodeReturns: float[][]
        /// Per seed, the number of real steps.
        Steps: int64[]
    }

/// Plays one complete episode in each of the `S * E` copies of `env` (copy k*E + e belongs to
/// seed k) with actions sampled from the policy (generator `gen`), stops once every copy has
/// finished its first episode, and computes the Monte-Carlo returns with
/// `Advantage.discountedReturns` (no bootstrap: a time-limit cut counts as the end of the
/// return, G_T = 0). Raises `ArgumentException` when the env does not have S * E copies.
let collect
    (gamma: float)
    (agent: Agent)
    (env: IBatchedEnv)
    (episodes: int)
    (reset: int64)
    (gen: torch.Generator)
    : EpisodeBatch =
    let S = agent.Seeds.Length
    let E = episodes

    if env.NumEnvs <> S * E then
        invalidArg "env" $"Reinforce.collect: the environment has {env.NumEnvs} copies; need seeds x episodes = {S * E}"

    let obsDim = env.ObservationSpace.FlatSize
    use _ng = torch.no_grad ()
    let mutable obs = env.Reset reset

    let obsL, actL, rewL, termL, truncL, maskL =
        ResizeArray(), ResizeArray(), ResizeArray(), ResizeArray(), ResizeArray(), ResizeArray()

    let mutable alive = torch.ones ([| int64 (S * E) |], device = agent.Device)
    let epRet = torch.zeros ([| int64 (S * E) |], device = agent.Device)
    let mutable running = true

    while running do
        let x = obs.reshape (int64 S, int64 E, int64 obsDim)
        let action = Dist.sample [| gen |] (agent.Actor.Dist x) // [S; E]
        let r = env.Step(action.reshape (int64 (S * E)))
        obsL.Add x
        actL.Add action
        rewL.Add r.Reward
        termL.Add(r.Terminated.to_type torch.float32)
        truncL.Add(r.Truncated.to_type torch.float32)
        maskL.Add alive
        let isDone = r.Terminated.logical_or(r.Truncated).to_type torch.float32
        epRet.add_ (r.EpisodeReturn * isDone * alive) |> ignore
        alive <- alive * (1.0 - isDone)
        obs <- r.Obs
        running <- item (alive.sum ()) > 0.0

    let T = int64 obsL.Count
    // Time-major [T; S*E] for the return recursion.
    let stackTm (xs: ResizeArray<Tensor>) = torch.stack (xs, 0L)
    let rewards = stackTm rewL

    let returns =
        Advantage.discountedReturns gamma rewards (stackTm termL) (stackTm truncL) (torch.zeros_like rewards)

    let mask = stackTm maskL
    // [T; S*E] -> [S; T*E] (t-major within the seed)
    let toSeed (x: Tensor) =
        x.reshape(T, int64 S, int64 E).permute(1L, 0L, 2L).reshape(int64 S, T * int64 E)

    let obsAll = torch.stack(obsL, 1L).reshape(int64 S, T * int64 E, int64 obsDim) // [S; T; E; D] -> [S; T*E; D]
    let actAll = torch.stack(actL, 1L).reshape(int64 S, T * int64 E)
    let rets = toArray epRet
    let maskS = toSeed mask

    {
        Obs = obsAll
        Actions = actAll
        Returns = toSeed returns * maskS
        Mask = maskS
        EpisodeReturns = Array.init S (fun k -> rets[k * E .. k * E + E - 1])
        Steps = toArray (maskS.sum ([| 1L |])) |> Array.map int64
    }

/// The policy loss of a batch per seed [S]: `Losses.reinforce` with b = V(s) when `baseline`,
/// else b = 0.
let policyLoss (agent: Agent) (baseline: bool) (batch: EpisodeBatch) (episodes: int) : Tensor =
    let logp = Dist.logProb (agent.Actor.Dist batch.Obs) batch.Actions

    let b =
        if baseline then
            use _ng = torch.no_grad ()
            agent.Critic.forward batch.Obs
        else
            torch.zeros_like batch.Returns

    Losses.reinforce episodes logp batch.Returns b batch.Mask

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

/// Variance of the policy-gradient estimate, per seed.
type GradVariance =
    {
        /// Total variance (sum over parameters of the variance across batches) of the estimate
        /// with b = 0, [S].
        NoBaseline: float[]
        /// The same with b = V(s), on the same batches, [S].
        WithBaseline: float[]
        /// Squared norm of the mean gradient over the batches (b = 0), [S]: the signal.
        MeanGradSqNorm: float[]
    }

/// Collects `batches` independent batches of `episodes` episodes with the current policy and
/// computes both gradient estimates (b = 0 and b = V(s)) on each; returns their variances across
/// batches (unbiased, summed over all policy parameters). The policy is not changed.
let gradientVariance
    (cfg: ReinforceConfig)
    (agent: Agent)
    (env: IBatchedEnv)
    (batches: int)
    (episodes: int)
    (seed: int64)
    : GradVariance =
    if batches < 2 then
        invalidArg "batches" $"gradientVariance: need at least 2 batches, got {batches}"

    let S = agent.Seeds.Length
    let gen = Seed.generator agent.Device (Seed.derive seed "reinforce-variance")
    use scope = torch.NewDisposeScope()

    let grads baseline batch =
        agent.ActorOpt.ZeroGrad()
        (policyLoss agent baseline batch episodes).sum().backward()
        agent.ActorOpt.GradPerSeed()

    let g0, g1 =
        [
            for b in 0 .. batches - 1 do
                use s = torch.NewDisposeScope()

                let batch =
                    collect cfg.Gamma agent env episodes (Seed.derive seed $"variance-env/{b}") gen

                yield (grads false batch).MoveToOuterDisposeScope(), (grads true batch).MoveToOuterDisposeScope()
        ]
        |> List.unzip

    let g0: Tensor list = g0
    let g1: Tensor list = g1

    agent.ActorOpt.ZeroGrad()

    let var (gs: Tensor list) =
        toArray (torch.stack(gs, 0L).var(0L, unbiased = true).sum([| 1L |]))

    let mean0 = torch.stack(g0, 0L).mean([| 0L |])

    {
        NoBaseline = var g0
        WithBaseline = var g1
        MeanGradSqNorm = toArray (mean0.square().sum([| 1L |]))
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
    let agent = makeAgent cfg env.ObservationSpace.FlatSize env.ActionSpace device
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
                gradientVariance cfg agent env varianceBatches E (Seed.derive cfg.Run.Seed $"variance/{it}")
            )

        let batch = collect cfg.Gamma agent env E (Seed.derive cfg.Run.Seed $"env/{it}") gen
        // Actor step (baseline from the critic before it sees this batch).
        let loss = policyLoss agent cfg.Baseline batch E
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

/// The config keys of `ReinforceConfig` (snake_case, as in the YAML files).
let fields: Field<ReinforceConfig> list =
    [
        Field.envId "Environment id (discrete actions)." (fun c -> c.EnvId) (fun c v -> { c with EnvId = v })
        Field.int "iterations" "Policy updates." (Allow.ge 1) (fun c -> c.Iterations) (fun c v ->
            { c with Iterations = v })
        Field.int
            "episodes_per_batch"
            "Complete episodes per seed per update."
            (Allow.ge 1)
            (fun c -> c.EpisodesPerBatch)
            (fun c v -> { c with EpisodesPerBatch = v })
        Field.float "gamma" "Discount factor." (Allow.openClosed 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
            { c with Gamma = v })
        Field.float "lr" "Policy (Adam) learning rate." (Allow.gt 0.0) (fun c -> c.Lr) (fun c v -> { c with Lr = v })
        Field.float "critic_lr" "Value-network (Adam) learning rate." (Allow.gt 0.0) (fun c -> c.CriticLr) (fun c v ->
            { c with CriticLr = v })
        Field.int
            "critic_epochs"
            "Full-batch value-network steps per update."
            (Allow.ge 1)
            (fun c -> c.CriticEpochs)
            (fun c v -> { c with CriticEpochs = v })
        Field.bool
            "baseline"
            "Subtract the learned V(s) from the return (REINFORCE with baseline, Sutton & Barto 13.4)."
            (fun c -> c.Baseline)
            (fun c v -> { c with Baseline = v })
        Field.intList
            "hidden"
            "Hidden layer sizes of policy and value network."
            (Allow.ge 1)
            (fun c -> c.Hidden)
            (fun c v -> { c with Hidden = v })
        Field.activation (fun c -> c.Activation) (fun c v -> { c with Activation = v })
        yield! Field.runSettings (fun c -> c.Run) (fun c v -> { c with Run = v })
        Field.int
            "eval_episodes"
            "Deterministic evaluation episodes per seed at the end."
            (Allow.ge 1)
            (fun c -> c.EvalEpisodes)
            (fun c v -> { c with EvalEpisodes = v })
        Field.int64
            "eval_seed"
            "Base seed of the evaluation environments."
            (Allow.ge 0L)
            (fun c -> c.EvalSeed)
            (fun c v -> { c with EvalSeed = v })
    ]

/// Cross-field checks of a REINFORCE config (discrete actions); raises `ConfigError`.
let validate (c: ReinforceConfig) = Config.checkDiscreteEnv c.EnvId

/// The deterministic policy's (most likely action's) episode returns per seed over `episodes`
/// episodes, training seed s on starts drawn from `evalSeed + s` (`Ppo.evaluatePolicy`).
let evaluate (cfg: ReinforceConfig) (agent: Agent) (episodes: int) (evalSeed: int64) : float[][] =
    let device = Native.device cfg.Run.Device

    Ppo.evaluatePolicy
        true
        (fun n -> Envs.makeBatched cfg.EnvId n device)
        agent.Seeds
        agent.Device
        agent.Actor.Dist
        episodes
        evalSeed
