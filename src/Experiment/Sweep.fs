/// Hyperparameter sweeps: grid parsing from `key=v1,v2,...` arguments, grid points, per-seed
/// final returns, percentile-bootstrap confidence intervals, steps to a return threshold, and
/// resumable PPO sweeps that write one run folder per grid point, a summary table and a report:
/// run here (one point after another, or `workers` points at once as separate processes) or on
/// a Slurm cluster (one array task per point, preemption-safe: a stopped task checkpoints,
/// requeues itself and resumes exactly), with `status` and `collect` over the sweep folder.
module Rl.Sweep

open System
open System.IO
open Plotly.NET

/// One grid axis: a config key and the values it takes (as text, in the order given).
type Axis =
    {
        /// The config key (snake_case, as in the YAML files).
        Key: string
        /// Its values as text, in the order given.
        Values: string list
    }

/// Parses sweep arguments `key=v1,v2,...` into axes (a single value gives a one-point axis).
/// Every value is checked by applying it to `defaults` through `fields`, so an unknown key or a
/// bad value (e.g. non-numeric for a numeric key) raises the config's own `ConfigError`
/// naming the key, the value and what is allowed. An empty list (`key=` or `key=,`) raises
/// `ConfigError` too. Raises for a key given twice.
let parseGrid (fields: Field<'C> list) (defaults: 'C) (args: string list) : Axis list =
    let axes =
        [
            for a in args ->
                let k, v = Config.parseOverride a

                let values =
                    v.Split(',')
                    |> Array.map (fun s -> s.Trim())
                    |> Array.filter (fun s -> s <> "")
                    |> List.ofArray

                if values.IsEmpty then
                    raise (ConfigError("sweep", k, v, "one or more comma-separated values", "empty list of values"))

                for x in values do
                    Config.withOverrides fields [ $"{k}={x}" ] defaults |> ignore

                { Key = k; Values = values }
        ]

    match axes |> List.countBy (fun a -> a.Key) |> List.tryFind (fun (_, n) -> n > 1) with
    | Some(k, _) -> raise (ConfigError("sweep", k, "", "each key once", "key given more than once"))
    | None -> axes

/// The grid points: the cartesian product of the axes, first axis varying slowest; each point is
/// a list of (key, value) in axis order. No axes give one empty point.
let points (axes: Axis list) : (string * string) list list =
    List.foldBack
        (fun (ax: Axis) acc ->
            [
                for v in ax.Values do
                    for rest in acc -> (ax.Key, v) :: rest
            ])
        axes
        [ [] ]

/// A folder name for a grid point, e.g. "beta_1=0.9,num_seeds=10" ("default" for the empty
/// point); characters not allowed in file names become '_'.
let pointName (point: (string * string) list) : string =
    if point.IsEmpty then
        "default"
    else
        let s = String.Join(",", point |> List.map (fun (k, v) -> $"{k}={v}"))
        let bad = Path.GetInvalidFileNameChars()
        String(s.ToCharArray() |> Array.map (fun c -> if Array.contains c bad then '_' else c))

/// Percentile-bootstrap confidence interval of the mean of `xs` (Efron & Tibshirani 1993, ch.
/// 13): `resamples` resamples with replacement drawn by `Random(seed)`, interval at `level`
/// (e.g. 0.95 gives the 2.5 % and 97.5 % percentiles of the resampled means). Returns (lo, hi);
/// (x, x) for one value; (NaN, NaN) for none. Raises `ArgumentException` for `level` outside (0, 1)
/// or `resamples < 1`.
let bootstrapCi (level: float) (resamples: int) (seed: int) (xs: float[]) : float * float =
    if not (level > 0.0 && level < 1.0) then
        invalidArg "level" $"level must be in (0, 1), got {level}"

    if resamples < 1 then
        invalidArg "resamples" $"resamples must be >= 1, got {resamples}"

    match xs.Length with
    | 0 -> nan, nan
    | 1 -> xs[0], xs[0]
    | n ->
        let rng = Random seed

        let means =
            Array.init resamples (fun _ ->
                let mutable s = 0.0

                for _ in 1..n do
                    s <- s + xs[rng.Next n]

                s / float n)
            |> Array.sort

        let q (p: float) =
            // linear interpolation between order statistics (numpy's default percentile)
            let pos = p * float (resamples - 1)
            let i = int (floor pos)
            let j = min (resamples - 1) (i + 1)
            means[i] + (pos - float i) * (means[j] - means[i])

        let alpha = (1.0 - level) / 2.0
        q alpha, q (1.0 - alpha)

/// The first x at which `ys` reaches `threshold` (ys and xs in step order); None if never.
/// Non-finite ys are skipped. Raises `ArgumentException` when the lengths differ.
let stepsToThreshold (threshold: float) (xs: float[]) (ys: float[]) : float option =
    if xs.Length <> ys.Length then
        invalidArg "ys" $"stepsToThreshold: {xs.Length} xs but {ys.Length} ys"

    Array.zip xs ys
    |> Array.tryFind (fun (_, y) -> Double.IsFinite y && y >= threshold)
    |> Option.map fst

/// The mean return of the most recent finished episodes, at each update: walking back from
/// update i over whole updates (each `returns[j]` is the mean of `episodes[j]` episodes) until at
/// least `minEpisodes` episodes are covered, weighted by the episode counts; NaN until that many
/// have finished. One seed's updates in order. Unlike the per-update mean, this is not biased
/// towards the short episodes that are the only ones to end in early updates (e.g. MountainCar's
/// successful ones). Raises `ArgumentException` when the lengths differ or `minEpisodes < 1`.
let recentReturns (minEpisodes: int) (returns: float[]) (episodes: float[]) : float[] =
    if returns.Length <> episodes.Length then
        invalidArg "episodes" $"recentReturns: {returns.Length} returns but {episodes.Length} episode counts"

    if minEpisodes < 1 then
        invalidArg "minEpisodes" $"recentReturns: minEpisodes must be >= 1, got {minEpisodes}"

    Array.init returns.Length (fun i ->
        let mutable n = 0.0
        let mutable sum = 0.0
        let mutable j = i

        while j >= 0 && n < float minEpisodes do
            if episodes[j] > 0.0 && Double.IsFinite returns[j] then
                sum <- sum + returns[j] * episodes[j]
                n <- n + episodes[j]

            j <- j - 1

        if n >= float minEpisodes then sum / n else nan)

/// Episodes behind the steps-to-threshold statistic (see `thresholdStep`).
[<Literal>]
let ThresholdEpisodes = 20

/// Steps to threshold of a metrics table (columns global_step, episodic_return, episodes, and
/// seed when several): the first global step at which the mean over seeds of each seed's
/// `recentReturns ThresholdEpisodes` reaches `threshold` (every seed needs that many finished
/// episodes first). None if it never does.
let thresholdStep (threshold: float) (table: MetricsTable) : float option =
    let perSeed =
        Metrics.bySeed table
        |> List.map (fun (_, t) ->
            Metrics.column "global_step" t,
            recentReturns ThresholdEpisodes (Metrics.column "episodic_return" t) (Metrics.column "episodes" t))
        |> Array.ofList

    // Seeds log the same steps (one row per update per seed); compare by update index.
    let n = perSeed |> Array.map (fun (xs, _) -> xs.Length) |> Array.min
    let xs = (fst perSeed[0])[.. n - 1]

    let mean =
        Array.init n (fun i ->
            let v = perSeed |> Array.map (fun (_, ys) -> ys[i])

            if Array.forall Double.IsFinite v then
                Array.average v
            else
                nan)

    stepsToThreshold threshold xs mean

