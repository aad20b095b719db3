/// Proximal Policy Optimization (Schulman et al. 2017) for discrete and continuous actions,
/// with separate actor and critic networks (seed 002) and S seeds trained as one batched
/// computation (every parameter has a leading seed axis; see `Nn`).
///
/// One update reads top to bottom like the seed's pseudo-code: collect a rollout of
/// `NumSteps` steps in each of `NumEnvs` environments per seed, compute values and GAE,
/// learn for `UpdateEpochs` epochs of shuffled minibatches, log, discard.
module Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// PPO hyperparameters. Config keys (snake_case) are listed in `fields`.
type PpoConfig =
    {
        /// Environment id, e.g. "Pendulum-v1".
        EnvId: string
        /// Parallel environments per seed.
        NumEnvs: int
        /// Rollout length per environment per update (the rollout holds NumEnvs * NumSteps steps).
        NumSteps: int
        /// Environment steps per seed over the whole run.
        TotalTimesteps: int64
        /// Passes over each rollout.
        UpdateEpochs: int
        /// Samples per minibatch (per seed); used when `NumMinibatches` is 0.
        MinibatchSize: int
        /// Minibatches per epoch (CleanRL's and PureJaxRL's `num_minibatches`); when > 0 it must
        /// divide BatchSize and sets the minibatch to BatchSize / NumMinibatches samples, so that
        /// a sweep over `num_envs` or `num_steps` keeps the number of gradient steps per update;
        /// 0 uses `MinibatchSize` instead.
        NumMinibatches: int
        /// Discount factor.
        Gamma: float
        /// GAE lambda.
        GaeLambda: float
        /// PPO clip range epsilon.
        ClipEps: float
        /// Actor (policy) learning rate.
        ActorLr: float
        /// Critic (value) learning rate.
        CriticLr: float
        /// Anneal both learning rates linearly to 0 over the run.
        AnnealLr: bool
        /// Entropy bonus coefficient.
        EntCoef: float
        /// Global gradient-norm clip per network and seed; 0 disables clipping.
        MaxGradNorm: float
        /// Normalise advantages per minibatch.
        NormAdv: bool
        /// Clip the value loss with this range (CleanRL `clip_vloss`); 0 disables it.
        ClipVloss: float
        /// Hidden layer sizes of actor and critic.
        Hidden: int list
        /// Hidden activation.
        Activation: Activation
        /// Gaussian standard deviation parameterisation (seed 003's three kinds): "softplus"
        /// (state-conditioned, seed 002), "logstd" (a state-independent learned parameter) or
        /// "fixed" (the constant `FixedSigma`, not learned).
        Sigma: string
        /// The standard deviation when Sigma = "fixed" (action units, > 0).
        FixedSigma: float
        /// Initial log standard deviation for Sigma = "logstd".
        InitLogStd: float
        /// Squash the Gaussian mean with high * tanh(.) (seed 002) instead of leaving it linear.
        MeanTanh: bool
        /// Weight initialisation: "orthogonal" (CleanRL) or "default" (PyTorch nn.Linear).
        Init: string
        /// Normalise observations with running mean/variance.
        NormObs: bool
        /// Scale rewards by a running estimate of the discounted return's std.
        NormReward: bool
        /// Seed(s), device, threads and the optimizer's beta_1, beta_2, adam_eps (`RunSettings`).
        Run: RunSettings
        /// Evaluation episodes (deterministic policy) at the end of training.
        EvalEpisodes: int
        /// Base seed of the evaluation environments: training seed s evaluates on starts drawn
        /// from EvalSeed + s (kept apart from the training streams).
        EvalSeed: int64
        /// One network with a shared trunk and policy/value heads (seed 001), trained with the
        /// total loss surrogate + VfCoef * value loss - EntCoef * entropy by one optimizer at
        /// learning rate `Lr`; false: separate actor and critic (seed 002).
        SharedNetwork: bool
        /// With `SharedNetwork`: whether policy and value share the trunk (seed 001); false gives
        /// two MLPs in one network trained by one optimizer on the total loss with one gradient
        /// clip, which is CleanRL's and PureJaxRL's CartPole agent.
        ShareTrunk: bool
        /// Value-loss coefficient of the total loss (shared network only).
        VfCoef: float
        /// Learning rate of the single optimizer of the shared network.
        Lr: float
        /// Optimizer: "adam", "rmsprop" (alpha = Beta2) or "sgd"; applies to both paths.
        Optimizer: string
        /// Normalise advantages once over the whole rollout per seed (seed 001) instead of per
        /// minibatch; takes precedence over `NormAdv`.
        NormAdvBatch: bool
        /// How the N copies of the environment are stepped (Gymnasium's `make_vec` names):
        /// "vector" is the tensor-batched form (`BatchedClassicEnv`, on the device, the only
        /// choice for CUDA); "sync" is `SyncVectorEnv`, the single forms stepped one after
        /// another on the host (faster on the CPU for few copies, bit-exact with Gymnasium).
        /// The two draw different reset streams, so a run's episodes depend on this choice.
        VectorizationMode: string
        /// The policy loss: "clip" (the clipped surrogate, PPO paper eq. 7) or "kl_penalty" (the
        /// surrogate minus beta * KL(old || new) with an adaptive beta, section 4; seed 003's PPO1).
        Loss: string
        /// Initial KL coefficient beta for Loss = "kl_penalty" (per seed, adapted after every update).
        KlBeta: float
        /// Target KL d_targ for Loss = "kl_penalty": beta halves when the update's KL < d_targ / 1.5
        /// and doubles when > 1.5 d_targ.
        KlTarget: float
    }

    /// Rollout size per seed: NumEnvs * NumSteps.
    member c.BatchSize = c.NumEnvs * c.NumSteps
    /// Number of updates: TotalTimesteps / BatchSize (at least 1).
    member c.NumUpdates = max 1 (int (c.TotalTimesteps / int64 c.BatchSize))

    /// Samples per minibatch actually used: BatchSize / NumMinibatches when NumMinibatches > 0,
    /// else MinibatchSize.
    member c.MinibatchLength =
        if c.NumMinibatches > 0 then
            c.BatchSize / c.NumMinibatches
        else
            c.MinibatchSize

    /// Minibatches per epoch: NumMinibatches when set, else BatchSize / MinibatchSize (samples
    /// left over are skipped in that epoch).
    member c.MinibatchesPerEpoch =
        if c.NumMinibatches > 0 then
            c.NumMinibatches
        else
            c.BatchSize / c.MinibatchSize

    /// The seed values trained: `Run.Seeds`.
    member c.Seeds = c.Run.Seeds

    /// True for Loss = "kl_penalty" (the KL-penalised surrogate), false for "clip".
    member c.KlPenalty = c.Loss = "kl_penalty"

