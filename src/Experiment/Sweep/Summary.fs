/// One summary row per grid point (final return with its confidence interval, steps to threshold,
/// wall time), the summary table, the plain-language reading and the final-return chart.
namespace Rl.Sweep

open System
open System.IO
open Rl
open Plotly.NET

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

/// Summary rows, table, reading and chart.
module Summary =
    /// Summarises a finished PPO run folder for grid point `point` (reads metrics.csv and
    /// summary.json). `threshold`: return level for `StepsToThreshold`. Raises
    /// `InvalidDataException` when metrics.csv changed since the run finished (`Run.checkMetrics`).
    let summarise (threshold: float option) (point: (string * string) list) (runDir: string) : PointSummary =
        Run.checkMetrics runDir
        let table = Metrics.readCsv (Path.Combine(runDir, Metrics.CsvFile))
        let finals = Stats.finalReturns 0.1 table
        let ok = finals |> Array.filter Double.IsFinite
        let mean = if ok.Length = 0 then nan else Array.average ok

        let std =
            if ok.Length = 0 then
                nan
            else
                sqrt (Array.averageBy (fun x -> (x - mean) ** 2.0) ok)

        let lo, hi = Stats.bootstrapCi 0.95 2000 0 ok

        let steps =
            match threshold with
            | None -> nan
            | Some t -> Stats.thresholdStep t table |> Option.defaultValue nan

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
            | [] -> Grid.pointName point
            | swept -> Grid.pointName swept

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
                | [] when ok.Length > 1 ->
                    "Its interval is clear of every other point's: the difference is not seed noise."
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