/// Final return per seed from a metrics table: the mean return of the episodes that finished in
/// the last `fraction` of each seed's updates (at least one update), in seed order: each update's
/// `episodic_return` weighted by its `episodes` count when the table has that column (so an update
/// where one short episode ended does not weigh as much as one where twenty did), else the plain
/// mean of the finite values. A table without a seed column is one seed. NaN for a seed without a
/// finished episode there.
let finalReturns (fraction: float) (table: MetricsTable) : float[] =
    Metrics.bySeed table
    |> List.map (fun (_, t) ->
        let ret = Metrics.column "episodic_return" t

        let counts =
            if Metrics.hasColumn "episodes" t then
                Metrics.column "episodes" t
            else
                Array.create ret.Length 1.0

        let k = max 1 (int (ceil (fraction * float ret.Length)))

        let tail =
            [| ret.Length - k .. ret.Length - 1 |]
            |> Array.filter (fun i -> Double.IsFinite ret[i] && counts[i] > 0.0)

        if tail.Length = 0 then
            nan
        else
            (tail |> Array.sumBy (fun i -> ret[i] * counts[i]))
            / (tail |> Array.sumBy (fun i -> counts[i])))
    |> Array.ofList

/// One grid point's summary row.
type PointSummary =
    {
        /// The grid point: (key, value) pairs in axis order.
        Point: (string * string) list
        /// The point's run folder.
        RunDir: string
        /// Final return per seed (see `finalReturns`).
        Finals: float[]
        /// Mean of the finite final returns across seeds.
        Mean: float
        /// Population standard deviation across seeds.
        Std: float
        /// 95 % percentile-bootstrap interval of the mean across seeds (2000 resamples, seed 0).
        CiLow: float
        /// Upper end of that interval.
        CiHigh: float
        /// First environment step (per seed) where the mean over seeds of each seed's last
        /// `ThresholdEpisodes` episodes reaches the threshold (`thresholdStep`); NaN if it never
        /// does or no threshold was given.
        StepsToThreshold: float
        /// Training wall time of the run, seconds (from its summary.json).
        WallSeconds: float
    }

/// Summarises a finished PPO run folder for grid point `point` (reads metrics.csv and
/// summary.json). `threshold`: return level for `StepsToThreshold`.
let summarise (threshold: float option) (point: (string * string) list) (runDir: string) : PointSummary =
    let table = Metrics.readCsv (Path.Combine(runDir, Metrics.CsvFile))
    let finals = finalReturns 0.1 table
    let ok = finals |> Array.filter Double.IsFinite
    let mean = if ok.Length = 0 then nan else Array.average ok

    let std =
        if ok.Length = 0 then
            nan
        else
            sqrt (Array.averageBy (fun x -> (x - mean) ** 2.0) ok)

    let lo, hi = bootstrapCi 0.95 2000 0 ok

    let steps =
        match threshold with
        | None -> nan
        | Some t -> thresholdStep t table |> Option.defaultValue nan

    let wall =
        let json = File.ReadAllText(Path.Combine(runDir, Run.SummaryFile))

        let m =
            Text.RegularExpressions.Regex.Match(json, "\"wall_seconds\"\\s*:\\s*([-0-9.eE+]+)")

        if m.Success then float m.Groups[1].Value else nan

    {
        Point = point
        RunDir = runDir
        Finals = finals
        Mean = mean
        Std = std
        CiLow = lo
        CiHigh = hi
        StepsToThreshold = steps
        WallSeconds = wall
    }

/// The finished run folder of a grid point folder (a subfolder with summary.json), if any.
let finishedRun (pointDir: string) : string option =
    if Directory.Exists pointDir then
        Directory.GetDirectories pointDir
        |> Array.sort
        |> Array.tryFind (fun d -> File.Exists(Path.Combine(d, Run.SummaryFile)))
    else
        None

/// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break: grid-point
/// folder names such as `beta_1=0.8,num_seeds=2` contain commas.
let private csvField (s: string) =
    if s.IndexOfAny [| ','; '"'; '\n'; '\r' |] >= 0 then
        "\"" + s.Replace("\"", "\"\"") + "\""
    else
        s

/// The summary table as CSV text: one row per grid point with the swept keys, then
/// final_return_mean, final_return_std, ci95_low, ci95_high, steps_to_threshold, wall_seconds,
/// n_seeds (seeds in the run) and run_dir (quoted, as fields with commas are).
let summaryCsv (keys: string list) (rows: PointSummary list) : string =
    let f (x: float) =
        x.ToString("R", Globalization.CultureInfo.InvariantCulture)

    let header =
        keys
        @ [
            "final_return_mean"
            "final_return_std"
            "ci95_low"
            "ci95_high"
            "steps_to_threshold"
            "wall_seconds"
            "n_seeds"
            "run_dir"
        ]

    let line (r: PointSummary) =
        // explicit yields: with `for ... ->`, the values after the loop would be dropped
        [
            for k in keys do
                yield
                    r.Point
                    |> List.tryFind (fun (kk, _) -> kk = k)
                    |> Option.map snd
                    |> Option.defaultValue ""
            yield f r.Mean
            yield f r.Std
            yield f r.CiLow
            yield f r.CiHigh
            yield f r.StepsToThreshold
            yield f r.WallSeconds
            yield string r.Finals.Length
            yield r.RunDir
        ]
        |> List.map csvField
        |> String.concat ","

    String.concat "\n" (String.concat "," header :: List.map line rows) + "\n"

/// A plain-language reading of a sweep's summary rows: the point with the highest mean final
/// return, whether its 95 % interval is clear of every other point's or overlaps some (then the
/// sweep does not separate them at this budget and seed count), the fastest point to the
/// threshold when one was given, and a warning when every point ended at the same return (as
/// when nothing learned). Points are named by the keys that differ between them. Rows with a NaN
/// mean are left out; "" for no usable rows.
let reading (rows: PointSummary list) : string =
    let ok = rows |> List.filter (fun r -> Double.IsFinite r.Mean)

    let f (x: float) =
        x.ToString("0.#", Globalization.CultureInfo.InvariantCulture)

    // Points are named by the keys whose values differ between them (the swept ones).
    let varying =
        ok
        |> List.collect (fun r -> r.Point)
        |> List.groupBy fst
        |> List.filter (fun (_, kvs) -> (kvs |> List.distinct |> List.length) > 1)
        |> List.map fst
        |> Set.ofList

    let pointName (point: (string * string) list) =
        match point |> List.filter (fun (k, _) -> varying.Contains k) with
        | [] -> pointName point
        | swept -> pointName swept

    match ok with
    | [] -> ""
    | _ when ok |> List.forall (fun r -> r.Mean = ok.Head.Mean && r.Std = 0.0) ->
        $"Every point ended at the same final return {f ok.Head.Mean} on every seed: the sweep cannot tell the points apart (nothing was learned, or every point solved the task)."
    | _ ->
        let best = ok |> List.maxBy (fun r -> r.Mean)

        let overlapping =
            ok
            |> List.filter (fun r -> not (obj.ReferenceEquals(r, best)) && r.CiHigh >= best.CiLow)
            |> List.map (fun r -> pointName r.Point)

        let head =
            $"Highest mean final return: {pointName best.Point} ({f best.Mean}, 95 %% CI {f best.CiLow} .. {f best.CiHigh}, {best.Finals.Length} seeds). "

        let separation =
            match overlapping with
            | [] when ok.Length > 1 -> "Its interval is clear of every other point's: the difference is not seed noise."
            | [] -> ""
            | xs ->
                let names = String.Join("; ", xs)
                $"Its interval overlaps those of {names}: at this budget and seed count the sweep does not separate them; add seeds before reading a trend."

        let fastest =
            match ok |> List.filter (fun r -> Double.IsFinite r.StepsToThreshold) with
            | [] -> ""
            | reached ->
                let r = reached |> List.minBy (fun r -> r.StepsToThreshold)
                $" First to the threshold (seed-mean return): {pointName r.Point} at {f r.StepsToThreshold} steps; {reached.Length} of {ok.Length} points reached it."

        head + separation + fastest

