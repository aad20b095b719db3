module Rl.Tests.ExperimentTests

open System
open System.Globalization
open System.IO
open Expecto
open FsCheck
open TorchSharp
open Rl

/// Runs `f` with a fresh temporary folder and deletes it afterwards.
let withTempDir (f: string -> unit) =
    let d = Path.Combine(Path.GetTempPath(), "rl-test-" + Guid.NewGuid().ToString "N")
    Directory.CreateDirectory d |> ignore

    try
        f d
    finally
        try
            Directory.Delete(d, true)
        with _ ->
            ()

/// Runs `f` and returns the exception of type 'E it raises; fails the test otherwise.
let throws<'E when 'E :> exn> (f: unit -> unit) : 'E =
    try
        f ()
        failtest (sprintf "expected %s" typeof<'E>.Name)
    with :? 'E as e ->
        e

/// Runs `f` and returns the CheckpointError it raises; fails the test otherwise.
let checkpointError (f: unit -> unit) : exn =
    try
        f ()
        failtest "expected a CheckpointError"
    with CheckpointError _ as e ->
        e

/// Equal as floats, with NaN equal to NaN.
let sameFloat (a: float) (b: float) =
    (Double.IsNaN a && Double.IsNaN b) || a = b

let sameRows (a: float[][]) (b: float[][]) =
    a.Length = b.Length
    && Array.forall2 (fun (x: float[]) (y: float[]) -> x.Length = y.Length && Array.forall2 sameFloat x y) a b

// ---------------------------------------------------------------------------------------------
// TensorBoard event files, read independently of TorchSharp's writer: TFRecord framing
// (uint64 length, masked CRC-32C of the length, data, masked CRC-32C of the data) and the
// protobuf `Event` messages.

let private crc32cTable =
    Array.init 256 (fun n ->
        let mutable c = uint32 n

        for _ in 1..8 do
            c <-
                if c &&& 1u <> 0u then
                    0x82F63B78u ^^^ (c >>> 1)
                else
                    c >>> 1

        c)

/// CRC-32C (Castagnoli), the checksum of TFRecord files.
let crc32c (bytes: byte[]) =
    let mutable c = 0xFFFFFFFFu

    for b in bytes do
        c <- crc32cTable[int ((c ^^^ uint32 b) &&& 0xFFu)] ^^^ (c >>> 8)

    c ^^^ 0xFFFFFFFFu

/// TFRecord's masked CRC: rotate right by 15 bits and add a constant.
let maskedCrc (bytes: byte[]) =
    let c = crc32c bytes
    ((c >>> 15) ||| (c <<< 17)) + 0xa282ead8u

/// The events of a TensorBoard file as (tag, step, value) for scalar summaries; fails the test if
/// a record's framing or checksum is wrong.
let readScalars (path: string) =
    let bytes = File.ReadAllBytes path
    let mutable off = 0

    [
        while off < bytes.Length do
            let lenBytes = bytes[off .. off + 7]
            let len = int (BitConverter.ToInt64(lenBytes, 0))
            Expect.equal (BitConverter.ToUInt32(bytes, off + 8)) (maskedCrc lenBytes) "length CRC"
            let data = bytes[off + 12 .. off + 12 + len - 1]
            Expect.equal (BitConverter.ToUInt32(bytes, off + 12 + len)) (maskedCrc data) "data CRC"
            off <- off + 16 + len
            let ev = Tensorboard.Event.Parser.ParseFrom data

            if not (isNull ev.Summary) then
                for v in ev.Summary.Value do
                    if v.ValueCase = Tensorboard.Summary.Types.Value.ValueOneofCase.SimpleValue then
                        yield v.Tag, ev.Step, v.SimpleValue
    ]

let eventFiles (dir: string) =
    Directory.GetFiles(dir, "events.out.tfevents.*") |> List.ofArray

let columns =
    [
        Column.plain "global_step"
        Column.tagged "charts/episodic_return"
        Column.tagged "losses/approx_kl"
    ]

let metricsTests =
    testList
        "Metrics"
        [
            test "table rows, columns, where and per-seed groups" {
                let t = Metrics.empty [ "seed"; "global_step"; "return" ]
                Metrics.add [ "seed", 1.0; "global_step", 100.0; "return", 5.0 ] t
                Metrics.add [ "global_step", 100.0; "seed", 0.0 ] t
                Metrics.addRow [| 1.0; 200.0; 7.0 |] t
                Metrics.addRow [| 0.0; 200.0; 6.0 |] t
                Expect.equal (Metrics.count t) 4 "rows"
                Expect.equal (Metrics.column "global_step" t) [| 100.0; 100.0; 200.0; 200.0 |] "column"
                Expect.isTrue (Double.IsNaN((Metrics.column "return" t)[1])) "missing value is NaN"
                let groups = Metrics.bySeed t
                Expect.equal (groups |> List.map fst) [ 0; 1 ] "seeds sorted"
                Expect.equal (Metrics.column "return" (snd groups[1])) [| 5.0; 7.0 |] "seed 1 rows in order"
                Expect.equal (Metrics.lastFinite "return" (snd groups[0])) (Some 6.0) "last finite"
                Expect.equal (Metrics.count (Metrics.where "global_step" (fun s -> s <= 100.0) t)) 2 "where"
                Expect.equal (Metrics.bySeed (Metrics.empty [ "x" ]) |> List.map fst) [ 0 ] "no seed column: one group"

                let copy = Metrics.ofRows (Metrics.columns t) (Metrics.rows t)
                Expect.equal copy t "equal tables (NaN equals NaN)"
                Metrics.addRow [| 0.0; 300.0; 1.0 |] copy
                Expect.notEqual copy t "a different row count differs"
            }

            test "unknown columns, wrong lengths and bad names are refused" {
                let t = Metrics.empty [ "a"; "b" ]
                Expect.throwsT<ArgumentException> (fun () -> Metrics.add [ "c", 1.0 ] t) "unknown column"
                Expect.throwsT<ArgumentException> (fun () -> Metrics.addRow [| 1.0 |] t) "short row"
                Expect.equal (Metrics.count t) 0 "nothing added"
                Expect.throwsT<ArgumentException> (fun () -> Metrics.empty [ "a"; "a" ] |> ignore) "duplicate"
                Expect.throwsT<ArgumentException> (fun () -> Metrics.empty [ "a,b" ] |> ignore) "comma"

                Expect.throwsT<Collections.Generic.KeyNotFoundException>
                    (fun () -> Metrics.column "z" t |> ignore)
                    "unknown column read"
            }

            test "CSV text round-trips special values exactly" {
                let rows =
                    [|
                        [| 0.1; -2.5e-300; 1e21; nan |]
                        [| infinity; -infinity; 2048.0; -0.0 |]
                        [| Double.MaxValue; Double.Epsilon; 1.0 / 3.0; 0.0 |]
                    |]

                let t = Metrics.ofRows [ "a"; "b"; "c"; "d" ] rows
                let csv = Metrics.toCsv t
                Expect.stringStarts csv "a,b,c,d\n0.1,-2.5E-300,1E+21,nan\ninf,-inf,2048," "text form"
                let back = Metrics.parseCsv "test" csv
                Expect.equal (Metrics.columns back) [ "a"; "b"; "c"; "d" ] "header"
                Expect.isTrue (sameRows (Metrics.rows back) rows) "values"
            }

            testProperty "any finite or special floats survive a CSV round trip"
            <| fun (values: float list) ->
                let row = Array.ofList (0.0 :: values)
                let names = row |> Array.mapi (fun i _ -> sprintf "c%d" i) |> List.ofArray
                let t = Metrics.ofRows names [ row; Array.rev row ]
                sameRows (Metrics.rows (Metrics.parseCsv "p" (Metrics.toCsv t))) (Metrics.rows t)

            test "bad CSV lines are refused with the line; an interrupted last line is dropped" {
                let e =
                    throws<FormatException>(fun () -> Metrics.parseCsv "m.csv" "a,b\n1,2\n3\n" |> ignore)

                Expect.stringContains e.Message "m.csv line 3" "line named"

                let e =
                    throws<FormatException>(fun () -> Metrics.parseCsv "m.csv" "a,b\n1,x\n" |> ignore)

                Expect.stringContains e.Message "'x'" "value named"
                let t = Metrics.parseCsv "m.csv" "a,b\n1,2\n3,4"
                Expect.equal (Metrics.rows t) [| [| 1.0; 2.0 |] |] "partial last line dropped"
            }

            test "the log writes metrics.csv once per row, flushed, in the invariant culture" {
                withTempDir (fun dir ->
                    let saved = CultureInfo.CurrentCulture
                    CultureInfo.CurrentCulture <- CultureInfo "de-DE"

                    try
                        use log = Metrics.openLog dir columns
                        Metrics.log [ "global_step", 128.0; "losses/approx_kl", 0.5 ] log |> ignore
                        Metrics.log [ "global_step", 256.0; "approx_kl", 0.25; "episodic_return", 12.5 ] log
                        // Read while the log is still open: rows must already be on disk.
                        use fs =
                            new FileStream(
                                Path.Combine(dir, "metrics.csv"),
                                FileMode.Open,
                                FileAccess.Read,
                                FileShare.ReadWrite
                            )

                        let text = (new StreamReader(fs)).ReadToEnd()
                        Expect.equal text "global_step,episodic_return,approx_kl\n128,nan,0.5\n256,12.5,0.25\n" "csv"
                        Expect.equal (Metrics.count log.Table) 2 "table"
                    finally
                        CultureInfo.CurrentCulture <- saved)
            }

            test "the log writes TensorBoard scalars with tags and steps that a reader can verify" {
                withTempDir (fun dir ->
                    do
                        use log =
                            Metrics.openWith
                                { MetricsOptions.defaults dir columns with
                                    Hyperparameters = [ "gamma", "0.99" ]
                                }

                        Metrics.log [ "global_step", 128.0; "approx_kl", 0.5 ] log
                        Metrics.log [ "global_step", 256.0; "approx_kl", 0.25; "episodic_return", 12.5 ] log

                    let files = eventFiles dir
                    Expect.equal files.Length 1 "one event file"
                    let scalars = readScalars files.Head

                    Expect.equal
                        scalars
                        [
                            "losses/approx_kl", 128L, 0.5f
                            "charts/episodic_return", 256L, 12.5f
                            "losses/approx_kl", 256L, 0.25f
                        ]
                        "tagged finite values at their steps (NaN and untagged columns skipped)")
            }

            test "multi-seed logs write one TensorBoard run per seed" {
                withTempDir (fun dir ->
                    do
                        use log = Metrics.openLog dir (Column.plain "seed" :: columns)

                        for s in [ 0.0; 1.0 ] do
                            Metrics.log [ "seed", s; "global_step", 10.0; "approx_kl", s + 0.5 ] log

                    for s in [ 0; 1 ] do
                        let files = eventFiles (Path.Combine(dir, sprintf "seed-%d" s))
                        Expect.equal files.Length 1 "event file per seed"

                        Expect.equal
                            (readScalars files.Head)
                            [ "losses/approx_kl", 10L, float32 s + 0.5f ]
                            "seed's own values"

                    Expect.isEmpty (eventFiles dir) "no events at the top level")
            }

            test "resuming appends to metrics.csv after checking its header" {
                withTempDir (fun dir ->
                    do
                        use log = Metrics.openLog dir columns
                        Metrics.log [ "global_step", 1.0 ] log
                        Metrics.log [ "global_step", 2.0 ] log

                    Expect.throwsT<IOException> (fun () -> Metrics.openLog dir columns |> ignore) "no silent overwrite"
                    let path = Path.Combine(dir, "metrics.csv")
                    // Simulate an interrupted write of a third row.
                    File.AppendAllText(path, "3,0.")

                    let options =
                        { MetricsOptions.defaults dir columns with
                            Append = true
                        }

                    do
                        use log = Metrics.openWith options
                        Expect.equal (Metrics.column "global_step" log.Table) [| 1.0; 2.0 |] "old rows loaded"
                        Metrics.log [ "global_step", 3.0 ] log

                    Expect.equal
                        (File.ReadAllText path)
                        "global_step,episodic_return,approx_kl\n1,nan,nan\n2,nan,nan\n3,nan,nan\n"
                        "one header, partial line dropped"

                    Expect.equal (Metrics.count (Metrics.readCsv path)) 3 "reads back"

                    Expect.throwsT<InvalidDataException>
                        (fun () ->
                            Metrics.openWith
                                { options with
                                    Columns = [ Column.plain "other" ]
                                }
                            |> ignore)
                        "header mismatch")
            }

            test "a bad row is refused before anything is written; a closed log refuses rows" {
                withTempDir (fun dir ->
                    let log = Metrics.openLog dir columns
                    Expect.throwsT<ArgumentException> (fun () -> Metrics.log [ "nope", 1.0 ] log) "unknown"

                    Expect.throwsT<ArgumentException>
                        (fun () -> Metrics.log [ "global_step", -5.0 ] log)
                        "negative step"

                    Expect.equal (Metrics.count log.Table) 0 "nothing in the table"
                    Metrics.close log

                    Expect.equal
                        (File.ReadAllText(Path.Combine(dir, "metrics.csv")))
                        "global_step,episodic_return,approx_kl\n"
                        "header only"

                    Expect.throwsT<ObjectDisposedException> (fun () -> Metrics.log [ "global_step", 1.0 ] log) "closed")
            }
        ]

// ---------------------------------------------------------------------------------------------

let makeNet () =
    torch.nn.Sequential(torch.nn.Linear(3L, 8L), torch.nn.Tanh(), torch.nn.Linear(8L, 2L))

let parameters (m: torch.nn.Module) =
    m.parameters ()
    |> Seq.map (fun p -> p.detach().cpu().data<float32>().ToArray())
    |> Array.ofSeq

/// One Adam step on a fixed batch.
let adamStep (net: torch.nn.Module<torch.Tensor, torch.Tensor>) (opt: Modules.OptimizerHelper) =
    use _ = torch.NewDisposeScope()
    use x = torch.linspace(-1.0, 1.0, 12L).reshape(4L, 3L)
    opt.zero_grad ()
    let y = net.forward x
    let loss = (y * y).sum()
    loss.backward ()
    opt.step () |> ignore

let checkpointTests =
    testList
        "Checkpoint"
        [
            test "round trip restores weights, Adam state and extra text" {
                withTempDir (fun root ->
                    let dir = Path.Combine(root, "checkpoint")
                    let net = makeNet ()
                    let opt = torch.optim.Adam(net.parameters (), lr = 0.01)

                    for _ in 1..3 do
                        adamStep net opt

                    Checkpoint.save dir [ "actor", net ] [ "adam", opt ] (Map [ "step", "3"; "note", "é ✓" ])

                    let net2 = makeNet ()
                    let opt2 = torch.optim.Adam(net2.parameters (), lr = 0.01)
                    Expect.notEqual (parameters net2) (parameters net) "fresh net differs"
                    let extra = Checkpoint.load dir [ "actor", net2 ] [ "adam", opt2 ]
                    Expect.equal extra (Map [ "step", "3"; "note", "é ✓" ]) "extra"
                    Expect.equal (parameters net2) (parameters net) "weights equal"
                    // Equal Adam moments and step counts give bit-identical next steps.
                    adamStep net opt
                    adamStep net2 opt2
                    Expect.equal (parameters net2) (parameters net) "same Adam step after load"
                    Expect.equal (Checkpoint.verify dir).Entries.Length 3 "module, optimizer, extra"
                    Expect.equal (Directory.GetDirectories root) [| dir |] "no temporary folders left")
            }

            test "saving again replaces the checkpoint" {
                withTempDir (fun root ->
                    let dir = Path.Combine(root, "checkpoint")
                    let net = makeNet ()
                    Checkpoint.save dir [ "actor", net ] [] (Map [ "step", "1" ])
                    Checkpoint.save dir [ "actor", net ] [] (Map [ "step", "2" ])
                    Expect.equal (Checkpoint.readExtra dir) (Map [ "step", "2" ]) "newer"
                    Expect.equal (Directory.GetDirectories root) [| dir |] "old copy removed")
            }

            test "a damaged file is refused, naming it, and nothing is loaded" {
                withTempDir (fun root ->
                    let dir = Path.Combine(root, "checkpoint")
                    let net = makeNet ()
                    Checkpoint.save dir [ "actor", net ] [] Map.empty
                    let file = Path.Combine(dir, "module.actor.dat")
                    let bytes = File.ReadAllBytes file
                    bytes[bytes.Length - 3] <- bytes[bytes.Length - 3] ^^^ 0x40uy
                    File.WriteAllBytes(file, bytes)
                    let net2 = makeNet ()
                    let before = parameters net2

                    let e =
                        checkpointError (fun () -> Checkpoint.load dir [ "actor", net2 ] [] |> ignore)

                    Expect.stringContains e.Message "module.actor.dat" "file named"
                    Expect.stringContains e.Message "damaged" "problem named"
                    Expect.equal (parameters net2) before "module untouched"
                    Expect.isFalse (Checkpoint.exists dir) "exists says no")
            }

            test "a truncated or missing file is refused" {
                withTempDir (fun root ->
                    let dir = Path.Combine(root, "checkpoint")
                    let net = makeNet ()
                    let opt = torch.optim.Adam(net.parameters ())
                    Checkpoint.save dir [ "actor", net ] [ "adam", opt ] Map.empty
                    let file = Path.Combine(dir, "optimizer.adam.dat")
                    let bytes = File.ReadAllBytes file
                    File.WriteAllBytes(file, bytes[.. bytes.Length - 2])
                    let e = checkpointError (fun () -> Checkpoint.verify dir |> ignore)
                    Expect.stringContains e.Message "optimizer.adam.dat" "file named"
                    Expect.stringContains e.Message "bytes" "size problem"
                    File.Delete file
                    let e = checkpointError (fun () -> Checkpoint.verify dir |> ignore)
                    Expect.stringContains e.Message "missing" "missing file")
            }

            test "a missing manifest or folder is refused" {
                withTempDir (fun root ->
                    let dir = Path.Combine(root, "checkpoint")
                    let e = checkpointError (fun () -> Checkpoint.verify dir |> ignore)
                    Expect.stringContains e.Message "no checkpoint folder" "no folder"
                    Checkpoint.save dir [ "actor", makeNet () ] [] Map.empty
                    File.Delete(Path.Combine(dir, "manifest.json"))

                    let e =
                        checkpointError (fun () -> Checkpoint.load dir [ "actor", makeNet () ] [] |> ignore)

                    Expect.stringContains e.Message "manifest.json" "manifest named"
                    Expect.stringContains e.Message "incomplete" "problem named"
                    File.WriteAllText(Path.Combine(dir, "manifest.json"), "{ not json")
                    let e = checkpointError (fun () -> Checkpoint.verify dir |> ignore)
                    Expect.stringContains e.Message "damaged" "bad manifest")
            }

            test "names that are absent or modules that do not fit are refused" {
                withTempDir (fun root ->
                    let dir = Path.Combine(root, "checkpoint")
                    Checkpoint.save dir [ "actor", makeNet () ] [] Map.empty

                    let e =
                        checkpointError (fun () -> Checkpoint.load dir [ "critic", makeNet () ] [] |> ignore)

                    Expect.stringContains e.Message "critic" "asked name"
                    Expect.stringContains e.Message "actor" "available names"

                    let other =
                        torch.nn.Sequential(torch.nn.Linear(5L, 8L), torch.nn.Tanh(), torch.nn.Linear(8L, 2L))

                    let e =
                        checkpointError (fun () -> Checkpoint.load dir [ "actor", other ] [] |> ignore)

                    Expect.stringContains e.Message "does not fit" "shape mismatch"

                    Expect.throwsT<ArgumentException>
                        (fun () -> Checkpoint.save dir [ "a/b", makeNet () ] [] Map.empty)
                        "bad name")
            }

            test "an interrupted replacement is recovered from the newest complete copy" {
                withTempDir (fun root ->
                    let dir = Path.Combine(root, "checkpoint")
                    Checkpoint.save dir [ "actor", makeNet () ] [] (Map [ "step", "1" ])
                    let scratch = Path.Combine(root, "scratch")
                    Threading.Thread.Sleep 20
                    Checkpoint.save scratch [ "actor", makeNet () ] [] (Map [ "step", "2" ])
                    // The state between the two renames of `save`: old copy aside, new copy complete.
                    Directory.Move(dir, Path.Combine(root, ".checkpoint.old-x"))
                    Directory.Move(scratch, Path.Combine(root, ".checkpoint.tmp-y"))
                    Expect.equal (Checkpoint.readExtra dir) (Map [ "step", "2" ]) "newest complete copy"
                    Checkpoint.save dir [ "actor", makeNet () ] [] (Map [ "step", "3" ])
                    Expect.equal (Directory.GetDirectories root) [| dir |] "leftovers cleaned")
            }

            test "float arrays survive the extra map" {
                let xs = [| 0.1; -1e-300; nan; infinity; 3.0 |]

                Expect.isTrue
                    (Array.forall2 sameFloat (Checkpoint.decodeFloats (Checkpoint.encodeFloats xs)) xs)
                    "exact"

                Expect.throwsT<FormatException> (fun () -> Checkpoint.decodeFloats "abc" |> ignore) "bad text"
            }
        ]

// ---------------------------------------------------------------------------------------------

let runTests =
    testList
        "Run"
        [
            test "create makes runs/<algo>-<env>-<time> with config.yaml, unique and sanitised" {
                withTempDir (fun root ->
                    let time = DateTime(2025, 3, 4, 5, 6, 7)
                    let a = Run.createAt time root "ppo" "CartPole-v1" "gamma: 0.99\n"
                    Expect.equal (Path.GetFileName a) "ppo-CartPole-v1-20250304-050607" "name"
                    Expect.equal (File.ReadAllText(Path.Combine(a, "config.yaml"))) "gamma: 0.99\n" "config"
                    let b = Run.createAt time root "ppo" "CartPole-v1" "x: 1\n"
                    Expect.equal (Path.GetFileName b) "ppo-CartPole-v1-20250304-050607-2" "unique"
                    let c = Run.createAt time root "ppo" "ALE/Pong-v5" ""
                    Expect.equal (Path.GetFileName c) "ppo-ALE_Pong-v5-20250304-050607" "sanitised"
                    Expect.equal (Directory.GetDirectories root |> Array.length) 3 "no staging folders left")
            }

            test "a run folder names its algorithm: the config.yaml line, else the folder's prefix" {
                withTempDir (fun root ->
                    let time = DateTime(2025, 3, 4, 5, 6, 7)
                    let yaml = Run.algorithmLine "dqn" + "gamma: 0.99\n"
                    let a = Run.createAt time root "dqn" "CartPole-v1" yaml
                    Expect.equal (Run.algorithmOf a) (Some "dqn") "from the line"

                    let back =
                        Config.load ConfigTests.fields ConfigTests.defaults (Path.Combine(a, "config.yaml"))

                    Expect.equal back.Gamma 0.99 "the line is a comment: the config reads back"
                    let renamed = Path.Combine(root, "my-favourite-run")
                    Directory.Move(a, renamed)
                    Expect.equal (Run.algorithmOf renamed) (Some "dqn") "the line wins over the name"
                    let old = Run.createAt time root "grpo" "MNIST" "gamma: 0.99\n"
                    Expect.equal (Run.algorithmOf old) (Some "grpo") "folders without the line: the prefix"
                    Expect.equal (Run.algorithmOf (Path.Combine(root, "nothing-here"))) None "no config.yaml")
            }

            test "a bad config is refused before the run folder exists" {
                withTempDir (fun tmp ->
                    let root = Path.Combine(tmp, "runs")

                    let start overrides =
                        let cfg =
                            Config.resolve ConfigTests.fields ConfigTests.defaults ConfigTests.validate None overrides

                        Run.create root "ppo" cfg.EnvId (Config.toYaml ConfigTests.fields cfg)

                    ConfigTests.configError (fun () -> start [ "gamma=2" ]) |> ignore
                    Expect.isFalse (Directory.Exists root) "nothing written"
                    let dir = start [ "gamma=0.5" ]

                    let back =
                        Config.load ConfigTests.fields ConfigTests.defaults (Path.Combine(dir, "config.yaml"))

                    Expect.equal back.Gamma 0.5 "config.yaml reads back")
            }

            test "summary.json is written atomically with numbers and strings" {
                withTempDir (fun dir ->
                    let pairs =
                        [
                            "algo", Text "ppo"
                            "final_return", Number -150.25
                            "total_steps", Integer 1_000_000L
                            "diverged", Number nan
                            "note", Text "quote \" <b>"
                        ]

                    Run.writeSummary dir pairs
                    Expect.equal (Directory.GetFiles dir |> Array.map Path.GetFileName) [| "summary.json" |] "one file"

                    use doc =
                        Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))

                    let root = doc.RootElement
                    Expect.equal (root.GetProperty("final_return").GetDouble()) -150.25 "number"
                    Expect.equal (root.GetProperty("total_steps").GetInt64()) 1_000_000L "integer"
                    Expect.equal (root.GetProperty("algo").GetString()) "ppo" "string"
                    Expect.equal (root.GetProperty("diverged").GetString()) "NaN" "NaN as a string"
                    let back = Run.readSummary dir
                    Expect.equal (back |> List.map fst) (pairs |> List.map fst) "keys in order"
                    Expect.equal back[1] ("final_return", Number -150.25) "float back"
                    Expect.equal back[2] ("total_steps", Integer 1_000_000L) "integer back"
                    Expect.equal back[4] ("note", Text "quote \" <b>") "text back"

                    Expect.equal
                        (Run.summaryText pairs |> List.take 3)
                        [ "algo", "ppo"; "final_return", "-150.25"; "total_steps", "1,000,000" ]
                        "display text"

                    Expect.throwsT<ArgumentException>
                        (fun () -> Run.writeSummary dir [ "a", Integer 1L; "a", Integer 2L ])
                        "duplicate key")
            }
        ]

