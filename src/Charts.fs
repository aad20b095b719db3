/// Plotly.NET charts of training runs (learning curves over seeds, metric panels, heatmaps over
/// a 2-D grid) and one self-contained offline HTML report per run.
///
/// Offline use (checked with Plotly.NET 6.0.0, fsdocs 22.2.0 and headless Chromium, no network):
/// - Plotly.NET embeds plotly.js 2.28.0 as a resource of its assembly, but its default
///   `PlotlyJSReference` is `CDN "https://cdn.plot.ly/plotly-2.28.0.min.js"`, so
///   `GenericChart.toEmbeddedHTML`/`Chart.show` pages need the network unless a chart is given
///   `DisplayOptions.init(PlotlyJSReference = PlotlyJSReference.Full)`.
/// - `GenericChart.toChartHTML` (what `Charts.toHtml` returns) holds only the chart's `<div>` and
///   its `Plotly.newPlot` script, whatever the reference: the page must load plotly.js first.
/// - `Report` embeds plotly.js inline once per page (about 3.6 MB).
/// - A notebook rendered by `fsdocs build --eval` can do the same: a hidden first cell
///   `Charts.plotlyScript ()` followed by `(*** include-it-raw ***)`. fsdocs then also copies the
///   3.6 MB into the page's `.md`, search index and `llms-full.txt`, so for a site of several
///   notebooks prefer writing the file once with `Charts.writePlotlyJs "docs/content/plotly.min.js"`
///   and including `Charts.plotlyScriptRef "content/plotly.min.js"` (a relative path) instead.
///   fsdocs' default template itself links Google Fonts and an iconify CDN script and uses
///   root-absolute `/<project>/content/` paths; an offline site needs its own `_template.html`
///   (or `--parameters root ./`).
/// - plotly.js mentions `https://cdn.plot.ly/` only as the topojson default of geo charts, unused here.
/// - Plotly.NET's `Chart.with*` functions mutate the chart they are given as well as returning it.
namespace Rl

open System
open System.IO
open System.Net
open System.Text
open Plotly.NET
open Plotly.NET.TraceObjects

/// How a learning curve shows several seeds of one run.
type SeedView =
    /// One line per seed.
    | PerSeed
    /// The mean over seeds with a band of plus/minus one (population) standard deviation.
    | MeanStd
    /// The mean over seeds with a band from the minimum to the maximum.
    | MeanMinMax
    /// The median over seeds with a band from the first to the third quartile (rl-baselines3-zoo
    /// and Open RL Benchmark style; robust to one seed that fails).
    | MedianQuartiles

/// Statistics of one metric across seeds at each x value (see `Charts.seedStats`).
type SeedStats =
    {
        /// Distinct x values (e.g. environment steps), ascending.
        X: float[]
        /// Mean over the seeds with a finite value at that x.
        Mean: float[]
        /// Population standard deviation (numpy's default `ddof=0`) over the same seeds.
        Std: float[]
        /// Minimum over the same seeds.
        Min: float[]
        /// Maximum over the same seeds.
        Max: float[]
        /// How many seeds had a finite value at that x.
        Count: int[]
        /// Median over the same seeds.
        Median: float[]
        /// First quartile (25th percentile, linear interpolation between order statistics as
        /// numpy's default `percentile`) over the same seeds.
        Q1: float[]
        /// Third quartile (75th percentile, likewise).
        Q3: float[]
    }