/// Final return (mean with 95 % bootstrap interval across seeds) against the values of sweep key
/// `key`, one point per grid point; x is numeric when every value parses as a number, else
/// categorical.
let finalReturnChart (key: string) (rows: PointSummary list) : GenericChart =
    let xs =
        rows |> List.map (fun r -> r.Point |> List.find (fun (k, _) -> k = key) |> snd)

    let ys = rows |> List.map (fun r -> r.Mean)
    let lo = rows |> List.map (fun r -> r.Mean - r.CiLow)
    let hi = rows |> List.map (fun r -> r.CiHigh - r.Mean)

    let chart =
        match
            xs
            |> List.map (fun x ->
                Double.TryParse(x, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture))
        with
        | parsed when parsed |> List.forall fst ->
            Chart.Line(x = (parsed |> List.map snd), y = ys, ShowMarkers = true, Name = "final return")
        | _ -> Chart.Line(x = xs, y = ys, ShowMarkers = true, Name = "final return")

    chart
    |> Chart.withYErrorStyle (Array = hi, Arrayminus = lo, Symmetric = false)
    |> Chart.withTitle $"final return vs {key} (mean, 95%% bootstrap CI across seeds)"
    |> Chart.withXAxisStyle key
    |> Chart.withYAxisStyle "final return"
    |> Chart.withSize (800, 450)

// ---------------------------------------------------------------------------------------
// The sweep folder: its grid file, per-point logs and states
// ---------------------------------------------------------------------------------------

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
            w.WriteString("name", pointName p)
            w.WriteStartObject "overrides"

            for k, v in p do
                w.WriteString(k, v)

            w.WriteEndObject()
            w.WriteEndObject()

        w.WriteEndArray()
        w.WriteEndObject()

    Files.writeBytesAtomic (Path.Combine(dir, SpecFile)) (ms.ToArray())

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
    | e -> raise (ConfigError("sweep", "sweep_dir", dir, $"a readable {SpecFile}", $"{path} is damaged: {e.Message}"))

/// The log of grid point `index` of sweep folder `dir` (`logs/point-<index>.log`): the output of
/// its worker process or Slurm task, appended to across restarts.
let logFile (dir: string) (index: int) =
    Path.Combine(dir, LogsDir, $"point-{index}.log")

/// The state file of grid point `index` (`logs/point-<index>.state`): one line written by the
/// task, `running host=<h> pid=<p> ...`, `stopped ...`, `failed <reason>` or `done <run dir>`.
let stateFile (dir: string) (index: int) =
    Path.Combine(dir, LogsDir, $"point-{index}.state")

let private writeState (dir: string) (index: int) (text: string) =
    Files.writeTextAtomic (stateFile dir index) (text.Replace('\n', ' ') + "\n")

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

/// Signal handling (`Train.SignalStop`, keep it with `use`) whose token the first SIGTERM or
/// SIGINT cancels and that keeps the process alive through every later one, for a point task
/// (`sweep.fsx point`): a task can get its stop signal twice (Slurm's `scancel --signal=TERM
/// --full` reaches both the batch script, which forwards it, and the run; Ctrl+C reaches local
/// workers from the terminal and from the sweep that started them), and the second must not end
/// the run before its checkpoint (`Train.stopOnSignals` would). Slurm's SIGKILL after its
/// KillWait still ends a task that does not stop.
let stopOnTaskSignals () : Train.SignalStop = Train.stopOnSignalsWith false

/// Runs grid point `index` of sweep folder `dir` (read from its points.json) in this process, as
/// a worker process or Slurm task does: a point with a finished run is skipped; a point whose run
/// folder has a checkpoint but no summary.json is resumed from it (`resume=<run dir>`, exact:
/// the resumed run ends with the metrics of an uninterrupted one); attempts without a checkpoint
/// are deleted and the point starts afresh with its overrides and the spec's task overrides.
/// `cancel` stops the run at the next update boundary after writing its checkpoint (the run then
/// raises an `OperationCanceledException`, `Train.RunStoppedException`). Writes the point's
/// state file (running, then done, stopped or failed with the reason). Returns the finished run
/// folder. Raises `ConfigError` for an index outside the grid.
let runPoint (cancel: Threading.CancellationToken) (dir: string) (index: int) : string =
    let dir = Path.GetFullPath dir
    let spec = readSpec dir

    if index < 0 || index >= spec.Points.Length then
        raise (
            ConfigError(
                "sweep point",
                "index",
                string index,
                $"0 .. {spec.Points.Length - 1} (the grid points of {Path.Combine(dir, SpecFile)})",
                "no such grid point"
            )
        )

    let p = spec.Points[index]
    let pointDir = Path.Combine(dir, pointName p)
    let label = $"[point {index}/{spec.Points.Length}] {pointName p}"
    Directory.CreateDirectory(Path.Combine(dir, LogsDir)) |> ignore

    match finishedRun pointDir with
    | Some d ->
        printfn "%s: finished, skipped" label
        writeState dir index $"done {d}"
        d
    | None ->
        let args =
            match resumableRun pointDir with
            | Some run ->
                printfn "%s: resuming %s from its checkpoint" label run
                [ $"resume={run}" ]
            | None ->
                // attempts stopped before their first checkpoint hold nothing to resume
                if Directory.Exists pointDir then
                    for d in Directory.GetDirectories pointDir do
                        if not (File.Exists(Path.Combine(d, Run.SummaryFile))) then
                            Directory.Delete(d, true)

                printfn "%s" label

                [ $"config={spec.Config}"; $"runs={pointDir}" ]
                @ [ for k, v in p -> $"{k}={v}" ]
                @ spec.TaskOverrides

        let job =
            match Environment.GetEnvironmentVariable "SLURM_ARRAY_JOB_ID" with
            | null
            | "" -> ""
            | j ->
                let task = Environment.GetEnvironmentVariable "SLURM_ARRAY_TASK_ID"
                $" job={j}_{task}"

        writeState
            dir
            index
            $"running host={Environment.MachineName} pid={Environment.ProcessId}{job} since={DateTime.UtcNow:o}"

        try
            let run = Ppo.Runner.runWith cancel args
            writeState dir index $"done {run}"
            run
        with
        | :? OperationCanceledException as e ->
            writeState dir index $"stopped at {DateTime.UtcNow:o}: {e.Message}"
            reraise ()
        | e ->
            writeState dir index $"failed {e.GetType().Name}: {e.Message}"
            reraise ()

// ---------------------------------------------------------------------------------------
// Collecting what has finished
// ---------------------------------------------------------------------------------------

