/// GRPO as the run driver sees it (`train.fsx algo=grpo`): MNIST checked (fetched when absent)
/// before anything is written, a checkpoint after every epoch (no resume), its metrics columns,
/// summary and report, and the `Train.Algorithm` record.
namespace Rl.Grpo

open System
open System.IO
open TorchSharp
open Rl
open Rl.Train

/// GRPO's checkpoint, report and run-driver record.
module Runner =
    /// Default config file for GRPO.
    let defaultConfig = Path.Combine("scripts", "configs", "grpo-mnist.yaml")

    let internal row (seeds: int) (r: Row) =
        rowFor seeds r.Seed (Loop.metricValues r)

    /// GRPO metrics rows as a table with the columns of `metrics.csv` (a `seed` column when
    /// `seeds > 1`), for charts in notebooks.
    let table (seeds: int) (rows: Row list) : MetricsTable =
        Metrics.ofRows
            (columnsFor seeds Loop.metricColumns |> List.map (fun c -> c.Name))
            (rows |> List.map (row seeds))

    /// Saves a GRPO checkpoint (actor, reference policy, optimizer, epoch) into `dir/checkpoint`
    /// atomically.
    let saveCheckpoint (dir: string) (agent: Agent) (epoch: int) =
        Checkpoint.save
            (Path.Combine(dir, Run.CheckpointDir))
            [ "actor", agent.Actor :> torch.nn.Module; "reference", agent.Reference ]
            [ "optimizer", agent.Optimizer.Optimizer :?> Modules.OptimizerHelper ]
            (Map.ofList [ "epoch", string epoch ])

    /// Writes `report.html` for a GRPO run folder from its `metrics.csv` and summary pairs.
    let writeReport (dir: string) (title: string) (summary: (string * SummaryValue) list) =
        let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))
        let view = SeedView.MeanStd

        Report.write
            (Path.Combine(dir, Run.ReportFile))
            title
            (Run.summaryText summary)
            [
                "Test accuracy (greedy) per epoch", [ Charts.learningCurve view "epoch" "test_accuracy" table ]
                "Mean reward of the sampled guesses", [ Charts.learningCurve view "global_step" "reward_mean" table ]
                "Diagnostics",
                [
                    Charts.panels
                        view
                        "global_step"
                        [
                            "kl_ref"
                            "approx_kl"
                            "clip_fraction"
                            "entropy"
                            "policy_loss"
                            "grad_norm"
                            "zero_adv_fraction"
                        ]
                        table
                ]
                "Speed", [ Charts.panels view "epoch" [ "images_per_second"; "epoch_seconds" ] table ]
            ]

    /// Training images GRPO uses per epoch for a config: `train_size` (all 60,000 when 0), cut to
    /// whole batches.
    let internal imagesPerEpoch (cfg: GrpoConfig) =
        let _, _, all = Mnist.files Mnist.Train
        let n = if cfg.TrainSize > 0 then min cfg.TrainSize all else all
        n / cfg.BatchSize * cfg.BatchSize

    /// MNIST on disk for GRPO: fetched when absent (`Mnist.fetchIfAbsent`), else checked; raises
    /// `FileNotFoundException` naming what is wrong.
    let private checkMnist () =
        Mnist.fetchIfAbsent (Mnist.dataDir ())

        match Mnist.problems (Mnist.dataDir ()) with
        | [] -> ()
        | ps ->
            let what = String.Join("; ", ps)

            raise (
                FileNotFoundException(
                    $"MNIST is not ready in {Mnist.dataDir ()} ({what}); fetch it once with `dotnet fsi scripts/data.fsx` (or set {Mnist.DirEnvVar})"
                )
            )

    /// GRPO for the run driver (`train.fsx algo=grpo`): a checkpoint after every epoch; no resume.
    /// summary.json holds `test_accuracy` (fraction in [0, 1] of the greedy policy, mean over seeds),
    /// per seed the final accuracy and the first epoch reaching 95 %.
    let algorithm: Algorithm<GrpoConfig, unit, TrainResult * int * int> =
        {
            Name = "grpo"
            Fields = GrpoConfig.fields
            Defaults = GrpoConfig.defaults
            Validate = GrpoConfig.validate
            DefaultConfig = defaultConfig
            Target = fun _ -> "MNIST"
            Device = fun c -> c.Run.Device
            Check = fun _ -> checkMnist ()
            Load = None
            Describe = fun () -> "", 0L
            Columns = fun c -> columnsFor c.Run.NumSeeds Loop.metricColumns
            Total = fun c -> int64 c.Epochs * int64 (imagesPerEpoch c)
            // GRPO reports test accuracy per epoch in its metrics; it has no periodic episode evaluation.
            EvalEvery = fun _ -> 0L
            Seeds = fun c -> c.Run.Seeds
            Label = fun c -> $"grpo MNIST (G={c.GroupSize}, {c.Run.NumSeeds} seed(s))"
            Train =
                fun ctx _ ->
                    let cfg = ctx.Config
                    use data = Agent.loadData cfg

                    let hooks: Hooks =
                        {
                            OnRows =
                                fun _ rows ->
                                    for r in rows do
                                        ctx.Log(row cfg.Run.NumSeeds r)

                                    ctx.Report rows[0].Step (rows |> Array.averageBy (fun r -> r.RewardMean))
                                    stopAtBoundary ctx false rows[0].Step false None
                            OnEpoch = fun agent epoch _ -> saveCheckpoint ctx.Dir agent epoch
                        }

                    Loop.train data cfg hooks, data.Train.Count, data.Test.Count
            Summarize =
                fun cfg (result, trainCount, testCount) _ ->
                    for e in 0 .. result.EpochAccuracy.Length - 1 do
                        let accs = result.EpochAccuracy[e] |> Array.map (sprintf "%.4f")

                        printfn
                            "epoch %2d: test accuracy %s (%.1f s)"
                            (e + 1)
                            (String.Join(" ", accs))
                            result.EpochSeconds[e]

                    let final = Array.last result.EpochAccuracy
                    let m, s = meanStd final
                    printfn "test accuracy %.4f +- %.4f over %d seed(s)" m s cfg.Run.NumSeeds

                    let epochsTo95 (k: int) =
                        match result.EpochAccuracy |> Array.tryFindIndex (fun a -> a[k] >= 0.95) with
                        | Some e -> Integer(int64 (e + 1))
                        | None -> Text "not reached"

                    let images = float (imagesPerEpoch cfg) * float cfg.Epochs * float cfg.Run.NumSeeds

                    {
                        Summary.Evals = [| for a in final -> [| a |] |]
                        Pairs =
                            [
                                "test_accuracy", Number m
                                "test_accuracy_std", Number s
                                "wall_seconds", Number result.WallSeconds
                                "epoch_seconds_mean", Number(Array.average result.EpochSeconds)
                                "images_per_second", Number(images / Array.sum result.EpochSeconds)
                                "epochs", Integer(int64 cfg.Epochs)
                                "group_size", Integer(int64 cfg.GroupSize)
                                "train_images", Integer(int64 trainCount)
                                "test_images", Integer(int64 testCount)
                                "seed", Integer cfg.Run.Seed
                                "num_seeds", Integer(int64 cfg.Run.NumSeeds)
                                "device", Text cfg.Run.Device
                                for k in 0 .. cfg.Run.NumSeeds - 1 do
                                    $"test_accuracy_seed_{cfg.Seeds[k]}", Number final[k]
                                    $"epochs_to_95_seed_{cfg.Seeds[k]}", epochsTo95 k
                            ]
                    }
            WriteReport = fun dir cfg summary -> writeReport dir $"GRPO on MNIST (G = {cfg.GroupSize})" summary
            Release = fun (r, _, _) -> (r.Agent :> IDisposable).Dispose()
            Evaluate = None
            Policy = None
            CaptureVideo = fun _ -> false
            EvalSeed = fun _ -> 0L
        }

    /// Trains GRPO on MNIST from command-line arguments (`config=`, `runs=` and config overrides)
    /// through the run driver and returns the run folder: metrics.csv (+ TensorBoard), a checkpoint
    /// after every epoch, summary.json and report.html. Checks the config and the MNIST files
    /// (fetching them when absent) before writing anything; raises `ConfigError` (also for
    /// `resume=`, which GRPO does not support) and `FileNotFoundException` when MNIST is not usable.
    let run (args: string list) : string = drive algorithm args
