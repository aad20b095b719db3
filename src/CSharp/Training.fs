namespace Rl.CSharp

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Threading
open TorchSharp
open Rl

/// Thrown by `Ppo.Train`, `Dqn.Train` and the other training calls when their
/// `CancellationToken` stopped the run: the update in progress finished, was logged and, when
/// `Resumable`, checkpointed, so `Ppo.Resume(e.RunDir)` (or `Dqn.Resume`) continues it exactly.
/// An `OperationCanceledException`, so `catch (OperationCanceledException)` catches it too; the
/// library's own `Rl.Train.RunStoppedException` is its `InnerException`.
[<Sealed>]
type TrainingStoppedException(runDir: string, step: int64, resumable: bool, inner: exn) =
    inherit OperationCanceledException(inner.Message, inner)
    /// The run folder, for `Resume`.
    member _.RunDir = runDir
    /// The environment step (or iteration) the run reached.
    member _.Step = step
    /// Whether a checkpoint was written, so that `Resume` continues the run.
    member _.Resumable = resumable

/// Where a training run stands, reported through `IProgress<TrainProgress>` whenever the
/// progress bar moves (about once per update).
[<Sealed; AllowNullLiteral>]
type TrainProgress internal (step: int64, total: int64, recentReturn: float, elapsed: TimeSpan) =
    /// Environment steps per seed done so far (GRPO: images; REINFORCE: updates).
    member _.Step = step
    /// The run's total in the same unit.
    member _.TotalSteps = total
    /// `Step / TotalSteps`, in [0, 1].
    member _.Fraction = if total > 0L then float step / float total else 1.0
    /// Mean return of recently ended episodes over the seeds (NaN before the first ends).
    member _.RecentReturn = recentReturn
    /// Time since this call started.
    member _.Elapsed = elapsed

    override _.ToString() =
        $"{step}/{total} steps, recent return {recentReturn:F1}"

/// One row of a run's `metrics.csv` (one update of one seed): values by column name.
[<Sealed; AllowNullLiteral>]
type MetricsRow internal (columns: string[], index: IReadOnlyDictionary<string, int>, values: float[]) =
    /// The column names, in CSV order.
    member _.Columns: IReadOnlyList<string> = columns :> _
    /// The values, in column order.
    member _.Values: IReadOnlyList<float> = values :> _

    /// The value of a column (NaN where the CSV has none). Raises `KeyNotFoundException` naming
    /// the columns for an unknown name.
    member _.Item
        with get (column: string) =
            match index.TryGetValue column with
            | true, i -> values[i]
            | _ ->
                let known = String.Join(", ", columns)
                raise (KeyNotFoundException $"no metrics column '{column}'; the columns are {known}")

    /// Whether the row has the column.
    member _.Has(column: string) = index.ContainsKey column

/// What a training call returns: the run folder, its metrics rows, the final evaluation per seed
/// and `summary.json`'s values.
[<Sealed; AllowNullLiteral>]
type TrainResult
    internal
    (
        runDir: string,
        metrics: IReadOnlyList<MetricsRow>,
        seeds: int64[],
        evals: float[][],
        summary: IReadOnlyDictionary<string, obj>
    ) =
    /// The run folder (config.yaml, metrics.csv, checkpoint/, summary.json, report.html); empty
    /// for Q-learning, which writes nothing.
    member _.RunDir = runDir
    /// Every row of `metrics.csv`, in order (rows of all seeds; see the `seed` column when
    /// `NumSeeds` > 1).
    member _.Metrics = metrics
    /// The seeds trained: seed .. seed + NumSeeds - 1.
    member _.Seeds: IReadOnlyList<int64> = seeds :> _

    /// Per seed, the final evaluation: the deterministic (greedy) policy's episode returns (PPO,
    /// DQN, REINFORCE), the test accuracy (GRPO), or the greedy policy's success probability
    /// (Q-learning).
    member _.EvalReturns: IReadOnlyList<IReadOnlyList<float>> =
        evals |> Array.map (fun e -> e :> IReadOnlyList<float>) :> _

    /// The mean of every value of `EvalReturns`.
    member _.EvalReturnMean = evals |> Array.concat |> Array.average
    /// The values of `summary.json` (double, long or string).
    member _.Summary = summary