/// Writes `summary.csv` and `report.html` into sweep folder `dir` from `rows` (the finished
/// points), with `missing` (names of grid points without a finished run) said in the report.
let private writeOutputs (dir: string) (spec: SweepSpec) (rows: PointSummary list) (missing: string list) =
    Files.writeTextAtomic (Path.Combine(dir, "summary.csv")) (summaryCsv spec.Keys rows)

    let curves =
        Charts.compareRuns
            SeedView.MeanStd
            "global_step"
            "episodic_return"
            [
                for r in rows -> pointName r.Point, Metrics.readCsv (Path.Combine(r.RunDir, Metrics.CsvFile))
            ]

    let swept =
        spec.Keys
        |> List.filter (fun k ->
            spec.Points
            |> List.choose (List.tryFind (fun (kk, _) -> kk = k))
            |> List.distinct
            |> List.length
            |> fun n -> n > 1)

    let fmt (x: float) =
        if Double.IsNaN x then
            "-"
        else
            x.ToString("G4", Globalization.CultureInfo.InvariantCulture)

    Report.write
        (Path.Combine(dir, Run.ReportFile))
        $"PPO sweep on {spec.EnvId}"
        [
            for r in rows do
                yield
                    pointName r.Point,
                    $"final return {fmt r.Mean} +- {fmt r.Std} (95%% CI {fmt r.CiLow} .. {fmt r.CiHigh}, {r.Finals.Length} seeds), steps to threshold {fmt r.StepsToThreshold}, wall {fmt r.WallSeconds} s"
            if not missing.IsEmpty then
                let names = String.Join("; ", missing)
                yield "missing", $"{missing.Length} of {spec.Points.Length} points have no finished run yet: {names}"
            yield "reading", reading rows
        ]
        [
            "Learning curves (mean and +-1 std band across seeds)", [ curves ]
            "Final return vs hyperparameter", [ for k in swept -> finalReturnChart k rows ]
        ]

/// Builds `summary.csv` and `report.html` of sweep folder `dir` from the points that have
/// finished (the same files as a local sweep writes) and returns the summary rows (grid order)
/// and the names of the points without a finished run. Raises `ConfigError` when `dir` has no
/// points.json.
let collect (dir: string) : PointSummary list * string list =
    let dir = Path.GetFullPath dir
    let spec = readSpec dir

    let rows, missing =
        spec.Points
        |> List.map (fun p ->
            match finishedRun (Path.Combine(dir, pointName p)) with
            | Some run -> Choice1Of2(summarise spec.Threshold p run)
            | None -> Choice2Of2(pointName p))
        |> List.partition (function
            | Choice1Of2 _ -> true
            | _ -> false)

    let rows =
        rows
        |> List.choose (function
            | Choice1Of2 r -> Some r
            | _ -> None)

    let missing =
        missing
        |> List.choose (function
            | Choice2Of2 m -> Some m
            | _ -> None)

    writeOutputs dir spec rows missing
    rows, missing

// ---------------------------------------------------------------------------------------
// Status of every point
// ---------------------------------------------------------------------------------------

/// Where a grid point stands.
type PointState =
    /// Not started, queued, or stopped and waiting to be resumed (the text says which).
    | Pending of string
    /// A worker or task is running it (the text: where, since when).
    | Running of string
    /// Finished: the run folder.
    | Done of string
    /// Failed: the reason and the last lines of its log.
    | Failed of string * string list

/// One grid point's status.
type PointStatus =
    {
        /// Its index in points.json (the Slurm array task id).
        Index: int
        /// Its folder name (`pointName`).
        Name: string
        State: PointState
    }

/// Runs a program with arguments; returns the exit code and stdout + stderr. Raises
/// `ComponentModel.Win32Exception` when the program cannot be started.
/// The Slurm job ids submitted for sweep folder `dir` (from slurm-jobs.txt), oldest first.
let jobIds (dir: string) : string list =
    let path = Path.Combine(dir, JobsFile)

    if File.Exists path then
        File.ReadAllLines path
        |> Array.choose (fun l ->
            match l.Split(' ', StringSplitOptions.RemoveEmptyEntries) with
            | [||] -> None
            | xs -> Some xs[0])
        |> List.ofArray
    else
        []

/// The array tasks of `jobs` that Slurm still holds (squeue): array index -> (state, reason),
/// e.g. 3 -> ("PENDING", "BeginTime"). Empty when there are no jobs or squeue is missing or fails
/// (jobs that ended long ago are no longer known to squeue).
let queuedTasks (jobs: string list) : Map<int, string * string> =
    match jobs, Native.which "squeue" with
    | [], _
    | _, None -> Map.empty
    | _, Some squeue ->
        let code, out, _ =
            Native.capture [] None squeue [ "-h"; "-r"; "-j"; String.Join(",", jobs); "-o"; "%i|%T|%r" ]

        if code <> 0 then
            Map.empty
        else
            [
                for line in out.Split('\n', StringSplitOptions.RemoveEmptyEntries) do
                    match line.Trim().Split('|') with
                    | [| id; state; reason |] when id.Contains '_' ->
                        match Int32.TryParse(id.Substring(id.IndexOf '_' + 1)) with
                        | true, i -> yield i, (state, reason)
                        | _ -> ()
                    | _ -> ()
            ]
            |> Map.ofList

/// The status of every grid point of sweep folder `dir`, in grid order: done when its folder has
/// a finished run; otherwise Slurm's view when squeue still lists the point's task (running, or
/// pending with Slurm's reason); otherwise its state file: failed (with the last `logLines` lines
/// of its log), running (a worker process on this machine that is still alive), stopped (pending,
/// resumes from its checkpoint when resubmitted), or pending when it never started. A state file
/// saying running whose process or task is gone is reported as failed. Raises `ConfigError` when
/// `dir` has no points.json.
let status (logLines: int) (dir: string) : PointStatus list =
    let dir = Path.GetFullPath dir
    let spec = readSpec dir
    let queued = queuedTasks (jobIds dir)

    [
        for i, p in List.indexed spec.Points ->
            let name = pointName p
            let pointDir = Path.Combine(dir, name)
            let log () = tailLines logLines (logFile dir i)

            let stateText =
                let f = stateFile dir i

                if File.Exists f then (File.ReadAllText f).Trim() else ""

            let word = stateText.Split(' ').[0]

            let state =
                match finishedRun pointDir, queued.TryFind i with
                | Some run, _ -> Done run
                | None, Some("RUNNING", _) ->
                    Running(
                        if word = "running" then
                            $"Slurm: {stateText}"
                        else
                            "Slurm: task started, run not begun yet"
                    )
                | None, Some(st, reason) when word = "stopped" ->
                    Pending $"stopped with a checkpoint, requeued: Slurm {st} ({reason})"
                | None, Some(st, reason) -> Pending $"Slurm {st} ({reason})"
                | None, None ->
                    match word with
                    | "failed" -> Failed(stateText.Substring(7), log ())
                    | "stopped" -> Pending $"{stateText}; resumes from its checkpoint when the sweep is given again"
                    | "running" ->
                        let field (k: string) =
                            stateText.Split(' ')
                            |> Array.tryFind (fun s -> s.StartsWith(k + "="))
                            |> Option.map (fun s -> s.Substring(k.Length + 1))

                        let alive =
                            match field "host", field "pid", field "job" with
                            | _, _, Some _ -> false // a Slurm task squeue no longer lists
                            | Some h, Some pid, None when h = Environment.MachineName -> Directory.Exists $"/proc/{pid}"
                            | _ -> true // another machine: trust the state file

                        if alive then
                            Running stateText
                        else
                            Failed("its task ended without finishing (killed, or out of memory/time?)", log ())
                    | "done" -> Pending "a run was reported done but its folder has no summary.json"
                    | _ when resumableRun pointDir |> Option.isSome ->
                        Pending "an interrupted run with a checkpoint; resumes when the sweep is given again"
                    | _ -> Pending "not started"

            {
                Index = i
                Name = name
                State = state
            }
    ]

