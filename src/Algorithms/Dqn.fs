/// Deep Q-Network (Mnih et al. 2015, "Human-level control through deep reinforcement learning")
/// for discrete actions (seed 004 module 3, implementation `2_Cart_Pole_DQN`), laid out like
/// CleanRL's `dqn.py`: an MLP Q-network, a replay ring buffer on the device, a target network
/// synced every `TargetNetworkFrequency` steps (hard copy, or Polyak with `Tau` < 1), a linear
/// epsilon schedule, MSE or Huber TD loss, Adam and per-seed gradient clipping. S seeds train as
/// one batched computation (every parameter and the buffer carry a leading seed axis).
///
/// One environment step reads like the seed's pseudo-code: act epsilon-greedily, store the
/// transition, and every `TrainFrequency` steps after `LearningStarts` sample a minibatch and
/// regress Q_online(s, a) on r + gamma * (1 - terminated) * max_a' Q_target(s', a').
module Rl.Dqn

open System
open System.Diagnostics
open TorchSharp
open Rl.Tensor
open Rl.Nn

/// DQN hyperparameters. Config keys (snake_case) are listed in `fields`.
type DqnConfig =
    {
        /// Environment id (discrete actions), e.g. "CartPole-v1".
        EnvId: string
        /// Parallel environments per seed (CleanRL: 1).
        NumEnvs: int
        /// Environment steps per seed over the run.
        TotalTimesteps: int64
        /// Adam learning rate.
        LearningRate: float
        /// Replay capacity per seed (transitions).
        BufferSize: int
        /// Discount factor.
        Gamma: float
        /// Target update rate: 1 copies the online network (hard sync), < 1 is Polyak averaging.
        Tau: float
        /// Environment steps between target updates.
        TargetNetworkFrequency: int
        /// Minibatch size per seed.
        BatchSize: int
        /// Epsilon at the start of the schedule.
        StartE: float
        /// Epsilon at the end of the schedule and after it.
        EndE: float
        /// Fraction of TotalTimesteps over which epsilon falls linearly from StartE to EndE.
        ExplorationFraction: float
        /// Environment steps before learning begins (the buffer fills with exploratory data).
        LearningStarts: int64
        /// Environment steps between gradient steps.
        TrainFrequency: int
        /// Hidden layer sizes of the Q-network.
        Hidden: int list
        /// Hidden activation.
        Activation: Activation
        /// TD loss: mse or huber.
        Loss: Losses.TdLossKind
        /// Per-seed global gradient-norm clip; 0 disables it.
        MaxGradNorm: float
        /// Weight initialisation: "default" (PyTorch nn.Linear, as CleanRL's QNetwork) or "orthogonal".
        Init: string
        /// Seed(s), device, threads and the optimizer's beta_1, beta_2, adam_eps (`RunSettings`).
        Run: RunSettings
        /// Environment steps per metrics row.
        LogEvery: int
        /// Greedy evaluation episodes at the end of training.
        EvalEpisodes: int
        /// Seed of the evaluation environments.
        EvalSeed: int64
        /// How the copies are stepped: "vector" (tensor-batched form) or "sync"
        /// (`SyncVectorEnv`); see `Envs.makeVec`.
        VectorizationMode: string
    }

    /// The seed values trained: `Run.Seeds`.
    member c.Seeds = c.Run.Seeds

/// CleanRL `dqn.py` defaults (the peer measured in `docs/peers.md`): 500k steps,
/// Adam 2.5e-4, buffer 10k, gamma 0.99, hard target copy every 500 steps, batch 128, epsilon
/// 1 -> 0.05 over the first half, learning starts at 10k, a gradient step every 10 steps, a
/// 120-84 ReLU network (seed 004's three-layer MLP), MSE loss, no gradient clipping.
let defaults =
    {
        EnvId = "CartPole-v1"
        NumEnvs = 1
        TotalTimesteps = 500_000L
        LearningRate = 2.5e-4
        BufferSize = 10_000
        Gamma = 0.99
        Tau = 1.0
        TargetNetworkFrequency = 500
        BatchSize = 128
        StartE = 1.0
        EndE = 0.05
        ExplorationFraction = 0.5
        LearningStarts = 10_000L
        TrainFrequency = 10
        Hidden = [ 120; 84 ]
        Activation = Relu
        Loss = Losses.Mse
        MaxGradNorm = 0.0
        Init = "default"
        Run = RunSettings.Defaults
        LogEvery = 5000
        EvalEpisodes = 10
        EvalSeed = 1_000_000L
        VectorizationMode = "vector"
    }

