/// Per-update training metrics, PureJaxRL style: an in-memory table with named float columns and
/// one row per update (plus a `seed` column when several seeds run in one process), and a log
/// that streams every row to `metrics.csv` (header once, invariant culture, flushed per row) and to
/// TensorBoard event files through TorchSharp's `SummaryWriter` under CleanRL-style tags
/// (`charts/episodic_return`, `losses/approx_kl`, ...). A `metrics.csv` reads back into a table
/// for reports and for resuming.
namespace Rl

open System
open System.Collections.Generic
open System.Globalization
open System.IO
open System.Text
open TorchSharp

/// One metric column: its CSV header and, optionally, the TensorBoard tag it is logged under.
/// Columns without a tag (update index, seed, step) go to the CSV only.
type Column =
    {
        /// CSV header and the name used by `Metrics.add`/`Metrics.column`, e.g. `approx_kl`.
        Name: string
        /// TensorBoard tag, e.g. `Some "losses/approx_kl"`; `None` for CSV-only columns.
        Tag: string option
    }

/// Constructors of `Column`s.
module Column =
    /// A CSV-only column (no TensorBoard scalar), e.g. `Column.plain "global_step"`.
    let plain (name: string) = { Name = name; Tag = None }

    /// A column logged to TensorBoard under `tag`, named after the tag's last segment:
    /// `Column.tagged "losses/approx_kl"` has the name `approx_kl`.
    let tagged (tag: string) =
        let i = tag.LastIndexOf '/'

        {
            Name = (if i >= 0 then tag.Substring(i + 1) else tag)
            Tag = Some tag
        }

    /// A column with an explicit CSV name and TensorBoard tag.
    let named (name: string) (tag: string) = { Name = name; Tag = Some tag }

/// A table of float metrics: named columns, one row per update, appended in order. Missing
/// values are NaN. Not thread-safe: add rows from one thread.
/// Two tables are equal when they have the same columns and bit-for-bit the same rows (NaN
/// equals NaN), as reproducibility checks need.
[<CustomEquality; NoComparison>]
type MetricsTable =
    private
        {
            Cols: string[]
            Index: Dictionary<string, int>
            Data: ResizeArray<float[]>
        }

    override this.Equals(other: obj) =
        match other with
        | :? MetricsTable as t ->
            this.Cols = t.Cols
            && this.Data.Count = t.Data.Count
            && Seq.forall2
                (fun (a: float[]) (b: float[]) ->
                    a.Length = b.Length && Array.forall2 (fun (x: float) y -> x.Equals y) a b)
                this.Data
                t.Data
        | _ -> false

    override this.GetHashCode() = hash this.Cols ^^^ this.Data.Count

    override this.ToString() =
        sprintf "MetricsTable(%d rows; %s)" this.Data.Count (String.Join(", ", this.Cols))

/// Options of a metrics log; start from `MetricsOptions.defaults`.
type MetricsOptions =
    {
        /// Run folder: `metrics.csv` is written here, TensorBoard events too (or in `seed-<n>`
        /// subfolders when the columns include `seed`).
        Dir: string
        /// The columns, in CSV order.
        Columns: Column list
        /// Write TensorBoard event files besides the CSV (loads libtorch through `Native.init`,
        /// because TorchSharp's writer checksums records in native code).
        TensorBoard: bool
        /// The column holding the x-axis step for TensorBoard (default `global_step`); when it is
        /// not among the columns, the row number (per seed) is used.
        StepColumn: string
        /// Continue an existing `metrics.csv` (resume): its header must equal the columns and its
        /// rows are loaded into the table. When false, an existing `metrics.csv` is an error.
        Append: bool
        /// When appending: keep only the existing rows whose `StepColumn` value is at most this
        /// step (a resumed run drops the rows logged after the checkpoint it continues from, so
        /// that they are not there twice); None keeps every row.
        KeepUpToStep: int64 option
        /// Written once into each TensorBoard run as a markdown table under the tag
        /// `hyperparameters` (CleanRL does the same), e.g. `Config.pairs fields cfg`.
        Hyperparameters: (string * string) list
    }

