/// The PPO loop: per update, rollout -> advantages -> learn -> metrics rows -> hooks (the
/// caller's logging and checkpoints), from a fresh start or a restored agent.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// Hooks through which a caller watches and checkpoints a run.
type Hooks =
    {
        /// Called after every update with one metrics row per seed.
        OnUpdate: Agent -> Progress -> Normalizers -> UpdateMetrics[] -> unit
    }

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

/// Training PPO.
module Loop =
    /// Hooks that do nothing.
    let noHooks = { OnUpdate = fun _ _ _ _ -> () }

    /// One update (Schulman et al. 2017, Algorithm 1): `Rollout.collect` -> `Learn.advantages`
    /// (GAE) -> `Learn.learn` -> `Diagnostics.metricsRows` (with the KL penalty's beta adapted per
    /// seed after the update). Moves `progress` on by one update; returns one row per seed. Raises
    /// `TrainingDivergedException` when a loss becomes NaN/Inf. Its tensors belong to the
    /// caller's dispose scope.
    let internal update
        (cfg: PpoConfig)
        (agent: Agent)
        (progress: Progress)
        (normalizers: Normalizers)
        (envs: SeedEnvs)
        (gens: Generators)
        (state: RolloutState)
        : UpdateMetrics[] =
        progress.Update <- progress.Update + 1
        let clock = Stopwatch.StartNew()
        let lr = Learn.setLearningRates cfg agent progress.Update
        let r = Rollout.collect cfg agent normalizers envs gens.Policy state
        progress.GlobalStep <- progress.GlobalStep + int64 cfg.BatchSize
        let rolloutSeconds = clock.Elapsed.TotalSeconds

        let batch =
            Profile.section "gae" (fun () -> Learn.advantages cfg agent normalizers.Obs r)

        let gaeSeconds = clock.Elapsed.TotalSeconds - rolloutSeconds

        if isNull progress.KlBeta then
            progress.KlBeta <- Array.create agent.Seeds.Length cfg.KlBeta

        let sums = Learn.learn cfg agent gens.Minibatch progress.KlBeta batch

        let seconds =
            {
                Rollout = rolloutSeconds
                Gae = gaeSeconds
                Learn = clock.Elapsed.TotalSeconds - rolloutSeconds - gaeSeconds
            }

        let rows =
            Profile.section "log" (fun () ->
                let kl = Diagnostics.policyKl agent batch
                let klBeta = progress.KlBeta

                if cfg.KlPenalty then
                    progress.KlBeta <- Array.map2 (Losses.adaptKlBeta cfg.KlTarget) kl klBeta

                Diagnostics.metricsRows cfg agent progress lr clock seconds kl klBeta r batch sums)

        Diagnostics.checkFinite rows
        rows

    /// Trains PPO: `update` after `update` until `cfg.NumUpdates`, each followed by
    /// `hooks.OnUpdate`. `makeEnv n` builds a batched environment of n copies (see `SeedEnvs`;
    /// evaluation is separate). `resume` continues from a restored agent, progress and normalisers,
    /// exactly where they stopped when the progress holds the checkpoint's streams (`Streams`).
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
                Agent.makeFor cfg obsDim envs.ActionSpace device, Progress.Start, Normalizers.create cfg obsDim device

        let gens = Streams.generators seeds device progress.Update

        use state =
            {
                Obs = envs.Reset(Streams.fusedEnvSeed seeds progress.Update, Streams.envSeed seeds progress.Update)
                Discounted = torch.zeros ([| int64 S; int64 cfg.NumEnvs |], dtype = torch.float64, device = device)
            }

        Streams.restore progress envs state gens
        progress.CaptureStreams <- Streams.capture envs state gens
        let metrics = ResizeArray<UpdateMetrics>()
        let total = Stopwatch.StartNew()

        while progress.Update < cfg.NumUpdates do
            use updateScope = torch.NewDisposeScope()
            let rows = update cfg agent progress normalizers envs gens state
            metrics.AddRange rows
            hooks.OnUpdate agent progress normalizers rows

        progress.CaptureStreams <- null

        {
            Agent = agent
            Metrics = List.ofSeq metrics
            Normalizers = normalizers
            WallSeconds = total.Elapsed.TotalSeconds
        }

    /// Trains PPO on `cfg.EnvId` (see `trainWith`): `train cfg noHooks None` is the whole run.
    let train (cfg: PpoConfig) (hooks: Hooks) (resume: (Agent * Progress * Normalizers) option) : TrainResult =
        trainWith (PpoConfig.makeEnv cfg) cfg hooks resume
