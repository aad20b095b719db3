/// Atomic, verified checkpoints of a training run: named TorchSharp modules (`Module.save`),
/// named optimizers (`save_state_dict`, which keeps Adam's moments and step counts) and a map of
/// extra text (step counters, seeds, normalisation statistics) in one folder with a
/// `manifest.json` that lists the SHA-256 and size of every file. A checkpoint is written into a
/// temporary folder beside its target and renamed into place, so a reader sees the old complete
/// checkpoint or the new complete one; loading verifies every file before touching any module.
namespace Rl

open System
open System.Collections.Generic
open System.Globalization
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open TorchSharp

/// Raised when a checkpoint is missing, incomplete, damaged or does not fit what is loaded into
/// it. `Path` is the checkpoint folder (or file) and `Problem` says what is wrong.
exception CheckpointError of Path: string * Problem: string with
    override this.Message = sprintf "checkpoint %s: %s" this.Path this.Problem

/// One file listed in a checkpoint manifest.
type CheckpointEntry =
    {
        /// File name inside the checkpoint folder.
        File: string
        /// `module`, `optimizer` or `extra`.
        Kind: string
        /// The name the caller gave (module or optimizer name; `extra` for the text map).
        Name: string
        /// Size in bytes.
        Bytes: int64
        /// Lower-case hexadecimal SHA-256.
        Sha256: string
    }

/// The contents of `manifest.json`.
type CheckpointManifest =
    {
        /// Format tag, `rl-checkpoint/1`.
        Format: string
        /// UTC time the checkpoint was written (ISO 8601).
        Created: DateTime
        /// Every file of the checkpoint.
        Entries: CheckpointEntry list
    }

