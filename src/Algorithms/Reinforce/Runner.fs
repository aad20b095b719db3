/// REINFORCE as the run driver sees it (`train.fsx algo=reinforce`): its metrics columns, summary
/// and report, and the `Train.Algorithm` record (no checkpoints, no resume: runs are short).
namespace Rl.Reinforce

open System
open System.IO
open TorchSharp
open Rl
open Rl.Train

/// REINFORCE's report and run-driver record.
module Runner =
    /// Default config file for REINFORCE.
    let defaultConfig = Path.Combine("scripts", "configs", "reinforce-cartpole.yaml")

    let internal row (seeds: int) (m: ReinforceMetrics) =
        rowFor seeds m.Seed (Loop.metricValues m)

    /// REINFORCE for the run driver (`train.fsx algo=reinforce`): the progress bar counts updates;
    /// no checkpoints and no resume (runs are short); summary.json as PPO's, with the deterministic
    /// policy's evaluation.
    let algorithm: Algorithm<ReinforceConfig, unit, TrainResult> =
        {
            Name = "reinforce"
            Fields = ReinforceConfig.fields
            Defaults = ReinforceConfig.defaults
            Validate = ReinforceConfig.validate
            DefaultConfig = defaultConfig
            Target = fun c -> c.EnvId
            Device = fun c -> c.Run.Device
            Check = ignore
            Load = None
            Describe = fun () -> "", 0L
            Columns = fun c -> columnsFor c.Run.NumSeeds Loop.metricColumns
            Total = fun c -> int64 c.Iterations
            EvalEvery = fun c -> c.EvalEvery
            Seeds = fun c -> c.Seeds
            Label = fun c -> $"reinforce {c.EnvId} (updates)"
            Train =
                fun ctx _ ->
                    let cfg = ctx.Config

                    let hooks: Hooks =
                        {
                            OnIteration =
                                fun agent rows ->
                                    for r in rows do
                                        ctx.Log(row cfg.Run.NumSeeds r)

                                    // REINFORCE keeps no checkpoint: its periodic evaluation is the log only.
                                    evalAtBoundary
                                        ctx
                                        cfg.Seeds
                                        (int64 rows[0].Iteration)
                                        (rows[0].Iteration >= cfg.Iterations)
                                        (fun () -> Agent.evaluate cfg agent cfg.EvalEpisodes cfg.EvalSeed)
                                        None

                                    ctx.Report
                                        (int64 rows[0].Iteration)
                                        (rows |> Seq.map (fun r -> r.EpisodicReturn) |> recentMean)

                                    stopAtBoundary
                                        ctx
                                        (rows[0].Iteration >= cfg.Iterations)
                                        (int64 rows[0].Iteration)
                                        false
                                        None
                        }

                    Loop.trainWith hooks cfg 0 0
            Summarize =
                fun cfg result wall ->
                    let evals = Agent.evaluate cfg result.Agent cfg.EvalEpisodes cfg.EvalSeed

                    printEvals "most likely action" cfg.Seeds cfg.EvalSeed evals

                    let steps =
                        result.Metrics
                        |> List.filter (fun m -> m.Seed = cfg.Run.Seed)
                        |> List.last
                        |> (fun m -> m.Step)

                    {
                        Pairs = evalSummary evals cfg.Seeds wall steps cfg.Run.Device cfg.EnvId
                        Evals = evals
                    }
            WriteReport =
                fun dir cfg summary ->
                    let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))

                    Report.write
                        (Path.Combine(dir, Run.ReportFile))
                        $"REINFORCE on {cfg.EnvId}"
                        (Run.summaryText summary)
                        [
                            "Learning curve",
                            [ Charts.learningCurve SeedView.MeanStd "global_step" "episodic_return" table ]
                            "Losses",
                            [
                                Charts.panels
                                    SeedView.MeanStd
                                    "global_step"
                                    [ "actor_loss"; "critic_loss"; "grad_norm" ]
                                    table
                            ]
                        ]
            Release = fun r -> (r.Agent :> IDisposable).Dispose()
            Evaluate = None
            Policy = None
            CaptureVideo = fun _ -> false
            EvalSeed = fun _ -> 0L
        }

    /// Trains REINFORCE from command-line arguments (`config=`, `runs=` and config overrides)
    /// through the run driver and returns the run folder.
    let run (args: string list) : string = drive algorithm args
