/// Run folders (`runs/<algo>-<env>-<yyyyMMdd-HHmmss>/` with `config.yaml`), the run's
/// `summary.json`, and a progress reporter for long training loops that draws a live bar on an
/// interactive terminal and prints plain lines in logs and CI.
namespace Rl

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text
open System.Text.Json
open System.Text.RegularExpressions
open Spectre.Console

/// A value in `summary.json`.
type SummaryValue =
    /// A float; NaN and infinities are written as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    | Number of float
    /// A whole number.
    | Integer of int64
    /// Text.
    | Text of string

/// Run folders and their standard files.
module Run =
    /// File name of the resolved configuration in a run folder.
    [<Literal>]
    let ConfigFile = "config.yaml"

    /// File name of the final summary in a run folder.
    [<Literal>]
    let SummaryFile = "summary.json"

    /// File name of the HTML report in a run folder.
    [<Literal>]
    let ReportFile = "report.html"

    /// Folder name of the checkpoint in a run folder.
    [<Literal>]
    let CheckpointDir = "checkpoint"

    let private unsafe = Regex(@"[^A-Za-z0-9._\-]+")

    let private clean (s: string) =
        let c = unsafe.Replace(s, "_").Trim('.')
        if c = "" then "_" else c

    /// The folder name for a run: `<algo>-<env>-<yyyyMMdd-HHmmss>` with characters other than
    /// letters, digits, `.`, `_` and `-` replaced by `_` (so `ALE/Pong-v5` gives `ALE_Pong-v5`).
    let folderName (algo: string) (envId: string) (time: DateTime) =
        sprintf "%s-%s-%s" (clean algo) (clean envId) (time.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture))

    /// Creates the run folder `root/<folderName algo envId time>` holding `config.yaml` with
    /// `configYaml` (resolve and validate the config first, so a bad one writes nothing). The
    /// folder appears complete with its config, atomically (built beside it, then renamed); when
    /// the name is taken, `-2`, `-3`, ... is appended. Returns the folder's full path.
    let createAt (time: DateTime) (root: string) (algo: string) (envId: string) (configYaml: string) : string =
        let root = Path.GetFullPath root
        Directory.CreateDirectory root |> ignore
        let name = folderName algo envId time

        let staging =
            Path.Combine(root, sprintf ".%s.creating-%s" name (Guid.NewGuid().ToString "N"))

        Directory.CreateDirectory staging |> ignore

        try
            Files.writeTextAtomic (Path.Combine(staging, ConfigFile)) configYaml

            let rec place n =
                let target = Path.Combine(root, (if n = 1 then name else sprintf "%s-%d" name n))

                if Directory.Exists target || File.Exists target then
                    place (n + 1)
                else
                    try
                        Directory.Move(staging, target)
                        target
                    with :? IOException when Directory.Exists target && n < 1000 ->
                        place (n + 1)

            place 1
        with _ ->
            (try
                if Directory.Exists staging then
                    Directory.Delete(staging, true)
             with _ ->
                 ())

            reraise ()

    /// The first line of a run folder's `config.yaml`, naming the algorithm that wrote it (a YAML
    /// comment, so the file still parses as the config alone): `# algo: <name> ...`.
    /// The key of summary.json holding the SHA-256 of the finished run's metrics.csv (see
    /// `checkMetrics`).
    [<Literal>]
    let MetricsChecksumKey = "metrics_sha256"

    /// Checks a finished run folder's metrics.csv against the checksum its summary.json recorded
    /// (`MetricsChecksumKey`; runs from before it was recorded pass). Raises
    /// `InvalidDataException` naming metrics.csv when they differ.
    let checkMetrics (runDir: string) =
        let summary = Path.Combine(runDir, SummaryFile)
        let metrics = Path.Combine(runDir, "metrics.csv")

        if File.Exists summary && File.Exists metrics then
            let m =
                Text.RegularExpressions.Regex.Match(
                    File.ReadAllText summary,
                    $"\"{MetricsChecksumKey}\"\\s*:\\s*\"([0-9a-f]+)\""
                )

            if m.Success && m.Groups[1].Value <> Files.sha256 metrics then
                raise (
                    InvalidDataException(
                        $"{metrics} does not match the checksum its run's {SummaryFile} recorded when the run finished: the metrics log was damaged (or edited) since"
                    )
                )

    let algorithmLine (algo: string) =
        $"# algo: {algo} (the algorithm of this run; resume= and evaluate.fsx read this line)\n"

    /// The algorithm of run folder `runDir`: the `# algo:` line of its `config.yaml`, else (folders
    /// written before that line existed) the folder name's prefix before the first `-`
    /// (`folderName`); None when neither says, or the folder has no `config.yaml`.
    let algorithmOf (runDir: string) : string option =
        let path = Path.Combine(runDir, ConfigFile)

        if not (File.Exists path) then
            None
        else
            // the first line, or the second after a sealed file's marker (`Config.seal`)
            let first =
                File.ReadLines path
                |> Seq.truncate 2
                |> Seq.tryFind (fun l -> l.StartsWith "# algo: ")
                |> Option.defaultValue ""

            if first.StartsWith "# algo: " then
                Some((first.Substring 8).Split(' ').[0])
            else
                let name =
                    Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath runDir))

                let dash = name.IndexOf '-'
                if dash > 0 then Some(name.Substring(0, dash)) else None

    /// `createAt` with the current local time.
    let create (root: string) (algo: string) (envId: string) (configYaml: string) : string =
        createAt DateTime.Now root algo envId configYaml

    /// Writes `summary.json` in `dir` atomically (temp file then rename): one JSON object with
    /// the pairs in order (numbers as numbers, non-finite floats as strings, text as strings).
    /// Raises `ArgumentException` for a duplicate key.
    let writeSummary (dir: string) (pairs: (string * SummaryValue) list) : unit =
        match pairs |> List.countBy fst |> List.tryFind (fun (_, n) -> n > 1) with
        | Some(k, _) -> invalidArg "pairs" (sprintf "duplicate summary key '%s'" k)
        | None -> ()

        use ms = new MemoryStream()

        do
            use w =
                new Utf8JsonWriter(
                    ms,
                    JsonWriterOptions(
                        Indented = true,
                        Encoder = Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping
                    )
                )

            w.WriteStartObject()

            for k, v in pairs do
                match v with
                | Number x when Double.IsNaN x -> w.WriteString(k, "NaN")
                | Number x when Double.IsPositiveInfinity x -> w.WriteString(k, "Infinity")
                | Number x when Double.IsNegativeInfinity x -> w.WriteString(k, "-Infinity")
                | Number x -> w.WriteNumber(k, x)
                | Integer n -> w.WriteNumber(k, n)
                | Text s -> w.WriteString(k, s)

            w.WriteEndObject()

        Files.writeBytesAtomic (Path.Combine(dir, SummaryFile)) (Array.append (ms.ToArray()) "\n"B)

    /// Reads `summary.json` from `dir`: integers as `Integer`, other numbers and the strings
    /// `"NaN"`, `"Infinity"`, `"-Infinity"` as `Number`, other strings as `Text`, anything else as
    /// its raw JSON text. Raises the usual IO and `JsonException`s.
    let readSummary (dir: string) : (string * SummaryValue) list =
        use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, SummaryFile)))

        [
            for p in doc.RootElement.EnumerateObject() ->
                let v =
                    match p.Value.ValueKind with
                    | JsonValueKind.Number ->
                        let raw = p.Value.GetRawText()

                        match p.Value.TryGetInt64() with
                        | true, n when raw |> Seq.forall (fun c -> Char.IsDigit c || c = '-') -> Integer n
                        | _ -> Number(p.Value.GetDouble())
                    | JsonValueKind.String ->
                        match p.Value.GetString() with
                        | "NaN" -> Number nan
                        | "Infinity" -> Number infinity
                        | "-Infinity" -> Number -infinity
                        | s -> Text s
                    | _ -> Text(p.Value.GetRawText())

                p.Name, v
        ]

    /// Summary pairs as display text (for `Report`): floats with up to 6 significant digits,
    /// integers with thousands separators, invariant culture.
    let summaryText (pairs: (string * SummaryValue) list) : (string * string) list =
        pairs
        |> List.map (fun (k, v) ->
            k,
            match v with
            | Number x -> x.ToString("G6", CultureInfo.InvariantCulture)
            | Integer n -> n.ToString("N0", CultureInfo.InvariantCulture)
            | Text s -> s)

