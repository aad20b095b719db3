/// The command-line front end shared by `scripts/train.fsx` and `scripts/evaluate.fsx`, built on
/// one run driver (`drive`): resolve a config (YAML + `key=value` overrides), create the run
/// directory, train with a progress bar while streaming metrics to CSV and TensorBoard and
/// checkpointing, evaluate, and write `summary.json` and `report.html`. Each algorithm (`ppo`,
/// `dqn`, `grpo`, `reinforce`) is an `Algorithm` record: its config keys, how it resumes, its
/// metrics columns, its training step wired to the driver's context, and its summary and report.
module Rl.Train

open System
open System.IO
open TorchSharp
open Rl

/// Default config file for PPO.
let defaultPpoConfig = Path.Combine("scripts", "configs", "ppo-pendulum.yaml")

/// Arguments that are not config keys: `algo`, `config`, `resume`, `runs`, `episodes`.
let private reserved =
    [ "algo"; "config"; "resume"; "runs"; "episodes"; "checkpoint_every" ]

/// Splits `key=value` arguments into the reserved ones (as a map) and config overrides.
/// Raises `ConfigError` for an argument that is not `key=value`.
let splitArgs (args: string list) : Map<string, string> * string list =
    let pairs =
        args
        |> List.map (fun a ->
            let k, v = Config.parseOverride a
            k, v, a)

    let special = pairs |> List.filter (fun (k, _, _) -> List.contains k reserved)
    let rest = pairs |> List.filter (fun (k, _, _) -> not (List.contains k reserved))
    (special |> List.map (fun (k, v, _) -> k, v) |> Map.ofList), (rest |> List.map (fun (_, _, a) -> a))

/// The metric columns of an algorithm's `(name, tag)` list (tag "" = CSV only), after a `seed`
/// column when `seeds > 1`.
let columnsFor (seeds: int) (metricColumns: (string * string) list) : Column list =
    [
        if seeds > 1 then
            yield Column.plain Metrics.SeedColumn
        for name, tag in metricColumns ->
            if tag = "" then
                Column.plain name
            else
                Column.named name tag
    ]

/// A metrics row in `columnsFor` order: `seed` first when `seeds > 1`, then the algorithm's values.
let private rowFor (seeds: int) (seed: int64) (values: float[]) =
    if seeds > 1 then
        Array.append [| float seed |] values
    else
        values

let private ppoColumns (seeds: int) = columnsFor seeds Ppo.metricColumns

let private ppoRow (seeds: int) (m: Ppo.UpdateMetrics) =
    rowFor seeds m.Seed (Ppo.metricValues m)

let private gradHistoryKey = "grad_history"

/// The checkpoint's extra key of the running streams of PPO and DQN (`Ppo.Progress.Streams`,
/// `Dqn.Progress.Streams`).
let private streamsKey = "streams"

/// Saves a PPO agent, its optimizers, progress (with the gradient history behind the cosine
/// diagnostics, when there is one) and normalisation statistics as the checkpoint
/// `dir/checkpoint` atomically.
let saveCheckpoint (dir: string) (agent: Ppo.Agent) (progress: Ppo.Progress) (norm: Ppo.Normalizers) =
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
                gradHistoryKey, new Ppo.GradHistory(progress.PrevGrad, progress.EmaGrad) :> TorchSharp.torch.nn.Module
            ]

    Checkpoint.save
        (Path.Combine(dir, Run.CheckpointDir))
        (agent.Modules @ history)
        [
            for name, o in agent.Optimizers -> name, o :?> TorchSharp.Modules.OptimizerHelper
        ]
        extra