/// Defaults for `MetricsOptions`.
module MetricsOptions =
    /// TensorBoard on, step column `global_step`, a fresh `metrics.csv`, no hyperparameters.
    let defaults (dir: string) (columns: Column list) =
        {
            Dir = dir
            Columns = columns
            TensorBoard = true
            StepColumn = "global_step"
            Append = false
            KeepUpToStep = None
            Hyperparameters = []
        }

/// An open metrics log: the in-memory table plus the CSV stream and TensorBoard writers.
/// Dispose it (or `Metrics.close`) to flush and close `metrics.csv`.
[<NoEquality; NoComparison>]
type MetricsLog =
    private
        {
            Options: MetricsOptions
            LogTable: MetricsTable
            /// metrics.csv, unbuffered: every row reaches the file whole, or (a failed write) not at all.
            Csv: FileStream
            Writers: Dictionary<int, Modules.SummaryWriter>
            Lookup: Dictionary<string, int>
            StepIndex: int option
            SeedIndex: int option
            mutable Closed: bool
        }

    /// The rows logged so far (including rows read back when resuming).
    member this.Table = this.LogTable

    interface IDisposable with
        member this.Dispose() =
            if not this.Closed then
                this.Closed <- true
                this.Csv.Flush()
                this.Csv.Dispose()

