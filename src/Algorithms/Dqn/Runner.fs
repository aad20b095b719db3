/// DQN as the run driver sees it (`train.fsx algo=dqn`): its checkpoint (online and target
/// networks, replay buffer, optimizer, counters, finished episodes and the exact-resume streams)
/// written and loaded, its metrics columns and report, and the `Train.Algorithm` record.
namespace Rl.Dqn

open System
open System.IO
open TorchSharp
open Rl
open Rl.Train

/// DQN's checkpoint, report and run-driver record.
module Runner =
    /// Default config file for DQN.
    let defaultConfig = Path.Combine("scripts", "configs", "dqn-cartpole.yaml")

    let internal columns (seeds: int) =
        columnsFor seeds Diagnostics.metricColumns

    let internal row (seeds: int) (m: DqnMetrics) =
        rowFor seeds m.Seed (Diagnostics.metricValues m)

    /// DQN metrics rows as a table with the columns of `metrics.csv`, for charts in notebooks.
    let table (seeds: int) (rows: DqnMetrics list) : MetricsTable =
        Metrics.ofRows (columns seeds |> List.map (fun c -> c.Name)) (rows |> List.map (row seeds))

    let internal modules (agent: Agent) : (string * torch.nn.Module) list =
        [
            "q", agent.QNet :> torch.nn.Module
            "target", agent.Target
            "replay", agent.Buffer
        ]

    /// Saves a DQN checkpoint (online and target networks, replay buffer, optimizer, step counter,
    /// buffer counters and the finished episodes) as the checkpoint folder `ckptDir` atomically.
    let saveCheckpointTo (ckptDir: string) (agent: Agent) (progress: Progress) =
        let extra =
            [
                "global_step", string progress.GlobalStep
                "buffer_position", string agent.Buffer.Position
                "buffer_count", string agent.Buffer.Count
                if not (isNull progress.CaptureStreams) then
                    streamsKey, progress.CaptureStreams.Invoke()
                for k in 0 .. progress.Episodes.Length - 1 do
                    let eps = progress.Episodes[k]

                    $"episodes_{k}",
                    Checkpoint.encodeFloats
                        [|
                            for e in eps do
                                yield float e.EndStep
                                yield e.Return
                                yield float e.Length
                        |]
            ]
            |> Map.ofList

        Checkpoint.save
            ckptDir
            (modules agent)
            [ "opt", agent.Opt.Optimizer :?> TorchSharp.Modules.OptimizerHelper ]
            extra

    /// `saveCheckpointTo` the run folder's `dir/checkpoint`.
    let saveCheckpoint (dir: string) (agent: Agent) (progress: Progress) =
        saveCheckpointTo (Path.Combine(dir, Run.CheckpointDir)) agent progress

    /// Builds a DQN agent for `cfg` and loads the checkpoint of run folder (or checkpoint folder)
    /// `path` into it. Raises `CheckpointError` for a missing or damaged checkpoint.
    let load (cfg: DqnConfig) (path: string) : Agent * Progress =
        let ckpt =
            if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then
                path
            else
                Path.Combine(path, Run.CheckpointDir)

        use env = Envs.makeBatched cfg.EnvId 1 TorchSharp.torch.CPU

        let agent =
            Agent.make cfg env.ObservationSpace.FlatSize env.ActionSpace TorchSharp.torch.CPU

        let extra =
            Checkpoint.load ckpt (modules agent) [ "opt", agent.Opt.Optimizer :?> TorchSharp.Modules.OptimizerHelper ]

        agent.Buffer.Restore(int extra["buffer_position"], int extra["buffer_count"])

        let episodes =
            Array.init cfg.Run.NumSeeds (fun k ->
                let xs = Checkpoint.decodeFloats extra[$"episodes_{k}"]

                ResizeArray(
                    [
                        for i in 0..3 .. xs.Length - 3 ->
                            ({
                                EndStep = int64 xs[i]
                                Return = xs[i + 1]
                                Length = int xs[i + 2]
                            }
                            : Episode)
                    ]
                ))

        agent,
        {
            GlobalStep = int64 extra["global_step"]
            Episodes = episodes
            Streams = extra.TryFind streamsKey |> Option.toObj
            CaptureStreams = null
        }

    /// Writes `report.html` for a DQN run folder from its `metrics.csv` and summary pairs.
    let writeReport (dir: string) (title: string) (summary: (string * SummaryValue) list) =
        let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))

        Report.writeWith
            (Path.Combine(dir, Run.ReportFile))
            title
            (Run.summaryText summary)
            (Report.runVideos dir 4 (Video.captionIn dir))
            [
                "Learning curve", [ Charts.learningCurve SeedView.MeanStd "global_step" "return_last20" table ]
                "Losses and diagnostics",
                [
                    Charts.panels
                        SeedView.MeanStd
                        "global_step"
                        [ "episodic_return"; "td_loss"; "q_values"; "grad_norm"; "epsilon"; "sps" ]
                        table
                ]
            ]

    /// The greedy policy of a restored DQN state (`Train.Algorithm.Policy`): the index of the
    /// largest Q-value, as `Agent.evaluate` computes it; per seed the online Q-network as numbers.
    /// The greedy policy of a trained agent (what `policy` restores from a checkpoint; e.g.
    /// `Loop.train`'s result in a notebook). `Release` disposes the agent.
    let policyOf (cfg: DqnConfig) (agent: Agent) : PolicyExport.LoadedPolicy =
        let obsSpace, space = PolicyExport.spacesOf cfg.EnvId

        {
            Algo = "dqn"
            EnvId = cfg.EnvId
            Seeds = agent.Seeds
            ObservationSpace = obsSpace
            ActionSpace = space
            ScoresName = "q_values"
            Act = fun obs -> agent.QNet.forward(obs).argmax(-1L)
            Outputs = agent.QNet.forward
            Network =
                PolicyExport.network
                    agent.Seeds
                    agent.QNet.Trunk
                    agent.QNet.OutLayer
                    None
                    (PolicyExport.outputFor space None false)
            Release = fun () -> (agent :> IDisposable).Dispose()
        }

    /// `policyOf` of a state restored from a checkpoint.
    let policy (cfg: DqnConfig) (agent: Agent, _: Progress) = policyOf cfg agent

    /// DQN for the run driver (`train.fsx algo=dqn`): checkpoints every `checkpoint_every` log
    /// windows; summary.json adds, per seed, the first step where the mean of 20 training episodes
    /// reached 475 (CartPole's bar) and the mean of the last 20.
    let algorithm: Algorithm<DqnConfig, Agent * Progress, TrainResult> =
        {
            Name = "dqn"
            Fields = DqnConfig.fields
            Defaults = DqnConfig.defaults
            Validate = DqnConfig.validate
            DefaultConfig = defaultConfig
            Target = fun c -> c.EnvId
            Device = fun c -> c.Run.Device
            Check = ignore
            Load = Some load
            Describe = fun (_, p) -> $"step {p.GlobalStep}", p.GlobalStep
            Columns = fun c -> columns c.Run.NumSeeds
            Total = fun c -> c.TotalTimesteps
            EvalEvery = fun c -> c.EvalEvery
            Seeds = fun c -> c.Seeds
            Label = fun c -> $"dqn {c.EnvId}"
            Train =
                fun ctx resume ->
                    let cfg = ctx.Config
                    let mutable windows = 0

                    let hooks: Hooks =
                        {
                            OnLog =
                                fun agent progress rows ->
                                    for r in rows do
                                        ctx.Log(row cfg.Run.NumSeeds r)

                                    ctx.Report
                                        progress.GlobalStep
                                        (rows |> Seq.map (fun r -> r.ReturnLast20) |> recentMean)

                                    windows <- windows + 1
                                    let finished = progress.GlobalStep >= cfg.TotalTimesteps

                                    evalAtBoundary
                                        ctx
                                        cfg.Seeds
                                        progress.GlobalStep
                                        finished
                                        (fun () ->
                                            Agent.evaluate (DqnConfig.makeEnv cfg) agent cfg.EvalEpisodes cfg.EvalSeed)
                                        (Some(fun _ ckptDir -> saveCheckpointTo ckptDir agent progress))

                                    checkpointAtBoundary
                                        ctx
                                        windows
                                        (progress.GlobalStep >= cfg.TotalTimesteps)
                                        progress.GlobalStep
                                        (fun () -> saveCheckpoint ctx.Dir agent progress)
                        }

                    Loop.train cfg hooks resume
            Summarize =
                fun cfg result wall ->
                    let S = cfg.Run.NumSeeds

                    let evals =
                        Agent.evaluate (DqnConfig.makeEnv cfg) result.Agent cfg.EvalEpisodes cfg.EvalSeed

                    let bar k =
                        Diagnostics.firstStepReaching 20 475.0 result.Progress.Episodes[k]

                    for k in 0 .. S - 1 do
                        let m, s = meanStd evals[k]
                        let reached = bar k |> Option.map string |> Option.defaultValue "not reached"

                        printfn
                            "seed %d: eval return %.1f +- %.1f (greedy, %d episodes); last-20 training mean %.1f; 20-episode mean >= 475 at step %s"
                            cfg.Seeds[k]
                            m
                            s
                            cfg.EvalEpisodes
                            (Diagnostics.lastMean 20 result.Progress.Episodes[k])
                            reached

                    {
                        Summary.Evals = evals
                        Pairs =
                            [
                                yield! evalSummary evals cfg.Seeds wall cfg.TotalTimesteps cfg.Run.Device cfg.EnvId
                                "seeds_reaching_475",
                                Integer(int64 ([ 0 .. S - 1 ] |> List.filter (fun k -> (bar k).IsSome) |> List.length))
                                for k in 0 .. S - 1 do
                                    $"return_last20_seed_{cfg.Seeds[k]}",
                                    Number(Diagnostics.lastMean 20 result.Progress.Episodes[k])

                                    $"step_reaching_475_seed_{cfg.Seeds[k]}",
                                    (match bar k with
                                     | Some st -> Integer st
                                     | None -> Text "not reached")
                            ]
                    }
            WriteReport = fun dir cfg summary -> writeReport dir $"DQN on {cfg.EnvId}" summary
            Release = fun r -> (r.Agent :> IDisposable).Dispose()
            Evaluate =
                Some(fun cfg (agent, _) episodes ->
                    use _a = agent
                    let n = defaultArg episodes cfg.EvalEpisodes
                    Agent.evaluate (DqnConfig.makeEnv cfg) agent n cfg.EvalSeed)
            Policy = Some policy
            CaptureVideo = fun c -> c.CaptureVideo
            EvalSeed = fun c -> c.EvalSeed
        }

    /// Trains DQN from command-line arguments (`config=`, `resume=`, `runs=`, `checkpoint_every=`
    /// (in log windows) and config overrides) through the run driver and returns the run folder.
    let run (args: string list) : string = drive algorithm args