let progressTests =
    testList
        "Progress"
        [
            test "formatLine shows steps, percent, speed, return, elapsed and ETA" {
                Expect.equal
                    (Progress.formatLine "ppo" 0L 40_000L 500_000L (TimeSpan.FromSeconds 20.0) 123.4)
                    "ppo 40,000/500,000 (8.0%) | 2,000 steps/s | return 123.4 | elapsed 00:00:20 | eta 00:03:50"
                    "line"

                Expect.equal
                    (Progress.formatLine "" 0L 0L 100L TimeSpan.Zero nan)
                    "0/100 (0.0%) | elapsed 00:00:00 | eta --:--:--"
                    "start: no speed, no return, unknown ETA"

                // resumed at 400,000: 20 s for the 40,000 steps since then
                Expect.equal
                    (Progress.formatLine "ppo" 400_000L 440_000L 500_000L (TimeSpan.FromSeconds 20.0) nan)
                    "ppo 440,000/500,000 (88.0%) | 2,000 steps/s | elapsed 00:00:20 | eta 00:00:30"
                    "speed and ETA from the steps since the resume"
            }

            test "the compact status for the live bar uses SI counts" {
                Expect.equal
                    [
                        Progress.formatCount 950.0
                        Progress.formatCount 12_345.0
                        Progress.formatCount 154_000.0
                        Progress.formatCount 1_234_567.0
                        Progress.formatCount 3e9
                    ]
                    [ "950"; "12.3k"; "154k"; "1.23M"; "3.00G" ]
                    "counts"

                Expect.equal
                    (Progress.formatCompact "ppo" 0L 154_000L 200_000L (TimeSpan.FromSeconds 2.0) -1046.0)
                    "ppo · 154k/200k · 77.0k steps/s · return -1046 · 00:00:02"
                    "compact line"
            }

            test "plain mode prints one line per 10 % with no ANSI codes, and returns the result" {
                use w = new StringWriter()

                let result =
                    Progress.runWith (Plain(w, TimeSpan.FromHours 1.0)) "dqn" 0L 1000L (fun report ->
                        for s in 1L .. 1000L do
                            report s (if s < 500L then nan else float s)

                        42)

                Expect.equal result 42 "result"
                let lines = w.ToString().TrimEnd().Split '\n'
                Expect.equal lines.Length 10 "one line per decile"
                Expect.stringStarts lines[0] "dqn 100/1,000 (10.0%)" "first line"
                Expect.isFalse (lines[0].Contains "return") "no return before the first episode"
                Expect.stringContains lines[9] "return 1000" "latest return"
                Expect.isFalse (w.ToString().Contains "\u001b") "no escape codes"
            }

            test "plain mode prints on the interval and a final line; errors propagate" {
                use w = new StringWriter()

                Progress.runWith (Plain(w, TimeSpan.Zero)) "" 0L 1_000_000L (fun report ->
                    report 5L nan
                    report 7L nan)

                Expect.equal (w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length) 2 "every report"
                use w2 = new StringWriter()
                Progress.runWith (Plain(w2, TimeSpan.FromHours 1.0)) "" 0L 1_000_000L (fun report -> report 3L nan)
                Expect.stringStarts (w2.ToString()) "3/1,000,000" "final line"

                Expect.throwsT<InvalidOperationException>
                    (fun () -> Progress.runWith Silent "" 0L 10L (fun _ -> invalidOp "boom"))
                    "propagates"
            }

            test "a resumed run's bar starts at the resumed step: no line for the deciles already done" {
                use w = new StringWriter()

                Progress.runWith (Plain(w, TimeSpan.FromHours 1.0)) "ppo" 600L 1000L (fun report ->
                    for s in 601L .. 1000L do
                        report s nan)

                let lines = w.ToString().TrimEnd().Split '\n'
                Expect.equal lines.Length 4 "deciles 70 %, 80 %, 90 %, 100 %"
                Expect.stringStarts lines[0] "ppo 700/1,000 (70.0%)" "the first line is after the resume point"

                Expect.throwsT<ArgumentOutOfRangeException>
                    (fun () -> Progress.runWith Silent "" 11L 10L ignore)
                    "a start beyond the total is refused"
            }
        ]