/// Seed 002's table (Pendulum-v1): 100,000 steps, one environment, rollout 2048, 10 epochs,
/// minibatch 64, gamma 0.99, lambda 0.95, clip 0.2, actor lr 3e-4, critic lr 1e-3,
/// mu = 2 tanh, sigma = softplus + 1e-5, 64-64 ReLU networks.
let seedDefaults =
    {
        EnvId = "Pendulum-v1"
        NumEnvs = 1
        NumSteps = 2048
        TotalTimesteps = 100_000L
        UpdateEpochs = 10
        MinibatchSize = 64
        NumMinibatches = 0
        Gamma = 0.99
        GaeLambda = 0.95
        ClipEps = 0.2
        ActorLr = 3e-4
        CriticLr = 1e-3
        AnnealLr = false
        EntCoef = 0.0
        MaxGradNorm = 0.0
        NormAdv = true
        ClipVloss = 0.0
        Hidden = [ 64; 64 ]
        Activation = Relu
        Sigma = "softplus"
        InitLogStd = 0.0
        MeanTanh = true
        Init = "default"
        NormObs = false
        NormReward = false
        Run = RunSettings.Defaults
        EvalEpisodes = 10
        EvalSeed = 1_000_000L
        SharedNetwork = false
        ShareTrunk = true
        VfCoef = 0.5
        Lr = 3e-4
        Optimizer = "adam"
        NormAdvBatch = false
        VectorizationMode = "vector"
        Loss = "clip"
        KlBeta = 1.0
        KlTarget = 0.01
        FixedSigma = 0.5
    }

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

/// Raised when a loss or statistic becomes NaN or infinite: names the update and quantity.
exception TrainingDivergedException of update: int * quantity: string * value: float with
    override e.Message =
        $"training diverged at update {e.update}: {e.quantity} = {e.value}. Metrics up to the previous update are kept; "
        + "resume from the last checkpoint with a lower learning rate or check the environment's rewards."

/// The networks and optimizers of a PPO agent for S seeds. With separate networks `Actor`,
/// `Critic`, `ActorOpt` and `CriticOpt` are set and `Shared` is None; with a shared network
/// `Shared` holds it, `ActorOpt` is its one optimizer, and `Actor`, `Critic`, `CriticOpt` are
/// null (use the members `Dist`, `Value`, `Modules`, `Optimizers`, which work for both).
type Agent =
    {
        Actor: Actor
        Critic: Critic
        /// The policy's (or the shared network's) optimizer over one flat parameter buffer.
        ActorOpt: Optim.FlatOptimizer
        /// The critic's optimizer over one flat parameter buffer (null with a shared network).
        CriticOpt: Optim.FlatOptimizer
        Device: torch.Device
        Seeds: int64[]
        /// The shared-trunk actor-critic when `SharedNetwork`.
        Shared: ActorCritic option
    }

    /// The policy's action distribution for observations [S; B; obsDim].
    member a.Dist(obs: Tensor) : Dist =
        match a.Shared with
        | Some net -> net.Dist obs
        | None -> a.Actor.Dist obs

    /// State values [S; B] for observations [S; B; obsDim].
    member a.Value(obs: Tensor) : Tensor =
        match a.Shared with
        | Some net -> net.Value obs
        | None -> a.Critic.forward obs

    /// The modules by checkpoint name: "actor", "critic" (separate) or "actor_critic" (shared).
    member a.Modules: (string * torch.nn.Module) list =
        match a.Shared with
        | Some net -> [ "actor_critic", net :> torch.nn.Module ]
        | None -> [ "actor", a.Actor :> torch.nn.Module; "critic", a.Critic :> torch.nn.Module ]

    /// The flat-buffer optimizers by checkpoint name: "actor_opt", "critic_opt" (separate) or
    /// "opt" (shared).
    member a.FlatOptimizers: (string * Optim.FlatOptimizer) list =
        match a.Shared with
        | Some _ -> [ "opt", a.ActorOpt ]
        | None -> [ "actor_opt", a.ActorOpt; "critic_opt", a.CriticOpt ]

    /// The TorchSharp optimizers (what checkpoints save) by checkpoint name, as `FlatOptimizers`.
    member a.Optimizers: (string * torch.optim.Optimizer) list =
        a.FlatOptimizers |> List.map (fun (name, o) -> name, o.Optimizer)

    interface IDisposable with
        member a.Dispose() =
            for _, o in a.FlatOptimizers do
                (o :> IDisposable).Dispose()

            for _, m in a.Modules do
                m.Dispose()

/// The policy head for an action space and config.
let head (cfg: PpoConfig) (actionSpace: Space) =
    match actionSpace with
    | Space.Discrete(n, _) -> CategoricalHead n
    | Space.Box(low, high, shape) ->
        let actDim = Array.fold (*) 1 shape
        let scale = Array.max (Array.map2 (fun l h -> max (abs l) (abs h)) low high)

        let sigma = Sigma.Parse(cfg.Sigma, cfg.InitLogStd, cfg.FixedSigma)

        GaussianHead(actDim, (if cfg.MeanTanh then Some scale else None), sigma)

/// Builds the actor, critic and their Adam optimizers for `cfg` on `device`, initialised per
/// seed so that seed k's networks are the same alone or in a batch.
let makeAgent (cfg: PpoConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
    let seeds = cfg.Seeds
    let S = seeds.Length

    let actor =
        new Actor("actor", S, obsDim, cfg.Hidden, cfg.Activation, head cfg actionSpace)

    let critic = new Critic("critic", S, obsDim, cfg.Hidden, cfg.Activation)

    match cfg.Init.ToLowerInvariant() with
    | "orthogonal" ->
        actor.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, seeds)
        critic.Initialise(Orthogonal(sqrt 2.0), Orthogonal 1.0, seeds)
    | "default" ->
        actor.Initialise(TorchDefault, TorchDefault, seeds)
        critic.Initialise(TorchDefault, TorchDefault, seeds)
    | s -> invalidArg "init" $"unknown init '{s}'; allowed: orthogonal, default"

    actor.``to`` device |> ignore
    critic.``to`` device |> ignore
    let kind = Optim.kindOf cfg.Optimizer cfg.Run.Beta1 cfg.Run.Beta2 cfg.Run.AdamEps

    {
        Actor = actor
        Critic = critic
        ActorOpt = Optim.makeFlat kind cfg.ActorLr seeds.Length (actor.parameters ())
        CriticOpt = Optim.makeFlat kind cfg.CriticLr seeds.Length (critic.parameters ())
        Device = device
        Seeds = seeds
        Shared = None
    }

/// Builds the shared-trunk actor-critic and its one optimizer (learning rate `cfg.Lr`) for `cfg`
/// on `device`, initialised per seed (CleanRL's orthogonal gains sqrt 2 / 0.01 / 1.0 for
/// "orthogonal"). `Actor`, `Critic` and `CriticOpt` of the result are null.
let makeSharedAgent (cfg: PpoConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
    let seeds = cfg.Seeds

    let net =
        new ActorCritic(
            "actor_critic",
            seeds.Length,
            obsDim,
            cfg.Hidden,
            cfg.Activation,
            head cfg actionSpace,
            shareTrunk = cfg.ShareTrunk
        )

    match cfg.Init.ToLowerInvariant() with
    | "orthogonal" -> net.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, Orthogonal 1.0, seeds)
    | "default" -> net.Initialise(TorchDefault, TorchDefault, TorchDefault, seeds)
    | s -> invalidArg "init" $"unknown init '{s}'; allowed: orthogonal, default"

    net.``to`` device |> ignore
    let kind = Optim.kindOf cfg.Optimizer cfg.Run.Beta1 cfg.Run.Beta2 cfg.Run.AdamEps

    {
        Actor = Unchecked.defaultof<Actor>
        Critic = Unchecked.defaultof<Critic>
        ActorOpt = Optim.makeFlat kind cfg.Lr seeds.Length (net.parameters ())
        CriticOpt = Unchecked.defaultof<Optim.FlatOptimizer>
        Device = device
        Seeds = seeds
        Shared = Some net
    }

