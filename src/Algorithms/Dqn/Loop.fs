/// The DQN loop (Mnih et al. 2015, Algorithm 1, as CleanRL's `dqn.py`): per env step act, store,
/// learn every `train_frequency` steps after `learning_starts`, sync the target network, log a
/// window every `log_every` steps; from a fresh start or a restored agent.
namespace Rl.Dqn

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// Hooks through which a caller watches and checkpoints a run.
type Hooks =
    {
        /// Called after every `LogEvery` window with one row per seed.
        OnLog: Agent -> Progress -> DqnMetrics[] -> unit
    }

/// What `train` returns.
type TrainResult =
    {
        Agent: Agent
        Metrics: DqnMetrics list
        Progress: Progress
        WallSeconds: float
    }

/// Training DQN.
module Loop =
    /// Hooks that do nothing.
    let noHooks = { OnLog = fun _ _ _ -> () }

    /// Phases 1 and 2 of one environment step (Mnih et al. 2015, Algorithm 1): act
    /// epsilon-greedily on `obs` [S; N; obsDim] (random draws from `exploreGen`), step the S * N
    /// environment copies, store (s, a, r, s', terminated) in the replay buffer (s' the final
    /// observation, before auto-reset) and the step in the log `window`. Disposes `obs`; returns
    /// the next observations, detached from every dispose scope.
    let internal actAndStore
        (agent: Agent)
        (env: IBatchedEnv)
        (exploreGen: torch.Generator)
        (window: Window)
        (epsilon: float)
        (obs: Tensor)
        : Tensor =
        let S, N, obsDim = obs.size 0, obs.size 1, obs.size 2

        let action =
            Profile.section "dqn.act" (fun () -> Agent.actEpsilonGreedy agent exploreGen epsilon obs)

        let r = Profile.section "dqn.env_step" (fun () -> env.Step(action.reshape (S * N)))
        let shape3 (x: Tensor) = x.reshape (S, N, obsDim)
        let shape2 (x: Tensor) = x.reshape (S, N)

        Profile.section "dqn.store" (fun () ->
            agent.Buffer.Add(obs, action, shape2 r.Reward, shape3 r.FinalObs, shape2 r.Terminated)
            window.Record r)

        obs.Dispose()
        (shape3 r.Obs).MoveToOuterDisposeScope().DetachFromDisposeScope()

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

                Agent.make cfg obsDim env.ActionSpace device,
                {
                    GlobalStep = 0L
                    Episodes = Array.init S (fun _ -> ResizeArray())
                    Streams = null
                    CaptureStreams = null
                }

        let gens = Streams.generators cfg.Run.Seed device progress.GlobalStep
        let duration = cfg.ExplorationFraction * float cfg.TotalTimesteps
        use window = new Window(max 1 (cfg.LogEvery / N), S, N, device) // env steps (of all copies) per log window

        let every (n: int) (step: int64) =
            (step / int64 N) % int64 (max 1 (n / N)) = 0L

        let mutable obs =
            env
                .Reset(Streams.envSeed cfg.Run.Seed progress.GlobalStep)
                .reshape(int64 S, int64 N, int64 obsDim)
                .DetachFromDisposeScope()

        obs <- Streams.restore progress cfg.EnvId env gens obs
        progress.CaptureStreams <- Streams.capture env gens (fun () -> obs)
        let metrics = ResizeArray<DqnMetrics>()
        let total = Stopwatch.StartNew()
        let mutable clock = Stopwatch.StartNew()
        let mutable windowIndex = 0

        try
            while progress.GlobalStep < cfg.TotalTimesteps do
                use stepScope = torch.NewDisposeScope()
                let epsilon = Agent.epsilonAt cfg.StartE cfg.EndE duration progress.GlobalStep

                obs <- actAndStore agent env gens.Explore window epsilon obs
                progress.GlobalStep <- progress.GlobalStep + int64 N
                let step = progress.GlobalStep

                // Learn, and sync the target network.
                if step > cfg.LearningStarts then
                    if every cfg.TrainFrequency step then
                        Profile.section "dqn.learn" (fun () ->
                            window.AddLearn(
                                Agent.learnStep cfg agent (agent.Buffer.Sample(cfg.BatchSize, gens.Replay))
                            ))

                    if every cfg.TargetNetworkFrequency step then
                        syncParameters cfg.Tau agent.QNet agent.Target

                if window.IsFull || step >= cfg.TotalTimesteps then
                    windowIndex <- windowIndex + 1
                    let learned = window.Learns > 0
                    let sps = float (window.Steps * N * S) / clock.Elapsed.TotalSeconds
                    let rows = window.Close(seeds, progress, step, epsilon, sps)

                    for row in rows do
                        if Double.IsNaN row.TdLoss && learned || Double.IsInfinity row.TdLoss then
                            raise (Train.TrainingDivergedException(windowIndex, "td_loss", row.TdLoss))

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

    /// Trains DQN on `cfg.EnvId` (see `trainWith`).
    let train (cfg: DqnConfig) (hooks: Hooks) (resume: (Agent * Progress) option) : TrainResult =
        trainWith (DqnConfig.makeEnv cfg) cfg hooks resume