// ---------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------

/// How a sweep is run: where (`launcher=`) and the launcher's settings.
type Launch =
    {
        /// `launcher=`: "local" (default) or "slurm".
        Launcher: string
        /// `workers=` (local): grid points run at once, each in its own process; 1 (default) runs
        /// them one after another in this process.
        Workers: int
        /// `requeue=` (slurm, default true): a task stopped by a signal requeues itself and resumes.
        Requeue: bool
        /// `slurm_partition=`: `#SBATCH --partition`.
        Partition: string option
        /// `slurm_time=`: `#SBATCH --time` (Slurm's formats), with the stop signal sent ahead of it.
        Time: string option
        /// `slurm_cpus_per_task=`: `#SBATCH --cpus-per-task`; also each task's `threads`.
        CpusPerTask: int option
        /// `slurm_gres=`: `#SBATCH --gres`; a `gpu` resource also sets `device=cuda`.
        Gres: string option
        /// `slurm_mem=`: `#SBATCH --mem` (per node; Slurm's units, e.g. 4G).
        Mem: string option
        /// `slurm_extra=`: further sbatch options, one `#SBATCH` line each.
        Extra: string list
    }

/// The sweep's own keys (not config keys, not grid axes).
let sweepKeys =
    [
        "config"
        "sweep_dir"
        "threshold"
        "launcher"
        "workers"
        "requeue"
        "slurm_partition"
        "slurm_time"
        "slurm_cpus_per_task"
        "slurm_gres"
        "slurm_mem"
        "slurm_extra"
    ]

let private bad key value allowed problem =
    raise (ConfigError("sweep", key, value, allowed, problem))

/// The seconds of a Slurm time limit (`--time`): "minutes", "minutes:seconds",
/// "hours:minutes:seconds", "days-hours", "days-hours:minutes" or "days-hours:minutes:seconds".
/// Raises `ConfigError` naming `slurm_time`, the value and those formats for anything else,
/// including a zero limit.
let slurmTimeSeconds (text: string) : int64 =
    let allowed =
        "a positive Slurm time: minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes or days-hours:minutes:seconds (e.g. 30, 2:00:00, 1-12)"

    let m =
        Text.RegularExpressions.Regex.Match(text, @"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")

    if not m.Success then
        bad "slurm_time" text allowed "not a Slurm time"

    let n (g: int) =
        if m.Groups[g].Success then int64 m.Groups[g].Value else 0L

    let parts = [ 2; 3; 4 ] |> List.filter (fun g -> m.Groups[g].Success)

    let seconds =
        match m.Groups[1].Success, parts.Length with
        | false, 1 -> n 2 * 60L // minutes
        | false, 2 -> n 2 * 60L + n 3 // minutes:seconds
        | false, _ -> n 2 * 3600L + n 3 * 60L + n 4 // hours:minutes:seconds
        | true, _ -> n 1 * 86400L + n 2 * 3600L + n 3 * 60L + n 4 // days-hours[:minutes[:seconds]]

    let sixty = [ 3; 4 ] |> List.filter (fun g -> m.Groups[g].Success && n g >= 60L)

    if not sixty.IsEmpty then
        bad "slurm_time" text allowed "minutes and seconds must be below 60"

    if seconds <= 0L then
        bad "slurm_time" text allowed "a zero time limit"

    seconds

