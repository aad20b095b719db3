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
                Agent.makeFor cfg obsDim envs.ActionSpace device, Progress.Start, Normalizers.create cfg obsDim device

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
                Snapshot.toTensorLike
                    "PPO streams, discounted returns"
                    state.Discounted
                    (Snapshot.field "discounted" node)

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
            let lr = Learn.setLearningRates cfg agent progress.Update
            let r = Rollout.collect cfg agent normalizers envs sampleGens state
            progress.GlobalStep <- progress.GlobalStep + int64 cfg.BatchSize
            let rolloutSeconds = clock.Elapsed.TotalSeconds

            let batch =
                Profile.section "gae" (fun () -> Learn.advantages cfg agent normalizers.Obs r)

            let gaeSeconds = clock.Elapsed.TotalSeconds - rolloutSeconds

            if isNull progress.KlBeta then
                progress.KlBeta <- Array.create S cfg.KlBeta

            let sums = Learn.learn cfg agent shuffleGens progress.KlBeta batch

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