/// Chart builders. Every function returns a new chart and leaves its inputs untouched.
module Charts =
    /// Plotly's default colour sequence (D3 category10), used run by run.
    let palette =
        [|
            "#1f77b4"
            "#ff7f0e"
            "#2ca02c"
            "#d62728"
            "#9467bd"
            "#8c564b"
            "#e377c2"
            "#7f7f7f"
            "#bcbd22"
            "#17becf"
        |]

    let private rgba (hex: string) (alpha: float) =
        let c = Convert.ToInt32(hex.Substring 1, 16)
        sprintf "rgba(%d,%d,%d,%g)" ((c >>> 16) &&& 255) ((c >>> 8) &&& 255) (c &&& 255) alpha

    /// A readable label for a metric column or tag: the part after the last `/`, and
    /// `global_step` as `environment steps`.
    let label (name: string) =
        let short =
            match name.LastIndexOf '/' with
            | i when i >= 0 -> name.Substring(i + 1)
            | _ -> name

        if short = "global_step" then "environment steps" else short

    /// The `p` quantile (0..1) of `sorted` (ascending) by linear interpolation between order
    /// statistics (numpy's default `percentile`, method "linear"): position p * (n - 1). Raises
    /// `ArgumentException` for no values or `p` outside [0, 1].
    let percentileOfSorted (p: float) (sorted: float[]) : float =
        if sorted.Length = 0 then
            invalidArg "sorted" "percentile of no values"

        if not (p >= 0.0 && p <= 1.0) then
            invalidArg "p" $"percentile {p}: allowed 0..1"

        let pos = p * float (sorted.Length - 1)
        let i = int (floor pos)
        let j = min (sorted.Length - 1) (i + 1)
        sorted[i] + (pos - float i) * (sorted[j] - sorted[i])

    /// `percentileOfSorted p` of `values` in any order (a sorted copy; `values` is left as it is).
    let percentile (p: float) (values: float[]) : float =
        percentileOfSorted p (Array.sort values)

    /// Per-x statistics of column `y` across the seeds of `table` (grouped by its `seed`
    /// column; a table without one is a single seed), at every x value of column `x` where at
    /// least one seed has a finite y. Non-finite y values are ignored. Raises
    /// `KeyNotFoundException` for a missing column.
    let seedStats (x: string) (y: string) (table: MetricsTable) : SeedStats =
        let points =
            Metrics.bySeed table
            |> List.collect (fun (_, t) ->
                Array.zip (Metrics.column x t) (Metrics.column y t)
                |> Array.filter (fun (a, b) -> Double.IsFinite a && Double.IsFinite b)
                |> List.ofArray)
            |> List.groupBy fst
            |> List.sortBy fst
            |> List.map (fun (xv, ps) -> xv, ps |> List.map snd |> Array.ofList)
            |> Array.ofList

        let stat f = points |> Array.map (snd >> f)
        let sorted = stat Array.sort
        let mean (v: float[]) = Array.average v

        let std (v: float[]) =
            let m = mean v
            sqrt (v |> Array.averageBy (fun a -> (a - m) * (a - m)))

        {
            X = points |> Array.map fst
            Mean = stat mean
            Std = stat std
            Min = stat Array.min
            Max = stat Array.max
            Count = stat Array.length
            Median = sorted |> Array.map (percentileOfSorted 0.5)
            Q1 = sorted |> Array.map (percentileOfSorted 0.25)
            Q3 = sorted |> Array.map (percentileOfSorted 0.75)
        }

    let private line (name: string) (color: string) (group: string) (showLegend: bool) (xs: float[]) (ys: float[]) =
        Chart.Line(xs, ys, Name = name, ShowLegend = showLegend, LineColor = Color.fromString color)
        |> GenericChart.mapTrace (Trace2DStyle.Scatter(LegendGroup = group))

    let private edge (xs: float[]) (ys: float[]) (group: string) (fill: string option) =
        let style =
            match fill with
            | Some color ->
                Trace2DStyle.Scatter(
                    X = xs,
                    Y = ys,
                    Mode = StyleParam.Mode.Lines,
                    Line = Line.init (Width = 0.0),
                    Fill = StyleParam.Fill.ToNext_y,
                    FillColor = Color.fromString color,
                    ShowLegend = false,
                    LegendGroup = group,
                    HoverInfo = StyleParam.HoverInfo.Skip
                )
            | None ->
                Trace2DStyle.Scatter(
                    X = xs,
                    Y = ys,
                    Mode = StyleParam.Mode.Lines,
                    Line = Line.init (Width = 0.0),
                    ShowLegend = false,
                    LegendGroup = group,
                    HoverInfo = StyleParam.HoverInfo.Skip
                )

        Trace2D.initScatter style |> GenericChart.ofTraceObject true

    /// The traces of one run: per-seed lines, or a mean line over a shaded band.
    let private runTraces (view: SeedView) (name: string) (color: string) (showLegend: bool) x y (table: MetricsTable) =
        match view with
        | PerSeed ->
            let seeds = Metrics.bySeed table
            let single = seeds.Length = 1

            seeds
            |> List.mapi (fun i (seed, t) ->
                let pts =
                    Array.zip (Metrics.column x t) (Metrics.column y t)
                    |> Array.filter (fun (a, b) -> Double.IsFinite a && Double.IsFinite b)

                let lineName =
                    if name = "" then sprintf "seed %d" seed
                    elif single then name
                    else sprintf "%s seed %d" name seed

                // One run: a colour and legend entry per seed. Several runs: a colour per run and
                // one legend entry that toggles all its seeds.
                let color, group =
                    if name = "" then
                        palette[i % palette.Length], lineName
                    else
                        color, name

                line lineName color group (showLegend && (i = 0 || name = "")) (Array.map fst pts) (Array.map snd pts))
        | MeanStd
        | MeanMinMax
        | MedianQuartiles ->
            let s = seedStats x y table

            let centre, lo, hi, what =
                match view with
                | MeanStd -> s.Mean, Array.map2 (-) s.Mean s.Std, Array.map2 (+) s.Mean s.Std, "mean ± std"
                | MedianQuartiles -> s.Median, s.Q1, s.Q3, "median, quartiles"
                | _ -> s.Mean, s.Min, s.Max, "mean, min–max"

            let seeds = Metrics.bySeed table |> List.length
            let prefix = if name = "" then "" else name + ": "
            let group = if name = "" then "mean" else name

            [
                edge s.X lo group None
                edge s.X hi group (Some(rgba color 0.2))
                line (sprintf "%s%s (%d seeds)" prefix what seeds) color group showLegend s.X centre
            ]

    let private styled (title: string) (xLabel: string) (yLabel: string) (chart: GenericChart) =
        chart
        |> Chart.withTitle title
        |> Chart.withXAxisStyle xLabel
        |> Chart.withYAxisStyle yLabel

    /// A line chart of named series `(name, xs, ys)` with a title and axis labels. Raises
    /// `ArgumentException` when a series' xs and ys differ in length.
    let lines (title: string) (xLabel: string) (yLabel: string) (series: (string * float[] * float[]) list) =
        series
        |> List.mapi (fun i (name, xs: float[], ys: float[]) ->
            if xs.Length <> ys.Length then
                invalidArg "series" (sprintf "series '%s' has %d x values and %d y values" name xs.Length ys.Length)

            line name palette[i % palette.Length] name true xs ys)
        |> Chart.combine
        |> styled title xLabel yLabel
        |> Chart.withSize (800, 450)

    /// Learning curves of several runs on one chart (e.g. a sweep or an ablation): for each
    /// `(run name, table)`, column `y` against column `x` (usually `global_step`), shown per
    /// `view` in the run's own colour. Raises `KeyNotFoundException` for a missing column.
    let compareRuns (view: SeedView) (x: string) (y: string) (runs: (string * MetricsTable) list) : GenericChart =
        runs
        |> List.mapi (fun i (name, t) -> runTraces view name palette[i % palette.Length] true x y t)
        |> List.concat
        |> Chart.combine
        |> styled (label y) (label x) (label y)
        |> Chart.withSize (800, 450)

    /// The learning curve of one run: column `y` (e.g. `episodic_return`) against column `x`
    /// (e.g. `global_step`, shown as "environment steps"), one line per seed or a mean with a
    /// band across seeds (see `SeedView` and `seedStats`). Points with a non-finite value are
    /// left out. Raises `KeyNotFoundException` for a missing column.
    let learningCurve (view: SeedView) (x: string) (y: string) (table: MetricsTable) : GenericChart =
        compareRuns view x y [ "", table ]

    /// A grid of small line charts, one per column in `ys` (losses, entropy, approx KL, clip
    /// fraction, sigma, ...), each against column `x`, three per row, titled by column; the
    /// legend entries (from the first panel) toggle a seed in every panel. Raises
    /// `ArgumentException` for an empty `ys` and `KeyNotFoundException` for a missing column.
    let panels (view: SeedView) (x: string) (ys: string list) (table: MetricsTable) : GenericChart =
        if ys.IsEmpty then
            invalidArg "ys" "panels needs at least one column"

        let cols = min 3 ys.Length
        let rows = (ys.Length + cols - 1) / cols

        ys
        |> List.mapi (fun i y ->
            // The subplot title names the metric; a y-axis title would crowd the small panels.
            runTraces view "" palette[0] (i = 0) x y table
            |> Chart.combine
            |> Chart.withXAxisStyle (label x))
        |> Chart.Grid(rows, cols, SubPlotTitles = (ys |> List.map label), XGap = 0.15, YGap = 0.35)
        |> Chart.withSize (1000, 300 * rows)

    /// A heatmap of `z` over a 2-D grid: `z[i][j]` is the value at `(xs[j], ys[i])` (rows follow
    /// the y axis), e.g. a value function or the mean action over Pendulum's (theta, theta-dot).
    /// The colour bar is titled `zLabel`. Raises `ArgumentException` when the shapes disagree.
    let heatmap
        (title: string)
        (xLabel: string)
        (yLabel: string)
        (zLabel: string)
        (xs: float[])
        (ys: float[])
        (z: float[][])
        : GenericChart =
        if z.Length <> ys.Length then
            invalidArg "z" (sprintf "z has %d rows but there are %d y values" z.Length ys.Length)

        z
        |> Array.iteri (fun i row ->
            if row.Length <> xs.Length then
                invalidArg "z" (sprintf "row %d of z has %d values but there are %d x values" i row.Length xs.Length))

        Chart.Heatmap(
            zData = z,
            X = xs,
            Y = ys,
            ColorBar = ColorBar.init (Title = Title.init zLabel),
            ColorScale = StyleParam.Colorscale.Viridis
        )
        |> styled title xLabel yLabel
        |> Chart.withSize (650, 550)

    /// The chart as an HTML fragment (a `<div>` and the script that draws it with
    /// `Plotly.newPlot`), for notebooks (`(*** include-it-raw ***)` under fsdocs) and reports.
    /// It does not load plotly.js: include `plotlyScript ()` once per page before it.
    let toHtml (chart: GenericChart) : string = GenericChart.toChartHTML chart

    let private resourceName =
        lazy
            (typeof<GenericChart>.Assembly.GetManifestResourceNames()
             |> Array.tryFind (fun n -> n.StartsWith "Plotly.NET.plotly-" && n.EndsWith ".min.js")
             |> Option.defaultWith (fun () ->
                 failwith "Plotly.NET does not embed plotly.js in this version; see Charts.fs for the offline options"))

    /// Version of the plotly.js that Plotly.NET embeds (e.g. `2.28.0`).
    let plotlyJsVersion () =
        resourceName.Value.Substring("Plotly.NET.plotly-".Length).Replace(".min.js", "")

    let private js =
        lazy
            (use s = typeof<GenericChart>.Assembly.GetManifestResourceStream resourceName.Value

             use r = new StreamReader(s, Encoding.UTF8)
             // Never end the inline <script> early (plotly.js 2.28 has no such text; be safe).
             r.ReadToEnd().Replace("</script", "<\\/script"))

    /// The minified plotly.js embedded in Plotly.NET (about 3.6 MB of text), read once.
    let plotlyJs () : string = js.Value

    /// `<script>` element holding plotly.js inline: include once per page, before any chart.
    let plotlyScript () : string =
        "<script type=\"text/javascript\" charset=\"utf-8\">" + js.Value + "</script>"

    /// A `<script src>` element loading plotly.js from `src`, a path relative to the page (e.g.
    /// `content/plotly.min.js` written by `writePlotlyJs`): works offline, unlike a CDN address.
    let plotlyScriptRef (src: string) : string =
        sprintf "<script type=\"text/javascript\" charset=\"utf-8\" src=\"%s\"></script>" (WebUtility.HtmlEncode src)

    /// Writes plotly.js to `path` (e.g. a docs `content/` folder) so pages can load it with a
    /// relative `<script src>` that works offline.
    let writePlotlyJs (path: string) : unit = Files.writeTextAtomic path js.Value