/// Where a progress reporter draws.
type ProgressMode =
    /// A live Spectre.Console progress bar (interactive terminals).
    | Live
    /// A plain line to the writer every `interval` or whenever another 10 % is done, and a final
    /// line; no ANSI escape codes (logs, CI, redirected output).
    | Plain of writer: TextWriter * interval: TimeSpan
    /// Nothing.
    | Silent

/// Progress of a long loop: steps done of the total, steps per second, the recent episode
/// return, elapsed and remaining time.
module Progress =
    /// Environment variable that forces a mode: `live`, `plain` or `off`.
    [<Literal>]
    let ModeEnvVar = "RL_PROGRESS"

    let private inv = CultureInfo.InvariantCulture

    /// `Live` on an interactive terminal; `Plain` to standard output every 5 s when output is
    /// redirected, `CI` is set or `TERM=dumb`; overridden by `RL_PROGRESS` = `live`, `plain` or `off`.
    let detectMode () : ProgressMode =
        let plain = Plain(Console.Out, TimeSpan.FromSeconds 5.0)

        match Environment.GetEnvironmentVariable ModeEnvVar with
        | "off" -> Silent
        | "plain" -> plain
        | "live" -> Live
        | _ ->
            let ci = not (String.IsNullOrEmpty(Environment.GetEnvironmentVariable "CI"))
            let dumb = Environment.GetEnvironmentVariable "TERM" = "dumb"

            if
                ci
                || dumb
                || Console.IsOutputRedirected
                || not AnsiConsole.Profile.Capabilities.Interactive
            then
                plain
            else
                Live

    /// A duration as `hh:mm:ss` (days folded into hours); `--:--:--` when unknown.
    let formatDuration (t: TimeSpan) =
        if t < TimeSpan.Zero || Double.IsNaN t.TotalSeconds || t.TotalHours > 9999.0 then
            "--:--:--"
        else
            sprintf "%02d:%02d:%02d" (int t.TotalHours) t.Minutes t.Seconds

    /// Steps per second of the `step - start` steps done in `elapsed` (NaN before any time passed).
    let private rateOf (start: int64) (step: int64) (elapsed: TimeSpan) =
        if elapsed.TotalSeconds > 0.0 then
            float (step - start) / elapsed.TotalSeconds
        else
            nan

    /// The status after `step` of `total` steps, `elapsed` after starting at step `start` (0, or
    /// where a resumed run picked up), e.g.
    /// `ppo 40,960/500,000 (8.2%) | 2,310 steps/s | return 123.4 | elapsed 00:00:17 | eta 00:03:19`.
    /// The return part is left out while `recentReturn` is NaN; the speed and the ETA count only
    /// the steps done since `start`.
    let formatLine
        (label: string)
        (start: int64)
        (step: int64)
        (total: int64)
        (elapsed: TimeSpan)
        (recentReturn: float)
        : string =
        let rate = rateOf start step elapsed

        let pct = if total > 0L then 100.0 * float step / float total else nan

        let eta =
            if Double.IsFinite rate && rate > 0.0 then
                TimeSpan.FromSeconds(float (max 0L (total - step)) / rate)
            else
                TimeSpan.FromSeconds -1.0

        let sb = StringBuilder()

        if label <> "" then
            sb.Append(label).Append(' ') |> ignore

        sb.Append(step.ToString("N0", inv)).Append('/').Append(total.ToString("N0", inv))
        |> ignore

        sb.Append(sprintf " (%s%%)" (pct.ToString("F1", inv))) |> ignore

        if Double.IsFinite rate then
            sb.Append(" | ").Append(rate.ToString("N0", inv)).Append(" steps/s") |> ignore

        if not (Double.IsNaN recentReturn) then
            sb.Append(" | return ").Append(recentReturn.ToString("G4", inv)) |> ignore

        sb.Append(" | elapsed ").Append(formatDuration elapsed).Append(" | eta ").Append(formatDuration eta).ToString()

    /// A count with an SI suffix and 3 significant digits: `950`, `12.3k`, `154k`, `1.2M`, `3.00G`.
    let formatCount (n: float) =
        let a = abs n

        let v, suffix =
            if a >= 1e9 then n / 1e9, "G"
            elif a >= 1e6 then n / 1e6, "M"
            elif a >= 1e3 then n / 1e3, "k"
            else n, ""

        if suffix = "" then Math.Round(n).ToString("0", inv)
        elif abs v >= 100.0 then v.ToString("0", inv) + suffix
        elif abs v >= 10.0 then v.ToString("0.0", inv) + suffix
        else v.ToString("0.00", inv) + suffix

    /// The short status drawn beside the live bar, e.g.
    /// `ppo 154k/200k · 163k steps/s · return -1046 · 00:00:01` (the bar shows the percentage and
    /// the remaining time); the speed counts the steps since `start`, as in `formatLine`.
    let formatCompact
        (label: string)
        (start: int64)
        (step: int64)
        (total: int64)
        (elapsed: TimeSpan)
        (recentReturn: float)
        =
        let rate = rateOf start step elapsed

        [
            if label <> "" then
                yield label
            yield sprintf "%s/%s" (formatCount (float step)) (formatCount (float total))
            if Double.IsFinite rate then
                yield formatCount rate + " steps/s"
            if not (Double.IsNaN recentReturn) then
                yield "return " + recentReturn.ToString("G4", inv)
            yield formatDuration elapsed
        ]
        |> String.concat " · "

    /// `runWith` for `Plain(writer, interval)`: one line at each new tenth of the run and at least
    /// every `interval`, and one at the end.
    let internal runPlain
        (writer: IO.TextWriter)
        (interval: TimeSpan)
        (label: string)
        (start: int64)
        (total: int64)
        (clock: Stopwatch)
        (body: (int64 -> float -> unit) -> 'T)
        : 'T =
        let lastPrint = ref TimeSpan.Zero
        let lastDecile = ref (if total > 0L then start * 10L / total else 0L)
        let lastStep = ref start
        let lastReturn = ref nan
        let printedStep = ref -1L

        let print step =
            writer.WriteLine(formatLine label start step total clock.Elapsed lastReturn.Value)
            writer.Flush()
            printedStep.Value <- step
            lastPrint.Value <- clock.Elapsed

        let report step ret =
            lastStep.Value <- step

            if not (Double.IsNaN ret) then
                lastReturn.Value <- ret

            let decile = if total > 0L then step * 10L / total else 0L

            if decile > lastDecile.Value || clock.Elapsed - lastPrint.Value >= interval then
                lastDecile.Value <- max lastDecile.Value decile
                print step

        let result = body report

        if printedStep.Value <> lastStep.Value then
            print lastStep.Value

        result

    /// `runWith` for `Live`: a Spectre.Console bar redrawn at most every 100 ms.
    let internal runLive
        (label: string)
        (start: int64)
        (total: int64)
        (clock: Stopwatch)
        (body: (int64 -> float -> unit) -> 'T)
        : 'T =
        let progress =
            AnsiConsole
                .Progress()
                .AutoClear(false)
                .HideCompleted(false)
                .Columns(
                    [|
                        TaskDescriptionColumn(Alignment = Justify.Left) :> ProgressColumn
                        ProgressBarColumn(Width = Nullable 20)
                        PercentageColumn()
                        RemainingTimeColumn()
                    |]
                )

        progress.Start(fun ctx ->
            let task = ctx.AddTask(Markup.Escape label, true, float (max 1L total))
            task.Value <- float start
            let lastDraw = ref (TimeSpan.FromSeconds -1.0)
            let lastReturn = ref nan
            let lastStep = ref start

            let describe (step: int64) =
                // The bar, percentage and remaining time take about 36 columns; the rest
                // holds the description, cut to fit so narrow terminals do not lose it all.
                let width =
                    try
                        max 20 (AnsiConsole.Profile.Width - 36)
                    with _ ->
                        40

                let text = formatCompact label start step total clock.Elapsed lastReturn.Value

                let text =
                    if text.Length > width then
                        text.Substring(0, width - 1) + "…"
                    else
                        text

                task.Description <- Markup.Escape text
                task.Value <- float step

            let report (step: int64) (ret: float) =
                lastStep.Value <- step

                if not (Double.IsNaN ret) then
                    lastReturn.Value <- ret

                if
                    clock.Elapsed - lastDraw.Value >= TimeSpan.FromMilliseconds 100.0
                    || step >= total
                then
                    lastDraw.Value <- clock.Elapsed
                    describe step

            let result = body report
            describe lastStep.Value
            result)

    /// Runs `body` with a reporter `report step recentReturn` (steps done so far, and the recent
    /// mean episode return or NaN when none yet) and shows progress as `mode` says, starting at
    /// step `start` (0 for a new run; a resumed run's step, so the bar does not show 0 and jump).
    /// The reporter is cheap (it redraws at most every 100 ms), so calling it every iteration is
    /// fine. Returns what `body` returns; exceptions from `body` propagate after the display is
    /// closed. Raises `ArgumentOutOfRangeException` for a negative total or a start outside
    /// [0, total].
    let runWith
        (mode: ProgressMode)
        (label: string)
        (start: int64)
        (total: int64)
        (body: (int64 -> float -> unit) -> 'T)
        : 'T =
        if total < 0L then
            raise (ArgumentOutOfRangeException("total", total, "the total number of steps cannot be negative"))

        if start < 0L || start > total then
            raise (ArgumentOutOfRangeException("start", start, $"the first step must be in [0, {total}]"))

        let clock = Stopwatch.StartNew()

        match mode with
        | Silent -> body (fun _ _ -> ())
        | Plain(writer, interval) -> runPlain writer interval label start total clock body
        | Live -> runLive label start total clock body

    /// `runWith (detectMode ())`: a live bar on a terminal, plain lines in logs and CI.
    let run (label: string) (start: int64) (total: int64) (body: (int64 -> float -> unit) -> 'T) : 'T =
        runWith (detectMode ()) label start total body