/// The linear epsilon schedule of CleanRL `dqn.py` (`linear_schedule`): epsilon at environment
/// step `step` falls from `startE` to `endE` over `duration` steps, then stays at `endE`.
let epsilonAt (startE: float) (endE: float) (duration: float) (step: int64) : float =
    if duration <= 0.0 then
        endE
    else
        max endE (startE + (endE - startE) * float step / duration)

/// The networks, optimizer and replay buffer of a DQN agent for S seeds.
type Agent =
    {
        QNet: QNetwork
        Target: QNetwork
        /// Adam over the online network's parameters in one flat buffer.
        Opt: Optim.FlatOptimizer
        Buffer: Buffers.ReplayBuffer
        Device: torch.Device
        Seeds: int64[]
    }

    interface IDisposable with
        member a.Dispose() =
            (a.Opt :> IDisposable).Dispose()
            a.QNet.Dispose()
            a.Target.Dispose()
            a.Buffer.Dispose()

/// Builds the Q-network, its target (an exact copy), Adam and an empty replay buffer on `device`.
/// Raises `ArgumentException` for a non-discrete action space or an unknown `Init`.
let makeAgent (cfg: DqnConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
    let nActions =
        match actionSpace with
        | Space.Discrete(n, _) -> n
        | other ->
            invalidArg
                "actionSpace"
                $"DQN needs a discrete action space, got {other}; allowed: Discrete environments such as CartPole-v1"

    let seeds = cfg.Seeds
    let S = seeds.Length
    let q = new QNetwork("q", S, obsDim, cfg.Hidden, cfg.Activation, nActions)
    let target = new QNetwork("q", S, obsDim, cfg.Hidden, cfg.Activation, nActions)

    match cfg.Init.ToLowerInvariant() with
    | "default" -> q.Initialise(TorchDefault, TorchDefault, seeds)
    | "orthogonal" -> q.Initialise(Orthogonal(sqrt 2.0), Orthogonal 1.0, seeds)
    | s -> invalidArg "init" $"unknown init '{s}'; allowed: default, orthogonal"

    q.``to`` device |> ignore
    target.``to`` device |> ignore
    syncParameters 1.0 q target

    for p in target.parameters () do
        p.requires_grad <- false

    {
        QNet = q
        Target = target
        Opt =
            Optim.makeFlat
                (Optim.Adam(cfg.Run.Beta1, cfg.Run.Beta2, cfg.Run.AdamEps))
                cfg.LearningRate
                S
                (q.parameters ())
        Buffer = new Buffers.ReplayBuffer(S, cfg.BufferSize, obsDim, device)
        Device = device
        Seeds = seeds
    }

/// Diagnostics of one gradient step, per seed [S] (no gradient).
type LearnStats =
    {
        /// The TD loss.
        Loss: Tensor
        /// Mean Q_online(s, a) over the minibatch.
        QMean: Tensor
        /// Gradient norm before clipping.
        GradNorm: Tensor
    }

/// One DQN gradient step on `batch`: targets from the target network (`Losses.dqnTargets`),
/// the TD loss (`Losses.tdLoss`), backward, per-seed clipping when `maxGradNorm > 0`, Adam step.
let learnStep (cfg: DqnConfig) (agent: Agent) (batch: Buffers.ReplayBatch) : LearnStats =
    let targets =
        use _ng = torch.no_grad ()
        Losses.dqnTargets cfg.Gamma batch.Rewards batch.Terminated (agent.Target.forward batch.NextObs)

    let qTaken =
        agent.QNet.forward(batch.Obs).gather(-1L, batch.Actions.unsqueeze -1L).squeeze(-1L)

    let loss = Losses.tdLoss cfg.Loss qTaken targets
    agent.Opt.ZeroGrad()
    loss.sum().backward()

    let gradNorm =
        if cfg.MaxGradNorm > 0.0 then
            agent.Opt.ClipGradNormPerSeed cfg.MaxGradNorm
        else
            agent.Opt.GradNormPerSeed()

    agent.Opt.Step()
    use _ng = torch.no_grad ()

    {
        Loss = loss.detach ()
        QMean = qTaken.detach().mean([| -1L |])
        GradNorm = gradNorm
    }

/// One metrics row per seed per `LogEvery` environment steps.
type DqnMetrics =
    {
        Seed: int64
        /// Environment steps done by this seed so far.
        Step: int64
        /// Mean return of the episodes that ended in this window (NaN if none).
        EpisodicReturn: float
        /// Mean length of those episodes (NaN if none).
        EpisodicLength: float
        /// Episodes that ended in this window.
        Episodes: int
        /// Mean return of the seed's last 20 training episodes (NaN before 20 episodes).
        ReturnLast20: float
        /// Mean TD loss, Q(s, a) and pre-clip gradient norm over this window's gradient steps
        /// (NaN before learning starts).
        TdLoss: float
        QMean: float
        GradNorm: float
        /// Epsilon at the end of the window.
        Epsilon: float
        /// Environment steps per second over all seeds in this window.
        Sps: float
    }

/// Metric names in CSV column order, with CleanRL's TensorBoard tags.
let metricColumns =
    [
        "global_step", ""
        "episodic_return", "charts/episodic_return"
        "episodic_length", "charts/episodic_length"
        "episodes", "charts/episodes"
        "return_last20", "charts/return_last20"
        "td_loss", "losses/td_loss"
        "q_values", "losses/q_values"
        "grad_norm", "losses/grad_norm"
        "epsilon", "charts/epsilon"
        "sps", "charts/SPS"
    ]

/// The values of a row in `metricColumns` order.
let metricValues (m: DqnMetrics) =
    [|
        float m.Step
        m.EpisodicReturn
        m.EpisodicLength
        float m.Episodes
        m.ReturnLast20
        m.TdLoss
        m.QMean
        m.GradNorm
        m.Epsilon
        m.Sps
    |]

/// One finished training episode.
type Episode =
    {
        /// Environment step (of its seed) at which it ended.
        EndStep: int64
        Return: float
        Length: int
    }

/// State a checkpoint must restore besides the networks, optimizer and buffer.
type Progress =
    {
        mutable GlobalStep: int64
        /// Per seed, every finished training episode in order.
        Episodes: ResizeArray<Episode>[]
        /// The running state of the environments, the current observations and the exploration
        /// and replay-sampling generators, as JSON text (see `Snapshot`), to continue from exactly:
        /// `trainWith` restores it in place of fresh episodes when it is not null (a checkpoint's
        /// `streams`), then clears it.
        mutable Streams: string
        /// Captures `Streams` at the current log boundary; set by `trainWith` (null when the
        /// environments cannot save their state, see `IEnvSnapshot`, or outside training).
        mutable CaptureStreams: Func<string>
    }

/// Hooks through which a caller watches and checkpoints a run.
type Hooks =
    {
        /// Called after every `LogEvery` window with one row per seed.
        OnLog: Agent -> Progress -> DqnMetrics[] -> unit
    }

/// Hooks that do nothing.
let noHooks = { OnLog = fun _ _ _ -> () }

/// What `train` returns.
type TrainResult =
    {
        Agent: Agent
        Metrics: DqnMetrics list
        Progress: Progress
        WallSeconds: float
    }

/// The first environment step at which the mean of `window` consecutive finished episodes
/// (ending at that episode) reaches `threshold`, or None. The bar of the issue: window 20, 475.
let firstStepReaching (window: int) (threshold: float) (episodes: Episode seq) : int64 option =
    let eps = Seq.toArray episodes

    seq { window - 1 .. eps.Length - 1 }
    |> Seq.tryFind (fun i -> (Array.averageBy (fun e -> e.Return) eps[i - window + 1 .. i]) >= threshold)
    |> Option.map (fun i -> eps[i].EndStep)

/// Mean return of the last `n` episodes (NaN when fewer than `n`).
let lastMean (n: int) (episodes: ResizeArray<Episode>) =
    if episodes.Count < n then
        nan
    else
        Seq.averageBy (fun e -> e.Return) (Seq.skip (episodes.Count - n) episodes)

/// Phase 1, act (Mnih et al. 2015, Algorithm 1: "with probability epsilon select a random
/// action, otherwise argmax_a Q(s, a)"): actions [S; N] for observations [S; N; obsDim], the
/// random draws from `exploreGen`. No gradient.
let private actEpsilonGreedy (agent: Agent) (exploreGen: torch.Generator) (epsilon: float) (obs: Tensor) =
    use _ng = torch.no_grad ()
    let S, N = obs.size 0, obs.size 1
    let greedy = agent.QNet.forward(obs).argmax(-1L) // [S; N]

    let random =
        torch.randint (
            int64 agent.QNet.NumActions,
            [| S; N |],
            generator = exploreGen,
            dtype = torch.int64,
            device = agent.Device
        )

    let u = torch.rand ([| S; N |], generator = exploreGen, device = agent.Device)
    torch.where (u.lt (epsilon.ToScalar()), random, greedy)

/// One log window's accumulators, on the device so that nothing is read back per step: the
/// episode ends, returns and lengths of every env step [window; S * N], and per seed [S] the
/// sums of the learning statistics over the window's gradient steps.
type private Window(window: int, S: int, N: int, device: torch.Device) =
    let steps () =
        torch.zeros ([| int64 window; int64 (S * N) |], device = device)

    let perSeed () =
        torch.zeros ([| int64 S |], dtype = torch.float64, device = device)

    let isDone, ret, len = steps (), steps (), steps ()
    let sumLoss, sumQ, sumGrad = perSeed (), perSeed (), perSeed ()

    /// Env steps recorded in this window.
    member val Steps = 0 with get, set
    /// True when the window holds its `window` env steps.
    member w.IsFull = w.Steps = window
    /// Gradient steps taken in this window.
    member val Learns = 0 with get, set

    /// Records one env step's episode ends, returns and lengths.
    member w.Record(r: BatchStep) =
        // copy_ converts the flags and lengths to float32.
        isDone[w.Steps].copy_(r.Terminated.logical_or r.Truncated) |> ignore
        ret[w.Steps].copy_ r.EpisodeReturn |> ignore
        len[w.Steps].copy_ r.EpisodeLength |> ignore
        w.Steps <- w.Steps + 1

    /// Adds one gradient step's statistics.
    member w.AddLearn(stats: LearnStats) =
        let f64 (x: Tensor) = x.to_type torch.float64
        sumLoss.add_ (f64 stats.Loss) |> ignore
        sumQ.add_ (f64 stats.QMean) |> ignore
        sumGrad.add_ (f64 stats.GradNorm) |> ignore
        w.Learns <- w.Learns + 1

    /// Phase 3, log: reads the window back once, appends its finished episodes to
    /// `progress.Episodes`, returns one row per seed (`step` is the step at the window's end) and
    /// starts a new window.
    member w.Close(seeds: int64[], progress: Progress, step: int64, epsilon: float, sps: float) : DqnMetrics[] =
        let t = w.Steps
        let d = toArray (isDone.narrow (0L, 0L, int64 t))
        let rets = toArray (ret.narrow (0L, 0L, int64 t))
        let lens = toArray (len.narrow (0L, 0L, int64 t))
        let stepAtStart = step - int64 (t * N)
        let winEps = Array.init S (fun _ -> ResizeArray<Episode>())

        for i in 0 .. t - 1 do
            for k in 0 .. S - 1 do
                for j in 0 .. N - 1 do
                    let c = (i * S * N) + k * N + j

                    if d[c] <> 0.0 then
                        let e =
                            {
                                EndStep = stepAtStart + int64 ((i + 1) * N)
                                Return = rets[c]
                                Length = int lens[c]
                            }

                        winEps[k].Add e
                        progress.Episodes[k].Add e

        let loss, q, grad = toArray sumLoss, toArray sumQ, toArray sumGrad
        let learns = w.Learns

        let per (x: float[]) k =
            if learns > 0 then x[k] / float learns else nan

        let meanOf (f: Episode -> float) (eps: ResizeArray<Episode>) =
            if eps.Count > 0 then eps |> Seq.averageBy f else nan

        for x in [ sumLoss; sumQ; sumGrad ] do
            x.zero_ () |> ignore

        w.Learns <- 0
        w.Steps <- 0
        isDone.zero_ () |> ignore

        [|
            for k in 0 .. S - 1 ->
                {
                    Seed = seeds[k]
                    Step = step
                    EpisodicReturn = meanOf (fun e -> e.Return) winEps[k]
                    EpisodicLength = meanOf (fun e -> float e.Length) winEps[k]
                    Episodes = winEps[k].Count
                    ReturnLast20 = lastMean 20 progress.Episodes[k]
                    TdLoss = per loss k
                    QMean = per q k
                    GradNorm = per grad k
                    Epsilon = epsilon
                    Sps = sps
                }
        |]

    interface IDisposable with
        member _.Dispose() =
            for x in [ isDone; ret; len; sumLoss; sumQ; sumGrad ] do
                x.Dispose()

/// Trains DQN (Mnih et al. 2015, Algorithm 1, as CleanRL's `dqn.py`): per env step, act
/// epsilon-greedily (`actEpsilonGreedy`), store (s, a, r, s', terminated) in the replay buffer,
/// every `TrainFrequency` steps learn on a sampled minibatch (`learnStep`) and every
/// `TargetNetworkFrequency` steps sync the target network; every `LogEvery` steps close the log
/// window (`Window.Close`) and call `hooks.OnLog`. `makeEnv n` builds a batched environment of n
/// copies; the S seeds share one environment of S * NumEnvs copies (seed k owns copies k*N ..
/// k*N + N - 1; its episodes thus depend on the base seed and NumSeeds, while its network
/// initialisation depends only on its own seed value). `resume` continues a restored agent (the
/// environments restart with fresh episodes). Raises `Ppo.TrainingDivergedException` (window
/// index, quantity) when the TD loss becomes NaN or infinite.
let trainWith
    (makeEnv: int -> IBatchedEnv)
    (cfg: DqnConfig)
    (hooks: Hooks)
    (resume: (Agent * Progress) option)
    : TrainResult =
    let device = Native.device cfg.Run.Device

    if cfg.Run.Threads > 0 then
        Native.setThreads cfg.Run.Threads

    let seeds = cfg.Seeds
    let S = seeds.Length
    let N = cfg.NumEnvs
    use env = makeEnv (S * N)
    let obsDim = env.ObservationSpace.FlatSize

    let agent, progress =
        match resume with
        | Some(a, p) -> a, p
        | None ->
            Seed.setGlobal cfg.Run.Seed

            makeAgent cfg obsDim env.ActionSpace device,
            {
                GlobalStep = 0L
                Episodes = Array.init S (fun _ -> ResizeArray())
                Streams = null
                CaptureStreams = null
            }

    let stream label =
        Seed.derive cfg.Run.Seed $"{label}/{progress.GlobalStep}"

    let exploreGen = Seed.generator device (stream "dqn-explore")
    let sampleGen = Seed.generator device (stream "dqn-replay")
    let duration = cfg.ExplorationFraction * float cfg.TotalTimesteps
    use window = new Window(max 1 (cfg.LogEvery / N), S, N, device) // env steps (of all copies) per log window

    let every (n: int) (step: int64) =
        (step / int64 N) % int64 (max 1 (n / N)) = 0L

    let mutable obs =
        env.Reset(stream "dqn-env").reshape(int64 S, int64 N, int64 obsDim).DetachFromDisposeScope()

    if not (isNull progress.Streams) then
        // Continue exactly where the checkpoint stopped instead of starting fresh episodes.
        let node = Snapshot.parse progress.Streams

        match env with
        | :? IEnvSnapshot as e -> e.LoadState(string (Snapshot.field "env" node))
        | _ -> raise (FormatException $"DQN streams: {cfg.EnvId}'s environments cannot load a saved state")

        let saved =
            Snapshot.toTensorLike "DQN streams, observations" obs (Snapshot.field "obs" node)

        obs.Dispose()
        obs <- saved.DetachFromDisposeScope()
        Snapshot.restoreGenerator exploreGen (Snapshot.field "explore" node)
        Snapshot.restoreGenerator sampleGen (Snapshot.field "replay" node)
        progress.Streams <- null

    progress.CaptureStreams <-
        match env with
        | :? IEnvSnapshot as e when e.CanSaveState ->
            Func<string>(fun () ->
                let o = Text.Json.Nodes.JsonObject()
                o["env"] <- Text.Json.Nodes.JsonValue.Create(e.SaveState())
                o["obs"] <- Snapshot.ofTensor obs
                o["explore"] <- Snapshot.ofGenerator exploreGen
                o["replay"] <- Snapshot.ofGenerator sampleGen
                o.ToJsonString())
        | _ -> null

    let metrics = ResizeArray<DqnMetrics>()
    let total = Stopwatch.StartNew()
    let mutable clock = Stopwatch.StartNew()
    let mutable windowIndex = 0

    try
        while progress.GlobalStep < cfg.TotalTimesteps do
            use stepScope = torch.NewDisposeScope()
            let epsilon = epsilonAt cfg.StartE cfg.EndE duration progress.GlobalStep

            let action =
                Profile.section "dqn.act" (fun () -> actEpsilonGreedy agent exploreGen epsilon obs)

            let r =
                Profile.section "dqn.env_step" (fun () -> env.Step(action.reshape (int64 (S * N))))


            let shape3 (x: Tensor) =
                x.reshape (int64 S, int64 N, int64 obsDim)

            let shape2 (x: Tensor) = x.reshape (int64 S, int64 N)
            // Phase 2, store (s, a, r, s', terminated); s' is the final observation (before auto-reset).
            Profile.section "dqn.store" (fun () ->
                agent.Buffer.Add(obs, action, shape2 r.Reward, shape3 r.FinalObs, shape2 r.Terminated)
                window.Record r)

            obs.Dispose()
            obs <- (shape3 r.Obs).MoveToOuterDisposeScope().DetachFromDisposeScope()
            progress.GlobalStep <- progress.GlobalStep + int64 N
            let step = progress.GlobalStep

            // Learn, and sync the target network.
            if step > cfg.LearningStarts then
                if every cfg.TrainFrequency step then
                    Profile.section "dqn.learn" (fun () ->
                        window.AddLearn(learnStep cfg agent (agent.Buffer.Sample(cfg.BatchSize, sampleGen))))

                if every cfg.TargetNetworkFrequency step then
                    syncParameters cfg.Tau agent.QNet agent.Target

            if window.IsFull || step >= cfg.TotalTimesteps then
                windowIndex <- windowIndex + 1
                let learned = window.Learns > 0
                let sps = float (window.Steps * N * S) / clock.Elapsed.TotalSeconds
                let rows = window.Close(seeds, progress, step, epsilon, sps)

                for row in rows do
                    if Double.IsNaN row.TdLoss && learned || Double.IsInfinity row.TdLoss then
                        raise (Ppo.TrainingDivergedException(windowIndex, "td_loss", row.TdLoss))

                metrics.AddRange rows
                hooks.OnLog agent progress rows
                clock <- Stopwatch.StartNew()

        {
            Agent = agent
            Metrics = List.ofSeq metrics
            Progress = progress
            WallSeconds = total.Elapsed.TotalSeconds
        }
    finally
        progress.CaptureStreams <- null
        obs.Dispose()

/// Greedy evaluation: for each seed, `episodes` episodes of argmax_a Q(s, a) on fresh
/// environments reset with `evalSeed` (the same start states for every seed). Returns per seed
/// the undiscounted episode returns.
let evaluate (makeEnv: int -> IBatchedEnv) (agent: Agent) (episodes: int) (evalSeed: int64) : float[][] =
    let S = agent.Seeds.Length
    use env = makeEnv (S * episodes)
    use _ng = torch.no_grad ()
    use scope = torch.NewDisposeScope()
    let obsDim = env.ObservationSpace.FlatSize
    // Every seed sees the same start states: copy j of each seed's block starts alike.
    let mutable obs = env.Reset evalSeed
    let returns = Array.init S (fun _ -> Array.create episodes nan)
    let mutable stepsLeft = env.MaxEpisodeSteps + 1

    while returns |> Array.exists (Array.exists Double.IsNaN) && stepsLeft > 0 do
        use stepScope = torch.NewDisposeScope()
        let q = agent.QNet.forward (obs.reshape (int64 S, int64 episodes, int64 obsDim))
        let r = env.Step(q.argmax(-1L).reshape(int64 (S * episodes)))
        let finished = toArray (r.Terminated.logical_or r.Truncated)
        let epRet = toArray r.EpisodeReturn

        for k in 0 .. S - 1 do
            for j in 0 .. episodes - 1 do
                let c = k * episodes + j

                if finished[c] <> 0.0 && Double.IsNaN(returns[k][j]) then
                    returns[k][j] <- epRet[c]

        obs <- r.Obs.MoveToOuterDisposeScope()
        stepsLeft <- stepsLeft - 1

    returns

// ---------------------------------------------------------------------------------------
// Config keys
// ---------------------------------------------------------------------------------------

/// The config keys of `DqnConfig` (snake_case, as CleanRL's `dqn.py` arguments).
let fields: Field<DqnConfig> list =
    [
        Field.envId "Environment id (discrete actions)." (fun c -> c.EnvId) (fun c v -> { c with EnvId = v })
        Field.int "num_envs" "Parallel environments per seed." (Allow.ge 1) (fun c -> c.NumEnvs) (fun c v ->
            { c with NumEnvs = v })
        Field.int64
            "total_timesteps"
            "Environment steps per seed over the run."
            (Allow.ge 1L)
            (fun c -> c.TotalTimesteps)
            (fun c v -> { c with TotalTimesteps = v })
        Field.float "learning_rate" "Adam learning rate." (Allow.gt 0.0) (fun c -> c.LearningRate) (fun c v ->
            { c with LearningRate = v })
        Field.int
            "buffer_size"
            "Replay capacity per seed (transitions)."
            (Allow.ge 1)
            (fun c -> c.BufferSize)
            (fun c v -> { c with BufferSize = v })
        Field.float "gamma" "Discount factor." (Allow.between 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
            { c with Gamma = v })
        Field.float
            "tau"
            "Target update rate: 1 = hard copy, < 1 = Polyak averaging."
            (Allow.openClosed 0.0 1.0)
            (fun c -> c.Tau)
            (fun c v -> { c with Tau = v })
        Field.int
            "target_network_frequency"
            "Environment steps between target updates."
            (Allow.ge 1)
            (fun c -> c.TargetNetworkFrequency)
            (fun c v -> { c with TargetNetworkFrequency = v })
        Field.int "batch_size" "Minibatch size per seed." (Allow.ge 1) (fun c -> c.BatchSize) (fun c v ->
            { c with BatchSize = v })
        Field.float "start_e" "Initial epsilon." (Allow.between 0.0 1.0) (fun c -> c.StartE) (fun c v ->
            { c with StartE = v })
        Field.float "end_e" "Final epsilon." (Allow.between 0.0 1.0) (fun c -> c.EndE) (fun c v -> { c with EndE = v })
        Field.float
            "exploration_fraction"
            "Fraction of total_timesteps over which epsilon falls linearly."
            (Allow.between 0.0 1.0)
            (fun c -> c.ExplorationFraction)
            (fun c v -> { c with ExplorationFraction = v })
        Field.int64
            "learning_starts"
            "Environment steps before learning begins."
            (Allow.ge 0L)
            (fun c -> c.LearningStarts)
            (fun c v -> { c with LearningStarts = v })
        Field.int
            "train_frequency"
            "Environment steps between gradient steps."
            (Allow.ge 1)
            (fun c -> c.TrainFrequency)
            (fun c v -> { c with TrainFrequency = v })
        Field.intList "hidden" "Hidden layer sizes of the Q-network." (Allow.ge 1) (fun c -> c.Hidden) (fun c v ->
            { c with Hidden = v })
        Field.activation (fun c -> c.Activation) (fun c v -> { c with Activation = v })
        Field.choice
            "loss"
            "TD loss: mse or huber."
            [ "mse"; "huber" ]
            (fun c ->
                (match c.Loss with
                 | Losses.Mse -> "mse"
                 | Losses.Huber -> "huber"))
            (fun c v ->
                { c with
                    Loss = Losses.TdLossKind.Parse v
                })
        Field.float
            "max_grad_norm"
            "Per-seed global gradient-norm clip; 0 disables it."
            (Allow.ge 0.0)
            (fun c -> c.MaxGradNorm)
            (fun c v -> { c with MaxGradNorm = v })
        Field.choice
            "init"
            "Weight initialisation: default (PyTorch nn.Linear) or orthogonal."
            [ "default"; "orthogonal" ]
            (fun c -> c.Init)
            (fun c v -> { c with Init = v })
        yield! Field.runSettings (fun c -> c.Run) (fun c v -> { c with Run = v })
        Field.int "log_every" "Environment steps per metrics row." (Allow.ge 1) (fun c -> c.LogEvery) (fun c v ->
            { c with LogEvery = v })
        Field.int
            "eval_episodes"
            "Greedy evaluation episodes at the end."
            (Allow.ge 1)
            (fun c -> c.EvalEpisodes)
            (fun c v -> { c with EvalEpisodes = v })
        Field.int64 "eval_seed" "Seed of the evaluation environments." (Allow.ge 0L) (fun c -> c.EvalSeed) (fun c v ->
            { c with EvalSeed = v })
        Field.vectorizationMode (fun c -> c.VectorizationMode) (fun c v -> { c with VectorizationMode = v })
    ]

/// Cross-field checks of a DQN config; raises `ConfigError`.
let validate (c: DqnConfig) =
    Config.checkVectorization c.VectorizationMode c.Run.Device
    Config.check (c.BatchSize <= c.BufferSize) "batch_size" (string c.BatchSize) $"<= buffer_size = {c.BufferSize}"
    Config.check (c.NumEnvs <= c.BufferSize) "num_envs" (string c.NumEnvs) $"<= buffer_size = {c.BufferSize}"
    Config.check (c.EndE <= c.StartE) "end_e" (string c.EndE) $"<= start_e = {c.StartE}"
    Config.checkDiscreteEnv c.EnvId

/// Batched environments for `cfg` from the registry, on the config's device, stepped as
/// `vectorization_mode` says (`Envs.makeVec`).
let makeEnv (cfg: DqnConfig) : int -> IBatchedEnv =
    let device = Native.device cfg.Run.Device
    fun n -> Envs.makeVec cfg.VectorizationMode cfg.EnvId n device

/// Trains DQN on `cfg.EnvId` (see `trainWith`).
let train (cfg: DqnConfig) (hooks: Hooks) (resume: (Agent * Progress) option) : TrainResult =
    trainWith (makeEnv cfg) cfg hooks resume