// ---------------------------------------------------------------------------------------------

/// Three seeds, four updates: return = seed + step/100; seed 2 has no return at step 100.
let seedTable () =
    let t = Metrics.empty [ "seed"; "global_step"; "episodic_return"; "approx_kl" ]

    for seed in 0..2 do
        for step in [ 100.0; 200.0; 300.0; 400.0 ] do
            let r =
                if seed = 2 && step = 100.0 then
                    nan
                else
                    float seed + step / 100.0

            Metrics.addRow [| float seed; step; r; 0.01 * float seed |] t

    t

let chartTests =
    testList
        "Charts"
        [
            test "seedStats gives mean, std, min, max and count per step, ignoring NaN" {
                let s = Charts.seedStats "global_step" "episodic_return" (seedTable ())
                Expect.equal s.X [| 100.0; 200.0; 300.0; 400.0 |] "steps"
                Expect.equal s.Count [| 2; 3; 3; 3 |] "seeds with a value"
                Expect.equal s.Mean [| 1.5; 3.0; 4.0; 5.0 |] "mean"
                Expect.equal s.Min [| 1.0; 2.0; 3.0; 4.0 |] "min"
                Expect.equal s.Max [| 2.0; 4.0; 5.0; 6.0 |] "max"
                Expect.floatClose Accuracy.veryHigh s.Std[0] 0.5 "population std of {1, 2}"
                Expect.floatClose Accuracy.veryHigh s.Std[1] (sqrt (2.0 / 3.0)) "population std of {2, 3, 4}"
                Expect.equal s.Median [| 1.5; 3.0; 4.0; 5.0 |] "median"
                Expect.equal s.Q1 [| 1.25; 2.5; 3.5; 4.5 |] "first quartile (numpy: percentile([1, 2], 25) = 1.25)"
                Expect.equal s.Q3 [| 1.75; 3.5; 4.5; 5.5 |] "third quartile"
            }

            test "percentile interpolates between order statistics as numpy does, and refuses bad input" {
                let xs = [| 7.0; 1.0; 3.0; 10.0 |]
                // numpy.percentile([7, 1, 3, 10], [0, 25, 50, 75, 100]) = [1, 2.5, 5, 7.75, 10]
                let got =
                    [ 0.0; 0.25; 0.5; 0.75; 1.0 ] |> List.map (fun p -> Charts.percentile p xs)

                Expect.equal got [ 1.0; 2.5; 5.0; 7.75; 10.0 ] "quantiles"
                Expect.equal xs [| 7.0; 1.0; 3.0; 10.0 |] "input untouched"
                Expect.throwsT<ArgumentException> (fun () -> Charts.percentile 0.5 [||] |> ignore) "no values"
                Expect.throwsT<ArgumentException> (fun () -> Charts.percentile 1.5 xs |> ignore) "p outside 0..1"
            }

            test "learning curves, panels and heatmaps render to Plotly HTML fragments" {
                let t = seedTable ()

                let band =
                    Charts.learningCurve MeanStd "global_step" "episodic_return" t |> Charts.toHtml

                Expect.stringContains band "Plotly.newPlot" "draws"
                Expect.stringContains band "\"fill\":\"tonexty\"" "band fill"
                Expect.stringContains band "mean ± std (3 seeds)" "legend"
                Expect.stringContains band "environment steps" "x label"

                let perSeed =
                    Charts.learningCurve PerSeed "global_step" "episodic_return" t |> Charts.toHtml

                for s in 0..2 do
                    Expect.stringContains perSeed (sprintf "\"seed %d\"" s) "a line per seed"

                let minmax =
                    Charts.learningCurve MeanMinMax "global_step" "episodic_return" t
                    |> Charts.toHtml

                Expect.stringContains minmax "[1.0,2.0,3.0,4.0]" "min edge"

                let quartiles =
                    Charts.learningCurve MedianQuartiles "global_step" "episodic_return" t
                    |> Charts.toHtml

                Expect.stringContains quartiles "median, quartiles (3 seeds)" "legend"
                Expect.stringContains quartiles "[1.25,2.5,3.5,4.5]" "first-quartile edge"

                let p =
                    Charts.panels PerSeed "global_step" [ "episodic_return"; "approx_kl" ] t
                    |> Charts.toHtml

                Expect.stringContains p "approx_kl" "panel title"

                let h =
                    Charts.heatmap
                        "V(s)"
                        "theta"
                        "theta dot"
                        "value"
                        [| -1.0; 0.0; 1.0 |]
                        [| -8.0; 8.0 |]
                        [| [| 1.0; 2.0; 3.0 |]; [| 4.0; 5.0; 6.0 |] |]
                    |> Charts.toHtml

                Expect.stringContains h "\"type\":\"heatmap\"" "heatmap"
                Expect.stringContains h "\"z\":[[1.0,2.0,3.0],[4.0,5.0,6.0]]" "z rows follow y"
                Expect.stringContains h "\"colorbar\":{\"title\":{\"text\":\"value\"}}" "colour bar"

                Expect.throwsT<ArgumentException>
                    (fun () -> Charts.heatmap "" "" "" "" [| 0.0 |] [| 0.0; 1.0 |] [| [| 1.0 |] |] |> ignore)
                    "shape mismatch"
            }

            test "the report is one offline HTML page: plotly.js inline, no external script" {
                withTempDir (fun dir ->
                    let t = seedTable ()
                    let path = Path.Combine(dir, "report.html")

                    Report.write
                        path
                        "PPO <Pendulum>"
                        [ "final return", "-150.2"; "note", "<b>bold?</b>" ]
                        [
                            "Learning curve", [ Charts.learningCurve MeanStd "global_step" "episodic_return" t ]
                            "Diagnostics", [ Charts.panels MeanStd "global_step" [ "approx_kl" ] t ]
                        ]

                    let html = File.ReadAllText path
                    Expect.stringContains html "Plotly.newPlot" "draws charts"
                    let body = html.Substring(html.IndexOf "</head>")

                    Expect.equal
                        (Text.RegularExpressions.Regex.Matches(body, "Plotly.newPlot\\(").Count)
                        2
                        "two charts"

                    Expect.isFalse
                        (Text.RegularExpressions.Regex.IsMatch(html, "<script[^>]*\\ssrc\\s*="))
                        "no script src"
                    // plotly.js itself names cdn.plot.ly as the default topojson URL (geo charts only).
                    Expect.isFalse (body.Contains "cdn.plot.ly") "charts do not refer to the CDN"
                    Expect.stringContains html ("plotly.js v" + Charts.plotlyJsVersion ()) "plotly.js embedded"
                    let js = Path.Combine(dir, "content", "plotly.min.js")
                    Charts.writePlotlyJs js
                    Expect.equal (File.ReadAllText js) (Charts.plotlyJs ()) "local copy for sites"

                    Expect.equal
                        (Charts.plotlyScriptRef "content/plotly.min.js")
                        "<script type=\"text/javascript\" charset=\"utf-8\" src=\"content/plotly.min.js\"></script>"
                        "relative script element"

                    Expect.isGreaterThan html.Length 3_000_000 "the library itself is inline"
                    Expect.stringContains html "<title>PPO &lt;Pendulum&gt;</title>" "title escaped"
                    Expect.stringContains html "<td>&lt;b&gt;bold?&lt;/b&gt;</td>" "summary escaped"

                    Expect.isLessThan
                        (html.IndexOf "<script")
                        (html.IndexOf "Plotly.newPlot")
                        "plotly.js before charts")
            }
        ]

[<Tests>]
let tests =
    testList "Experiment" [ metricsTests; checkpointTests; runTests; progressTests; chartTests ]
