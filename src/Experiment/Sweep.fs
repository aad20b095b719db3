/// Hyperparameter sweeps: grid parsing from `key=v1,v2,...` arguments, grid points, per-seed
/// final returns, percentile-bootstrap confidence intervals, steps to a return threshold, and a
/// resumable PPO sweep that writes one run folder per grid point, a summary table and a report.
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

/// Runs a PPO sweep: `args` are `config=`, `sweep_dir=` (default `runs/sweep-<timestamp>`),
/// `threshold=` (return level for steps-to-threshold) and grid axes `key=v1,v2,...` (any PPO
/// config key; seeds are batched inside each run through `num_seeds`). Runs every grid point in
/// its own folder `<sweep_dir>/<pointName>/`, skipping points that already have a finished run
/// (so a sweep resumes where it stopped), then writes `summary.csv` and `report.html` (learning
/// curves as mean and band per point, final return vs each swept key). Returns the sweep folder
/// and the summary rows. Raises `ConfigError` for a bad grid before anything is written.
let runPpo (args: string list) : string * PointSummary list =
    let special, rest =
        args
        |> List.partition (fun a ->
            [ "config="; "sweep_dir="; "threshold=" ]
            |> List.exists (fun p -> a.StartsWith p))

    let get (key: string) =
        special
        |> List.tryFind (fun a -> a.StartsWith(key + "="))
        |> Option.map (fun a -> a.Substring(key.Length + 1))

    let configPath =
        get "config" |> Option.defaultValue "scripts/configs/ppo-cartpole.yaml"

    let configPath =
        if File.Exists configPath then
            configPath
        else
            Path.Combine("scripts", "configs", configPath)

    let baseCfg = Config.load Ppo.fields Ppo.seedDefaults configPath
    let axes = parseGrid Ppo.fields baseCfg rest
    let grid = points axes
    // Validate every point's full config before running anything.
    for p in grid do
        Config.resolve Ppo.fields Ppo.seedDefaults Ppo.validate (Some configPath) [ for k, v in p -> $"{k}={v}" ]
        |> ignore

    let threshold = get "threshold" |> Option.map float

    let dir =
        get "sweep_dir"
        |> Option.defaultValue (Path.Combine("runs", "sweep-" + DateTime.UtcNow.ToString "yyyyMMdd-HHmmss"))
        |> Path.GetFullPath

    Directory.CreateDirectory dir |> ignore

    let rows =
        [
            for i, p in List.indexed grid do
                let pointDir = Path.Combine(dir, pointName p)

                let runDir =
                    match finishedRun pointDir with
                    | Some d ->
                        printfn "[%d/%d] %s: finished, skipped" (i + 1) grid.Length (pointName p)
                        d
                    | None ->
                        // an interrupted attempt leaves a folder without summary.json: start over
                        if Directory.Exists pointDir then
                            Directory.Delete(pointDir, true)

                        printfn "[%d/%d] %s" (i + 1) grid.Length (pointName p)
                        Train.runPpo ([ $"config={configPath}"; $"runs={pointDir}" ] @ [ for k, v in p -> $"{k}={v}" ])

                yield summarise threshold p runDir
        ]

    let keys = axes |> List.map (fun a -> a.Key)
    Files.writeTextAtomic (Path.Combine(dir, "summary.csv")) (summaryCsv keys rows)

    let curves =
        Charts.compareRuns
            SeedView.MeanStd
            "global_step"
            "episodic_return"
            [
                for r in rows -> pointName r.Point, Metrics.readCsv (Path.Combine(r.RunDir, Metrics.CsvFile))
            ]

    let swept = axes |> List.filter (fun a -> a.Values.Length > 1)

    let fmt (x: float) =
        if Double.IsNaN x then
            "-"
        else
            x.ToString("G4", Globalization.CultureInfo.InvariantCulture)

    Report.write
        (Path.Combine(dir, Run.ReportFile))
        $"PPO sweep on {baseCfg.EnvId}"
        [
            for r in rows do
                yield
                    pointName r.Point,
                    $"final return {fmt r.Mean} +- {fmt r.Std} (95%% CI {fmt r.CiLow} .. {fmt r.CiHigh}, {r.Finals.Length} seeds), steps to threshold {fmt r.StepsToThreshold}, wall {fmt r.WallSeconds} s"
            yield "reading", reading rows
        ]
        [
            "Learning curves (mean and +-1 std band across seeds)", [ curves ]
            "Final return vs hyperparameter", [ for a in swept -> finalReturnChart a.Key rows ]
        ]

    printfn "sweep folder: %s" dir
    dir, rows
