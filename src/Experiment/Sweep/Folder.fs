/// The sweep folder: its grid file (points.json), the Slurm script and job list, per-point logs
/// and states, and which point runs can be resumed.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// What a sweep folder holds about its grid (`points.json`).
type SweepSpec =
    {
        /// The base config file, absolute.
        Config: string
        /// The environment id of the base config (titles).
        EnvId: string
        /// Return level for steps-to-threshold (`threshold=`), if given.
        Threshold: float option
        /// The swept keys, in axis order (summary.csv's first columns).
        Keys: string list
        /// Every grid point by index: (key, value) pairs in axis order.
        Points: (string * string) list list
        /// Overrides every task adds to its point when it starts a run (e.g. `device=cuda` for a
        /// GPU gres, `threads=` from `slurm_cpus_per_task`).
        TaskOverrides: string list
    }

/// The sweep folder's files.
module Folder =
    /// The grid file of a sweep folder: the config, the threshold, the swept keys and every grid
    /// point by index (what a task, `status` and `collect` read).
    [<Literal>]
    let SpecFile = "points.json"

    /// The Slurm array script of a sweep folder (`launcher=slurm`).
    [<Literal>]
    let ScriptFile = "sweep.sbatch"

    /// The Slurm jobs submitted for a sweep folder, one line each: `<job id> <array indices>`.
    [<Literal>]
    let JobsFile = "slurm-jobs.txt"

    /// The folder of per-point logs (`point-<i>.log`) and states (`point-<i>.state`).
    [<Literal>]
    let LogsDir = "logs"

    /// Exit code of a point task stopped by a signal after writing its checkpoint (`scripts/train.fsx`
    /// uses the same code); the array script requeues the task on it.
    [<Literal>]
    let StoppedExitCode = 3

    /// Writes `spec` as `<dir>/points.json` (atomically).
    let writeSpec (dir: string) (spec: SweepSpec) =
        use ms = new MemoryStream()

        do
            use w =
                new Text.Json.Utf8JsonWriter(ms, Text.Json.JsonWriterOptions(Indented = true))

            w.WriteStartObject()
            w.WriteString("config", spec.Config)
            w.WriteString("env_id", spec.EnvId)

            match spec.Threshold with
            | Some t -> w.WriteNumber("threshold", t)
            | None -> w.WriteNull "threshold"

            w.WriteStartArray "keys"

            for k in spec.Keys do
                w.WriteStringValue k

            w.WriteEndArray()
            w.WriteStartArray "task_overrides"

            for o in spec.TaskOverrides do
                w.WriteStringValue o

            w.WriteEndArray()
            w.WriteStartArray "points"

            for i, p in List.indexed spec.Points do
                w.WriteStartObject()
                w.WriteNumber("index", i)
                w.WriteString("name", Grid.pointName p)
                w.WriteStartObject "overrides"

                for k, v in p do
                    w.WriteString(k, v)

                w.WriteEndObject()
                w.WriteEndObject()

            w.WriteEndArray()
            w.WriteEndObject()

        Files.writeBytesAtomic (Path.Combine(dir, SpecFile)) (ms.ToArray())
        Files.writeChecksum (Path.Combine(dir, SpecFile))

    /// Reads `<dir>/points.json`. Raises `ConfigError` (key `sweep_dir`) when the folder has none or
    /// it cannot be read.
    let readSpec (dir: string) : SweepSpec =
        let path = Path.Combine(dir, SpecFile)

        if not (File.Exists path) then
            raise (
                ConfigError(
                    "sweep",
                    "sweep_dir",
                    dir,
                    $"a sweep folder written by scripts/sweep.fsx (with {SpecFile})",
                    $"no {SpecFile} in it"
                )
            )

        match Files.checksumProblem path with
        | Some problem -> raise (ConfigError("sweep", "sweep_dir", dir, $"a readable {SpecFile}", problem))
        | None -> ()

        try
            use doc = Text.Json.JsonDocument.Parse(File.ReadAllText path)
            let r = doc.RootElement

            let strings (name: string) =
                [ for e in r.GetProperty(name).EnumerateArray() -> e.GetString() ]

            {
                Config = r.GetProperty("config").GetString()
                EnvId = r.GetProperty("env_id").GetString()
                Threshold =
                    match r.GetProperty "threshold" with
                    | t when t.ValueKind = Text.Json.JsonValueKind.Number -> Some(t.GetDouble())
                    | _ -> None
                Keys = strings "keys"
                TaskOverrides = strings "task_overrides"
                Points =
                    [
                        for p in r.GetProperty("points").EnumerateArray() ->
                            [
                                for kv in p.GetProperty("overrides").EnumerateObject() -> kv.Name, kv.Value.GetString()
                            ]
                    ]
            }
        with
        | ConfigError _ -> reraise ()
        | e ->
            raise (ConfigError("sweep", "sweep_dir", dir, $"a readable {SpecFile}", $"{path} is damaged: {e.Message}"))

    /// The log of grid point `index` of sweep folder `dir` (`logs/point-<index>.log`): the output of
    /// its worker process or Slurm task, appended to across restarts.
    let logFile (dir: string) (index: int) =
        Path.Combine(dir, LogsDir, $"point-{index}.log")

    /// The state file of grid point `index` (`logs/point-<index>.state`): one line written by the
    /// task, `running host=<h> pid=<p> ...`, `stopped ...`, `failed <reason>` or `done <run dir>`.
    let stateFile (dir: string) (index: int) =
        Path.Combine(dir, LogsDir, $"point-{index}.state")

    /// The last `n` lines of a text file; empty when it does not exist.
    let tailLines (n: int) (path: string) : string list =
        if File.Exists path then
            use fs =
                new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite ||| FileShare.Delete)

            use r = new StreamReader(fs)

            r.ReadToEnd().Split('\n')
            |> Array.map (fun l -> l.TrimEnd '\r')
            |> Array.filter (fun l -> l.Trim() <> "")
            |> fun ls -> ls[max 0 (ls.Length - n) ..]
            |> List.ofArray
        else
            []

    /// The run folder of a grid point folder that can be resumed: the newest subfolder without
    /// summary.json whose `checkpoint/` passes `Checkpoint.exists`. None when there is none.
    let resumableRun (pointDir: string) : string option =
        if Directory.Exists pointDir then
            Directory.GetDirectories pointDir
            |> Array.sortDescending
            |> Array.tryFind (fun d ->
                not (File.Exists(Path.Combine(d, Run.SummaryFile)))
                && Checkpoint.exists (Path.Combine(d, Run.CheckpointDir)))
        else
            None