/// Parses the launcher keys of sweep arguments (`launcher`, `workers`, `requeue`, `slurm_*`).
/// Raises `ConfigError` naming the key, the value and what is allowed for an unknown launcher, a
/// non-positive `workers`, a `requeue` other than true/false, a malformed `slurm_time`
/// (`slurmTimeSeconds`), `slurm_mem`, `slurm_gres`, `slurm_partition`, `slurm_cpus_per_task`
/// or `slurm_extra` (options sbatch gets from the launcher itself: --array, --output, --error,
/// --open-mode are refused), and for a key of the other launcher (`workers` with slurm, `slurm_*`
/// with local).
let parseLaunch (get: string -> string option) : Launch =
    let launcher = get "launcher" |> Option.defaultValue "local"

    if launcher <> "local" && launcher <> "slurm" then
        bad
            "launcher"
            launcher
            "local (grid points on this machine, workers=K at once) or slurm (one sbatch array task per point)"
            "unknown launcher"

    let checkRegex key (pattern: string) allowed =
        get key
        |> Option.map (fun v ->
            if not (Text.RegularExpressions.Regex.IsMatch(v, pattern)) then
                bad key v allowed "malformed value"

            v)

    let positive key =
        get key
        |> Option.map (fun v ->
            match Int32.TryParse v with
            | true, n when n >= 1 -> n
            | _ -> bad key v "a whole number >= 1" "not a positive whole number")

    let workers = positive "workers"
    let cpus = positive "slurm_cpus_per_task"

    let requeue =
        match get "requeue" with
        | None
        | Some "true" -> true
        | Some "false" -> false
        | Some v -> bad "requeue" v "true or false" "not a boolean"

    let time =
        get "slurm_time"
        |> Option.map (fun t ->
            slurmTimeSeconds t |> ignore
            t)

    let mem =
        checkRegex
            "slurm_mem"
            @"^[1-9]\d*[KMGT]?$"
            "a positive amount in Slurm's units: megabytes, or a number with K, M, G or T (e.g. 4000, 16G)"

    let gres =
        checkRegex
            "slurm_gres"
            @"^[A-Za-z][\w.-]*(:[\w.-]+)*(,[A-Za-z][\w.-]*(:[\w.-]+)*)*$"
            "Slurm generic resources name[:type]:count, comma-separated (e.g. gpu:1, gpu:a100:2)"

    let partition =
        checkRegex
            "slurm_partition"
            @"^[\w.-]+(,[\w.-]+)*$"
            "a partition name, or several comma-separated (sinfo -s lists them)"

    let extra =
        match get "slurm_extra" with
        | None -> []
        | Some v ->
            let opts =
                v.Split([| ' '; '\t' |], StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

            for o in opts do
                if not (o.StartsWith "-") then
                    bad
                        "slurm_extra"
                        v
                        "sbatch options separated by spaces, each starting with - (e.g. --account=abc --qos=low)"
                        $"'{o}' is not an option"

                let name = o.Split('=').[0]

                if
                    List.contains name [ "--array"; "-a"; "--output"; "-o"; "--error"; "-e"; "--open-mode" ]
                    || (name.Length > 2
                        && List.exists (fun (s: string) -> name.StartsWith s) [ "-a"; "-o"; "-e" ]
                        && not (name.StartsWith "--"))
                then
                    bad
                        "slurm_extra"
                        v
                        "sbatch options other than --array, --output, --error and --open-mode (the launcher sets those)"
                        $"'{o}' is set by the launcher"

            opts

    let slurmGiven =
        [
            "slurm_partition"
            "slurm_time"
            "slurm_cpus_per_task"
            "slurm_gres"
            "slurm_mem"
            "slurm_extra"
            "requeue"
        ]
        |> List.filter (fun k -> (get k).IsSome)

    match launcher, workers, slurmGiven with
    | "slurm", Some w, _ ->
        bad
            "workers"
            (string w)
            "workers with launcher=local only (Slurm runs one task per grid point)"
            "not a Slurm setting"
    | "local", _, k :: _ ->
        bad k (get k).Value $"{k} with launcher=slurm only" "a Slurm setting given with launcher=local"
    | _ -> ()

    {
        Launcher = launcher
        Workers = workers |> Option.defaultValue 1
        Requeue = requeue
        Partition = partition
        Time = time
        CpusPerTask = cpus
        Gres = gres
        Mem = mem
        Extra = extra
    }

/// The Slurm array spec of a list of indices: runs of consecutive ones as ranges, e.g.
/// [0; 1; 2; 5] -> "0-2,5".
let arraySpec (indices: int list) : string =
    let rec go acc (xs: int list) =
        match xs, acc with
        | [], _ -> List.rev acc
        | x :: rest, (a, b) :: accRest when x = b + 1 -> go ((a, x) :: accRest) rest
        | x :: rest, _ -> go ((x, x) :: acc) rest

    go [] (List.sort indices)
    |> List.map (fun (a, b) -> if a = b then string a else $"{a}-{b}")
    |> String.concat ","

let private shellQuote (s: string) = "'" + s.Replace("'", "'\\''") + "'"

/// The text of the Slurm array script for sweep folder `dir` (`sweep.sbatch`): one array task
/// per index of `indices` (`#SBATCH --array`), output appended to `logs/point-%a.log`, the
/// launcher's `#SBATCH` lines, and a body that runs `command point sweep_dir=<dir>
/// index=$SLURM_ARRAY_TASK_ID` from `workDir`, forwards SIGTERM to it, and (with `requeue`)
/// requeues the task with `scontrol requeue` when the run stopped after a checkpoint (exit code
/// 3, or 143 for a SIGTERM that came before the run had begun) while the job is still RUNNING (a `scancel --signal=TERM --full`, or the `--signal` sent
/// ahead of `slurm_time`), so that a cancelled job stays cancelled. `command` is the program and
/// arguments that start `scripts/sweep.fsx` (e.g. dotnet fsi --quiet /path/scripts/sweep.fsx).
let sbatchScript (launch: Launch) (command: string list) (workDir: string) (dir: string) (indices: int list) : string =
    let line (s: string) = "#SBATCH " + s
    let name = "sweep-" + Path.GetFileName(dir.TrimEnd(Path.DirectorySeparatorChar))

    let grace =
        launch.Time
        |> Option.map (fun t -> min 120L (max 10L (slurmTimeSeconds t / 10L)))

    let cmd = command |> List.map shellQuote |> String.concat " "

    [
        yield "#!/bin/bash"
        yield "# Written by scripts/sweep.fsx launcher=slurm: one array task per grid point of"
        yield $"# {Path.Combine(dir, SpecFile)} (the task id is the point's index; seeds are batched"
        yield "# inside each task). Resubmitting the sweep folder passes --array with the unfinished points."
        yield line $"--job-name={name}"
        yield line $"--array={arraySpec indices}"
        let output = Path.Combine(dir, LogsDir, "point-%a.log")
        yield line $"--output={output}"
        yield line "--open-mode=append"

        match launch.Partition with
        | Some p -> yield line $"--partition={p}"
        | None -> ()

        match launch.Time with
        | Some t -> yield line $"--time={t}"
        | None -> ()

        match launch.CpusPerTask with
        | Some c -> yield line $"--cpus-per-task={c}"
        | None -> ()

        match launch.Gres with
        | Some g -> yield line $"--gres={g}"
        | None -> ()

        match launch.Mem with
        | Some m -> yield line $"--mem={m}"
        | None -> ()

        yield line (if launch.Requeue then "--requeue" else "--no-requeue")

        match grace with
        | Some s -> yield line $"--signal=B:TERM@{s}"
        | None -> ()

        for o in launch.Extra do
            yield line o

        yield ""
        yield "set -u"
        yield $"cd {shellQuote workDir}"
        yield "task=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\""

        yield
            "echo \"== task $task (point $SLURM_ARRAY_TASK_ID, restart ${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date -u +%FT%TZ)\""

        yield "# SIGTERM (time limit, preemption, scancel --signal=TERM --full): the run checkpoints at the"
        yield "# next update boundary and exits with code 3"
        yield "stop() { kill -TERM \"$child\" 2>/dev/null; }"
        yield "trap stop TERM INT"
        yield $"{cmd} point sweep_dir={shellQuote dir} index=\"$SLURM_ARRAY_TASK_ID\" &"
        yield "child=$!"
        yield "wait \"$child\"; rc=$?"
        yield "while kill -0 \"$child\" 2>/dev/null; do wait \"$child\"; rc=$?; done"
        yield "echo \"== task $task exited with code $rc at $(date -u +%FT%TZ)\""

        if launch.Requeue then
            yield "# 3: stopped after a checkpoint; 143: SIGTERM before the run began (nothing to lose)"
            yield $"if [ \"$rc\" -eq {StoppedExitCode} ] || [ \"$rc\" -eq 143 ]; then"
            yield "    # requeue only a job that is still running: a cancelled one stays cancelled"
            yield "    if scontrol show job \"$SLURM_JOB_ID\" | grep -q 'JobState=RUNNING'; then"
            yield "        echo \"== requeueing $task: it resumes from its checkpoint\""
            yield "        scontrol requeue \"$task\""
            yield "    fi"
            yield "fi"

        yield "exit \"$rc\""
    ]
    |> String.concat "\n"
    |> fun s -> s + "\n"

/// Raises `ConfigError` for sbatch's refusal of a script (`sbatch --test-only`), naming the key
/// the refusal is about (partition, time, gres, memory, else `launcher`), its value and sbatch's
/// own message; for a partition, what sinfo lists as allowed.
let private sbatchRefused (launch: Launch) (message: string) =
    let lower = message.ToLowerInvariant()

    let key, value =
        if lower.Contains "partition" then
            "slurm_partition", launch.Partition |> Option.defaultValue "(the cluster's default)"
        elif lower.Contains "time" then
            "slurm_time", launch.Time |> Option.defaultValue ""
        elif lower.Contains "gres" || lower.Contains "generic resource" then
            "slurm_gres", launch.Gres |> Option.defaultValue ""
        elif lower.Contains "memory" || lower.Contains "mem" then
            "slurm_mem", launch.Mem |> Option.defaultValue ""
        elif lower.Contains "cpu" || lower.Contains "processor" then
            "slurm_cpus_per_task", launch.CpusPerTask |> Option.map string |> Option.defaultValue ""
        else
            "launcher", "slurm"

    let allowed =
        match key, Native.which "sinfo" with
        | "slurm_partition", Some sinfo ->
            match Native.capture [] None sinfo [ "-h"; "-o"; "%R" ] with
            | 0, out, _ when out <> "" ->
                "a partition of this cluster: "
                + String.Join(", ", out.Split('\n') |> Array.map (fun s -> s.Trim()))
            | _ -> "a partition of this cluster (sinfo -s lists them)"
        | "slurm_partition", None -> "a partition of this cluster (sinfo -s lists them)"
        | _ -> "what this cluster accepts (see sbatch's message)"

    let msg = message.Replace('\n', ' ')
    raise (ConfigError("sbatch", key, value, allowed, $"sbatch refused the job: {msg}"))

/// The overrides every task adds to its grid point (kept in points.json): `device=cuda` when
/// `slurm_gres` asks for a `gpu` resource, and `threads=<slurm_cpus_per_task>`, each unless the
/// grid sweeps that key itself.
let taskOverrides (launch: Launch) (grid: (string * string) list list) : string list =
    [
        let inGrid k =
            grid |> List.exists (List.exists (fun (kk, _) -> kk = k))

        match launch.Gres with
        | Some g when
            g.Split(',') |> Array.exists (fun r -> r.StartsWith "gpu")
            && not (inGrid "device")
            ->
            yield "device=cuda"
        | _ -> ()

        match launch.CpusPerTask with
        | Some c when not (inGrid "threads") -> yield $"threads={c}"
        | _ -> ()
    ]

/// What a sweep did.
type Outcome =
    /// Run here (launcher=local): the sweep folder, the summary rows and the missing points.
    | Finished of dir: string * rows: PointSummary list * missing: string list
    /// Submitted to Slurm: the sweep folder, the job id (None when nothing needed submitting)
    /// and the array indices submitted.
    | Submitted of dir: string * jobId: string option * indices: int list

/// libc's kill(2), to stop worker processes with SIGTERM (they checkpoint and exit).
[<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
extern int private kill(int pid, int signal)

/// Runs the points `indices` of sweep folder `dir` as worker processes, `workers` at once, each
/// `command point sweep_dir=<dir> index=<i>` from `workDir` with its output appended to
/// `logs/point-<i>.log`. When `cancel` fires, every running worker gets SIGTERM (it checkpoints
/// and exits) and no new one starts. Returns (index, exit code) per started point.
let private runWorkers
    (cancel: Threading.CancellationToken)
    (command: string list)
    (workDir: string)
    (dir: string)
    (workers: int)
    (indices: int list)
    =
    let running = Collections.Generic.Dictionary<int, Diagnostics.Process>()
    let results = ResizeArray<int * int>()
    let queue = Collections.Generic.Queue<int>(indices)
    Directory.CreateDirectory(Path.Combine(dir, LogsDir)) |> ignore

    let start (i: int) =
        // sh appends the worker's stdout and stderr to its log, then becomes the worker (exec)
        let psi =
            Diagnostics.ProcessStartInfo("/bin/sh", WorkingDirectory = workDir, UseShellExecute = false)

        psi.ArgumentList.Add "-c"
        psi.ArgumentList.Add "exec \"$@\" >>\"$RL_POINT_LOG\" 2>&1 </dev/null"
        psi.ArgumentList.Add "sh"

        for a in command @ [ "point"; $"sweep_dir={dir}"; $"index={i}" ] do
            psi.ArgumentList.Add a

        psi.Environment["RL_POINT_LOG"] <- logFile dir i
        psi.Environment["RL_PROGRESS"] <- "plain"
        File.AppendAllText(logFile dir i, $"== point {i} started by a local worker at {DateTime.UtcNow:o}\n")
        printfn "[point %d] started (log: %s)" i (logFile dir i)
        running[i] <- Diagnostics.Process.Start psi

    use _reg =
        cancel.Register(fun () ->
            lock running (fun () ->
                for KeyValue(_, p) in running do
                    try
                        if not p.HasExited then
                            kill (p.Id, 15) |> ignore
                    with _ ->
                        ()))

    while queue.Count > 0 || running.Count > 0 do
        lock running (fun () ->
            while running.Count < workers && queue.Count > 0 && not cancel.IsCancellationRequested do
                start (queue.Dequeue()))

        if not cancel.IsCancellationRequested || running.Count > 0 then
            let finished =
                lock running (fun () -> running |> Seq.filter (fun kv -> kv.Value.HasExited) |> List.ofSeq)

            for KeyValue(i, p) in finished do
                p.WaitForExit()
                let code = p.ExitCode
                lock running (fun () -> running.Remove i |> ignore)
                p.Dispose()
                results.Add(i, code)

                match code with
                | 0 -> printfn "[point %d] finished" i
                | StoppedExitCode -> printfn "[point %d] stopped after writing its checkpoint" i
                | c -> eprintfn "[point %d] FAILED with exit code %d (log: %s)" i c (logFile dir i)

            if finished.IsEmpty then
                Threading.Thread.Sleep 200

        if cancel.IsCancellationRequested then
            queue.Clear()

    List.ofSeq results

/// Runs a PPO sweep. `args`: `config=` (a file, or a name in scripts/configs; default
/// ppo-cartpole.yaml), `sweep_dir=` (default `runs/sweep-<timestamp>`), `threshold=` (return
/// level for steps-to-threshold), the launcher keys (`parseLaunch`: `launcher=local|slurm`,
/// `workers=`, `requeue=`, `slurm_partition=`, `slurm_time=`, `slurm_cpus_per_task=`,
/// `slurm_gres=`, `slurm_mem=`, `slurm_extra=`) and grid axes `key=v1,v2,...` (any PPO config
/// key; seeds are batched inside each run through `num_seeds`). `command` is the program and
/// arguments that start `scripts/sweep.fsx` (worker processes and Slurm tasks run
/// `command point sweep_dir=<dir> index=<i>` from `workDir`, the repository root).
///
/// Everything is checked before anything is written: the grid and every point's full config,
/// the launcher keys, for Slurm that `sbatch` is on PATH and that sbatch accepts the script
/// (`sbatch --test-only`: partition, gres, time); a failed check raises one `ConfigError` naming
/// the key, the value and what is allowed, and leaves the sweep folder as it was. An existing
/// sweep folder must hold the same config and grid (its points.json); then only its unfinished
/// points run (local) or are submitted (Slurm: points neither finished nor still queued).
///
/// Local: every point runs in its own folder `<sweep_dir>/<pointName>/` (a point with a
/// checkpoint but no summary.json is resumed, `runPoint`), one after another in this process
/// (`workers=1`) or `workers` at once as separate processes; then `summary.csv` and `report.html`
/// (`collect`). `cancel` stops the current runs at their next update boundary after a checkpoint
/// and raises `OperationCanceledException`. Slurm: writes points.json and sweep.sbatch, submits
/// it with `sbatch --parsable`, records the job id in slurm-jobs.txt and prints how to follow it.
let sweep (cancel: Threading.CancellationToken) (command: string list) (workDir: string) (args: string list) : Outcome =
    let special, rest =
        args
        |> List.partition (fun a -> sweepKeys |> List.exists (fun k -> a.StartsWith(k + "=")))

    let get (key: string) =
        special
        |> List.tryFindBack (fun a -> a.StartsWith(key + "="))
        |> Option.map (fun a -> a.Substring(key.Length + 1))

    let launch = parseLaunch get

    let dir =
        get "sweep_dir"
        |> Option.defaultValue (Path.Combine("runs", "sweep-" + DateTime.UtcNow.ToString "yyyyMMdd-HHmmss"))
        |> Path.GetFullPath

    let existing =
        if File.Exists(Path.Combine(dir, SpecFile)) then
            Some(readSpec dir)
        else
            None

    let configPath =
        match get "config", existing with
        | None, Some s when rest.IsEmpty -> s.Config // the folder alone: its own grid
        | c, _ ->
            let c = c |> Option.defaultValue "scripts/configs/ppo-cartpole.yaml"

            if File.Exists c then
                Path.GetFullPath c
            else
                Path.GetFullPath(Path.Combine("scripts", "configs", c))

    let baseCfg = Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults configPath

    let axes =
        match existing with
        | Some s when rest.IsEmpty && get "config" |> Option.isNone ->
            [
                for k in s.Keys ->
                    {
                        Key = k
                        Values =
                            s.Points
                            |> List.choose (List.tryFind (fun (kk, _) -> kk = k))
                            |> List.map snd
                            |> List.distinct
                    }
            ]
        | _ -> parseGrid Ppo.PpoConfig.fields baseCfg rest

    let grid =
        match existing with
        | Some s when rest.IsEmpty && get "config" |> Option.isNone -> s.Points
        | _ -> points axes

    let threshold =
        match get "threshold" with
        | Some t ->
            match Double.TryParse(t, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
            | true, v -> Some v
            | _ -> bad "threshold" t "a number (the return level for steps-to-threshold)" "not a number"
        | None -> existing |> Option.bind (fun s -> s.Threshold)

    let taskOverrides = taskOverrides launch grid

    // Validate every point's full config (with the task overrides) before anything is written.
    for p in grid do
        Config.resolve
            Ppo.PpoConfig.fields
            Ppo.PpoConfig.seedDefaults
            Ppo.PpoConfig.validate
            (Some configPath)
            ([ for k, v in p -> $"{k}={v}" ] @ taskOverrides)
        |> ignore

    let spec =
        {
            Config = configPath
            EnvId = baseCfg.EnvId
            Threshold = threshold
            Keys = axes |> List.map (fun a -> a.Key)
            Points = grid
            TaskOverrides = taskOverrides
        }

    let sep = "; "

    match existing with
    | Some s when s.Config <> spec.Config || s.Points <> spec.Points ->
        bad
            "sweep_dir"
            dir
            $"a new folder, or this folder's own config and grid ({s.Config}; {s.Points.Length} points: {String.Join(sep, s.Points |> List.map pointName)})"
            "the folder holds another sweep"
    | _ -> ()

    let unfinished () =
        [
            for i, p in List.indexed grid do
                if (finishedRun (Path.Combine(dir, pointName p))).IsNone then
                    yield i
        ]

    match launch.Launcher with
    | "slurm" ->
        let sbatch =
            match Native.which "sbatch" with
            | Some s -> s
            | None ->
                bad
                    "launcher"
                    "slurm"
                    "local, or slurm on a machine with Slurm's sbatch on PATH (a login node of the cluster)"
                    "sbatch was not found on PATH"

        let queued = queuedTasks (jobIds dir)
        let open' = unfinished ()
        let todo = open' |> List.filter (fun i -> not (queued.ContainsKey i))

        // sbatch checks partition, time, gres and memory against the cluster without submitting
        let script =
            sbatchScript launch command workDir dir (if todo.IsEmpty then [ 0 .. grid.Length - 1 ] else todo)

        match Native.capture [] (Some script) sbatch [ "--test-only" ] with
        | 0, _, _ -> ()
        | _, out, err -> sbatchRefused launch ((err + " " + out).Trim())

        if todo.IsEmpty then
            printfn
                "nothing to submit: %d of %d points finished, %d still queued (sweep.fsx status sweep_dir=%s)"
                (grid.Length - open'.Length)
                grid.Length
                open'.Length
                dir

            Submitted(dir, None, [])
        else
            // what the folder held before, to put back when the submission itself fails
            let scriptPath = Path.Combine(dir, ScriptFile)

            let saved =
                [ Path.Combine(dir, SpecFile); scriptPath ]
                |> List.map (fun f -> f, (if File.Exists f then Some(File.ReadAllBytes f) else None))

            let created =
                [ dir; Path.Combine(dir, LogsDir) ] |> List.filter (Directory.Exists >> not)

            let restore () =
                for f, before in saved do
                    match before with
                    | Some bytes -> Files.writeBytesAtomic f bytes
                    | None -> File.Delete f

                for d in List.rev created do
                    if Directory.Exists d && Directory.GetFileSystemEntries(d).Length = 0 then
                        Directory.Delete d

            Directory.CreateDirectory(Path.Combine(dir, LogsDir)) |> ignore
            writeSpec dir spec
            Files.writeTextAtomic scriptPath script

            match Native.capture [] None sbatch [ "--parsable"; scriptPath ] with
            | 0, out, _ ->
                let jobId = out.Split(';').[0].Trim()
                File.AppendAllText(Path.Combine(dir, JobsFile), $"{jobId} {arraySpec todo}\n")

                printfn
                    "submitted Slurm job %s: %d array task(s), points %s of %d (script: %s)"
                    jobId
                    todo.Length
                    (arraySpec todo)
                    grid.Length
                    scriptPath

                printfn "follow it:  squeue -j %s    sacct -j %s    (logs: %s)" jobId jobId (Path.Combine(dir, LogsDir))
                printfn "per point:  dotnet fsi scripts/sweep.fsx status sweep_dir=%s" dir
                printfn "results:    dotnet fsi scripts/sweep.fsx collect sweep_dir=%s" dir
                Submitted(dir, Some jobId, todo)
            | _, out, err ->
                restore ()
                sbatchRefused launch ((err + " " + out).Trim())
    | _ ->
        Directory.CreateDirectory dir |> ignore
        writeSpec dir spec
        let todo = unfinished ()

        for i, p in List.indexed grid do
            if not (List.contains i todo) then
                printfn "[point %d/%d] %s: finished, skipped" i grid.Length (pointName p)

        if launch.Workers <= 1 then
            for i in todo do
                runPoint cancel dir i |> ignore
        else
            let results = runWorkers cancel command workDir dir launch.Workers todo

            if cancel.IsCancellationRequested then
                raise (
                    OperationCanceledException(
                        $"sweep stopped: the running points wrote their checkpoints; give sweep_dir={dir} again to resume them"
                    )
                )

            let failed = results |> List.filter (fun (_, c) -> c <> 0)

            for i, code in failed do
                eprintfn "point %d (%s) failed with exit code %d; last lines of its log:" i (pointName grid[i]) code

                for l in tailLines 15 (logFile dir i) do
                    eprintfn "    %s" l

        let rows, missing = collect dir

        if not missing.IsEmpty then
            eprintfn "%d of %d points have no finished run: %s" missing.Length grid.Length (String.Join("; ", missing))

        printfn "sweep folder: %s" dir
        Finished(dir, rows, missing)

/// Runs a PPO sweep with the local launcher in this process (see `sweep`; the working folder is
/// the repository root, whose scripts/sweep.fsx starts worker processes when `workers` > 1) and
/// returns the sweep folder and the summary rows. Raises `ConfigError` for bad input before
/// anything is written, and `InvalidOperationException` for `launcher=slurm` (use `sweep`).
let runPpo (args: string list) : string * PointSummary list =
    let root = Directory.GetCurrentDirectory()

    match
        sweep
            Threading.CancellationToken.None
            [ "dotnet"; "fsi"; "--quiet"; Path.Combine(root, "scripts", "sweep.fsx") ]
            root
            args
    with
    | Finished(dir, rows, _) -> dir, rows
    | Submitted _ -> invalidOp "Sweep.runPpo runs sweeps here; use Sweep.sweep for launcher=slurm"
