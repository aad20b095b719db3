/// The one run driver shared by every algorithm and every front end (`scripts/train.fsx`,
/// `scripts/evaluate.fsx`, sweeps, the C# face): resolve a config (YAML + `key=value`
/// overrides), create the run folder, train with a progress bar while streaming metrics to CSV
/// and TensorBoard and checkpointing, evaluate, and write `summary.json` and `report.html`;
/// cancellation at the update boundary and SIGTERM/SIGINT. An algorithm plugs in as an
/// `Algorithm` record (its config keys, how it resumes, its metrics columns, its training step
/// wired to the driver's context, its summary and report), written in its own
/// `Algorithms/<Name>/Runner.fs`; `Cli` lists them. No algorithm is named here.
module Rl.Train

open System
open System.IO
open TorchSharp
open Rl

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
let rowFor (seeds: int) (seed: int64) (values: float[]) =
    if seeds > 1 then
        Array.append [| float seed |] values
    else
        values

/// Raised by an algorithm when a loss or statistic becomes NaN or infinite: names the update
/// (or log window) and the quantity; the driver says where the metrics and the last checkpoint are.
exception TrainingDivergedException of update: int * quantity: string * value: float with
    override e.Message =
        $"training diverged at update {e.update}: {e.quantity} = {e.value}. Metrics up to the previous update are kept; "
        + "resume from the last checkpoint with a lower learning rate or check the environment's rewards."

/// The checkpoint's extra key of the running streams of algorithms that resume exactly
/// (`Ppo.Progress.Streams`, `Dqn.Progress.Streams`).
let streamsKey = "streams"

/// Mean and population standard deviation.
let meanStd (xs: float[]) =
    let m = Array.average xs
    m, sqrt (Array.averageBy (fun x -> (x - m) * (x - m)) xs)

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
        /// The periodic evaluation (`eval_every`) and its `evals.csv` (see `evalAtBoundary`).
        Evals: PeriodicEval.Log
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

/// Called by an algorithm after each logged update, before `checkpointAtBoundary`: when the
/// periodic evaluation is due at `step` (see `PeriodicEval.Log.Due`; `finished` after the last
/// update), evaluates the current policy with `evaluate` (per seed, the returns of the
/// deterministic episodes), records it in `evals.csv`, and calls `saveBest k checkpointDir` for
/// every seed index k that beat its best (None: the algorithm keeps no checkpoint, only the log).
/// The evaluation must not touch the training's random streams, so that a run's metrics are the
/// same with and without it.
let evalAtBoundary
    (ctx: RunContext<'C>)
    (seeds: int64[])
    (step: int64)
    (finished: bool)
    (evaluate: unit -> float[][])
    (saveBest: (int -> string -> unit) option)
    =
    if ctx.Evals.Due(step, finished) then
        let improved = ctx.Evals.Record(step, evaluate ())

        match saveBest with
        | Some save ->
            improved
            |> Array.iteri (fun k better ->
                if better then
                    save k (PeriodicEval.bestDir ctx.Dir seeds k))
        | None -> ()

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
        /// `eval_every` of a config: environment steps per seed between periodic evaluations
        /// (0: none; see `evalAtBoundary`), and the seed values of the run.
        EvalEvery: 'C -> int64
        Seeds: 'C -> int64[]
        Label: 'C -> string
        Train: RunContext<'C> -> 'S option -> 'R
        /// After training (wall seconds given): evaluates, prints the results, returns summary.json's
        /// pairs and the evaluation per seed.
        Summarize: 'C -> 'R -> float -> Summary
        /// Writes `report.html` into the run folder from the finished `metrics.csv`.
        WriteReport: string -> 'C -> (string * SummaryValue) list -> unit
        /// Releases what training returned (networks, optimizers).
        Release: 'R -> unit
        /// Evaluates a state restored by `Load` from a saved run (`evaluate.fsx`): the given number
        /// of episodes per seed (None: the config's own), deterministic as in `Summarize`; returns
        /// per seed the episode returns and releases the state. None when the algorithm does not
        /// reload its policy.
        Evaluate: ('C -> 'S -> int option -> float[][]) option
        /// The deterministic policy of a state restored by `Load` (`export.fsx`, the C# face's
        /// `Policy.Load`); the policy owns the state and releases it. None when the algorithm keeps
        /// no policy to export.
        Policy: ('C -> 'S -> PolicyExport.LoadedPolicy) option
        /// `capture_video`: record each seed's first evaluation start as a video after training
        /// (needs `Policy`; see `recordVideosOf`). Always false for an algorithm without one.
        CaptureVideo: 'C -> bool
        /// `eval_seed`: training seed s evaluates (and is recorded) on starts drawn from
        /// `EvalSeed + s`.
        EvalSeed: 'C -> int64
    }