/// One self-contained HTML page per run: a title, a table of summary values and sections of
/// charts, with plotly.js embedded inline so the page works offline (no `<script src>` at all).
module Report =
    let private enc (s: string) = WebUtility.HtmlEncode s

    let private style =
        """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table.summary{border-collapse:collapse;margin:1em 0}
table.summary th,table.summary td{border:1px solid #ccc;padding:4px 12px;text-align:left;font-variant-numeric:tabular-nums}
table.summary th{background:#f4f4f4;font-weight:600}
h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
footer{margin-top:3em;color:#777;font-size:.85em}"""

    /// An HTML `<video>` element that plays the MP4 file `path` offline: the file embedded as a
    /// base64 `data:` URI, with controls, looping, muted (so that browsers autoplay it) and
    /// `caption` under it. Raises `IOException` when the file cannot be read.
    let videoHtml (path: string) (caption: string) : string =
        let data = Convert.ToBase64String(File.ReadAllBytes path)

        sprintf
            "<figure class=\"rl-video\" style=\"margin:0\"><video controls loop muted autoplay playsinline style=\"max-width:100%%;border:1px solid #ddd\" src=\"data:video/mp4;base64,%s\"></video><figcaption style=\"font-size:90%%;color:#555\">%s</figcaption></figure>"
            data
            (enc caption)

    /// The report page as text: `title`, a two-column table of `summary` pairs (HTML-escaped),
    /// then each `(heading, charts)` section. plotly.js is embedded inline. `videos` (HTML of
    /// `videoHtml`, may be empty) appear side by side in a section "The trained policy" before the
    /// charts.
    let htmlWith
        (title: string)
        (summary: (string * string) list)
        (videos: string list)
        (sections: (string * GenericChart list) list)
        : string =
        let sb = StringBuilder()

        let add (s: string) = sb.Append(s) |> ignore

        add "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"

        add (
            sprintf
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>%s</title>\n"
                (enc title)
        )

        add (sprintf "<style>\n%s\n</style>\n" style)
        add (Charts.plotlyScript ())
        add "\n</head>\n<body>\n"
        add (sprintf "<h1>%s</h1>\n" (enc title))

        if not summary.IsEmpty then
            add "<table class=\"summary\">\n"

            for k, v in summary do
                add (sprintf "<tr><th>%s</th><td>%s</td></tr>\n" (enc k) (enc v))

            add "</table>\n"

        if not videos.IsEmpty then
            add "<h2>The trained policy</h2>\n<div style=\"display:flex;flex-wrap:wrap;gap:1em\">\n"

            for v in videos do
                add v
                add "\n"

            add "</div>\n"

        for heading, charts in sections do
            add (sprintf "<h2>%s</h2>\n" (enc heading))

            for c in charts do
                add (Charts.toHtml c)
                add "\n"

        add (
            sprintf
                "<footer>Written %s UTC; plotly.js %s is embedded, so this page works offline.</footer>\n"
                (DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss"))
                (Charts.plotlyJsVersion ())
        )

        add "</body>\n</html>\n"
        sb.ToString()

    /// `htmlWith` without videos.
    let html (title: string) (summary: (string * string) list) (sections: (string * GenericChart list) list) : string =
        htmlWith title summary [] sections

    /// The videos a run report shows from run folder `dir`: `videos/*-episode-0.mp4` (each seed's
    /// first recorded episode), at most `most`, captioned by `captionOf` of the file name.
    let runVideos (dir: string) (most: int) (captionOf: string -> string) : string list =
        let videos = Path.Combine(dir, "videos")

        if Directory.Exists videos then
            Directory.GetFiles(videos, "*-episode-0.mp4")
            |> Array.sort
            |> Array.truncate most
            |> Array.map (fun p -> videoHtml p (captionOf (Path.GetFileName p)))
            |> List.ofArray
        else
            []

    /// Writes `html title summary sections` to `path` atomically (temp file then rename),
    /// creating the folder if needed.
    let write
        (path: string)
        (title: string)
        (summary: (string * string) list)
        (sections: (string * GenericChart list) list)
        =
        Files.writeTextAtomic path (html title summary sections)

    /// `write` with `videos` (see `htmlWith`).
    let writeWith
        (path: string)
        (title: string)
        (summary: (string * string) list)
        (videos: string list)
        (sections: (string * GenericChart list) list)
        =
        Files.writeTextAtomic path (htmlWith title summary videos sections)