/// Functions over `MetricsTable`, `metrics.csv` files and `MetricsLog`s.
module Metrics =
    /// Name of the column that identifies the seed of a row in multi-seed tables.
    [<Literal>]
    let SeedColumn = "seed"

    /// File name of the CSV inside a run folder.
    [<Literal>]
    let CsvFile = "metrics.csv"

    let private inv = CultureInfo.InvariantCulture

    let private checkName (name: string) =
        if String.IsNullOrWhiteSpace name then
            invalidArg "columns" "a metric column name cannot be empty"

        if name.IndexOfAny [| ','; '"'; '\n'; '\r' |] >= 0 then
            invalidArg "columns" (sprintf "metric column name '%s' cannot contain a comma, a quote or a newline" name)

    /// An empty table with these columns. Raises `ArgumentException` for an empty or duplicate
    /// name or one containing a comma, quote or newline (they would break the CSV).
    let empty (columns: string list) : MetricsTable =
        let cols = Array.ofList columns
        cols |> Array.iter checkName
        let index = Dictionary<string, int>()

        for i, c in Array.indexed cols do
            if index.ContainsKey c then
                invalidArg "columns" (sprintf "duplicate metric column '%s'" c)

            index[c] <- i

        {
            Cols = cols
            Index = index
            Data = ResizeArray()
        }

    /// The column names in order.
    let columns (t: MetricsTable) : string list = List.ofArray t.Cols

    /// Number of rows.
    let count (t: MetricsTable) = t.Data.Count

    /// Appends a row given in column order (the array is copied). Raises `ArgumentException` when
    /// its length differs from the number of columns.
    let addRow (values: float[]) (t: MetricsTable) : unit =
        if values.Length <> t.Cols.Length then
            invalidArg
                "values"
                (sprintf
                    "a metrics row needs %d values (%s), got %d"
                    t.Cols.Length
                    (String.Join(", ", t.Cols))
                    values.Length)

        t.Data.Add(Array.copy values)

    let private rowOf (pairs: (string * float) seq) (t: MetricsTable) =
        let row = Array.create t.Cols.Length nan

        for name, v in pairs do
            match t.Index.TryGetValue name with
            | true, i -> row[i] <- v
            | _ ->
                invalidArg
                    "pairs"
                    (sprintf "unknown metric column '%s'; the columns are: %s" name (String.Join(", ", t.Cols)))

        row

    /// Appends a row given as `(column, value)` pairs in any order; columns not given are NaN.
    /// Raises `ArgumentException` naming an unknown column (nothing is added then).
    let add (pairs: (string * float) seq) (t: MetricsTable) : unit = t.Data.Add(rowOf pairs t)

    /// A table with these columns and rows (see `empty` and `addRow` for errors).
    let ofRows (columns: string list) (rows: float[] seq) : MetricsTable =
        let t = empty columns

        for r in rows do
            addRow r t

        t

    /// Copies of all rows, in order.
    let rows (t: MetricsTable) : float[][] =
        t.Data |> Seq.map Array.copy |> Array.ofSeq

    /// The values of column `name`, one per row. Raises `KeyNotFoundException` listing the columns.
    let column (name: string) (t: MetricsTable) : float[] =
        match t.Index.TryGetValue name with
        | true, i -> t.Data |> Seq.map (fun r -> r[i]) |> Array.ofSeq
        | _ ->
            raise (
                KeyNotFoundException(
                    sprintf "no metric column '%s'; the columns are: %s" name (String.Join(", ", t.Cols))
                )
            )

    /// True when the table has a column `name`.
    let hasColumn (name: string) (t: MetricsTable) = t.Index.ContainsKey name

    /// The last finite value of column `name`, if any (e.g. the final episodic return).
    let lastFinite (name: string) (t: MetricsTable) : float option =
        column name t |> Array.tryFindBack Double.IsFinite

    /// A new table with the rows whose value in `column` satisfies `keep` (e.g. rows up to a
    /// checkpoint's step when resuming).
    let where (columnName: string) (keep: float -> bool) (t: MetricsTable) : MetricsTable =
        let i =
            match t.Index.TryGetValue columnName with
            | true, i -> i
            | _ -> raise (KeyNotFoundException(sprintf "no metric column '%s'" columnName))

        ofRows (columns t) (t.Data |> Seq.filter (fun r -> keep r[i]))

    /// The rows grouped by the `seed` column, sorted by seed, each group a table with all
    /// columns. A table without a `seed` column is one group with seed 0. Raises
    /// `ArgumentException` for a seed that is not a whole number.
    let bySeed (t: MetricsTable) : (int * MetricsTable) list =
        match t.Index.TryGetValue SeedColumn with
        | true, i ->
            t.Data
            |> Seq.groupBy (fun r ->
                let s = r[i]

                if Double.IsFinite s && s = Math.Round s then
                    int s
                else
                    invalidArg "t" (sprintf "seed value %g is not a whole number" s))
            |> Seq.sortBy fst
            |> Seq.map (fun (s, rs) -> s, ofRows (columns t) rs)
            |> List.ofSeq
        | _ -> [ 0, t ]

    /// A float as CSV text: shortest round-trip form in the invariant culture; NaN, +inf and
    /// -inf as `nan`, `inf`, `-inf` (what pandas and numpy read).
    let formatValue (x: float) =
        if Double.IsNaN x then "nan"
        elif Double.IsPositiveInfinity x then "inf"
        elif Double.IsNegativeInfinity x then "-inf"
        else x.ToString("R", inv)

    /// Parses a CSV value: a number, or `nan`/`inf`/`-inf` (also `NaN`, `Infinity`), or empty
    /// (NaN). Returns `None` for anything else.
    let parseValue (text: string) : float option =
        match text.Trim().ToLowerInvariant() with
        | ""
        | "nan" -> Some nan
        | "inf"
        | "+inf"
        | "infinity" -> Some infinity
        | "-inf"
        | "-infinity" -> Some -infinity
        | s ->
            match Double.TryParse(s, NumberStyles.Float, inv) with
            | true, x -> Some x
            | _ -> None

    let private csvLine (values: string seq) = String.Join(",", values) + "\n"

    /// The whole table as CSV text (header line, then one line per row, `\n` line ends).
    let toCsv (t: MetricsTable) : string =
        let sb = StringBuilder(csvLine t.Cols)

        for r in t.Data do
            sb.Append(csvLine (Array.map formatValue r)) |> ignore

        sb.ToString()

    /// Writes the table to `path` atomically (temp file then rename), e.g. to cut a
    /// `metrics.csv` back to a checkpoint's step before resuming.
    let writeCsv (path: string) (t: MetricsTable) : unit = Files.writeTextAtomic path (toCsv t)

    /// Parses CSV text written by this module (`source` names it in errors). A last line without
    /// a line end is an interrupted write and is dropped. Raises `FormatException` naming the
    /// source and line for a wrong number of values or a value that is not a number, and
    /// `ArgumentException` for a bad header.
    let parseCsv (source: string) (text: string) : MetricsTable =
        let lines = text.Replace("\r\n", "\n").Split '\n'

        let complete =
            // The element after the last '\n' is "" for a complete file, or a partial line.
            lines[.. lines.Length - 2]

        if complete.Length = 0 then
            raise (FormatException(sprintf "%s: no header line" source))

        let header = complete[0].Split ','
        let t = empty (List.ofArray header)

        for n in 1 .. complete.Length - 1 do
            let line = complete[n]

            if line <> "" then
                let cells = line.Split ','

                if cells.Length <> header.Length then
                    raise (
                        FormatException(
                            sprintf "%s line %d: expected %d values, found %d" source (n + 1) header.Length cells.Length
                        )
                    )

                cells
                |> Array.mapi (fun j c ->
                    match parseValue c with
                    | Some x -> x
                    | None ->
                        raise (
                            FormatException(
                                sprintf "%s line %d, column '%s': '%s' is not a number" source (n + 1) header[j] c
                            )
                        ))
                |> fun r -> addRow r t

        t

    /// Reads a `metrics.csv` (see `parseCsv` for the rules and errors).
    let readCsv (path: string) : MetricsTable = parseCsv path (File.ReadAllText path)

    let private markdownTable (pairs: (string * string) list) =
        let esc (s: string) =
            s.Replace("|", "\\|").Replace("\n", " ")

        "|param|value|\n|-|-|\n"
        + String.Join("\n", pairs |> List.map (fun (k, v) -> sprintf "|%s|%s|" (esc k) (esc v)))

    /// Appends `line` to the unbuffered stream `csv` of the file `path`: the whole line, or, when the
    /// write fails (a full disk), nothing: the file is cut back to its length before the write, so
    /// metrics.csv never ends in a half row, and `Files.WriteFailedException` names the file.
    let private appendLine (path: string) (csv: FileStream) (line: string) =
        let before = csv.Length
        let bytes = Files.utf8.GetBytes line

        Files.writing path (fun () ->
            try
                csv.Write(bytes, 0, bytes.Length)
            with _ ->
                (try
                    csv.SetLength before
                 with _ ->
                     ())

                reraise ())

    /// Opens a metrics log as `options` says. A fresh log creates `metrics.csv` with the header
    /// (raising `IOException` if one exists and `Append` is false); an appending log checks the
    /// existing header (raising `InvalidDataException` if it differs), loads its rows into the
    /// table, and drops an interrupted last line (raising `InvalidDataException` naming the file
    /// for a line that does not parse). Creates `Dir` if needed.
    let openWith (options: MetricsOptions) : MetricsLog =
        let names = options.Columns |> List.map (fun c -> c.Name)
        let table = empty names
        Directory.CreateDirectory options.Dir |> ignore
        let path = Path.Combine(options.Dir, CsvFile)
        let exists = File.Exists path

        if exists && not options.Append then
            raise (
                IOException(sprintf "%s already exists; set Append = true to continue it, or use a new run folder" path)
            )

        if exists then
            let read =
                try
                    readCsv path
                with
                | :? FormatException
                | :? ArgumentException as e ->
                    raise (
                        InvalidDataException(
                            $"{path} is damaged ({e.Message}); the run was not resumed: repair or remove that line, then resume again",
                            e
                        )
                    )

            let old =
                match options.KeepUpToStep with
                | Some step when read.Index.ContainsKey options.StepColumn ->
                    let j = read.Index[options.StepColumn]

                    { read with
                        Data = ResizeArray(read.Data |> Seq.filter (fun r -> not (r[j] > float step)))
                    }
                | _ -> read

            if columns old <> names then
                raise (
                    InvalidDataException(
                        sprintf
                            "%s has the columns [%s] but the log expects [%s]"
                            path
                            (String.Join(", ", columns old))
                            (String.Join(", ", names))
                    )
                )

            for r in old.Data do
                table.Data.Add r

            // Rewrite without a possibly interrupted last line, so appends start on a fresh line.
            writeCsv path old

        // unbuffered (buffer size 0), so that `appendLine` can cut a failed row back off
        let csv =
            new FileStream(
                path,
                (if exists then FileMode.Append else FileMode.CreateNew),
                FileAccess.Write,
                FileShare.Read,
                0
            )

        if not exists then
            appendLine path csv (csvLine names)

        let indexOf name = names |> List.tryFindIndex ((=) name)

        let lookup = Dictionary<string, int>(table.Index)

        for i, c in List.indexed options.Columns do
            match c.Tag with
            | Some tag when tag <> c.Name ->
                match lookup.TryGetValue tag with
                | true, j when j <> i ->
                    invalidArg "options" (sprintf "metric tag '%s' is also the name of another column" tag)
                | _ -> lookup[tag] <- i
            | _ -> ()

        {
            Options = options
            LogTable = table
            Csv = csv
            Writers = Dictionary()
            Lookup = lookup
            StepIndex = indexOf options.StepColumn
            SeedIndex = indexOf SeedColumn
            Closed = false
        }

    /// Opens a fresh log in `dir` with TensorBoard on and `global_step` as the step column
    /// (see `openWith`).
    let openLog (dir: string) (columns: Column list) : MetricsLog =
        openWith (MetricsOptions.defaults dir columns)

    let private writerFor (log: MetricsLog) (seed: int option) =
        let key = defaultArg seed Int32.MinValue

        match log.Writers.TryGetValue key with
        | true, w -> w
        | _ ->
            let dir =
                match seed with
                | Some s -> Path.Combine(log.Options.Dir, sprintf "seed-%d" s)
                | None -> log.Options.Dir

            // TorchSharp computes the event files' CRC-32C in its native library.
            Native.init ()
            let w = torch.utils.tensorboard.SummaryWriter(dir)

            if not log.Options.Hyperparameters.IsEmpty then
                w.add_text ("hyperparameters", markdownTable log.Options.Hyperparameters, 0)

            log.Writers[key] <- w
            w

    let private writeRow (log: MetricsLog) (row: float[]) =
        if log.Closed then
            raise (ObjectDisposedException("MetricsLog", "the metrics log is closed"))

        let t = log.LogTable

        let seed =
            log.SeedIndex
            |> Option.map (fun i ->
                let s = row[i]

                if Double.IsFinite s && s = Math.Round s then
                    int s
                else
                    invalidArg "row" (sprintf "seed value %g is not a whole number" s))

        let step =
            match log.StepIndex with
            | Some i ->
                let s = row[i]

                if not (Double.IsFinite s) || s < 0.0 || s > float Int32.MaxValue then
                    invalidArg
                        "row"
                        (sprintf
                            "step column '%s' = %g: TensorBoard steps must be whole numbers in [0, 2^31-1]"
                            log.Options.StepColumn
                            s)

                int s
            | None ->
                match log.SeedIndex with
                | Some i -> t.Data |> Seq.filter (fun r -> r[i] = row[i]) |> Seq.length
                | None -> t.Data.Count

        t.Data.Add row

        appendLine (Path.Combine(log.Options.Dir, CsvFile)) log.Csv (csvLine (Array.map formatValue row))

        if log.Options.TensorBoard then
            Files.writing (Path.Combine(log.Options.Dir, "events.out.tfevents.*")) (fun () ->
                let w = writerFor log seed

                for c, v in Seq.zip log.Options.Columns row do
                    match c.Tag with
                    | Some tag when Double.IsFinite v -> w.add_scalar (tag, float32 v, step)
                    | _ -> ())

    /// Logs one row given as `(column name or tag, value)` pairs (missing columns are NaN): appends it to the
    /// table, writes and flushes a CSV line, and writes each tagged finite value as a TensorBoard
    /// scalar at the row's step. Raises `ArgumentException` for an unknown column, a seed that is
    /// not whole, or a step outside TensorBoard's int32 range (nothing is written then), and
    /// `ObjectDisposedException` after `close`.
    let log (pairs: (string * float) seq) (log: MetricsLog) : unit =
        let t = log.LogTable
        let row = Array.create t.Cols.Length nan

        for name, v in pairs do
            match log.Lookup.TryGetValue name with
            | true, i -> row[i] <- v
            | _ ->
                invalidArg
                    "pairs"
                    (sprintf "unknown metric column or tag '%s'; the columns are: %s" name (String.Join(", ", t.Cols)))

        writeRow log row

    /// Logs one row given in column order; see `log`.
    let logRow (values: float[]) (log: MetricsLog) : unit =
        if values.Length <> log.LogTable.Cols.Length then
            invalidArg "values" (sprintf "a metrics row needs %d values, got %d" log.LogTable.Cols.Length values.Length)

        writeRow log (Array.copy values)

    /// The table of an open log (all rows so far).
    let table (log: MetricsLog) : MetricsTable = log.LogTable

    /// Flushes and closes `metrics.csv` (same as `Dispose`); later logging raises.
    let close (log: MetricsLog) : unit = (log :> IDisposable).Dispose()

    /// True for the columns that measure time (`sps`, `*_s`, `*_seconds`, `*_per_second`), which
    /// differ between two runs of the same training and are left out by `differences`.
    let isTimingColumn (name: string) =
        name = "sps"
        || name.EndsWith "_s"
        || name.EndsWith "_seconds"
        || name.EndsWith "_per_second"

    /// How two runs' metrics differ, ignoring the timing columns: one line per difference (row
    /// counts, a column of `a` missing in `b`, or a column with `k of n rows differ, largest
    /// difference d`); empty when every compared value is identical (NaN equals NaN). `b` may have
    /// more columns. The check that resuming, a refactor or an optimisation left training unchanged.
    let differences (a: MetricsTable) (b: MetricsTable) : string list =
        let same (x: float) (y: float) =
            x = y || (Double.IsNaN x && Double.IsNaN y)

        let gap (x: float) (y: float) =
            let d = abs (x - y)
            if Double.IsNaN d then Double.PositiveInfinity else d // one side NaN

        [
            if a.Data.Count <> b.Data.Count then
                yield sprintf "rows: %d vs %d" a.Data.Count b.Data.Count

            for c in columns a |> List.filter (isTimingColumn >> not) do
                if not (hasColumn c b) then
                    yield sprintf "%-22s missing in the second table" c
                else
                    let xs, ys = column c a, column c b
                    let n = min xs.Length ys.Length

                    let diffs =
                        [
                            for i in 0 .. n - 1 do
                                if not (same xs[i] ys[i]) then
                                    yield gap xs[i] ys[i]
                        ]

                    if not diffs.IsEmpty then
                        yield
                            sprintf
                                "%-22s %d of %d rows differ, largest difference %g"
                                c
                                diffs.Length
                                n
                                (List.max diffs)
        ]