/// Records `episodes` deterministic episodes per seed of `policy` (a run's policy, see
/// `Algorithm.Policy`) on single envs of the run's env: seed s's first episode starts from reset
/// seed `eval_seed + s`, the next ones continue that env's stream. Writes
/// `<runDir>/videos/rl-video[-seed-<s>]-episode-<i>.mp4` (PNG frames without ffmpeg, see
/// `Video.save`) and a row per episode in `videos/episodes.csv`; prints one line per video.
/// Returns the paths written. Raises `Video.VideoError` when ffmpeg fails, and `Envs.frame`'s
/// errors for an env that does not draw itself.
let recordVideosOf
    (algo: Algorithm<'C, 'S, 'R>)
    (cfg: 'C)
    (policy: PolicyExport.LoadedPolicy)
    (runDir: string)
    (episodes: int)
    =
    let seeds = algo.Seeds cfg
    let envId = algo.Target cfg
    let dir = Path.Combine(runDir, Video.VideosDir)
    let fps = Video.fpsOf envId
    let clock = Diagnostics.Stopwatch.StartNew()

    let written =
        [
            for k in 0 .. seeds.Length - 1 do
                let env = Envs.make envId

                for e in 0 .. episodes - 1 do
                    let resetSeed = if e = 0 then Some(algo.EvalSeed cfg + seeds[k]) else None
                    let episode = Video.recordEpisode env resetSeed (Video.actionOf policy k)
                    let path = Video.save dir (Video.prefixFor seeds k) e fps episode
                    Video.appendIndex dir (Path.GetFileName path) seeds[k] e resetSeed episode

                    printfn
                        "video: %s (seed %d, return %.1f over %d steps)"
                        (Path.GetRelativePath(runDir, path))
                        seeds[k]
                        episode.Return
                        episode.Length

                    yield path
        ]

    printfn "videos recorded in %.1f s" clock.Elapsed.TotalSeconds
    written

/// After training with `capture_video`: each seed's first evaluation start as a video, from the
/// run's final checkpoint. A failure (ffmpeg, an env that does not draw itself) is printed as one
/// line and the run goes on: its metrics and checkpoint are already written and stay intact.
let private captureVideos (algo: Algorithm<'C, 'S, 'R>) (cfg: 'C) (dir: string) =
    match algo.Load, algo.Policy with
    | Some load, Some policyOf when algo.CaptureVideo cfg ->
        try
            let policy = policyOf cfg (load cfg dir)

            try
                recordVideosOf algo cfg policy dir 1 |> ignore
            finally
                policy.Release()
        with
        | Video.VideoError _
        | :? NotSupportedException
        | :? InvalidOperationException
        | :? IOException as e ->
            eprintfn "capture_video: %s; the run, its metrics and its checkpoint in %s are intact" e.Message dir
    | _ -> ()

/// Checks that the config's device exists on this machine before anything is written or loaded:
/// raises `ConfigError` on `device` (one line from the command line, exit code 2) where
/// `Native.device` refuses it (CUDA asked for on a machine without it, an unknown name).
let private checkDevice (algo: Algorithm<'C, 'S, 'R>) (cfg: 'C) =
    let name = algo.Device cfg

    try
        Native.device name |> ignore
    with
    | :? InvalidOperationException
    | :? ArgumentException as e ->
        raise (ConfigError("config", "device", name, "cpu, auto, or cuda / cuda:N where CUDA is available", e.Message))

/// Loads run folder `runDir` for resuming: takes its lock (`RunLock.acquire`) before anything else
/// is read or written, so a folder that another live process trains into is refused with the
/// folder untouched; then its own config with `overrides` (written back to its `config.yaml`),
/// the device and the state. Returns the config, the folder, the state and the held lock; on any
/// error the lock is released and the error raised. Raises `ConfigError` when the algorithm does
/// not resume or a config value is bad, and with source "run lock" when the folder is in use;
/// `FileNotFoundException` without `config.yaml`; or the loader's errors.
let private resumeRun (algo: Algorithm<'C, 'S, 'R>) (runDir: string) (overrides: string list) =
    match algo.Load with
    | None ->
        raise (
            ConfigError(
                "arguments",
                "resume",
                runDir,
                "a run folder of an algorithm that resumes",
                $"{algo.Name} runs do not resume; start a new run"
            )
        )
    | Some load ->
        // a folder without config.yaml is no run folder: refused before a lock file is put in it
        if not (File.Exists(Path.Combine(runDir, Run.ConfigFile))) then
            resumeConfig algo.Fields algo.Defaults algo.Validate runDir overrides |> ignore

        let lock = RunLock.acquire runDir

        try
            let cfg, configPath =
                resumeConfig algo.Fields algo.Defaults algo.Validate runDir overrides

            checkDevice algo cfg
            let state = load cfg runDir
            printfn "resuming %s at %s" runDir (fst (algo.Describe state))
            Files.writeTextAtomic configPath (Config.seal (Run.algorithmLine algo.Name + Config.toYaml algo.Fields cfg))
            cfg, Path.GetFullPath runDir, Some state, lock
        with _ ->
            lock.Release()
            reraise ()

/// A fresh run folder under `runs` for a valid config, after the device (and the algorithm's
/// data) are checked, and its lock (`RunLock.acquire`), held from the moment the folder exists.
let private freshRun (algo: Algorithm<'C, 'S, 'R>) (cfg: 'C) (runs: string) =
    checkDevice algo cfg
    algo.Check cfg
    let yaml = Config.seal (Run.algorithmLine algo.Name + Config.toYaml algo.Fields cfg)
    let dir = Run.create runs algo.Name (algo.Target cfg) yaml
    cfg, dir, None, RunLock.acquire dir

/// The config, run folder, restored state, checkpoint interval and the run folder's held lock
/// (`RunLock`; the caller releases it when the run ends) of a start: `FromArgs` with
/// `resume=<run dir>` resumes (the run's own config with the overrides applied); otherwise the
/// config file (`config=`, default `algo.DefaultConfig`) with the overrides, in a fresh folder
/// under `runs=` (default `runs`). Raises `ConfigError` (also for resuming an algorithm that does
/// not resume, and, source "run lock", for a folder another live process trains into) or the
/// loader's errors before anything new is written.
let private beginRun (algo: Algorithm<'C, 'S, 'R>) (start: Start<'C>) =
    match start with
    | FromArgs args ->
        let special, overrides = splitArgs args

        let every =
            match special.TryFind "checkpoint_every" with
            | None -> 10
            | Some v ->
                match Int32.TryParse v with
                | true, n when n >= 1 -> n
                | _ ->
                    raise (ConfigError("arguments", "checkpoint_every", v, "an integer >= 1", "not a valid interval"))

        let cfg, dir, state, lock =
            match special.TryFind "resume" with
            | Some runDir -> resumeRun algo runDir overrides
            | None ->
                let path = special.TryFind "config" |> Option.defaultValue algo.DefaultConfig

                let cfg =
                    Config.resolve algo.Fields algo.Defaults algo.Validate (Some path) overrides

                freshRun algo cfg (special.TryFind "runs" |> Option.defaultValue "runs")

        cfg, dir, state, every, lock
    | FromConfig(cfg, runs, every) ->
        algo.Validate cfg
        let cfg, dir, state, lock = freshRun algo cfg runs
        cfg, dir, state, every, lock
    | FromRunDir(runDir, every) ->
        let cfg, dir, state, lock = resumeRun algo runDir []
        cfg, dir, state, every, lock

/// The one skeleton of every run: config -> run folder -> progress bar -> per-update metrics
/// (CSV + TensorBoard) -> the algorithm's periodic checkpoints -> evaluation -> `summary.json` +
/// `report.html`. Writes nothing before the config is valid; when PPO diverges, says where the
/// metrics and the last checkpoint are; when `options.Cancel` is cancelled, stops at the next
/// update boundary after a checkpoint and raises `RunStoppedException`. One process at a time
/// trains into a run folder: its lock (`RunLock`, `run.lock`) is held from the start until the run
/// ends, however it ends; a resume of a folder that another live process holds raises
/// `ConfigError` (source "run lock") and writes nothing.
let run (options: DriveOptions) (algo: Algorithm<'C, 'S, 'R>) (start: Start<'C>) : Outcome =
    let cfg, dir, resume, every, lock = beginRun algo start
    use _lock = lock

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
    let evals = PeriodicEval.Log(dir, algo.Seeds cfg, algo.EvalEvery cfg, resumedAt)
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
                        Evals = evals
                    }
                    resume)
        with
        | :? RunStoppedException as e ->
            eprintfn "%s" e.Message
            reraise ()
        | TrainingDivergedException _ as e ->
            eprintfn "%s" e.Message

            eprintfn
                "metrics so far: %s; last checkpoint: %s"
                (Path.Combine(dir, Metrics.CsvFile))
                (Path.Combine(dir, Run.CheckpointDir))

            reraise ()

    let summary = algo.Summarize cfg result clock.Elapsed.TotalSeconds

    let summary =
        { summary with
            Pairs = summary.Pairs @ evals.Pairs
        }

    if evals.Rows.Length > 0 then
        let seeds = algo.Seeds cfg

        for k in 0 .. seeds.Length - 1 do
            let folder = PeriodicEval.bestDir dir seeds k

            printfn
                "seed %d: best periodic eval %.1f at step %d%s"
                seeds[k]
                evals.Best[k]
                evals.BestStep[k]
                (if Directory.Exists folder then
                     $" (checkpoint in {folder})"
                 else
                     "")

    (log :> IDisposable).Dispose()
    // the finished metrics.csv's checksum: readers of a finished run (sweep summaries) refuse a
    // metrics log damaged since (a changed digit would otherwise pass as a real value)
    let summaryPairs =
        summary.Pairs
        @ [
            Run.MetricsChecksumKey, Text(Files.sha256 (Path.Combine(dir, Metrics.CsvFile)))
        ]

    Run.writeSummary dir summaryPairs
    captureVideos algo cfg dir
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
let recentMean (xs: float seq) =
    let finite = xs |> Seq.filter Double.IsFinite |> Array.ofSeq
    if finite.Length = 0 then nan else Array.average finite

/// Prints each seed's evaluation, e.g. `seed 0: eval return -180.2 +- 95.3 over 10 episodes
/// (deterministic policy, eval seed 1000000)`; `policy` says how actions were chosen.
let printEvals (policy: string) (seeds: int64[]) (evalSeed: int64) (evals: float[][]) =
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
let evalSummary (evals: float[][]) (seeds: int64[]) (wall: float) (steps: int64) (device: string) (target: string) =
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

/// The run folder of `path`: `path` itself, or, when `path` is a checkpoint folder
/// (`checkpoint/`, `best/`, `best/seed_<s>/`), the nearest folder above it holding `config.yaml`
/// (its parent when none does).
let runDirOf (path: string) =
    if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then
        let full = Path.GetFullPath path
        let parent = Path.GetDirectoryName full

        Seq.unfold (fun (d: string) -> if isNull d then None else Some(d, Path.GetDirectoryName d)) parent
        |> Seq.truncate 2
        |> Seq.tryFind (fun d -> File.Exists(Path.Combine(d, Run.ConfigFile)))
        |> Option.defaultValue parent
    else
        path

/// The seed a best-checkpoint folder `best/seed_<s>` was kept for (see `PeriodicEval.bestDir`),
/// or None for any other folder.
let bestSeedOf (path: string) : int64 option =
    let full = Path.TrimEndingDirectorySeparator(Path.GetFullPath path)
    let name = Path.GetFileName full
    let parent = Path.GetFileName(Path.GetDirectoryName full)

    if parent = PeriodicEval.BestDir && name.StartsWith "seed_" then
        match Int64.TryParse(name.Substring 5) with
        | true, s -> Some s
        | _ -> None
    else
        None

/// The config and restored state of run folder (or checkpoint folder: `checkpoint/`, `best/`,
/// `best/seed_<s>/`) `path` written by `algo`, when `usable` (the algorithm has what the caller
/// needs); else `ConfigError` naming the folder, `allowed` and `problem`. Raises
/// `FileNotFoundException` (its message after `prefix`) without `config.yaml`, and the loader's
/// `CheckpointError` for a missing or damaged checkpoint.
let private restoreSaved
    (algo: Algorithm<'C, 'S, 'R>)
    (path: string)
    (prefix: string)
    (usable: bool)
    (allowed: string)
    (problem: string)
    : 'C * 'S =
    let runDir = runDirOf path
    let configPath = Path.Combine(runDir, Run.ConfigFile)

    if not (File.Exists configPath) then
        raise (
            FileNotFoundException(
                $"{prefix}{configPath} not found; give a run folder or its checkpoint folder",
                configPath
            )
        )

    match algo.Load with
    | Some load when usable ->
        let cfg = Config.load algo.Fields algo.Defaults configPath
        // a checkpoint folder is loaded as given (`checkpoint/`, `best/`, `best/seed_<s>/`)
        let source = if path = runDir then runDir else path
        cfg, load cfg source
    | _ -> raise (ConfigError("arguments", "run", runDir, allowed, problem))

/// Evaluates the saved policy of run folder (or checkpoint folder) `path` written by `algo`:
/// its own config, its checkpoint, `episodes` deterministic episodes per seed (None: the config's
/// `eval_episodes`) on the run's evaluation seeds. Returns per seed the episode returns. Raises
/// `FileNotFoundException` without `config.yaml`, `CheckpointError` for a missing or damaged
/// checkpoint, `ConfigError` when the algorithm does not reload its policy.
let evaluateRun (algo: Algorithm<'C, 'S, 'R>) (path: string) (episodes: int option) : float[][] =
    let cfg, state =
        restoreSaved
            algo
            path
            "evaluate: "
            algo.Evaluate.IsSome
            "a run folder whose algorithm reloads its policy"
            $"{algo.Name} runs do not reload their policy; the final evaluation is in {Run.SummaryFile}"

    let returns = algo.Evaluate.Value cfg state episodes

    // best/seed_<s> holds the batched checkpoint of the moment seed s peaked: only s is meant
    match bestSeedOf path with
    | Some s ->
        match Array.tryFindIndex ((=) s) (algo.Seeds cfg) with
        | Some k -> [| returns[k] |]
        | None -> returns
    | None -> returns

/// The deterministic policy saved in run folder (or checkpoint folder: `checkpoint/`, `best/`,
/// `best/seed_<s>/`) `path`, restored with the run's own config. Raises `FileNotFoundException`
/// without `config.yaml`, `CheckpointError` for a missing or damaged checkpoint, `ConfigError` when
/// the algorithm keeps no policy to export.
let rec loadPolicy (algo: Algorithm<'C, 'S, 'R>) (path: string) : PolicyExport.LoadedPolicy =
    snd (restorePolicy algo path "export")

/// The config and deterministic policy of `path` (see `loadPolicy`); `usage` says what the policy
/// was wanted for in the refusal of an algorithm without one.
and private restorePolicy (algo: Algorithm<'C, 'S, 'R>) (path: string) (usage: string) =
    let cfg, state =
        restoreSaved
            algo
            path
            ""
            algo.Policy.IsSome
            "a run folder of an algorithm that keeps a policy (ppo, dqn)"
            $"{algo.Name} runs keep no policy to {usage}"

    cfg, algo.Policy.Value cfg state

/// `evaluate.fsx video=true`: records `episodes` deterministic episodes per seed of the policy
/// saved in run folder (or checkpoint folder) `path` (see `recordVideosOf`) into the run folder's
/// `videos/`; returns the paths written. Raises as `loadPolicy`, and `Video.VideoError`.
let recordVideos (algo: Algorithm<'C, 'S, 'R>) (path: string) (episodes: int) : string list =
    let cfg, policy = restorePolicy algo path "record"

    try
        recordVideosOf algo cfg policy (runDirOf path) episodes
    finally
        policy.Release()

/// An algorithm as the command line lists it, whatever its config and state types (`Cli`
/// dispatches `algo=` and run folders through a list of these).
type Entry =
    {
        /// `algo=` name and run-folder prefix.
        Name: string
        /// `driveWith` this algorithm: a cancellation token and command-line arguments in, the run
        /// folder out.
        DriveWith: Threading.CancellationToken -> string list -> string
        /// `evaluateRun` this algorithm: a run or checkpoint folder and an episode count.
        EvaluateRun: string -> int option -> float[][]
        /// `loadPolicy` this algorithm: a run or checkpoint folder.
        LoadPolicy: string -> PolicyExport.LoadedPolicy
        /// `recordVideos` this algorithm: a run or checkpoint folder and episodes per seed.
        RecordVideos: string -> int -> string list
    }

/// The `Entry` of an algorithm.
let entry (algo: Algorithm<'C, 'S, 'R>) : Entry =
    {
        Name = algo.Name
        DriveWith = fun cancel args -> driveWith cancel algo args
        EvaluateRun = evaluateRun algo
        LoadPolicy = loadPolicy algo
        RecordVideos = recordVideos algo
    }
