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

[<Tests>]
let tests = testList "Experiment" [ metricsTests; checkpointTests ]