/// Builds a PPO agent for `cfg` and loads the checkpoint of run folder (or checkpoint folder)
/// `path` into it. Raises `CheckpointError` for a missing or damaged checkpoint.
let loadPpo (cfg: Ppo.PpoConfig) (path: string) : Ppo.Agent * Ppo.Progress * Ppo.Normalizers =
    let ckpt =
        if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then
            path
        else
            Path.Combine(path, Run.CheckpointDir)

    use env = Envs.makeBatched cfg.EnvId 1 TorchSharp.torch.CPU
    let obsDim = env.ObservationSpace.FlatSize
    let device = Native.device cfg.Run.Device
    // Modules load on the CPU, then move (TorchSharp's save/load guidance).
    let agent = Ppo.makeAgentFor cfg obsDim env.ActionSpace TorchSharp.torch.CPU

    // Checkpoints written before the gradient history was saved have none: the cosine columns
    // then start again from NaN.
    let history =
        match (Checkpoint.readExtra ckpt).TryFind gradHistoryKey with
        | Some shape ->
            let dims = shape.Split ',' |> Array.map int64
            Some(new Ppo.GradHistory(TorchSharp.torch.zeros dims, TorchSharp.torch.zeros dims))
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

    let norm = Ppo.newNormalizers cfg obsDim device
    norm.Obs |> Option.iter (fun s -> s.Load extra["obs_stats"])
    norm.Return |> Option.iter (fun s -> s.Load extra["return_stats"])

    let progress: Ppo.Progress =
        { Ppo.Progress.Start with
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

/// Mean and population standard deviation.
let meanStd (xs: float[]) =
    let m = Array.average xs
    m, sqrt (Array.averageBy (fun x -> (x - m) * (x - m)) xs)

/// Writes `report.html` for a PPO run folder from its `metrics.csv` and summary pairs.
let writePpoReport (dir: string) (title: string) (summary: (string * SummaryValue) list) =
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

    Report.write
        (Path.Combine(dir, Run.ReportFile))
        title
        (Run.summaryText summary)
        [
            "Learning curve", [ Charts.learningCurve view "global_step" "episodic_return" table ]
            "Losses and diagnostics", [ Charts.panels view "global_step" panelsFor table ]
            "Time per update", [ Charts.panels view "global_step" [ "sps"; "rollout_s"; "learn_s" ] table ]
        ]

/// The config of run folder `runDir` for resuming (its `config.yaml`, then `overrides`) and the
/// path of that file. Raises `FileNotFoundException` when the folder has no `config.yaml`.
let private resumeConfig fields defaults validate (runDir: string) (overrides: string list) =
    let configPath = Path.Combine(runDir, Run.ConfigFile)

    if not (File.Exists configPath) then
        raise (FileNotFoundException($"resume: {configPath} not found; give the run folder to resume", configPath))

    Config.resolve fields defaults validate (Some configPath) overrides, configPath

// ---------------------------------------------------------------------------------------
// The one run driver
// ---------------------------------------------------------------------------------------

/// Raised by the run driver when a run stops because its cancellation token was cancelled (a
/// C# caller's `CancellationToken`, or SIGTERM/SIGINT through `stopOnSignals`): the algorithm
/// finished the update it was in, logged it, and, when `Resumable`, wrote its checkpoint, so
/// `resume=<RunDir>` continues the run. `Step` is the environment step (or iteration) reached.
type RunStoppedException(runDir: string, step: int64, resumable: bool) =
    inherit
        OperationCanceledException(
            if resumable then
                $"run stopped at step {step} after a checkpoint; resume it with resume={runDir}"
            else
                $"run stopped at step {step}; this algorithm does not resume, its metrics so far are in {runDir}"
        )

    /// The run folder.
    member _.RunDir = runDir
    /// The environment step (or iteration) reached.
    member _.Step = step
    /// Whether a checkpoint was written that `resume=` continues from.
    member _.Resumable = resumable

/// What an algorithm's training step gets from the run driver.
type RunContext<'C> =
    {
        /// The resolved config (written to the run folder's `config.yaml`).
        Config: 'C
        /// The run folder.
        Dir: string
        /// Streams one metrics row (values in the order of the algorithm's `Columns`) to
        /// `metrics.csv` and TensorBoard.
        Log: float[] -> unit
        /// Moves the progress bar: steps done so far and the recent mean return (NaN if none).
        Report: int64 -> float -> unit
        /// `checkpoint_every=`: checkpoint every this many of the algorithm's log events (default 10).
        CheckpointEvery: int
        /// Cancelled to stop the run at the next update boundary (see `stopAtBoundary`).
        Cancel: Threading.CancellationToken
    }

/// Called by an algorithm after each logged update: when the run's token is cancelled and the run
/// is not finished, writes the checkpoint with `save` (unless `saved` says this update already
/// wrote one; None for algorithms that do not resume) and raises `RunStoppedException`.
let stopAtBoundary (ctx: RunContext<'C>) (finished: bool) (step: int64) (saved: bool) (save: (unit -> unit) option) =
    if ctx.Cancel.IsCancellationRequested && not finished then
        match save with
        | Some f when not saved -> f ()
        | _ -> ()

        raise (RunStoppedException(ctx.Dir, step, save.IsSome))

/// Called by an algorithm that resumes after its `count`-th logged update (or log window): writes
/// the checkpoint with `save` every `ctx.CheckpointEvery` of them and after the last (`finished`),
/// then stops here when the run is cancelled (see `stopAtBoundary`, which saves first if this
/// update did not).
let checkpointAtBoundary (ctx: RunContext<'C>) (count: int) (finished: bool) (step: int64) (save: unit -> unit) =
    let due = count % ctx.CheckpointEvery = 0 || finished

    if due then
        save ()

    stopAtBoundary ctx finished step due (Some save)

/// SIGTERM and SIGINT (Ctrl+C) handled for a run instead of ending the process: the first
/// cancels `Token`, so a run given it checkpoints at the next update boundary and stops (Slurm
/// sends SIGTERM before it kills a task at its time limit or on preemption). With
/// `repeatEndsProcess`, a second signal ends the process at once (a user pressing Ctrl+C twice);
/// without it every later signal is ignored, for a task that may get its stop signal twice
/// (Slurm's `scancel --full` reaches both the batch script, which forwards it, and the run) and
/// must not die before its checkpoint. Dispose it to give the signals back their default action.
type SignalStop(repeatEndsProcess: bool) =
    let cts = new Threading.CancellationTokenSource()
    let mutable first = 0

    let registrations =
        [
            for signal in
                [
                    Runtime.InteropServices.PosixSignal.SIGTERM
                    Runtime.InteropServices.PosixSignal.SIGINT
                ] ->
                Runtime.InteropServices.PosixSignalRegistration.Create(
                    signal,
                    fun ctx ->
                        if Threading.Interlocked.Exchange(&first, 1) = 0 then
                            ctx.Cancel <- true

                            eprintfn
                                "%A received: stopping after the current update (checkpoint first)%s"
                                ctx.Signal
                                (if repeatEndsProcess then
                                     "; send it again to stop at once"
                                 else
                                     "")

                            cts.Cancel()
                        elif not repeatEndsProcess then
                            ctx.Cancel <- true
                )
        ]

    /// Cancelled by the first signal.
    member _.Token = cts.Token

    interface IDisposable with
        member _.Dispose() =
            for r in registrations do
                r.Dispose()

            cts.Dispose()

/// `new SignalStop(repeatEndsProcess)`: keep it (`use`) for as long as the run lasts.
let stopOnSignalsWith (repeatEndsProcess: bool) : SignalStop = new SignalStop(repeatEndsProcess)

/// `stopOnSignalsWith true`: the first SIGTERM/SIGINT stops at the next update boundary, a
/// second ends the process.
let stopOnSignals () : SignalStop = stopOnSignalsWith true

/// What an algorithm's `Summarize` returns: the pairs of `summary.json` and the evaluation behind
/// them, per seed (episode returns; for GRPO the final test accuracy).
type Summary =
    {
        Pairs: (string * SummaryValue) list
        /// Per seed (in `seed .. seed + num_seeds - 1` order), the evaluation's values.
        Evals: float[][]
    }

/// How the run driver starts a run.
type Start<'C> =
    /// Command-line arguments: `config=`, `resume=`, `runs=`, `checkpoint_every=` and overrides.
    | FromArgs of args: string list
    /// A config value (already checked field by field), a fresh run folder under `runs`.
    | FromConfig of config: 'C * runs: string * checkpointEvery: int
    /// Resume the run folder with its own config.
    | FromRunDir of runDir: string * checkpointEvery: int

/// Options of the run driver beyond the start: a cancellation token (stop at the next update
/// boundary, see `stopAtBoundary`) and an observer of progress (step, total steps, recent mean
/// return; NaN when no episode has ended yet), called wherever the progress bar moves.
type DriveOptions =
    {
        Cancel: Threading.CancellationToken
        OnProgress: int64 -> int64 -> float -> unit
    }

    /// Never cancelled, no observer.
    static member Default =
        {
            Cancel = Threading.CancellationToken.None
            OnProgress = fun _ _ _ -> ()
        }

/// A finished run: its folder and its summary.
type Outcome = { Dir: string; Summary: Summary }

/// An algorithm as the run driver sees it: its config keys, how it resumes, its metrics columns,
/// its training step (which wires the algorithm's own hooks to the context), and what it writes
/// after training. `'S` is a restored state, `'R` what training returns.
type Algorithm<'C, 'S, 'R> =
    {
        /// `algo=` name and run-folder prefix, e.g. "ppo".
        Name: string
        Fields: Field<'C> list
        Defaults: 'C
        /// Cross-field checks (raise `ConfigError`).
        Validate: 'C -> unit
        /// The config file used without `config=`, relative to the working folder.
        DefaultConfig: string
        /// The environment or data-set id in folder names and titles.
        Target: 'C -> string
        Device: 'C -> string
        /// Checks after the config is valid and before anything is written (e.g. data on disk).
        Check: 'C -> unit
        /// Loads a run folder's state for `resume=`; None when the algorithm does not resume.
        Load: ('C -> string -> 'S) option
        /// Where a restored state stands, in words, and its step (the progress bar starts there).
        Describe: 'S -> string * int64
        /// The columns of `metrics.csv` for a config (a `seed` column first when num_seeds > 1).
        Columns: 'C -> Column list
        /// The progress bar's total and label.
        Total: 'C -> int64
        Label: 'C -> string
        Train: RunContext<'C> -> 'S option -> 'R
        /// After training (wall seconds given): evaluates, prints the results, returns summary.json's
        /// pairs and the evaluation per seed.
        Summarize: 'C -> 'R -> float -> Summary
        /// Writes `report.html` into the run folder from the finished `metrics.csv`.
        WriteReport: string -> 'C -> (string * SummaryValue) list -> unit
        /// Releases what training returned (networks, optimizers).
        Release: 'R -> unit
    }

/// Loads the run folder `runDir` for resuming with its own config and `overrides` (written back
/// to its `config.yaml`). Raises `ConfigError` when the algorithm does not resume, or the
/// loader's errors.
let private resumeRun (algo: Algorithm<'C, 'S, 'R>) (runDir: string) (overrides: string list) =
    match algo.Load with
    | None ->
        raise (
            ConfigError("arguments", "resume", runDir, "ppo, dqn", $"{algo.Name} runs do not resume; start a new run")
        )
    | Some load ->
        let cfg, configPath =
            resumeConfig algo.Fields algo.Defaults algo.Validate runDir overrides

        let state = load cfg runDir
        printfn "resuming %s at %s" runDir (fst (algo.Describe state))
        Files.writeTextAtomic configPath (Config.toYaml algo.Fields cfg)
        cfg, Path.GetFullPath runDir, Some state

/// A fresh run folder under `runs` for a valid config, after the device (and the algorithm's
/// data) are checked.
let private freshRun (algo: Algorithm<'C, 'S, 'R>) (cfg: 'C) (runs: string) =
    Native.device (algo.Device cfg) |> ignore
    algo.Check cfg
    cfg, Run.create runs algo.Name (algo.Target cfg) (Config.toYaml algo.Fields cfg), None

/// The config, run folder, restored state and checkpoint interval of a start: `FromArgs` with
/// `resume=<run dir>` resumes (the run's own config with the overrides applied); otherwise the
/// config file (`config=`, default `algo.DefaultConfig`) with the overrides, in a fresh folder
/// under `runs=` (default `runs`). Raises `ConfigError` (also for resuming an algorithm that does
/// not resume) or the loader's errors before anything new is written.
let private beginRun (algo: Algorithm<'C, 'S, 'R>) (start: Start<'C>) =
    match start with
    | FromArgs args ->
        let special, overrides = splitArgs args

        let every =
            special.TryFind "checkpoint_every" |> Option.map int |> Option.defaultValue 10

        let cfg, dir, state =
            match special.TryFind "resume" with
            | Some runDir -> resumeRun algo runDir overrides
            | None ->
                let path = special.TryFind "config" |> Option.defaultValue algo.DefaultConfig

                let cfg =
                    Config.resolve algo.Fields algo.Defaults algo.Validate (Some path) overrides

                freshRun algo cfg (special.TryFind "runs" |> Option.defaultValue "runs")

        cfg, dir, state, every
    | FromConfig(cfg, runs, every) ->
        algo.Validate cfg
        let cfg, dir, state = freshRun algo cfg runs
        cfg, dir, state, every
    | FromRunDir(runDir, every) ->
        let cfg, dir, state = resumeRun algo runDir []
        cfg, dir, state, every

/// The one skeleton of every run: config -> run folder -> progress bar -> per-update metrics
/// (CSV + TensorBoard) -> the algorithm's periodic checkpoints -> evaluation -> `summary.json` +
/// `report.html`. Writes nothing before the config is valid; when PPO diverges, says where the
/// metrics and the last checkpoint are; when `options.Cancel` is cancelled, stops at the next
/// update boundary after a checkpoint and raises `RunStoppedException`.
let run (options: DriveOptions) (algo: Algorithm<'C, 'S, 'R>) (start: Start<'C>) : Outcome =
    let cfg, dir, resume, every = beginRun algo start

    printfn "run folder: %s" dir

    // where a resumed run stands: its rows after this step are dropped, the bar starts here
    let resumedAt = resume |> Option.map (algo.Describe >> snd)
    let total = algo.Total cfg

    let metricsOptions =
        { MetricsOptions.defaults dir (algo.Columns cfg) with
            Append = resume.IsSome
            KeepUpToStep = resumedAt
            Hyperparameters = Config.pairs algo.Fields cfg
        }

    use log = Metrics.openWith metricsOptions
    let clock = Diagnostics.Stopwatch.StartNew()

    let result =
        try
            Progress.run (algo.Label cfg) (defaultArg resumedAt 0L) total (fun report ->
                algo.Train
                    {
                        Config = cfg
                        Dir = dir
                        Log = fun row -> Metrics.logRow row log
                        Report =
                            fun step recent ->
                                report step recent
                                options.OnProgress step total recent
                        CheckpointEvery = every
                        Cancel = options.Cancel
                    }
                    resume)
        with
        | :? RunStoppedException as e ->
            eprintfn "%s" e.Message
            reraise ()
        | Ppo.TrainingDivergedException _ as e ->
            eprintfn "%s" e.Message

            eprintfn
                "metrics so far: %s; last checkpoint: %s"
                (Path.Combine(dir, Metrics.CsvFile))
                (Path.Combine(dir, Run.CheckpointDir))

            reraise ()

    let summary = algo.Summarize cfg result clock.Elapsed.TotalSeconds
    Run.writeSummary dir summary.Pairs
    (log :> IDisposable).Dispose()
    algo.WriteReport dir cfg summary.Pairs
    printfn "wrote %s, %s, %s" Metrics.CsvFile Run.SummaryFile Run.ReportFile
    algo.Release result
    { Dir = dir; Summary = summary }

/// `run` from command-line arguments (`config=`, `resume=`, `runs=`, `checkpoint_every=` and
/// config overrides) with a cancellation token; returns the run folder.
let driveWith (cancel: Threading.CancellationToken) (algo: Algorithm<'C, 'S, 'R>) (args: string list) : string =
    (run
        { DriveOptions.Default with
            Cancel = cancel
        }
        algo
        (FromArgs args))
        .Dir

/// `driveWith` a token that is never cancelled.
let drive (algo: Algorithm<'C, 'S, 'R>) (args: string list) : string =
    driveWith Threading.CancellationToken.None algo args

/// The mean of the finite values, NaN when there is none (the progress bar's recent return).
let private recentMean (xs: float seq) =
    let finite = xs |> Seq.filter Double.IsFinite |> Array.ofSeq
    if finite.Length = 0 then nan else Array.average finite

/// Prints each seed's evaluation, e.g. `seed 0: eval return -180.2 +- 95.3 over 10 episodes
/// (deterministic policy, eval seed 1000000)`; `policy` says how actions were chosen.
let private printEvals (policy: string) (seeds: int64[]) (evalSeed: int64) (evals: float[][]) =
    for k in 0 .. seeds.Length - 1 do
        let m, s = meanStd evals[k]

        printfn
            "seed %d: eval return %.1f +- %.1f over %d episodes (%s, eval seed %d)"
            seeds[k]
            m
            s
            evals[k].Length
            policy
            (evalSeed + seeds[k])

/// summary.json pairs every evaluated algorithm shares: the evaluation over all seeds, wall
/// time, speed and the run's identity, then one `eval_return_mean_seed_<s>` per seed when S > 1.
let private evalSummary
    (evals: float[][])
    (seeds: int64[])
    (wall: float)
    (steps: int64)
    (device: string)
    (target: string)
    =
    let m, s = meanStd (Array.concat evals)

    [
        "eval_return_mean", Number m
        "eval_return_std", Number s
        "wall_seconds", Number wall
        "total_timesteps", Integer steps
        "steps_per_second", Number(float steps * float seeds.Length / wall)
        "seed", Integer seeds[0]
        "num_seeds", Integer(int64 seeds.Length)
        "device", Text device
        "env_id", Text target
        if seeds.Length > 1 then
            for k in 0 .. seeds.Length - 1 do
                $"eval_return_mean_seed_{seeds[k]}", Number(Array.average evals[k])
    ]

/// PPO for the run driver (`train.fsx algo=ppo`, the default).
let ppo: Algorithm<Ppo.PpoConfig, Ppo.Agent * Ppo.Progress * Ppo.Normalizers, Ppo.TrainResult> =
    {
        Name = "ppo"
        Fields = Ppo.fields
        Defaults = Ppo.seedDefaults
        Validate = Ppo.validate
        DefaultConfig = defaultPpoConfig
        Target = fun c -> c.EnvId
        Device = fun c -> c.Run.Device
        Check = ignore
        Load = Some loadPpo
        Describe =
            fun (_, p, _) ->
                let how =
                    if isNull p.Streams then
                        "; fresh episodes: the checkpoint holds no environment state"
                    else
                        ""

                $"update {p.Update} (step {p.GlobalStep}){how}", p.GlobalStep
        Columns = fun c -> ppoColumns c.Run.NumSeeds
        Total = fun c -> c.TotalTimesteps
        Label = fun c -> $"ppo {c.EnvId}"
        Train =
            fun ctx resume ->
                let cfg = ctx.Config

                let hooks: Ppo.Hooks =
                    {
                        OnUpdate =
                            fun agent progress norm rows ->
                                for r in rows do
                                    ctx.Log(ppoRow cfg.Run.NumSeeds r)

                                ctx.Report
                                    progress.GlobalStep
                                    (rows |> Seq.map (fun r -> r.EpisodicReturn) |> recentMean)

                                checkpointAtBoundary
                                    ctx
                                    progress.Update
                                    (progress.Update = cfg.NumUpdates)
                                    progress.GlobalStep
                                    (fun () -> saveCheckpoint ctx.Dir agent progress norm)
                    }

                Ppo.train cfg hooks resume
        Summarize =
            fun cfg result wall ->
                let evals =
                    Ppo.evaluate (Ppo.makeEnv cfg) result.Agent result.Normalizers.Obs cfg.EvalEpisodes cfg.EvalSeed

                printEvals "deterministic policy" cfg.Seeds cfg.EvalSeed evals

                {
                    Pairs = evalSummary evals cfg.Seeds wall cfg.TotalTimesteps cfg.Run.Device cfg.EnvId
                    Evals = evals
                }
        WriteReport = fun dir cfg summary -> writePpoReport dir $"PPO on {cfg.EnvId}" summary
        Release = fun r -> (r.Agent :> IDisposable).Dispose()
    }

/// Trains PPO from command-line arguments (`config=`, `resume=`, `runs=`, `checkpoint_every=`
/// and config overrides) through the run driver and returns the run folder. Writes nothing
/// before the config is valid.
let runPpo (args: string list) : string = drive ppo args

/// `runPpo` that stops at the next update boundary, after a checkpoint, when `cancel` is
/// cancelled, raising `RunStoppedException`.
let runPpoWith (cancel: Threading.CancellationToken) (args: string list) : string = driveWith cancel ppo args

/// Evaluates a saved PPO run: `path` is a run folder (or its checkpoint folder); `episodes`
/// deterministic episodes with the run's evaluation seed. Returns per seed the episode returns.
let evaluatePpo (path: string) (episodes: int option) : float[][] =
    let runDir =
        if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then
            Path.GetDirectoryName(Path.GetFullPath path)
        else
            path

    let configPath = Path.Combine(runDir, Run.ConfigFile)

    if not (File.Exists configPath) then
        raise (
            FileNotFoundException(
                $"evaluate: {configPath} not found; give a run folder or its checkpoint folder",
                configPath
            )
        )

    let cfg = Config.load Ppo.fields Ppo.seedDefaults configPath
    let agent, _, norm = loadPpo cfg runDir
    use _a = agent
    Ppo.evaluate (Ppo.makeEnv cfg) agent norm.Obs (defaultArg episodes cfg.EvalEpisodes) cfg.EvalSeed

// ---------------------------------------------------------------------------------------
// GRPO on MNIST
// ---------------------------------------------------------------------------------------

/// Default config file for GRPO.
let defaultGrpoConfig = Path.Combine("scripts", "configs", "grpo-mnist.yaml")

let private grpoRow (seeds: int) (r: Grpo.Row) =
    rowFor seeds r.Seed (Grpo.metricValues r)

/// GRPO metrics rows as a table with the columns of `metrics.csv` (a `seed` column when
/// `seeds > 1`), for charts in notebooks.
let grpoTable (seeds: int) (rows: Grpo.Row list) : MetricsTable =
    Metrics.ofRows
        (columnsFor seeds Grpo.metricColumns |> List.map (fun c -> c.Name))
        (rows |> List.map (grpoRow seeds))

/// Saves a GRPO checkpoint (actor, reference policy, optimizer, epoch) into `dir/checkpoint`
/// atomically.
let saveGrpoCheckpoint (dir: string) (agent: Grpo.Agent) (epoch: int) =
    Checkpoint.save
        (Path.Combine(dir, Run.CheckpointDir))
        [ "actor", agent.Actor :> torch.nn.Module; "reference", agent.Reference ]
        [ "optimizer", agent.Optimizer.Optimizer :?> Modules.OptimizerHelper ]
        (Map.ofList [ "epoch", string epoch ])

/// Writes `report.html` for a GRPO run folder from its `metrics.csv` and summary pairs.
let writeGrpoReport (dir: string) (title: string) (summary: (string * SummaryValue) list) =
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
let private grpoImagesPerEpoch (cfg: Grpo.GrpoConfig) =
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
let grpo: Algorithm<Grpo.GrpoConfig, unit, Grpo.TrainResult * int * int> =
    {
        Name = "grpo"
        Fields = Grpo.fields
        Defaults = Grpo.defaults
        Validate = Grpo.validate
        DefaultConfig = defaultGrpoConfig
        Target = fun _ -> "MNIST"
        Device = fun c -> c.Run.Device
        Check = fun _ -> checkMnist ()
        Load = None
        Describe = fun () -> "", 0L
        Columns = fun c -> columnsFor c.Run.NumSeeds Grpo.metricColumns
        Total = fun c -> int64 c.Epochs * int64 (grpoImagesPerEpoch c)
        Label = fun c -> $"grpo MNIST (G={c.GroupSize}, {c.Run.NumSeeds} seed(s))"
        Train =
            fun ctx _ ->
                let cfg = ctx.Config
                use data = Grpo.loadData cfg

                let hooks: Grpo.Hooks =
                    {
                        OnRows =
                            fun _ rows ->
                                for r in rows do
                                    ctx.Log(grpoRow cfg.Run.NumSeeds r)

                                ctx.Report rows[0].Step (rows |> Array.averageBy (fun r -> r.RewardMean))
                                stopAtBoundary ctx false rows[0].Step false None
                        OnEpoch = fun agent epoch _ -> saveGrpoCheckpoint ctx.Dir agent epoch
                    }

                Grpo.train data cfg hooks, data.Train.Count, data.Test.Count
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

                let images =
                    float (grpoImagesPerEpoch cfg) * float cfg.Epochs * float cfg.Run.NumSeeds

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
        WriteReport = fun dir cfg summary -> writeGrpoReport dir $"GRPO on MNIST (G = {cfg.GroupSize})" summary
        Release = fun (r, _, _) -> (r.Agent :> IDisposable).Dispose()
    }

/// Trains GRPO on MNIST from command-line arguments (`config=`, `runs=` and config overrides)
/// through the run driver and returns the run folder: metrics.csv (+ TensorBoard), a checkpoint
/// after every epoch, summary.json and report.html. Checks the config and the MNIST files
/// (fetching them when absent) before writing anything; raises `ConfigError` (also for
/// `resume=`, which GRPO does not support) and `FileNotFoundException` when MNIST is not usable.
let runGrpo (args: string list) : string = drive grpo args

/// Default config file for DQN.
let defaultDqnConfig = Path.Combine("scripts", "configs", "dqn-cartpole.yaml")

let private dqnColumns (seeds: int) = columnsFor seeds Dqn.metricColumns

let private dqnRow (seeds: int) (m: Dqn.DqnMetrics) =
    rowFor seeds m.Seed (Dqn.metricValues m)

/// DQN metrics rows as a table with the columns of `metrics.csv`, for charts in notebooks.
let dqnTable (seeds: int) (rows: Dqn.DqnMetrics list) : MetricsTable =
    Metrics.ofRows (dqnColumns seeds |> List.map (fun c -> c.Name)) (rows |> List.map (dqnRow seeds))

let private dqnModules (agent: Dqn.Agent) : (string * torch.nn.Module) list =
    [
        "q", agent.QNet :> torch.nn.Module
        "target", agent.Target
        "replay", agent.Buffer
    ]

/// Saves a DQN checkpoint (online and target networks, replay buffer, optimizer, step counter,
/// buffer counters and the finished episodes) into `dir/checkpoint` atomically.
let saveDqnCheckpoint (dir: string) (agent: Dqn.Agent) (progress: Dqn.Progress) =
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
        (Path.Combine(dir, Run.CheckpointDir))
        (dqnModules agent)
        [ "opt", agent.Opt.Optimizer :?> TorchSharp.Modules.OptimizerHelper ]
        extra

/// Builds a DQN agent for `cfg` and loads the checkpoint of run folder (or checkpoint folder)
/// `path` into it. Raises `CheckpointError` for a missing or damaged checkpoint.
let loadDqn (cfg: Dqn.DqnConfig) (path: string) : Dqn.Agent * Dqn.Progress =
    let ckpt =
        if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then
            path
        else
            Path.Combine(path, Run.CheckpointDir)

    use env = Envs.makeBatched cfg.EnvId 1 TorchSharp.torch.CPU

    let agent =
        Dqn.makeAgent cfg env.ObservationSpace.FlatSize env.ActionSpace TorchSharp.torch.CPU

    let extra =
        Checkpoint.load ckpt (dqnModules agent) [ "opt", agent.Opt.Optimizer :?> TorchSharp.Modules.OptimizerHelper ]

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
                        : Dqn.Episode)
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
let writeDqnReport (dir: string) (title: string) (summary: (string * SummaryValue) list) =
    let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))

    Report.write
        (Path.Combine(dir, Run.ReportFile))
        title
        (Run.summaryText summary)
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

/// DQN for the run driver (`train.fsx algo=dqn`): checkpoints every `checkpoint_every` log
/// windows; summary.json adds, per seed, the first step where the mean of 20 training episodes
/// reached 475 (CartPole's bar) and the mean of the last 20.
let dqn: Algorithm<Dqn.DqnConfig, Dqn.Agent * Dqn.Progress, Dqn.TrainResult> =
    {
        Name = "dqn"
        Fields = Dqn.fields
        Defaults = Dqn.defaults
        Validate = Dqn.validate
        DefaultConfig = defaultDqnConfig
        Target = fun c -> c.EnvId
        Device = fun c -> c.Run.Device
        Check = ignore
        Load = Some loadDqn
        Describe = fun (_, p) -> $"step {p.GlobalStep}", p.GlobalStep
        Columns = fun c -> dqnColumns c.Run.NumSeeds
        Total = fun c -> c.TotalTimesteps
        Label = fun c -> $"dqn {c.EnvId}"
        Train =
            fun ctx resume ->
                let cfg = ctx.Config
                let mutable windows = 0

                let hooks: Dqn.Hooks =
                    {
                        OnLog =
                            fun agent progress rows ->
                                for r in rows do
                                    ctx.Log(dqnRow cfg.Run.NumSeeds r)

                                ctx.Report progress.GlobalStep (rows |> Seq.map (fun r -> r.ReturnLast20) |> recentMean)
                                windows <- windows + 1

                                checkpointAtBoundary
                                    ctx
                                    windows
                                    (progress.GlobalStep >= cfg.TotalTimesteps)
                                    progress.GlobalStep
                                    (fun () -> saveDqnCheckpoint ctx.Dir agent progress)
                    }

                Dqn.train cfg hooks resume
        Summarize =
            fun cfg result wall ->
                let S = cfg.Run.NumSeeds

                let evals =
                    Dqn.evaluate (Dqn.makeEnv cfg) result.Agent cfg.EvalEpisodes cfg.EvalSeed

                let bar k =
                    Dqn.firstStepReaching 20 475.0 result.Progress.Episodes[k]

                for k in 0 .. S - 1 do
                    let m, s = meanStd evals[k]
                    let reached = bar k |> Option.map string |> Option.defaultValue "not reached"

                    printfn
                        "seed %d: eval return %.1f +- %.1f (greedy, %d episodes); last-20 training mean %.1f; 20-episode mean >= 475 at step %s"
                        cfg.Seeds[k]
                        m
                        s
                        cfg.EvalEpisodes
                        (Dqn.lastMean 20 result.Progress.Episodes[k])
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
                                Number(Dqn.lastMean 20 result.Progress.Episodes[k])

                                $"step_reaching_475_seed_{cfg.Seeds[k]}",
                                (match bar k with
                                 | Some st -> Integer st
                                 | None -> Text "not reached")
                        ]
                }
        WriteReport = fun dir cfg summary -> writeDqnReport dir $"DQN on {cfg.EnvId}" summary
        Release = fun r -> (r.Agent :> IDisposable).Dispose()
    }

/// Trains DQN from command-line arguments (`config=`, `resume=`, `runs=`, `checkpoint_every=`
/// (in log windows) and config overrides) through the run driver and returns the run folder.
let runDqn (args: string list) : string = drive dqn args

// ---------------------------------------------------------------------------------------
// REINFORCE
// ---------------------------------------------------------------------------------------

/// Default config file for REINFORCE.
let defaultReinforceConfig =
    Path.Combine("scripts", "configs", "reinforce-cartpole.yaml")

let private reinforceRow (seeds: int) (m: Reinforce.ReinforceMetrics) =
    rowFor seeds m.Seed (Reinforce.metricValues m)

/// REINFORCE for the run driver (`train.fsx algo=reinforce`): the progress bar counts updates;
/// no checkpoints and no resume (runs are short); summary.json as PPO's, with the deterministic
/// policy's evaluation.
let reinforce: Algorithm<Reinforce.ReinforceConfig, unit, Reinforce.TrainResult> =
    {
        Name = "reinforce"
        Fields = Reinforce.fields
        Defaults = Reinforce.defaults
        Validate = Reinforce.validate
        DefaultConfig = defaultReinforceConfig
        Target = fun c -> c.EnvId
        Device = fun c -> c.Run.Device
        Check = ignore
        Load = None
        Describe = fun () -> "", 0L
        Columns = fun c -> columnsFor c.Run.NumSeeds Reinforce.metricColumns
        Total = fun c -> int64 c.Iterations
        Label = fun c -> $"reinforce {c.EnvId} (updates)"
        Train =
            fun ctx _ ->
                let cfg = ctx.Config

                let hooks: Reinforce.Hooks =
                    {
                        OnIteration =
                            fun _ rows ->
                                for r in rows do
                                    ctx.Log(reinforceRow cfg.Run.NumSeeds r)

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

                Reinforce.trainWith hooks cfg 0 0
        Summarize =
            fun cfg result wall ->
                let evals = Reinforce.evaluate cfg result.Agent cfg.EvalEpisodes cfg.EvalSeed

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
    }

/// Trains REINFORCE from command-line arguments (`config=`, `runs=` and config overrides)
/// through the run driver and returns the run folder.
let runReinforce (args: string list) : string = drive reinforce args

/// Entry point of `scripts/train.fsx`: dispatches on `algo=` (default ppo); SIGTERM/SIGINT stop
/// the run at the next update boundary (`stopOnSignals`). Returns an exit code: 0 on success, 2
/// for a bad config or arguments, 1 for a failed run, 3 for a run stopped by a signal (after its
/// checkpoint, when the algorithm resumes).
let main (args: string list) : int =
    try
        let special, _ = splitArgs args
        use stop = stopOnSignals ()
        let cancel = stop.Token

        let run =
            match special.TryFind "algo" |> Option.defaultValue "ppo" with
            | "ppo" -> Some(driveWith cancel ppo)
            | "dqn" -> Some(driveWith cancel dqn)
            | "grpo" -> Some(driveWith cancel grpo)
            | "reinforce" -> Some(driveWith cancel reinforce)
            | other ->
                eprintfn "unknown algo '%s'; allowed: ppo, dqn, grpo, reinforce" other
                None

        match run with
        | Some f ->
            args |> List.filter (fun a -> not (a.StartsWith "algo=")) |> f |> ignore
            0
        | None -> 2
    with
    | ConfigError _ as e ->
        eprintfn "config error: %s" e.Message
        2
    | :? FileNotFoundException as e ->
        eprintfn "%s" e.Message
        2
    | CheckpointError _ as e ->
        eprintfn "checkpoint error: %s" e.Message
        2
    | Mnist.MnistDataError msg ->
        eprintfn "data error: %s" msg
        2
    | Ppo.TrainingDivergedException _ -> 1
    | :? RunStoppedException -> 3

/// PPO metrics rows as a table with the columns of `metrics.csv` (a `seed` column when
/// `seeds > 1`), for charts in notebooks.
let ppoTable (seeds: int) (rows: Ppo.UpdateMetrics list) : MetricsTable =
    Metrics.ofRows (ppoColumns seeds |> List.map (fun c -> c.Name)) (rows |> List.map (ppoRow seeds))