/// Saving, verifying and loading checkpoints.
module Checkpoint =
    /// Name of the manifest file inside a checkpoint folder.
    [<Literal>]
    let ManifestFile = "manifest.json"

    /// Format tag written into and required from manifests.
    [<Literal>]
    let Format = "rl-checkpoint/1"

    [<Literal>]
    let private ExtraFile = "extra.json"

    /// The manifest's own SHA-256 (hex), written beside it (checkpoints from before it existed
    /// have none and are read as before).
    [<Literal>]
    let ManifestChecksumFile = ManifestFile + ".sha256"

    let private fail path problem = raise (CheckpointError(path, problem))

    let private validName = Regex(@"^[A-Za-z0-9_\-]+\z")

    let private checkNames (kind: string) (names: string list) =
        for n in names do
            if not (validName.IsMatch n) then
                invalidArg "names" (sprintf "%s name '%s' must be letters, digits, '_' or '-'" kind n)

        match names |> List.countBy id |> List.filter (fun (_, c) -> c > 1) with
        | [] -> ()
        | (n, _) :: _ -> invalidArg "names" (sprintf "duplicate %s name '%s'" kind n)

    let private moduleFile name = sprintf "module.%s.dat" name
    let private optimizerFile name = sprintf "optimizer.%s.dat" name

    let private siblings (dir: string) (marker: string) =
        let full = Path.GetFullPath dir
        let parent = Path.GetDirectoryName full
        let name = Path.GetFileName full

        if Directory.Exists parent then
            Directory.GetDirectories(parent, sprintf ".%s.%s-*" name marker) |> List.ofArray
        else
            []

    let private writeJson (path: string) (write: Utf8JsonWriter -> unit) =
        do
            use fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write)
            use w = new Utf8JsonWriter(fs, JsonWriterOptions(Indented = true))
            write w
            w.Flush()
            fs.Flush(true)

    let private entryOf (dir: string) kind name file =
        let p = Path.Combine(dir, file)
        Files.fsync p

        {
            File = file
            Kind = kind
            Name = name
            Bytes = FileInfo(p).Length
            Sha256 = Files.sha256 p
        }

    /// Saves the modules, optimizer states and `extra` text map as a checkpoint folder `dir`,
    /// atomically: everything is written and flushed into `.<name>.tmp-<id>` beside `dir`,
    /// `manifest.json` last; then an existing `dir` is renamed aside, the new folder renamed to
    /// `dir`, and the old one deleted. If the process dies in between, `load` recovers the newest
    /// complete copy. One writer per checkpoint folder at a time. Names must be letters, digits,
    /// `_` or `-` and unique per kind (`ArgumentException`); a failed write (a full disk) raises
    /// `Files.WriteFailedException` naming the checkpoint after the temporary folder is removed,
    /// leaving an older checkpoint untouched.
    let rec save
        (dir: string)
        (modules: (string * torch.nn.Module) list)
        (optimizers: (string * Modules.OptimizerHelper) list)
        (extra: Map<string, string>)
        : unit =
        Files.writing dir (fun () -> saveUnchecked dir modules optimizers extra)

    and private saveUnchecked
        (dir: string)
        (modules: (string * torch.nn.Module) list)
        (optimizers: (string * Modules.OptimizerHelper) list)
        (extra: Map<string, string>)
        : unit =
        checkNames "module" (List.map fst modules)
        checkNames "optimizer" (List.map fst optimizers)
        let full = Path.GetFullPath dir
        let parent = Path.GetDirectoryName full
        let name = Path.GetFileName full
        Directory.CreateDirectory parent |> ignore
        let id = Guid.NewGuid().ToString "N"
        let tmp = Path.Combine(parent, sprintf ".%s.tmp-%s" name id)
        Directory.CreateDirectory tmp |> ignore

        try
            let moduleEntries =
                modules
                |> List.map (fun (n, m) ->
                    let f = moduleFile n
                    m.save (Path.Combine(tmp, f)) |> ignore
                    entryOf tmp "module" n f)

            let optimizerEntries =
                optimizers
                |> List.map (fun (n, o) ->
                    let f = optimizerFile n
                    o.save_state_dict (Path.Combine(tmp, f))
                    entryOf tmp "optimizer" n f)

            writeJson (Path.Combine(tmp, ExtraFile)) (fun w ->
                w.WriteStartObject()

                for KeyValue(k, v) in extra do
                    w.WriteString(k, v)

                w.WriteEndObject())

            let entries =
                moduleEntries @ optimizerEntries @ [ entryOf tmp "extra" "extra" ExtraFile ]

            writeJson (Path.Combine(tmp, ManifestFile)) (fun w ->
                w.WriteStartObject()
                w.WriteString("format", Format)
                w.WriteString("created", DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture))
                w.WriteStartArray "files"

                for e in entries do
                    w.WriteStartObject()
                    w.WriteString("file", e.File)
                    w.WriteString("kind", e.Kind)
                    w.WriteString("name", e.Name)
                    w.WriteNumber("bytes", e.Bytes)
                    w.WriteString("sha256", e.Sha256)
                    w.WriteEndObject()

                w.WriteEndArray()
                w.WriteEndObject())

            // the manifest's own checksum, so that a damaged manifest is refused as such
            Files.writeChecksum (Path.Combine(tmp, ManifestFile))
        with _ ->
            (try
                Directory.Delete(tmp, true)
             with _ ->
                 ())

            reraise ()

        if Directory.Exists full then
            let old = Path.Combine(parent, sprintf ".%s.old-%s" name id)
            Directory.Move(full, old)
            Directory.Move(tmp, full)
            Directory.Delete(old, true)
        else
            Directory.Move(tmp, full)

        // Leftovers of earlier interrupted saves are now superseded.
        for d in siblings full "tmp" @ siblings full "old" do
            try
                Directory.Delete(d, true)
            with _ ->
                ()

    let private readManifest (dir: string) : CheckpointManifest =
        let path = Path.Combine(dir, ManifestFile)

        if not (File.Exists path) then
            fail
                dir
                (sprintf "no %s: the checkpoint is incomplete (interrupted save?) or not a checkpoint" ManifestFile)

        // checkpoints written before the manifest had its own checksum have no such file
        match Files.checksumProblem path with
        | Some problem -> fail dir problem
        | None -> ()

        try
            use doc = JsonDocument.Parse(File.ReadAllText path)
            let root = doc.RootElement
            let format = root.GetProperty("format").GetString()

            if format <> Format then
                fail dir (sprintf "%s has format '%s', expected '%s'" ManifestFile format Format)

            {
                Format = format
                Created =
                    DateTime.Parse(
                        root.GetProperty("created").GetString(),
                        CultureInfo.InvariantCulture,
                        DateTimeStyles.RoundtripKind
                    )
                Entries =
                    [
                        for e in root.GetProperty("files").EnumerateArray() ->
                            {
                                File = e.GetProperty("file").GetString()
                                Kind = e.GetProperty("kind").GetString()
                                Name = e.GetProperty("name").GetString()
                                Bytes = e.GetProperty("bytes").GetInt64()
                                Sha256 = e.GetProperty("sha256").GetString()
                            }
                    ]
            }
        with
        | CheckpointError _ -> reraise ()
        | e -> fail dir (sprintf "%s is damaged: %s" ManifestFile e.Message)

    let private verifyAt (dir: string) : CheckpointManifest =
        if not (Directory.Exists dir) then
            fail dir "no checkpoint folder"

        let m = readManifest dir

        for e in m.Entries do
            if e.File <> Path.GetFileName e.File || e.File.StartsWith "." then
                fail dir (sprintf "%s lists an invalid file name '%s'" ManifestFile e.File)

            let p = Path.Combine(dir, e.File)

            if not (File.Exists p) then
                fail dir (sprintf "file '%s' (%s '%s') listed in %s is missing" e.File e.Kind e.Name ManifestFile)

            let size = FileInfo(p).Length

            if size <> e.Bytes then
                fail
                    dir
                    (sprintf
                        "file '%s' has %d bytes but %s says %d (truncated or changed)"
                        e.File
                        size
                        ManifestFile
                        e.Bytes)

            if Files.sha256 p <> e.Sha256 then
                fail dir (sprintf "file '%s' is damaged: its SHA-256 differs from %s" e.File ManifestFile)

        m

    /// The folder that holds the newest complete checkpoint for `dir`: `dir` itself when it has a
    /// manifest, otherwise the newest verified leftover of an interrupted save
    /// (`.<name>.tmp-*`/`.<name>.old-*` beside it), otherwise `dir` (whose verification then fails).
    let private locate (dir: string) =
        let full = Path.GetFullPath dir

        if File.Exists(Path.Combine(full, ManifestFile)) then
            full
        else
            let recovered =
                siblings full "tmp" @ siblings full "old"
                |> List.choose (fun d ->
                    try
                        Some(d, (verifyAt d).Created)
                    with CheckpointError _ ->
                        None)
                |> List.sortByDescending snd
                |> List.tryHead

            match recovered with
            | Some(d, _) -> d
            | None -> full

    /// Verifies the checkpoint `dir` (or the newest complete copy left by an interrupted save)
    /// and returns its manifest. Raises `CheckpointError` naming the folder and the problem: no
    /// folder, no manifest (incomplete), a damaged manifest, a listed file that is missing, has
    /// another size, or has another SHA-256.
    let verify (dir: string) : CheckpointManifest = verifyAt (locate dir)

    /// True when `dir` holds a checkpoint that passes `verify`.
    let exists (dir: string) : bool =
        try
            verify dir |> ignore
            true
        with CheckpointError _ ->
            false

    let private readExtraAt (dir: string) : Map<string, string> =
        use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, ExtraFile)))

        doc.RootElement.EnumerateObject()
        |> Seq.map (fun p -> p.Name, p.Value.GetString())
        |> Map.ofSeq

    /// The extra text map of a verified checkpoint (e.g. to read the step counter before building
    /// the modules). Raises `CheckpointError` as `verify` does.
    let readExtra (dir: string) : Map<string, string> =
        let d = locate dir
        verifyAt d |> ignore
        readExtraAt d

    /// Verifies the checkpoint `dir` (see `verify`), then loads each named module
    /// (`Module.load`, strict) and optimizer state (`load_state_dict`) into the given objects and
    /// returns the extra text map. Nothing is loaded unless every file verifies and every name is
    /// present. Load modules on the CPU and move them afterwards. Raises `CheckpointError` for a
    /// bad checkpoint, a name it does not contain (listing the names it has), or a module or
    /// optimizer whose shapes do not fit.
    let load
        (dir: string)
        (modules: (string * torch.nn.Module) list)
        (optimizers: (string * Modules.OptimizerHelper) list)
        : Map<string, string> =
        let d = locate dir
        let m = verifyAt d

        let find kind (name: string) =
            match m.Entries |> List.tryFind (fun e -> e.Kind = kind && e.Name = name) with
            | Some e -> Path.Combine(d, e.File)
            | None ->
                let have =
                    m.Entries |> List.filter (fun e -> e.Kind = kind) |> List.map (fun e -> e.Name)

                fail d (sprintf "has no %s named '%s' (it has: %s)" kind name (String.Join(", ", have)))

        let modulePaths = modules |> List.map (fun (n, md) -> n, md, find "module" n)
        let optimizerPaths = optimizers |> List.map (fun (n, o) -> n, o, find "optimizer" n)

        for n, md, p in modulePaths do
            try
                md.load p |> ignore
            with e ->
                fail d (sprintf "module '%s' does not fit the saved one: %s" n e.Message)

        for n, o, p in optimizerPaths do
            try
                o.load_state_dict p
            with e ->
                fail d (sprintf "optimizer '%s' does not fit the saved one: %s" n e.Message)

        readExtraAt d

    /// Floats as text for the extra map (e.g. observation-normalisation mean and variance): a
    /// JSON array of round-trip numbers (NaN and infinities as `"NaN"`, `"Infinity"`, `"-Infinity"`).
    let encodeFloats (xs: float[]) : string =
        let opts = JsonSerializerOptions()
        opts.NumberHandling <- Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals
        JsonSerializer.Serialize(xs, opts)

    /// Reads floats written by `encodeFloats`. Raises `FormatException` for other text.
    let decodeFloats (text: string) : float[] =
        let opts = JsonSerializerOptions()
        opts.NumberHandling <- Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals

        try
            JsonSerializer.Deserialize<float[]>(text, opts)
        with e ->
            raise (FormatException(sprintf "not a float array written by encodeFloats: %s" e.Message, e))
