/// The command-line front end shared by `scripts/train.fsx` and `scripts/evaluate.fsx`: resolve
/// a config (YAML + `key=value` overrides), create the run directory, train with a progress
/// bar while streaming metrics to CSV and TensorBoard and checkpointing, evaluate, and write
/// `summary.json` and `report.html`.
module Rl.Train

open System
open System.IO
open TorchSharp
open Rl

/// Default config file for PPO.
let defaultPpoConfig = Path.Combine("scripts", "configs", "ppo-pendulum.yaml")

/// Arguments that are not config keys: `algo`, `config`, `resume`, `runs`, `episodes`.
let private reserved = [ "algo"; "config"; "resume"; "runs"; "episodes"; "checkpoint_every" ]

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

let private ppoColumns (seeds: int) =
    // explicit yields: with `for ... ->` in the list, an implicit `if ... then x` would be dropped
    [ if seeds > 1 then yield Column.plain Metrics.SeedColumn
      for name, tag in Ppo.metricColumns do
          yield (if tag = "" then Column.plain name else Column.named name tag) ]

let private ppoRow (seeds: int) (m: Ppo.UpdateMetrics) =
    [| if seeds > 1 then float m.Seed
       yield! Ppo.metricValues m |]

/// Saves a PPO checkpoint (networks, optimizers, counters, normalisation statistics) into
/// `dir/checkpoint` atomically.
let saveCheckpoint (dir: string) (agent: Ppo.Agent) (progress: Ppo.Progress) (norm: Ppo.Normalizers) =
    let extra =
        [ "update", string progress.Update
          "global_step", string progress.GlobalStep
          match norm.Obs with
          | Some s -> "obs_stats", s.Save()
          | None -> ()
          match norm.Return with
          | Some s -> "return_stats", s.Save()
          | None -> () ]
        |> Map.ofList

    Checkpoint.save
        (Path.Combine(dir, Run.CheckpointDir))
        agent.Modules
        [ for name, o in agent.Optimizers -> name, o :?> TorchSharp.Modules.OptimizerHelper ]
        extra

/// Builds a PPO agent for `cfg` and loads the checkpoint of run folder (or checkpoint folder)
/// `path` into it. Raises `CheckpointError` for a missing or damaged checkpoint.
let loadPpo (cfg: Ppo.PpoConfig) (path: string) : Ppo.Agent * Ppo.Progress * Ppo.Normalizers =
    let ckpt =
        if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then path
        else Path.Combine(path, Run.CheckpointDir)

    use env = Envs.makeBatched cfg.EnvId 1 TorchSharp.torch.CPU
    let obsDim = env.ObservationSpace.FlatSize
    let device = Native.device cfg.Device
    // Modules load on the CPU, then move (TorchSharp's save/load guidance).
    let agent = Ppo.makeAgentFor cfg obsDim env.ActionSpace TorchSharp.torch.CPU

    let extra =
        Checkpoint.load
            ckpt
            agent.Modules
            [ for name, o in agent.Optimizers -> name, o :?> TorchSharp.Modules.OptimizerHelper ]

    for _, m in agent.Modules do
        m.``to`` device |> ignore
    let norm = Ppo.newNormalizers cfg obsDim device
    norm.Obs |> Option.iter (fun s -> s.Load extra["obs_stats"])
    norm.Return |> Option.iter (fun s -> s.Load extra["return_stats"])

    let progress: Ppo.Progress =
        { Update = int extra["update"]
          GlobalStep = int64 extra["global_step"] }

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
        [ "actor_loss"; "critic_loss"; "entropy"; "approx_kl"; "clip_fraction"; "explained_variance"; "sigma_mean"; "grad_norm"; "lr"
          "adam_m_norm"; "adam_v_norm"; "grad_cos_prev"; "grad_cos_ema" ]
        |> List.filter (fun c -> Metrics.hasColumn c table && (Metrics.column c table |> Array.exists Double.IsFinite))

    Report.write
        (Path.Combine(dir, Run.ReportFile))
        title
        (Run.summaryText summary)
        [ "Learning curve", [ Charts.learningCurve view "global_step" "episodic_return" table ]
          "Losses and diagnostics", [ Charts.panels view "global_step" panelsFor table ]
          "Time per update", [ Charts.panels view "global_step" [ "sps"; "rollout_s"; "learn_s" ] table ] ]