module internal Runner =
    let rowsOf (table: MetricsTable) : IReadOnlyList<MetricsRow> =
        let columns = Metrics.columns table |> Array.ofList

        let index =
            Dictionary<string, int>(columns |> Array.mapi (fun i c -> KeyValuePair(c, i))) :> IReadOnlyDictionary<_, _>

        Metrics.rows table |> Array.map (fun r -> MetricsRow(columns, index, r)) :> _

    let summaryOf (pairs: (string * SummaryValue) list) : IReadOnlyDictionary<string, obj> =
        let d = Dictionary<string, obj>()

        for k, v in pairs do
            d[k] <-
                match v with
                | Number x -> box x
                | Integer n -> box n
                | Text t -> box t

        d :> _

    /// Runs `algo` from `start` through the run driver, reporting to `progress` (may be null) and
    /// stopping at the next update boundary when `cancel` is cancelled (then the driver raises
    /// `Train.RunStoppedException`, rethrown as the face's `TrainingStoppedException`).
    let run
        (algo: Train.Algorithm<'C, 'S, 'R>)
        (seedsOf: 'C -> int64[])
        (start: Train.Start<'C>)
        (progress: IProgress<TrainProgress>)
        (cancel: CancellationToken)
        : TrainResult =
        let clock = Stopwatch.StartNew()

        let options: Train.DriveOptions =
            {
                Cancel = cancel
                OnProgress =
                    fun step total recent ->
                        if not (isNull progress) then
                            progress.Report(TrainProgress(step, total, recent, clock.Elapsed))
            }

        let outcome =
            try
                Train.run options algo start
            with :? Train.RunStoppedException as e ->
                raise (TrainingStoppedException(e.RunDir, e.Step, e.Resumable, e))

        let cfg =
            Config.load algo.Fields algo.Defaults (Path.Combine(outcome.Dir, Run.ConfigFile))

        TrainResult(
            outcome.Dir,
            rowsOf (Metrics.readCsv (Path.Combine(outcome.Dir, Metrics.CsvFile))),
            seedsOf cfg,
            outcome.Summary.Evals,
            summaryOf outcome.Summary.Pairs
        )

    /// A fresh run of `algo` from C# settings (validated first: `ArgumentException` before anything
    /// is written) in a folder under `runsDir` (default `runs`).
    let train
        (algo: Train.Algorithm<'C, 'S, 'R>)
        (seedsOf: 'C -> int64[])
        (settings: Settings<'C>)
        (runsDir: string)
        (checkpointEvery: int)
        (progress: IProgress<TrainProgress>)
        (cancel: CancellationToken)
        =
        if isNull settings then
            nullArg "settings"

        let cfg = settings.ToConfig()

        if checkpointEvery < 1 then
            raise (ArgumentOutOfRangeException("checkpointEvery", checkpointEvery, "must be >= 1 (updates)"))

        let runs =
            if String.IsNullOrWhiteSpace runsDir then
                "runs"
            else
                runsDir

        run algo seedsOf (Train.FromConfig(cfg, runs, checkpointEvery)) progress cancel

    /// Resumes the run folder `runDir` of `algo` with its own config.
    let resume
        (algo: Train.Algorithm<'C, 'S, 'R>)
        (seedsOf: 'C -> int64[])
        (runDir: string)
        (checkpointEvery: int)
        (progress: IProgress<TrainProgress>)
        (cancel: CancellationToken)
        =
        if checkpointEvery < 1 then
            raise (ArgumentOutOfRangeException("checkpointEvery", checkpointEvery, "must be >= 1 (updates)"))

        run algo seedsOf (Train.FromRunDir(runDir, checkpointEvery)) progress cancel

/// PPO for C# (Schulman et al. 2017; see the F# `Rl.Ppo` module for the algorithm).
[<AbstractClass; Sealed>]
type Ppo =
    /// Trains PPO as `settings` say, in a new run folder under `runsDir` (default `runs`), with
    /// the console progress bar (`RL_PROGRESS=off` silences it), metrics, checkpoints every
    /// `checkpointEvery` updates, the final evaluation and the report. `progress` (optional)
    /// receives a `TrainProgress` per update. When `cancellationToken` is cancelled, the run
    /// finishes the current update, writes its checkpoint and throws `TrainingStoppedException`
    /// (an `OperationCanceledException` whose `RunDir` `Resume` continues exactly). Raises
    /// `ArgumentException` naming the property, value and what is allowed before anything is written.
    static member Train
        (
            settings: PpoSettings,
            [<Optional>] progress: IProgress<TrainProgress>,
            [<Optional>] cancellationToken: CancellationToken,
            [<Optional; DefaultParameterValue("runs")>] runsDir: string,
            [<Optional; DefaultParameterValue(10)>] checkpointEvery: int
        ) : TrainResult =
        Runner.train
            Rl.Ppo.Runner.algorithm
            (fun c -> c.Seeds)
            settings
            runsDir
            checkpointEvery
            progress
            cancellationToken

    /// Continues the PPO run in `runDir` from its checkpoint with its own config: exactly as if it
    /// had never stopped (see README, "Stopping and resuming is exact for PPO"). Raises
    /// `FileNotFoundException` for a folder without `config.yaml` and `Rl.CheckpointError` for a
    /// missing or damaged checkpoint.
    static member Resume
        (
            runDir: string,
            [<Optional>] progress: IProgress<TrainProgress>,
            [<Optional>] cancellationToken: CancellationToken,
            [<Optional; DefaultParameterValue(10)>] checkpointEvery: int
        ) : TrainResult =
        Runner.resume Rl.Ppo.Runner.algorithm (fun c -> c.Seeds) runDir checkpointEvery progress cancellationToken

/// DQN for C# (Mnih et al. 2015; see the F# `Rl.Dqn` module).
[<AbstractClass; Sealed>]
type Dqn =
    /// Trains DQN as `settings` say (see `Ppo.Train` for the run folder, progress and
    /// cancellation; `checkpointEvery` counts log windows). Raises `ArgumentException` for invalid
    /// settings, e.g. an env with continuous actions.
    static member Train
        (
            settings: DqnSettings,
            [<Optional>] progress: IProgress<TrainProgress>,
            [<Optional>] cancellationToken: CancellationToken,
            [<Optional; DefaultParameterValue("runs")>] runsDir: string,
            [<Optional; DefaultParameterValue(10)>] checkpointEvery: int
        ) : TrainResult =
        Runner.train
            Rl.Dqn.Runner.algorithm
            (fun c -> c.Seeds)
            settings
            runsDir
            checkpointEvery
            progress
            cancellationToken

    /// Continues the DQN run in `runDir` from its checkpoint with its own config, exactly as if
    /// it had never stopped (replay buffer, environments, observations and generators restored).
    static member Resume
        (
            runDir: string,
            [<Optional>] progress: IProgress<TrainProgress>,
            [<Optional>] cancellationToken: CancellationToken,
            [<Optional; DefaultParameterValue(10)>] checkpointEvery: int
        ) : TrainResult =
        Runner.resume Rl.Dqn.Runner.algorithm (fun c -> c.Seeds) runDir checkpointEvery progress cancellationToken

/// GRPO on MNIST for C# (Shao et al. 2024; see the F# `Rl.Grpo` module). Fetches MNIST on first use.
[<AbstractClass; Sealed>]
type Grpo =
    /// Trains GRPO as `settings` say (see `Ppo.Train`); `EvalReturns` holds each seed's final test
    /// accuracy. Cancellation stops after the current group step without a checkpoint (GRPO does
    /// not resume).
    static member Train
        (
            settings: GrpoSettings,
            [<Optional>] progress: IProgress<TrainProgress>,
            [<Optional>] cancellationToken: CancellationToken,
            [<Optional; DefaultParameterValue("runs")>] runsDir: string
        ) : TrainResult =
        Runner.train Rl.Grpo.Runner.algorithm (fun c -> c.Seeds) settings runsDir 1 progress cancellationToken

/// REINFORCE with a baseline for C# (Williams 1992; see the F# `Rl.Reinforce` module).
[<AbstractClass; Sealed>]
type Reinforce =
    /// Trains REINFORCE as `settings` say (see `Ppo.Train`; progress counts updates). Cancellation
    /// stops after the current update without a checkpoint (REINFORCE does not resume).
    static member Train
        (
            settings: ReinforceSettings,
            [<Optional>] progress: IProgress<TrainProgress>,
            [<Optional>] cancellationToken: CancellationToken,
            [<Optional; DefaultParameterValue("runs")>] runsDir: string
        ) : TrainResult =
        Runner.train Rl.Reinforce.Runner.algorithm (fun c -> c.Seeds) settings runsDir 1 progress cancellationToken

/// Tabular Q-learning on FrozenLake for C# (Watkins 1989; Sutton and Barto, section 6.5).
[<AbstractClass; Sealed>]
type QLearning =
    /// Trains a Q-table in memory (no run folder). `Metrics` has one row per evaluation point
    /// (`episode`, `epsilon`, `train_success`, `greedy_success`); `EvalReturns` holds the final
    /// greedy policy's exact success probability. The tabular run takes seconds and is not
    /// interrupted: `progress` gets one report per evaluation point once it is done, and a token
    /// cancelled before the call throws `OperationCanceledException`.
    static member Train
        (
            settings: QLearningSettings,
            [<Optional>] progress: IProgress<TrainProgress>,
            [<Optional>] cancellationToken: CancellationToken
        ) : TrainResult =
        if isNull settings then
            nullArg "settings"

        let cfg = settings.ToConfig()
        let clock = Stopwatch.StartNew()
        // training in chunks of EvalEvery episodes would change the exploration stream: run it
        // whole and report the curve afterwards
        cancellationToken.ThrowIfCancellationRequested()
        let r = Rl.QLearning.train cfg

        for p in r.Curve do
            if not (isNull progress) then
                progress.Report(TrainProgress(int64 p.Episode, int64 cfg.Episodes, p.GreedySuccess, clock.Elapsed))

        let table =
            Metrics.ofRows
                [ "episode"; "epsilon"; "train_success"; "greedy_success" ]
                [
                    for p in r.Curve -> [| float p.Episode; p.Epsilon; p.TrainSuccess; p.GreedySuccess |]
                ]

        let final = (List.last r.Curve).GreedySuccess

        TrainResult(
            "",
            Runner.rowsOf table,
            [| cfg.Seed |],
            [| [| final |] |],
            Runner.summaryOf [ "greedy_success", Number final; "episodes", Integer(int64 cfg.Episodes) ]
        )

/// Generalized Advantage Estimation for C# (Schulman et al. 2016, eq. 16).
[<AbstractClass; Sealed>]
type Advantage =
    /// GAE over a rollout: `rewards`, `values` V(s_t), `nextValues` V(s'_t) (s'_t the observation
    /// step t reached, before any auto-reset), `terminated`, `truncated` (bool or 0/1), all [T; B].
    /// Returns `(Advantages, Returns)` [T; B] float32 with returns = advantages + values. Raises
    /// `ArgumentException` for shapes that differ or gamma/gaeLambda outside [0, 1].
    static member Gae
        (
            rewards: torch.Tensor,
            values: torch.Tensor,
            nextValues: torch.Tensor,
            terminated: torch.Tensor,
            truncated: torch.Tensor,
            [<Optional; DefaultParameterValue(0.99)>] gamma: float,
            [<Optional; DefaultParameterValue(0.95)>] gaeLambda: float
        ) : struct (torch.Tensor * torch.Tensor) =
        let a, r =
            Rl.Advantage.gae gamma gaeLambda rewards values nextValues terminated truncated

        struct (a, r)

/// What `Losses.PpoClip` returns: the loss per seed [S] and its diagnostics per seed [S].
[<Sealed; AllowNullLiteral>]
type PpoClipResult internal (loss: torch.Tensor, approxKl: torch.Tensor, clipFraction: torch.Tensor) =
    /// -mean(min(ratio A, clip(ratio, 1 - eps, 1 + eps) A)) per seed, [S] (differentiable).
    member _.Loss = loss
    /// k3 estimate of KL(old || new) per seed, [S] (no gradient).
    member _.ApproxKl = approxKl
    /// Fraction of samples whose ratio left [1 - eps, 1 + eps], [S] (no gradient).
    member _.ClipFraction = clipFraction

/// Policy losses for C#.
[<AbstractClass; Sealed>]
type Losses =
    /// PPO's clipped surrogate (Schulman et al. 2017, eq. 7), negated for minimisation:
    /// `logProb` (new policy), `oldLogProb`, `advantages`: [S; M]. Raises `ArgumentException` for
    /// `clipEps <= 0` or shapes that differ.
    static member PpoClip
        (
            logProb: torch.Tensor,
            oldLogProb: torch.Tensor,
            advantages: torch.Tensor,
            [<Optional; DefaultParameterValue(0.2)>] clipEps: float
        ) : PpoClipResult =
        let loss, stats = Rl.Losses.ppoClip clipEps logProb oldLogProb advantages
        PpoClipResult(loss, stats.ApproxKl, stats.ClipFraction)