/// `makeSharedAgent` when `cfg.SharedNetwork`, else `makeAgent`.
let makeAgentFor (cfg: PpoConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
    if cfg.SharedNetwork then
        makeSharedAgent cfg obsDim actionSpace device
    else
        makeAgent cfg obsDim actionSpace device

/// State carried across updates that a checkpoint must restore.
type Progress =
    {
        /// Updates done so far.
        mutable Update: int
        /// Environment steps done so far per seed.
        mutable GlobalStep: int64
        /// The previous update's mean policy gradient per seed, [S; P] (P = policy parameters),
        /// behind `grad_cos_prev`; null before the first update. Owned by the run (detached).
        mutable PrevGrad: Tensor
        /// Exponential moving average (decay 0.99) of past mean policy gradients, [S; P], behind
        /// `grad_cos_ema`; null before the first update.
        mutable EmaGrad: Tensor
        /// The KL coefficient beta per seed for Loss = "kl_penalty" (adapted after each update);
        /// null until the first update sets it from the config.
        mutable KlBeta: float[]
        /// The running state of the environments, the current observations, the reward
        /// normaliser's discounted returns and the policy-sampling and minibatch generators, as
        /// JSON text (see `Snapshot`), to continue from exactly: `trainWith` restores it in place of
        /// fresh episodes when it is not null (a checkpoint's `streams`), then clears it.
        mutable Streams: string
        /// Captures `Streams` at the current update boundary; set by `trainWith` (null when the
        /// environments cannot save their state, see `IEnvSnapshot`, or outside training).
        mutable CaptureStreams: Func<string>
    }

    /// Nothing done yet.
    static member Start =
        {
            Update = 0
            GlobalStep = 0L
            PrevGrad = null
            EmaGrad = null
            KlBeta = null
            Streams = null
            CaptureStreams = null
        }

/// The gradient history of `Progress` (buffers `prev` and `ema`, [S; P]) as a module, so that a
/// checkpoint stores it beside the networks and a resumed run's cosine diagnostics go on.
type GradHistory(prev: Tensor, ema: Tensor) as this =
    inherit torch.nn.Module("grad_history")

    do
        this.register_buffer ("prev", prev)
        this.register_buffer ("ema", ema)

    member _.Prev = prev
    member _.Ema = ema

/// Running statistics that preprocess observations and rewards (None when disabled); part of
/// a checkpoint, since the trained policy only works on observations normalised the same way.
type Normalizers =
    {
        /// Observation mean/variance per seed ([S; obsDim]), when `NormObs`.
        Obs: RunningMeanStd option
        /// Variance of the discounted return per seed ([S; 1]), when `NormReward`.
        Return: RunningMeanStd option
    }

/// Fresh (empty) normalisation statistics for `cfg`.
let newNormalizers (cfg: PpoConfig) (obsDim: int) (device: torch.Device) =
    {
        Obs =
            (if cfg.NormObs then
                 Some(RunningMeanStd(cfg.Run.NumSeeds, obsDim, device))
             else
                 None)
        Return =
            (if cfg.NormReward then
                 Some(RunningMeanStd(cfg.Run.NumSeeds, 1, device))
             else
                 None)
    }

/// Hooks through which a caller watches and checkpoints a run.
type Hooks =
    {
        /// Called after every update with one metrics row per seed.
        OnUpdate: Agent -> Progress -> Normalizers -> UpdateMetrics[] -> unit
    }

/// Hooks that do nothing.
let noHooks = { OnUpdate = fun _ _ _ _ -> () }

/// What `train` returns.
type TrainResult =
    {
        Agent: Agent
        /// One row per update per seed, in order.
        Metrics: UpdateMetrics list
        /// Observation and return statistics (observation statistics are needed to act with the
        /// trained policy).
        Normalizers: Normalizers
        WallSeconds: float
    }

let private obsClip = 10.0
let private rewardClip = 10.0

/// Observation preprocessing shared by training, evaluation and charts: identity, or running
/// normalisation when `obsStats` is given.
let preprocess (obsStats: RunningMeanStd option) (obs: Tensor) =
    match obsStats with
    | Some s -> s.Normalize(obs, obsClip)
    | None -> obs

/// Evaluates a policy with a seed axis, deterministic (mean action / most likely action) or
/// sampled, for `episodes` episodes per seed on fresh environments: `dist obs` maps observations
/// [S; E; obsDim] (already preprocessed as the policy expects) to the action distribution of
/// every seed; training seed `seeds[k]` evaluates on starts drawn from `evalSeed + seeds[k]`
/// (kept apart from training streams); samples come from generators derived from those seeds
/// on `device`. `makeEnv n` builds a batched environment of n copies (one per seed, stepped in
/// lockstep, so every step is one batched forward pass of all seeds). Returns per seed the
/// episode returns. Used by PPO and REINFORCE.
let evaluatePolicy
    (deterministic: bool)
    (makeEnv: int -> IBatchedEnv)
    (seeds: int64[])
    (device: torch.Device)
    (dist: Tensor -> Dist)
    (episodes: int)
    (evalSeed: int64)
    : float[][] =
    let S = seeds.Length
    let envs = Array.init S (fun _ -> makeEnv episodes)

    try
        use _ng = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let envSeeds = seeds |> Array.map (fun s -> evalSeed + s)

        let mutable obs =
            torch.stack ([| for k in 0 .. S - 1 -> envs[k].Reset envSeeds[k] |], 0L) // [S; E; obsDim]

        let gens =
            envSeeds
            |> Array.map (fun s -> Seed.generator device (Seed.derive s "eval-policy"))

        let returns = Array.init S (fun _ -> Array.create episodes nan)
        let mutable stepsLeft = envs[0].MaxEpisodeSteps + 1

        while returns |> Array.exists (Array.exists Double.IsNaN) && stepsLeft > 0 do
            use stepScope = torch.NewDisposeScope()
            let d = dist obs
            let action = if deterministic then Dist.mode d else Dist.sample gens d
            let steps = [| for k in 0 .. S - 1 -> envs[k].Step action[k] |]

            for k in 0 .. S - 1 do
                let finished = toArray (steps[k].Terminated.logical_or steps[k].Truncated)
                let epRet = toArray steps[k].EpisodeReturn
                let seedReturns = returns[k]

                for i in 0 .. episodes - 1 do
                    if finished[i] <> 0.0 && Double.IsNaN seedReturns[i] then
                        seedReturns[i] <- epRet[i]

            obs <- (torch.stack ([| for st in steps -> st.Obs |], 0L)).MoveToOuterDisposeScope()
            stepsLeft <- stepsLeft - 1

        returns
    finally
        for e in envs do
            e.Dispose()

/// Evaluates the PPO agent of every seed (`evaluatePolicy` with its policy, observations
/// normalised by `obsStats` when given), deterministic or sampled.
let evaluateWith
    (deterministic: bool)
    (makeEnv: int -> IBatchedEnv)
    (agent: Agent)
    (obsStats: RunningMeanStd option)
    (episodes: int)
    (evalSeed: int64)
    : float[][] =
    evaluatePolicy
        deterministic
        makeEnv
        agent.Seeds
        agent.Device
        (fun obs -> agent.Dist(preprocess obsStats obs))
        episodes
        evalSeed

/// `evaluateWith true`: the deterministic policy's episode returns per seed.
let evaluate makeEnv agent obsStats episodes evalSeed =
    evaluateWith true makeEnv agent obsStats episodes evalSeed

// ---------------------------------------------------------------------------------------
// The phases of one update: environments, rollout, advantages, learn (above), metrics
// ---------------------------------------------------------------------------------------

/// The N environment copies of each of S seeds, stepped as one: actions [S; N] or [S; N; actDim]
/// in, every field [S; N; ...] out. With several seeds and a classic-control env, one env of
/// S * N copies steps every seed in one call ("fused"); its initial and auto-reset states are
/// drawn per seed from seed k's own generator, exactly as seed k's own N-copy env would draw
/// them, so seed k sees the same episodes alone or in a batch. Otherwise (one seed, or another
/// env type) one env per seed. A `SyncVectorEnv` of S * N copies is fused the same way: copy i of
/// seed k is reset with seed k's env seed + i, as in seed k's own N-copy env, and continues its
/// own generator. Exception: on CUDA (`SyncFreeAutoReset`) the per-seed redraw would read back
/// which copies ended every step; there the fused env keeps its own sync-free auto-reset, drawing
/// every seed's fresh states from one generator seeded from the base seed. No host transfer per
/// step then, but a seed's later episodes depend on S (its first ones, its network, action
/// sampling and minibatch order stay its own). `makeEnv n` builds a batched env of n copies.
type SeedEnvs(makeEnv: int -> IBatchedEnv, S: int, N: int, device: torch.Device) =
    let fused, fusedSync =
        if S > 1 then
            match makeEnv (S * N) with
            | :? BatchedClassicEnv as b -> Some b, None
            | :? SyncVectorEnv as v -> None, Some v
            | other ->
                other.Dispose()
                None, None
        else
            None, None

    let envs =
        match fused, fusedSync with
        | None, None -> Array.init S (fun _ -> makeEnv N)
        | _ -> [||]

    do
        // The policy's actions are valid by construction (an index below n, or a finite real):
        // skip the per-step value check, which reads a scalar back from the device every step.
        for e in Array.append envs (fused |> Option.map (fun b -> b :> IBatchedEnv) |> Option.toArray) do
            match e with
            | :? BatchedClassicEnv as b -> b.ValidateActions <- false
            | _ -> ()

    let probe =
        match fused, fusedSync with
        | Some b, _ -> b :> IBatchedEnv
        | _, Some v -> v :> IBatchedEnv
        | None, None -> envs[0]

    let fusedGens: torch.Generator[] = Array.zeroCreate S

    /// A fused env's action: [S; N; ...] -> [S * N; ...].
    let flatAction (action: Tensor) =
        let trailing = (sizes action)[2..]
        action.reshape (Array.append [| int64 (S * N) |] trailing)

    /// A fused env's step, [S * N; ...] fields -> [S; N; ...].
    let splitSeeds (r: BatchStep) : BatchStep =
        let rs (x: Tensor) =
            let trailing = (sizes x)[1..]
            x.reshape (Array.append [| int64 S; int64 N |] trailing)

        {
            Obs = rs r.Obs
            Reward = rs r.Reward
            Terminated = rs r.Terminated
            Truncated = rs r.Truncated
            FinalObs = rs r.FinalObs
            EpisodeReturn = rs r.EpisodeReturn
            EpisodeLength = rs r.EpisodeLength
        }

    /// The fused classic env's step with seed k's own draws for the copies that ended.
    let stepFusedPerSeed (b: BatchedClassicEnv) (action: Tensor) =
        let r = b.Step(flatAction action)
        let ended = toArray (r.Terminated.logical_or r.Truncated)
        let mutable next = r.Obs

        if ended |> Array.exists (fun v -> v <> 0.0) then
            // Replace the env's own auto-reset draws by seed k's draws (see the type's comment).
            let st = b.State
            let o = r.Obs.clone ()

            for k in 0 .. S - 1 do
                let idx =
                    [|
                        for i in 0 .. N - 1 do
                            if ended[k * N + i] <> 0.0 then
                                int64 (k * N + i)
                    |]

                if idx.Length > 0 then
                    let it = torch.tensor (idx, device = device)
                    let fresh = b.InitialStates(int64 idx.Length, fusedGens[k])
                    st.index_copy_ (0L, it, fresh) |> ignore
                    o.index_copy_ (0L, it, b.Observe fresh) |> ignore

            b.State <- st
            next <- o

        splitSeeds { r with Obs = next }

    /// One env per seed: step each and stack the fields.
    let stepEach (action: Tensor) : BatchStep =
        let steps = [| for k in 0 .. S - 1 -> envs[k].Step(action[k]) |]

        let stack (f: BatchStep -> Tensor) =
            if S = 1 then
                (f steps[0]).unsqueeze 0L
            else
                torch.stack ([| for s in steps -> f s |], 0L)

        {
            Obs = stack (fun s -> s.Obs)
            Reward = stack (fun s -> s.Reward)
            Terminated = stack (fun s -> s.Terminated)
            Truncated = stack (fun s -> s.Truncated)
            FinalObs = stack (fun s -> s.FinalObs)
            EpisodeReturn = stack (fun s -> s.EpisodeReturn)
            EpisodeLength = stack (fun s -> s.EpisodeLength)
        }

    member _.ObservationSpace = probe.ObservationSpace
    member _.ActionSpace = probe.ActionSpace

    /// True when every environment can save its running state (`IEnvSnapshot`).
    member _.CanSnapshot =
        match fused, fusedSync with
        | Some _, _ -> true
        | _, Some v -> v.CanSnapshot
        | None, None ->
            envs
            |> Array.forall (fun e ->
                match e with
                | :? IEnvSnapshot as s -> s.CanSaveState
                | _ -> false)

    /// The running state of every environment (and of the fused env's per-seed reset
    /// generators) as JSON; see `CanSnapshot`.
    member _.SaveState() : Text.Json.Nodes.JsonNode =
        let o = Text.Json.Nodes.JsonObject()

        match fused, fusedSync with
        | Some b, _ ->
            o["fused"] <- Text.Json.Nodes.JsonValue.Create(b.SaveState())
            o["fused_generators"] <- Snapshot.ofGenerators fusedGens
        | _, Some v -> o["sync"] <- Text.Json.Nodes.JsonValue.Create(v.SaveState())
        | None, None -> o["envs"] <- Snapshot.ofTexts [ for e in envs -> (e :?> IEnvSnapshot).SaveState() ]

        o

    /// Restores what `SaveState` wrote (after `Reset`, for the same seeds and copies). Raises
    /// `FormatException` when the state is of another layout.
    member _.LoadState(node: Text.Json.Nodes.JsonNode) =
        match fused, fusedSync with
        | Some b, _ ->
            b.LoadState(string (Snapshot.field "fused" node))

            Snapshot.restoreGenerators
                "PPO streams, fused-env generators"
                fusedGens
                (Snapshot.field "fused_generators" node)
        | _, Some v -> v.LoadState(string (Snapshot.field "sync" node))
        | None, None ->
            let saved =
                Snapshot.toTexts "PPO streams, environments" S (Snapshot.field "envs" node)

            for k in 0 .. S - 1 do
                (envs[k] :?> IEnvSnapshot).LoadState saved[k]

    /// Resets every copy and returns the observations [S; N; obsDim]: seed k's copies from
    /// `envSeed k` (copy i of a `SyncVectorEnv` from `envSeed k + i`); a fused classic env is
    /// first reset from `fusedSeed`, then given seed k's states from a generator seeded by
    /// `envSeed k`.
    member _.Reset(fusedSeed: int64, envSeed: int -> int64) : Tensor =
        match fused, fusedSync with
        | Some b, _ ->
            use scope = torch.NewDisposeScope()
            b.Reset fusedSeed |> ignore

            for k in 0 .. S - 1 do
                if not (isNull fusedGens[k]) then
                    fusedGens[k].Dispose()

                fusedGens[k] <- new torch.Generator(uint64 (envSeed k), device)

            let states =
                torch.cat ([| for k in 0 .. S - 1 -> b.InitialStates(int64 N, fusedGens[k]) |], 0L)

            b.State <- states
            b.Observe(states).reshape(int64 S, int64 N, -1L).MoveToOuterDisposeScope()
        | None, Some v ->
            let seedsOfCopies =
                [|
                    for k in 0 .. S - 1 do
                        for i in 0 .. N - 1 do
                            yield envSeed k + int64 i
                |]

            use scope = torch.NewDisposeScope()
            v.ResetEach(seedsOfCopies).reshape(int64 S, int64 N, -1L).MoveToOuterDisposeScope()
        | None, None -> torch.stack ([| for k in 0 .. S - 1 -> envs[k].Reset(envSeed k) |], 0L)

    /// One step of every seed's environments: action [S; N] or [S; N; actDim]; fields [S; N; ...].
    member _.Step(action: Tensor) : BatchStep =
        match fused, fusedSync with
        | Some b, _ when b.SyncFreeAutoReset -> splitSeeds (b.Step(flatAction action))
        | Some b, _ -> stepFusedPerSeed b action
        | None, Some v -> splitSeeds (v.Step(flatAction action))
        | None, None -> stepEach action

    interface IDisposable with
        member _.Dispose() =
            for e in envs do
                e.Dispose()

            fused |> Option.iter (fun b -> b.Dispose())
            fusedSync |> Option.iter (fun v -> (v :> IDisposable).Dispose())

            for g in fusedGens do
                if not (isNull g) then
                    g.Dispose()

/// What carries over from one rollout to the next: the current observations [S; N; obsDim]
/// (detached from every dispose scope) and, for reward scaling, the running discounted return of
/// every env [S; N] float64 (Gymnasium `NormalizeReward`).
type RolloutState =
    {
        mutable Obs: Tensor
        Discounted: Tensor
    }

    interface IDisposable with
        member s.Dispose() =
            s.Obs.Dispose()
            s.Discounted.Dispose()

/// One rollout of T steps of N envs for each of S seeds, stored [S; T; N; ...] (CleanRL's
/// storage tensors with a seed axis in front).
type Rollout =
    {
        /// Observations the policy acted on, before preprocessing, [S; T; N; obsDim].
        Obs: Tensor
        /// Actions taken, [S; T; N] (discrete) or [S; T; N; actDim].
        Action: Tensor
        /// Rewards, scaled when `NormReward`, [S; T; N] float32.
        Reward: Tensor
        /// Terminated and truncated flags as 0/1, [S; T; N] float32.
        Terminated: Tensor
        Truncated: Tensor
        /// The observation each step ended in (before auto-reset), [S; T; N; obsDim]; GAE
        /// bootstraps truncated steps from its value.
        FinalObs: Tensor
        /// Per seed, float64 [S]: episodes that ended in this rollout, and the sums of their
        /// returns and lengths.
        EpisodeCount: Tensor
        EpisodeReturnSum: Tensor
        EpisodeLengthSum: Tensor
        /// Per seed, float64 [S]: the sum over steps of the mean Gaussian std (zeros for discrete
        /// actions); divide by T for `sigma_mean`.
        SigmaSum: Tensor
    }

/// Reward scaling (Gymnasium `NormalizeReward`): updates the running discounted return
/// `discounted` [S; N] and its variance `stats`, and returns reward / sqrt(var + 1e-8), clipped
/// to +-10, float32 [S; N]; returns of envs that just ended are restarted.
let private scaleReward (gamma: float) (stats: RunningMeanStd) (discounted: Tensor) (step: BatchStep) =
    let reward = step.Reward
    let isDone = step.Terminated.logical_or(step.Truncated).to_type torch.float64

    discounted.mul_(gamma.ToScalar()).add_(reward.to_type torch.float64) |> ignore

    stats.Update(discounted.unsqueeze (-1L))

    let r =
        (reward.to_type torch.float64
         / torch.sqrt (stats.Var.squeeze(-1).unsqueeze 1 + 1e-8))
            .clamp((-rewardClip).ToScalar(), rewardClip.ToScalar())
            .to_type
            torch.float32

    discounted.mul_ (1.0 - isDone) |> ignore
    r

/// Phase 1, collect (Schulman et al. 2017, Algorithm 1, "run policy pi_old in the environment
/// for T timesteps"): `cfg.NumSteps` steps of every env with actions sampled from the current
/// policy (`sampleGens[k]` drives seed k), under no_grad. Updates the observation statistics
/// before each step (when `NormObs`) and the return statistics (when `NormReward`), and moves
/// `state.Obs` on. The rollout's tensors belong to the caller's dispose scope.
let rollout
    (cfg: PpoConfig)
    (agent: Agent)
    (normalizers: Normalizers)
    (envs: SeedEnvs)
    (sampleGens: torch.Generator[])
    (state: RolloutState)
    : Rollout =
    let T = cfg.NumSteps
    let S = agent.Seeds.Length
    // Each step's tensors are kept (moved out of the step's scope) and stacked once after the
    // rollout: [S; T; N; ...] storage with no per-step copies.
    let keep (x: Tensor) = x.MoveToOuterDisposeScope()
    let steps () = ResizeArray<Tensor>(T)
    let obsSteps, actSteps, rewSteps, termSteps = steps (), steps (), steps (), steps ()
    let truncSteps, finalObsSteps, epReturnSteps = steps (), steps (), steps ()
    let epLengthSteps, sigmaSteps = steps (), steps ()

    for _ in 0 .. T - 1 do
        use _ng = torch.no_grad ()
        use stepScope = torch.NewDisposeScope()

        let dist, action =
            Profile.section "rollout.policy" (fun () ->
                normalizers.Obs |> Option.iter (fun s -> s.Update state.Obs)
                let dist = agent.Dist(preprocess normalizers.Obs state.Obs)
                dist, Dist.sample sampleGens dist)

        match dist with
        | Normal(_, std) -> sigmaSteps.Add(keep (std.mean [| 1L; 2L |]))
        | Categorical _ -> ()

        let step = Profile.section "rollout.env_step" (fun () -> envs.Step action)

        let reward =
            match normalizers.Return with
            | None -> step.Reward
            | Some rs -> Profile.section "rollout.reward" (fun () -> scaleReward cfg.Gamma rs state.Discounted step)

        // `state.Obs` is detached from every scope; it is disposed after the stacking below.
        obsSteps.Add state.Obs
        actSteps.Add(keep action)
        rewSteps.Add(keep reward)
        termSteps.Add(keep step.Terminated)
        truncSteps.Add(keep step.Truncated)
        finalObsSteps.Add(keep step.FinalObs)
        epReturnSteps.Add(keep step.EpisodeReturn)
        epLengthSteps.Add(keep step.EpisodeLength)
        state.Obs <- step.Obs.MoveToOuterDisposeScope().DetachFromDisposeScope()

    let stack (xs: ResizeArray<Tensor>) = torch.stack (xs, 1L)
    let obs = stack obsSteps

    for o in obsSteps do
        o.Dispose()

    let terminated = (stack termSteps).to_type torch.float32
    let truncated = (stack truncSteps).to_type torch.float32

    let perSeedSum (xs: ResizeArray<Tensor>) =
        (stack xs).to_type(torch.float64).sum([| 1L; 2L |])

    {
        Obs = obs
        Action = stack actSteps
        Reward = stack rewSteps
        Terminated = terminated
        Truncated = truncated
        FinalObs = stack finalObsSteps
        // Episodes that ended in this rollout (EpisodeReturn/Length are 0 elsewhere).
        EpisodeCount = (terminated + truncated).clamp_max(1.0).to_type(torch.float64).sum([| 1L; 2L |])
        EpisodeReturnSum = perSeedSum epReturnSteps
        EpisodeLengthSum = perSeedSum epLengthSteps
        SigmaSum =
            (if sigmaSteps.Count = 0 then
                 torch.zeros ([| int64 S |], dtype = torch.float64, device = agent.Device)
             else
                 (torch.stack (sigmaSteps, 1L)).to_type(torch.float64).sum(1L))
    }

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
        preprocess obsStats (x.reshape (S, M, obsDim))

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

/// The rows of every field of `batch` at the indices `idx` [S; B]: a minibatch (the old
/// distribution too when `withOldDist`, else it is left whole and must not be used).
let private minibatchOf (withOldDist: bool) (idx: Tensor) (batch: Batch) : Batch =
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

/// One minibatch's losses per seed [S] and the policy network's pre-clip gradient norm [S].
type private MinibatchTerms =
    {
        PolicyLoss: Tensor
        Stats: Losses.PpoStats
        Entropy: Tensor
        ValueLoss: Tensor
        GradNorm: Tensor
    }

/// One gradient step on a minibatch `mb` (advantages already normalised as configured). The
/// surrogate is the clipped one, or with `cfg.KlPenalty` the KL-penalised one with coefficients
/// `klBeta` [S]. Shared network: one loss (surrogate + vf_coef * value loss - ent_coef *
/// entropy), one backward pass, one clipped step (seed 001); separate networks: an actor step
/// (surrogate - ent_coef * entropy), then a critic step. `onPolicyGrad` runs after the policy's
/// backward pass, before clipping (it records the gradient for the diagnostics).
let private minibatchStep
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
                Losses.ppoKlPenalty klBeta cfg.ClipEps logProbNew mb.LogProbOld mb.Advantages (Dist.kl mb.OldDist dist)
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
let private setLearningRates (cfg: PpoConfig) (agent: Agent) (update: int) =
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

/// Decay of the exponential moving average of past policy gradients (`grad_cos_ema`).
let private gradEmaDecay = 0.99

/// Seed 001's gradient diagnostics: the cosine similarity per seed of this update's mean policy
/// gradient `g` [S; P] with the previous update's and with the moving average of past ones (NaN
/// when there is none yet); then moves that history, kept in `progress`, on.
let private gradCosines (progress: Progress) (g: Tensor) : float[] * float[] =
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
let private policyKl (agent: Agent) (batch: Batch) : float[] =
    use _ng = torch.no_grad ()
    toArray ((Dist.kl batch.OldDist (agent.Dist batch.Obs)).mean([| 1L |]))

/// Wall-clock seconds of one update's phases.
type private PhaseSeconds =
    {
        Rollout: float
        Gae: float
        Learn: float
    }

/// Phase 4, log: one `UpdateMetrics` row per seed from the rollout, the batch, the learning sums
/// and the optimizer state (means over the update's minibatch steps), read to the host once;
/// `steps_per_second` counts the update's whole time on `clock`, these reads included.
let private metricsRows
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
let private checkFinite (rows: UpdateMetrics[]) =
    for r in rows do
        for name, v in
            [
                "actor_loss", r.ActorLoss
                "critic_loss", r.CriticLoss
                "entropy", r.Entropy
                "approx_kl", r.ApproxKl
            ] do
            if Double.IsNaN v || Double.IsInfinity v then
                raise (TrainingDivergedException(r.Update, name, v))

/// Trains PPO: per update, `rollout` -> `advantages` (GAE) -> `learn` -> `metricsRows`, then
/// `hooks.OnUpdate`. `makeEnv n` builds a batched environment of n copies (see `SeedEnvs`;
/// evaluation is separate). `resume` continues from a restored agent, progress and normalisers.
/// Raises `TrainingDivergedException` when a loss becomes NaN/Inf.
let trainWith
    (makeEnv: int -> IBatchedEnv)
    (cfg: PpoConfig)
    (hooks: Hooks)
    (resume: (Agent * Progress * Normalizers) option)
    : TrainResult =
    let device = Native.device cfg.Run.Device

    if cfg.Run.Threads > 0 then
        Native.setThreads cfg.Run.Threads

    let seeds = cfg.Seeds
    let S = seeds.Length
    use envs = new SeedEnvs(makeEnv, S, cfg.NumEnvs, device)
    let obsDim = envs.ObservationSpace.FlatSize

    let agent, progress, normalizers =
        match resume with
        | Some(a, p, n) -> a, p, n
        | None ->
            Seed.setGlobal cfg.Run.Seed
            makeAgentFor cfg obsDim envs.ActionSpace device, Progress.Start, newNormalizers cfg obsDim device

    let streamSeed (k: int) (label: string) =
        Seed.derive seeds[k] $"{label}/{progress.Update}"

    let sampleGens =
        Array.init S (fun k -> Seed.generator device (streamSeed k "policy"))

    let shuffleGens =
        Array.init S (fun k -> Seed.generator torch.CPU (streamSeed k "minibatch"))

    use state =
        {
            Obs = envs.Reset(Seed.derive seeds[0] $"env-fused/{progress.Update}", (fun k -> streamSeed k "env"))
            Discounted = torch.zeros ([| int64 S; int64 cfg.NumEnvs |], dtype = torch.float64, device = device)
        }

    if not (isNull progress.Streams) then
        // Continue exactly where the checkpoint stopped instead of starting fresh episodes.
        let node = Snapshot.parse progress.Streams
        envs.LoadState(Snapshot.field "envs" node)

        let obs =
            Snapshot.toTensorLike "PPO streams, observations" state.Obs (Snapshot.field "obs" node)

        state.Obs.Dispose()
        state.Obs <- obs.DetachFromDisposeScope()

        use discounted =
            Snapshot.toTensorLike "PPO streams, discounted returns" state.Discounted (Snapshot.field "discounted" node)

        state.Discounted.copy_ discounted |> ignore
        Snapshot.restoreGenerators "PPO streams, policy generators" sampleGens (Snapshot.field "policy" node)
        Snapshot.restoreGenerators "PPO streams, minibatch generators" shuffleGens (Snapshot.field "minibatch" node)
        progress.Streams <- null

    progress.CaptureStreams <-
        if envs.CanSnapshot then
            Func<string>(fun () ->
                let o = Text.Json.Nodes.JsonObject()
                o["envs"] <- envs.SaveState()
                o["obs"] <- Snapshot.ofTensor state.Obs
                o["discounted"] <- Snapshot.ofTensor state.Discounted
                o["policy"] <- Snapshot.ofGenerators sampleGens
                o["minibatch"] <- Snapshot.ofGenerators shuffleGens
                o.ToJsonString())
        else
            null

    let metrics = ResizeArray<UpdateMetrics>()
    let total = Stopwatch.StartNew()

    while progress.Update < cfg.NumUpdates do
        progress.Update <- progress.Update + 1
        use updateScope = torch.NewDisposeScope()
        let clock = Stopwatch.StartNew()
        let lr = setLearningRates cfg agent progress.Update
        let r = rollout cfg agent normalizers envs sampleGens state
        progress.GlobalStep <- progress.GlobalStep + int64 cfg.BatchSize
        let rolloutSeconds = clock.Elapsed.TotalSeconds
        let batch = Profile.section "gae" (fun () -> advantages cfg agent normalizers.Obs r)
        let gaeSeconds = clock.Elapsed.TotalSeconds - rolloutSeconds

        if isNull progress.KlBeta then
            progress.KlBeta <- Array.create S cfg.KlBeta

        let sums = learn cfg agent shuffleGens progress.KlBeta batch

        let seconds =
            {
                Rollout = rolloutSeconds
                Gae = gaeSeconds
                Learn = clock.Elapsed.TotalSeconds - rolloutSeconds - gaeSeconds
            }

        let rows =
            Profile.section "log" (fun () ->
                let kl = policyKl agent batch
                let klBeta = progress.KlBeta

                if cfg.KlPenalty then
                    progress.KlBeta <- Array.map2 (Losses.adaptKlBeta cfg.KlTarget) kl klBeta

                metricsRows cfg agent progress lr clock seconds kl klBeta r batch sums)

        checkFinite rows
        metrics.AddRange rows
        hooks.OnUpdate agent progress normalizers rows

    progress.CaptureStreams <- null

    {
        Agent = agent
        Metrics = List.ofSeq metrics
        Normalizers = normalizers
        WallSeconds = total.Elapsed.TotalSeconds
    }

// ---------------------------------------------------------------------------------------
// Config keys
// ---------------------------------------------------------------------------------------

/// The config keys of `PpoConfig` (snake_case, as in the YAML files), with documentation and
/// allowed values.
let fields: Field<PpoConfig> list =
    [
        Field.envId "Environment id." (fun c -> c.EnvId) (fun c v -> { c with EnvId = v })
        Field.int "num_envs" "Parallel environments per seed." (Allow.ge 1) (fun c -> c.NumEnvs) (fun c v ->
            { c with NumEnvs = v })
        Field.int
            "num_steps"
            "Rollout length per environment per update."
            (Allow.ge 1)
            (fun c -> c.NumSteps)
            (fun c v -> { c with NumSteps = v })
        Field.int64
            "total_timesteps"
            "Environment steps per seed over the run."
            (Allow.ge 1L)
            (fun c -> c.TotalTimesteps)
            (fun c v -> { c with TotalTimesteps = v })
        Field.int "update_epochs" "Passes over each rollout." (Allow.ge 1) (fun c -> c.UpdateEpochs) (fun c v ->
            { c with UpdateEpochs = v })
        Field.int
            "minibatch_size"
            "Samples per minibatch (per seed); at most num_envs * num_steps."
            (Allow.ge 1)
            (fun c -> c.MinibatchSize)
            (fun c v -> { c with MinibatchSize = v })
        Field.int
            "num_minibatches"
            "Minibatches per epoch (CleanRL, PureJaxRL); > 0 must divide num_envs * num_steps and replaces minibatch_size by their quotient; 0 uses minibatch_size."
            (Allow.ge 0)
            (fun c -> c.NumMinibatches)
            (fun c v -> { c with NumMinibatches = v })
        Field.float "gamma" "Discount factor." (Allow.openClosed 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
            { c with Gamma = v })
        Field.float
            "gae_lambda"
            "GAE lambda (0: one-step TD, 1: Monte Carlo)."
            (Allow.between 0.0 1.0)
            (fun c -> c.GaeLambda)
            (fun c v -> { c with GaeLambda = v })
        Field.float "clip_eps" "PPO clip range epsilon." (Allow.gt 0.0) (fun c -> c.ClipEps) (fun c v ->
            { c with ClipEps = v })
        Field.float "actor_lr" "Actor learning rate." (Allow.gt 0.0) (fun c -> c.ActorLr) (fun c v ->
            { c with ActorLr = v })
        Field.float "critic_lr" "Critic learning rate." (Allow.gt 0.0) (fun c -> c.CriticLr) (fun c v ->
            { c with CriticLr = v })
        Field.bool "anneal_lr" "Anneal both learning rates linearly towards 0." (fun c -> c.AnnealLr) (fun c v ->
            { c with AnnealLr = v })
        Field.float "ent_coef" "Entropy bonus coefficient." (Allow.ge 0.0) (fun c -> c.EntCoef) (fun c v ->
            { c with EntCoef = v })
        Field.float
            "max_grad_norm"
            "Global gradient-norm clip per network and seed; 0 disables it."
            (Allow.ge 0.0)
            (fun c -> c.MaxGradNorm)
            (fun c v -> { c with MaxGradNorm = v })
        Field.bool "norm_adv" "Normalise advantages per minibatch." (fun c -> c.NormAdv) (fun c v ->
            { c with NormAdv = v })
        Field.float
            "clip_vloss"
            "Clip range of the value loss (CleanRL clip_vloss); 0 disables it."
            (Allow.ge 0.0)
            (fun c -> c.ClipVloss)
            (fun c v -> { c with ClipVloss = v })
        Field.intList "hidden" "Hidden layer sizes of actor and critic." (Allow.ge 1) (fun c -> c.Hidden) (fun c v ->
            { c with Hidden = v })
        Field.activation (fun c -> c.Activation) (fun c v -> { c with Activation = v })
        Field.choice
            "sigma"
            "Gaussian std: softplus (state-conditioned, seed 002), logstd (state-independent learned parameter) or fixed (the constant fixed_sigma, seed 003)."
            [ "softplus"; "logstd"; "fixed" ]
            (fun c -> c.Sigma)
            (fun c v -> { c with Sigma = v })
        Field.float "init_log_std" "Initial log std when sigma = logstd." Allow.any (fun c -> c.InitLogStd) (fun c v ->
            { c with InitLogStd = v })
        Field.bool
            "mean_tanh"
            "Squash the Gaussian mean to the action bound with high * tanh (seed 002)."
            (fun c -> c.MeanTanh)
            (fun c v -> { c with MeanTanh = v })
        Field.choice
            "init"
            "Weight initialisation: orthogonal (CleanRL) or default (PyTorch nn.Linear)."
            [ "orthogonal"; "default" ]
            (fun c -> c.Init)
            (fun c v -> { c with Init = v })
        Field.bool "norm_obs" "Normalise observations with running mean and variance." (fun c -> c.NormObs) (fun c v ->
            { c with NormObs = v })
        Field.bool
            "norm_reward"
            "Scale rewards by the running std of the discounted return (Gymnasium NormalizeReward)."
            (fun c -> c.NormReward)
            (fun c v -> { c with NormReward = v })
        yield! Field.runSettings (fun c -> c.Run) (fun c v -> { c with Run = v })
        Field.int
            "eval_episodes"
            "Episodes of the deterministic policy evaluated at the end."
            (Allow.ge 1)
            (fun c -> c.EvalEpisodes)
            (fun c v -> { c with EvalEpisodes = v })
        Field.int64
            "eval_seed"
            "Base seed of the evaluation environments; training seed s uses eval_seed + s."
            (Allow.ge 0L)
            (fun c -> c.EvalSeed)
            (fun c v -> { c with EvalSeed = v })
        Field.bool
            "shared_network"
            "One network with policy and value heads trained by one optimizer on the total loss (seed 001; CleanRL, PureJaxRL with share_trunk: false); false: separate actor and critic with their own optimizers (seed 002)."
            (fun c -> c.SharedNetwork)
            (fun c v -> { c with SharedNetwork = v })
        Field.bool
            "share_trunk"
            "With shared_network: policy and value read one trunk (seed 001); false: two MLPs in the one network (CleanRL ppo.py, PureJaxRL ppo.py)."
            (fun c -> c.ShareTrunk)
            (fun c v -> { c with ShareTrunk = v })
        Field.float
            "vf_coef"
            "Value-loss coefficient of the total loss (shared_network only)."
            (Allow.ge 0.0)
            (fun c -> c.VfCoef)
            (fun c v -> { c with VfCoef = v })
        Field.float
            "lr"
            "Learning rate of the shared network's optimizer (shared_network only)."
            (Allow.gt 0.0)
            (fun c -> c.Lr)
            (fun c v -> { c with Lr = v })
        Field.choice
            "optimizer"
            "Optimizer of both paths: adam (beta_1, beta_2, adam_eps), rmsprop (alpha = beta_2, adam_eps) or sgd."
            Optim.optimizerNames
            (fun c -> c.Optimizer)
            (fun c v -> { c with Optimizer = v })
        Field.bool
            "norm_adv_batch"
            "Normalise advantages once over the whole rollout per seed (seed 001) instead of per minibatch."
            (fun c -> c.NormAdvBatch)
            (fun c v -> { c with NormAdvBatch = v })
        Field.vectorizationMode (fun c -> c.VectorizationMode) (fun c v -> { c with VectorizationMode = v })
        Field.float
            "fixed_sigma"
            "Gaussian std when sigma = fixed (action units)."
            (Allow.gt 0.0)
            (fun c -> c.FixedSigma)
            (fun c v -> { c with FixedSigma = v })
        Field.choice
            "loss"
            "Policy loss: clip (clipped surrogate, PPO paper eq. 7) or kl_penalty (surrogate - kl_beta * KL(old || new), adaptive kl_beta, section 4; seed 003's PPO1)."
            [ "clip"; "kl_penalty" ]
            (fun c -> c.Loss)
            (fun c v -> { c with Loss = v })
        Field.float
            "kl_beta"
            "Initial KL coefficient for loss = kl_penalty (per seed; halved when the update's KL < kl_target / 1.5, doubled when > 1.5 kl_target)."
            (Allow.gt 0.0)
            (fun c -> c.KlBeta)
            (fun c v -> { c with KlBeta = v })
        Field.float
            "kl_target"
            "Target KL(old || new) per update for loss = kl_penalty (the PPO paper's d_targ)."
            (Allow.gt 0.0)
            (fun c -> c.KlTarget)
            (fun c v -> { c with KlTarget = v })
    ]

/// Cross-field checks of a PPO config; raises `ConfigError`.
let validate (c: PpoConfig) =
    Config.checkVectorization c.VectorizationMode c.Run.Device

    if c.NumMinibatches > 0 then
        Config.check
            (c.BatchSize % c.NumMinibatches = 0)
            "num_minibatches"
            (string c.NumMinibatches)
            $"a divisor of num_envs * num_steps = {c.BatchSize}, or 0 to use minibatch_size"
    else
        Config.check
            (c.MinibatchSize <= c.BatchSize)
            "minibatch_size"
            (string c.MinibatchSize)
            $"<= num_envs * num_steps = {c.BatchSize}"

    Config.check
        (c.TotalTimesteps >= int64 (c.NumEnvs * c.NumSteps))
        "total_timesteps"
        (string c.TotalTimesteps)
        $">= num_envs * num_steps = {c.NumEnvs * c.NumSteps} (one update)"

/// Batched environments for `cfg` from the registry, on the config's device: the tensor-batched
/// form, or `SyncVectorEnv` for `vectorization_mode: sync`.
let makeEnv (cfg: PpoConfig) : int -> IBatchedEnv =
    let device = Native.device cfg.Run.Device
    fun n -> Envs.makeVec cfg.VectorizationMode cfg.EnvId n device

/// Trains PPO on `cfg.EnvId` (see `trainWith`): `train cfg noHooks None` is the whole run.
let train (cfg: PpoConfig) (hooks: Hooks) (resume: (Agent * Progress * Normalizers) option) : TrainResult =
    trainWith (makeEnv cfg) cfg hooks resume
