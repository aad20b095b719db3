/// PPO as the run driver sees it (`train.fsx algo=ppo`, the default): its checkpoint (networks,
/// optimizers, progress, gradient history, normalisers and the exact-resume streams) written and
/// loaded, its metrics columns and report, and the `Train.Algorithm` record that wires the loop's
/// hooks to the driver's context.
namespace Rl.Ppo

open System
open System.IO
open TorchSharp
open Rl
open Rl.Train

/// PPO's checkpoint, report and run-driver record.
module Runner =
    /// Default config file for PPO.
    let defaultConfig = Path.Combine("scripts", "configs", "ppo-pendulum.yaml")

    let internal columns (seeds: int) =
        columnsFor seeds Diagnostics.metricColumns

    let internal row (seeds: int) (m: UpdateMetrics) =
        rowFor seeds m.Seed (Diagnostics.metricValues m)

    let private gradHistoryKey = "grad_history"

    /// Saves a PPO agent, its optimizers, progress (with the gradient history behind the cosine
    /// diagnostics, when there is one) and normalisation statistics as the checkpoint folder
    /// `ckptDir` atomically.
    let saveCheckpointTo (ckptDir: string) (agent: Agent) (progress: Progress) (norm: Normalizers) =
        let extra =
            [
                "update", string progress.Update
                "global_step", string progress.GlobalStep
                match norm.Obs with
                | Some s -> "obs_stats", s.Save()
                | None -> ()
                match norm.Return with
                | Some s -> "return_stats", s.Save()
                | None -> ()
                if not (isNull progress.PrevGrad) then
                    gradHistoryKey, String.Join(",", progress.PrevGrad.shape)
                if not (isNull progress.KlBeta) then
                    "kl_beta", Checkpoint.encodeFloats progress.KlBeta
                if not (isNull progress.CaptureStreams) then
                    streamsKey, progress.CaptureStreams.Invoke()
            ]
            |> Map.ofList

        let history =
            if isNull progress.PrevGrad then
                []
            else
                [
                    gradHistoryKey, new GradHistory(progress.PrevGrad, progress.EmaGrad) :> TorchSharp.torch.nn.Module
                ]

        Checkpoint.save
            ckptDir
            (agent.Modules @ history)
            [
                for name, o in agent.Optimizers -> name, o :?> TorchSharp.Modules.OptimizerHelper
            ]
            extra

    /// `saveCheckpointTo` the run folder's `dir/checkpoint`.
    let saveCheckpoint (dir: string) (agent: Agent) (progress: Progress) (norm: Normalizers) =
        saveCheckpointTo (Path.Combine(dir, Run.CheckpointDir)) agent progress norm

    /// Builds a PPO agent for `cfg` and loads the checkpoint of run folder (or checkpoint folder)
    /// `path` into it. Raises `CheckpointError` for a missing or damaged checkpoint.
    let load (cfg: PpoConfig) (path: string) : Agent * Progress * Normalizers =
        let ckpt =
            if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then
                path
            else
                Path.Combine(path, Run.CheckpointDir)

        use env = Envs.makeBatched cfg.EnvId 1 TorchSharp.torch.CPU
        let obsDim = env.ObservationSpace.FlatSize
        let device = Native.device cfg.Run.Device
        // Modules load on the CPU, then move (TorchSharp's save/load guidance).
        let agent = Agent.makeFor cfg obsDim env.ActionSpace TorchSharp.torch.CPU

        // Checkpoints written before the gradient history was saved have none: the cosine columns
        // then start again from NaN.
        let history =
            match (Checkpoint.readExtra ckpt).TryFind gradHistoryKey with
            | Some shape ->
                let dims = shape.Split ',' |> Array.map int64
                Some(new GradHistory(TorchSharp.torch.zeros dims, TorchSharp.torch.zeros dims))
            | None -> None

        let extra =
            Checkpoint.load
                ckpt
                (agent.Modules
                 @ (history
                    |> Option.map (fun h -> gradHistoryKey, h :> TorchSharp.torch.nn.Module)
                    |> Option.toList))
                [
                    for name, o in agent.Optimizers -> name, o :?> TorchSharp.Modules.OptimizerHelper
                ]

        for _, m in agent.Modules do
            m.``to`` device |> ignore

        let norm = Normalizers.create cfg obsDim device
        norm.Obs |> Option.iter (fun s -> s.Load extra["obs_stats"])
        norm.Return |> Option.iter (fun s -> s.Load extra["return_stats"])

        let progress: Progress =
            { Progress.Start with
                Update = int extra["update"]
                GlobalStep = int64 extra["global_step"]
                PrevGrad =
                    history
                    |> Option.map (fun h -> h.Prev.``to``(device).DetachFromDisposeScope())
                    |> Option.toObj
                EmaGrad =
                    history
                    |> Option.map (fun h -> h.Ema.``to``(device).DetachFromDisposeScope())
                    |> Option.toObj
                KlBeta = extra.TryFind "kl_beta" |> Option.map Checkpoint.decodeFloats |> Option.toObj
                Streams = extra.TryFind streamsKey |> Option.toObj
            }

        { agent with Device = device }, progress, norm

    /// The deterministic policy of a restored PPO state (`Train.Algorithm.Policy`): the mean action
    /// (clipped into the action box) or the most likely action, on observations normalised with
    /// the run's statistics, as `Evaluate.evaluate` computes it; per seed the actor's (or the
    /// shared network's) trunk and policy layer as numbers.
    /// The deterministic policy of a trained agent and its normalizers (what `policy` restores
    /// from a checkpoint; e.g. `Loop.train`'s result in a notebook). `Release` disposes the agent.
    let policyOf (cfg: PpoConfig) (agent: Agent) (norm: Normalizers) : PolicyExport.LoadedPolicy =
        let obsSpace, space = PolicyExport.spacesOf cfg.EnvId

        let trunk, head =
            match agent.Shared with
            | Some net -> net.Trunk, net.Policy
            | None -> agent.Actor.Trunk, agent.Actor.Policy

        let scale =
            match Agent.head cfg space with
            | Nn.GaussianHead(_, s, _) -> s
            | Nn.CategoricalHead _ -> None

        let dist obs =
            agent.Dist(Normalizers.preprocess norm.Obs obs)

        {
            Algo = "ppo"
            EnvId = cfg.EnvId
            Seeds = agent.Seeds
            ObservationSpace = obsSpace
            ActionSpace = space
            ScoresName = (if space.IsDiscrete then "log_probs" else null)
            Act = fun obs -> PolicyExport.clipToBox space (Nn.Dist.mode (dist obs))
            Outputs =
                fun obs ->
                    match dist obs with
                    | Nn.Normal(mean, _) -> mean
                    | Nn.Categorical lp -> lp
            Network =
                PolicyExport.network
                    agent.Seeds
                    trunk
                    head.OutLayer
                    (norm.Obs |> Option.map (fun s -> PolicyExport.obsNorm s Normalizers.obsClip))
                    (PolicyExport.outputFor space scale true)
            Release = fun () -> (agent :> IDisposable).Dispose()
        }

    /// `policyOf` of a state restored from a checkpoint.
    let policy (cfg: PpoConfig) (agent: Agent, _: Progress, norm: Normalizers) = policyOf cfg agent norm

    /// Writes `report.html` for a PPO run folder from its `metrics.csv` and summary pairs.
    let writeReport (dir: string) (title: string) (summary: (string * SummaryValue) list) =
        let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))
        let view = SeedView.MeanStd

        let panelsFor =
            [
                "actor_loss"
                "critic_loss"
                "entropy"
                "approx_kl"
                "clip_fraction"
                "explained_variance"
                "sigma_mean"
                "grad_norm"
                "lr"
                "adam_m_norm"
                "adam_v_norm"
                "grad_cos_prev"
                "grad_cos_ema"
            ]
            |> List.filter (fun c ->
                Metrics.hasColumn c table
                && (Metrics.column c table |> Array.exists Double.IsFinite))

        Report.writeWith
            (Path.Combine(dir, Run.ReportFile))
            title
            (Run.summaryText summary)
            (Report.runVideos dir 4 (Video.captionIn dir))
            [
                "Learning curve", [ Charts.learningCurve view "global_step" "episodic_return" table ]
                "Losses and diagnostics", [ Charts.panels view "global_step" panelsFor table ]
                "Time per update", [ Charts.panels view "global_step" [ "sps"; "rollout_s"; "learn_s" ] table ]
            ]

    /// PPO for the run driver (`train.fsx algo=ppo`, the default).
    let algorithm: Algorithm<PpoConfig, Agent * Progress * Normalizers, TrainResult> =
        {
            Name = "ppo"
            Fields = PpoConfig.fields
            Defaults = PpoConfig.seedDefaults
            Validate = PpoConfig.validate
            DefaultConfig = defaultConfig
            Target = fun c -> c.EnvId
            Device = fun c -> c.Run.Device
            Check = ignore
            Load = Some load
            Describe =
                fun (_, p, _) ->
                    let how =
                        if isNull p.Streams then
                            "; fresh episodes: the checkpoint holds no environment state"
                        else
                            ""

                    $"update {p.Update} (step {p.GlobalStep}){how}", p.GlobalStep
            Columns = fun c -> columns c.Run.NumSeeds
            Total = fun c -> c.TotalTimesteps
            EvalEvery = fun c -> c.EvalEvery
            Seeds = fun c -> c.Seeds
            Label = fun c -> $"ppo {c.EnvId}"
            Train =
                fun ctx resume ->
                    let cfg = ctx.Config

                    let hooks: Hooks =
                        {
                            OnUpdate =
                                fun agent progress norm rows ->
                                    for r in rows do
                                        ctx.Log(row cfg.Run.NumSeeds r)

                                    ctx.Report
                                        progress.GlobalStep
                                        (rows |> Seq.map (fun r -> r.EpisodicReturn) |> recentMean)

                                    evalAtBoundary
                                        ctx
                                        cfg.Seeds
                                        progress.GlobalStep
                                        (progress.Update = cfg.NumUpdates)
                                        (fun () ->
                                            Evaluate.evaluate
                                                (PpoConfig.makeEnv cfg)
                                                agent
                                                norm.Obs
                                                cfg.EvalEpisodes
                                                cfg.EvalSeed)
                                        (Some(fun _ ckptDir -> saveCheckpointTo ckptDir agent progress norm))

                                    checkpointAtBoundary
                                        ctx
                                        progress.Update
                                        (progress.Update = cfg.NumUpdates)
                                        progress.GlobalStep
                                        (fun () -> saveCheckpoint ctx.Dir agent progress norm)
                        }

                    Loop.train cfg hooks resume
            Summarize =
                fun cfg result wall ->
                    let evals =
                        Evaluate.evaluate
                            (PpoConfig.makeEnv cfg)
                            result.Agent
                            result.Normalizers.Obs
                            cfg.EvalEpisodes
                            cfg.EvalSeed

                    printEvals "deterministic policy" cfg.Seeds cfg.EvalSeed evals

                    {
                        Pairs = evalSummary evals cfg.Seeds wall cfg.TotalTimesteps cfg.Run.Device cfg.EnvId
                        Evals = evals
                    }
            WriteReport = fun dir cfg summary -> writeReport dir $"PPO on {cfg.EnvId}" summary
            Release = fun r -> (r.Agent :> IDisposable).Dispose()
            Evaluate =
                Some(fun cfg (agent, _, norm) episodes ->
                    use _a = agent
                    let n = defaultArg episodes cfg.EvalEpisodes
                    Evaluate.evaluate (PpoConfig.makeEnv cfg) agent norm.Obs n cfg.EvalSeed)
            Policy = Some policy
            CaptureVideo = fun c -> c.CaptureVideo
            EvalSeed = fun c -> c.EvalSeed
        }

    /// Trains PPO from command-line arguments (`config=`, `resume=`, `runs=`, `checkpoint_every=`
    /// and config overrides) through the run driver and returns the run folder. Writes nothing
    /// before the config is valid.
    let run (args: string list) : string = drive algorithm args

    /// `run` that stops at the next update boundary, after a checkpoint, when `cancel` is
    /// cancelled, raising `RunStoppedException`.
    let runWith (cancel: Threading.CancellationToken) (args: string list) : string = driveWith cancel algorithm args

    /// PPO metrics rows as a table with the columns of `metrics.csv` (a `seed` column when
    /// `seeds > 1`), for charts in notebooks.
    let table (seeds: int) (rows: UpdateMetrics list) : MetricsTable =
        Metrics.ofRows (columns seeds |> List.map (fun c -> c.Name)) (rows |> List.map (row seeds))