/// Trains PPO from command-line arguments (`config=`, `resume=`, `runs=`, `checkpoint_every=`
/// and config overrides) and returns the run folder. Writes nothing before the config is valid.
let runPpo (args: string list) : string =
    let special, overrides = splitArgs args

    let cfg, dir, resume =
        match special.TryFind "resume" with
        | Some runDir ->
            let configPath = Path.Combine(runDir, Run.ConfigFile)

            if not (File.Exists configPath) then
                raise (FileNotFoundException($"resume: {configPath} not found; give the run folder to resume", configPath))

            let cfg = Config.resolve Ppo.fields Ppo.seedDefaults Ppo.validate (Some configPath) overrides
            let agent, progress, norm = loadPpo cfg runDir
            printfn "resuming %s at update %d (step %d)" runDir progress.Update progress.GlobalStep
            Files.writeTextAtomic configPath (Config.toYaml Ppo.fields cfg)
            cfg, Path.GetFullPath runDir, Some(agent, progress, norm)
        | None ->
            let path = special.TryFind "config" |> Option.defaultValue defaultPpoConfig
            let cfg = Config.resolve Ppo.fields Ppo.seedDefaults Ppo.validate (Some path) overrides
            // Check the device before creating anything on disk.
            Native.device cfg.Device |> ignore
            let runs = special.TryFind "runs" |> Option.defaultValue "runs"
            let dir = Run.create runs "ppo" cfg.EnvId (Config.toYaml Ppo.fields cfg)
            cfg, dir, None

    let every =
        special.TryFind "checkpoint_every" |> Option.map int |> Option.defaultValue 10

    printfn "run folder: %s" dir
    let S = cfg.NumSeeds

    let options =
        { MetricsOptions.defaults dir (ppoColumns S) with
            Append = resume.IsSome
            Hyperparameters = Config.pairs Ppo.fields cfg }

    use log = Metrics.openWith options
    let total = cfg.TotalTimesteps
    let clock = Diagnostics.Stopwatch.StartNew()

    let result =
        try
            Progress.run $"ppo {cfg.EnvId}" total (fun report ->
                let hooks: Ppo.Hooks =
                    { OnUpdate =
                        fun agent progress norm rows ->
                            for r in rows do
                                Metrics.logRow (ppoRow S r) log

                            let recent =
                                rows |> Array.map (fun r -> r.EpisodicReturn) |> Array.filter Double.IsFinite

                            report progress.GlobalStep (if recent.Length = 0 then nan else Array.average recent)

                            if progress.Update % every = 0 || progress.Update = cfg.NumUpdates then
                                saveCheckpoint dir agent progress norm }

                Ppo.train cfg hooks resume)
        with Ppo.TrainingDivergedException(update, quantity, value) as e ->
            eprintfn "%s" e.Message
            eprintfn "metrics so far: %s; last checkpoint: %s" (Path.Combine(dir, Metrics.CsvFile)) (Path.Combine(dir, Run.CheckpointDir))
            reraise ()

    let wall = clock.Elapsed.TotalSeconds
    let evals = Ppo.evaluate (Ppo.makeEnv cfg) result.Agent result.Normalizers.Obs cfg.EvalEpisodes cfg.EvalSeed

    for k in 0 .. S - 1 do
        let m, s = meanStd evals[k]
        printfn "seed %d: eval return %.1f +- %.1f over %d episodes (deterministic policy, eval seed %d)" cfg.Seeds[k] m s cfg.EvalEpisodes (cfg.EvalSeed + cfg.Seeds[k])

    let all = Array.concat evals
    let m, s = meanStd all
    let steps = float cfg.TotalTimesteps * float S

    let summary =
        [ "eval_return_mean", Number m
          "eval_return_std", Number s
          "wall_seconds", Number wall
          "total_timesteps", Integer cfg.TotalTimesteps
          "steps_per_second", Number(steps / wall)
          "seed", Integer cfg.Seed
          "num_seeds", Integer(int64 S)
          "device", Text cfg.Device
          "env_id", Text cfg.EnvId
          if S > 1 then
              for k in 0 .. S - 1 do
                  $"eval_return_mean_seed_{cfg.Seeds[k]}", Number(Array.average evals[k]) ]

    Run.writeSummary dir summary
    (log :> IDisposable).Dispose()
    writePpoReport dir $"PPO on {cfg.EnvId}" summary
    printfn "wrote %s, %s, %s" Metrics.CsvFile Run.SummaryFile Run.ReportFile
    (result.Agent :> IDisposable).Dispose()
    dir

/// Evaluates a saved PPO run: `path` is a run folder (or its checkpoint folder); `episodes`
/// deterministic episodes with the run's evaluation seed. Returns per seed the episode returns.
let evaluatePpo (path: string) (episodes: int option) : float[][] =
    let runDir =
        if File.Exists(Path.Combine(path, Checkpoint.ManifestFile)) then Path.GetDirectoryName(Path.GetFullPath path)
        else path

    let configPath = Path.Combine(runDir, Run.ConfigFile)

    if not (File.Exists configPath) then
        raise (FileNotFoundException($"evaluate: {configPath} not found; give a run folder or its checkpoint folder", configPath))

    let cfg = Config.load Ppo.fields Ppo.seedDefaults configPath
    let agent, _, norm = loadPpo cfg runDir
    use _a = agent
    Ppo.evaluate (Ppo.makeEnv cfg) agent norm.Obs (defaultArg episodes cfg.EvalEpisodes) cfg.EvalSeed

/// Entry point of `scripts/train.fsx`: dispatches on `algo=` (default ppo). Returns an exit code:
/// 0 on success, 2 for a bad config or arguments, 1 for a failed run.
let main (args: string list) : int =
    try
        let special, _ = splitArgs args

        match special.TryFind "algo" |> Option.defaultValue "ppo" with
        | "ppo" ->
            let rest = args |> List.filter (fun a -> not (a.StartsWith "algo="))
            runPpo rest |> ignore
            0
        | other ->
            eprintfn "unknown algo '%s'; allowed: ppo" other
            2
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
    | Ppo.TrainingDivergedException _ -> 1

/// PPO metrics rows as a table with the columns of `metrics.csv` (a `seed` column when
/// `seeds > 1`), for charts in notebooks.
let ppoTable (seeds: int) (rows: Ppo.UpdateMetrics list) : MetricsTable =
    Metrics.ofRows (ppoColumns seeds |> List.map (fun c -> c.Name)) (rows |> List.map (ppoRow seeds))
