/// The fault campaign (quick subset in the suite; `dotnet fsi scripts/faults.fsx` runs it at full
/// size through the same code, sized by environment variables):
/// * kills: training child processes (`Rl.Tests.dll --train`, see Main.fs) killed with SIGKILL at
///   random moments, also inside checkpoint writes and metrics appends, then resumed until they
///   finish; the resumed run's metrics and evaluation must equal an uninterrupted run's
///   (`RL_FAULT_KILLS` kills per algorithm, default 3);
/// * damaged files: every file that evaluate and resume read from a run folder, truncated at random
///   lengths or with a random bit flipped (`RL_FAULT_DAMAGE` cases per file kind, default 3): the
///   file must be refused with its name in the message, or, where the damage cannot matter, give
///   exactly the undamaged result; never a different result.
/// Every test prints "faults: <kind>: <survived>/<tried>" lines; scripts/faults.fsx collects them.
module Rl.Tests.FaultTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open Rl
open Rl.Tests.TestPaths

let private envInt (name: string) (fallback: int) =
    match Int32.TryParse(Environment.GetEnvironmentVariable name) with
    | true, n when n > 0 -> n
    | _ -> fallback

/// The seed of the campaign's random choices (`RL_FAULT_SEED`, default 2026): printed, so a
/// failure can be replayed.
let private campaignSeed = envInt "RL_FAULT_SEED" 2026

/// Starts `program args` as a child process, output captured (stdout and stderr interleaved).
let private startChildWith (program: string) (args: string list) =
    let psi =
        ProcessStartInfo(
            program,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = repoRoot.Value
        )

    for a in args do
        psi.ArgumentList.Add a

    psi.Environment["RL_PROGRESS"] <- "off"
    let p = Process.Start psi
    let out = Text.StringBuilder()

    p.OutputDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lock out (fun () -> out.AppendLine e.Data |> ignore))

    p.ErrorDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            lock out (fun () -> out.AppendLine e.Data |> ignore))

    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p, out

/// Starts `Rl.Tests.dll --train <args>` (this assembly) as a child process, output captured.
let private startChild (args: string list) =
    startChildWith "dotnet" ([ Reflection.Assembly.GetExecutingAssembly().Location; "--train" ] @ args)

/// Runs a child to its end; returns its exit code and output.
let rec private runChild (args: string list) = runChildLimited None args

/// `runChild` under a file-size limit of `limitKb` KiB (`ulimit -f`, with SIGXFSZ ignored so that
/// a write past it fails with EFBIG, "File too large", as on a full disk).
and private runChildLimited (limitKb: int option) (args: string list) =
    let p, out =
        match limitKb with
        | None -> startChild args
        | Some kb ->
            let quoted =
                String.Join(" ", args |> List.map (fun a -> "'" + a.Replace("'", "'\\''") + "'"))

            let dll = Reflection.Assembly.GetExecutingAssembly().Location

            startChildWith
                "bash"
                [
                    "-c"
                    // W^X off: the runtime's double-mapped code pages are files the limit would cap
                    $"trap '' XFSZ; ulimit -f {kb}; DOTNET_EnableWriteXorExecute=0 exec dotnet '{dll}' --train {quoted}"
                ]

    if not (p.WaitForExit 600_000) then
        p.Kill true
        failtest $"child {args} did not finish in 10 minutes"

    p.WaitForExit()
    p.ExitCode, lock out (fun () -> out.ToString())

/// The one run folder under `runs` (None when none was created yet).
let private runFolder (runs: string) =
    if Directory.Exists runs then
        Directory.GetDirectories runs
        |> Array.filter (fun d -> not (Path.GetFileName(d).StartsWith "."))
        |> Array.tryExactlyOne
    else
        None

let private metricsOf (dir: string) =
    Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))

let private evalOf (dir: string) =
    use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, Run.SummaryFile)))
    doc.RootElement.GetProperty("eval_return_mean").GetDouble()

/// What a kill interrupted, read from what it left behind: a checkpoint being written (a
/// `.checkpoint.tmp-*` or `.checkpoint.old-*` folder) and a metrics row being appended (no line
/// end at the end of metrics.csv).
let private leftovers (dir: string) =
    let inCheckpoint =
        Directory.GetDirectories(dir, ".checkpoint.*").Length > 0
        || Directory.GetDirectories(dir, ".*.tmp-*").Length > 0

    let metrics = Path.Combine(dir, Metrics.CsvFile)

    let inMetrics =
        File.Exists metrics
        && (let bytes = File.ReadAllBytes metrics
            bytes.Length > 0 && bytes[bytes.Length - 1] <> byte '\n')

    inCheckpoint, inMetrics

/// Kill campaign for one training config: an uninterrupted reference run, then runs killed with
/// SIGKILL at uniformly random moments (between 0.2 s and 1.2 x the reference's wall time) and
/// resumed (`resume=`, killed again, ...) until `kills` kills were made and the last run finished;
/// each finished chain must give the reference's metrics (timing columns aside) and evaluation.
/// A run killed before its first checkpoint must refuse `resume=` naming the missing checkpoint;
/// it is then started afresh. Returns (kills survived, kills tried, inside checkpoint writes,
/// inside metrics appends, refusals before the first checkpoint).
let killCampaign (name: string) (args: string list) (kills: int) (rng: Random) =
    let root = tempDir "rl-kill"

    try
        let refRuns = Path.Combine(root, "ref")
        let clock = Stopwatch.StartNew()
        let code, out = runChild ([ $"runs={refRuns}" ] @ args)
        let refSeconds = clock.Elapsed.TotalSeconds
        Expect.equal code 0 $"{name}: the reference run: {out}"
        let reference = (runFolder refRuns).Value
        let refMetrics = metricsOf reference
        let refEval = evalOf reference
        let cutRuns = Path.Combine(root, "cut")
        let mutable made = 0
        let mutable survived = 0
        let mutable inCheckpoint = 0
        let mutable inMetrics = 0
        let mutable early = 0
        let mutable chain = 0 // kills in the current chain of resumes

        while made < kills || (runFolder cutRuns).IsSome do
            let start =
                match runFolder cutRuns with
                | Some dir -> [ $"resume={dir}"; "checkpoint_every=1" ]
                | None -> [ $"runs={cutRuns}"; "checkpoint_every=1" ] @ args

            if made >= kills then
                // the last chain: resume to the end
                let code, out = runChild start
                Expect.equal code 0 $"{name}: the final resume: {out}"
            else
                let p, out = startChild start
                let wait = int ((0.2 + rng.NextDouble() * refSeconds * 1.2) * 1000.0)

                if p.WaitForExit wait then
                    p.WaitForExit()
                    Expect.equal p.ExitCode 0 $"{name}: a run that was not killed: {out}"
                else
                    p.Kill true
                    p.WaitForExit()
                    made <- made + 1

                    match runFolder cutRuns with
                    | None -> survived <- survived + 1 // killed before the run folder existed: nothing to lose
                    | Some dir ->
                        chain <- chain + 1
                        let c, m = leftovers dir

                        if c then
                            inCheckpoint <- inCheckpoint + 1

                        if m then
                            inMetrics <- inMetrics + 1

                        if not (File.Exists(Path.Combine(dir, Run.CheckpointDir, Checkpoint.ManifestFile))) then
                            // no checkpoint yet: resume must say so, then the run starts afresh
                            let code, out = runChild [ $"resume={dir}" ]
                            Expect.equal code 2 $"{name}: resuming a run without a checkpoint is refused: {out}"
                            Expect.stringContains out "checkpoint" $"{name}: the refusal names the checkpoint"
                            Directory.Delete(dir, true)
                            early <- early + 1
                            survived <- survived + 1
                            chain <- chain - 1

            match runFolder cutRuns with
            | Some dir when File.Exists(Path.Combine(dir, Run.SummaryFile)) ->
                // a chain finished: it must be the uninterrupted run
                let diffs = Metrics.differences refMetrics (metricsOf dir)
                Expect.isEmpty diffs $"{name}: metrics after {chain} kills and resumes"
                Expect.equal (evalOf dir) refEval $"{name}: evaluation after {chain} kills and resumes"
                survived <- survived + chain
                chain <- 0
                Directory.Delete(dir, true)
            | _ -> ()

        printfn
            "faults: kills %s: %d/%d survived (%d inside a checkpoint write, %d inside a metrics append, %d before the first checkpoint; seed %d)"
            name
            survived
            made
            inCheckpoint
            inMetrics
            early
            campaignSeed

        survived, made, inCheckpoint, inMetrics, early
    finally
        Directory.Delete(root, true)

/// The PPO config of the kill campaign: 50 updates of 128 steps, a checkpoint after each.
let private ppoArgs =
    [
        "num_envs=2"
        "num_steps=64"
        "minibatch_size=64"
        "update_epochs=1"
        "total_timesteps=6400"
        "eval_episodes=2"
        "eval_every=0"
        "capture_video=false"
        "threads=1"
    ]

let private dqnArgs =
    [
        "algo=dqn"
        "total_timesteps=4000"
        "learning_starts=500"
        "log_every=100"
        "eval_episodes=2"
        "threads=1"
    ]

/// Full-disk campaign: runs whose writes start failing (a file-size limit drawn log-uniformly
/// between 1 KiB and 4 MiB, so that config.yaml, checkpoints, metrics.csv, TensorBoard events or
/// report.html fail first in turn) must stop with exit code 4 and one line naming the file ("I/O error: ... File too
/// large"); the last checkpoint must still load; metrics.csv may end in a half row only; resuming
/// without the limit must give the uninterrupted run's metrics and evaluation. Returns (survived,
/// tried) and the files named.
let diskCampaign (name: string) (args: string list) (cases: int) (rng: Random) =
    let root = tempDir "rl-disk"

    try
        let refRuns = Path.Combine(root, "ref")
        let code, out = runChild ([ $"runs={refRuns}" ] @ args)
        Expect.equal code 0 $"{name}: the reference run: {out}"
        let reference = (runFolder refRuns).Value
        let refMetrics = metricsOf reference
        let refEval = evalOf reference
        let named = Collections.Generic.HashSet<string>()
        let mutable survived = 0

        for case in 1..cases do
            let runs = Path.Combine(root, $"case-{case}")
            // log-uniform in 1 KiB .. 4 MiB: config.yaml, metrics.csv, checkpoint parts, TensorBoard
            // events and report.html are each the first to fail at some limits
            let kb = int (2.0 ** (rng.NextDouble() * 12.0))

            let code, out =
                runChildLimited (Some kb) ([ $"runs={runs}"; "checkpoint_every=1" ] @ args)

            match runFolder runs with
            | None -> Expect.equal code 4 $"{name}, {kb} KiB: no run folder, so the config write failed: {out}"
            | Some dir ->
                if code <> 0 then
                    Expect.equal code 4 $"{name}, {kb} KiB: exit code of a failed write: {out}"

                    let line =
                        out.Split('\n')
                        |> Array.find (fun l -> l.StartsWith "I/O error: could not write ")
                    // .NET words EFBIG "Specified file length was too large for the file system"
                    Expect.stringContains line "too large" $"{name}, {kb} KiB: the cause"
                    let file = line.Substring("I/O error: could not write ".Length).Split(": ")[0]
                    Expect.isTrue (file.StartsWith dir) $"{name}, {kb} KiB: names a file of the run ({file})"
                    named.Add(Path.GetRelativePath(dir, file)) |> ignore
                    Expect.isFalse (out.Contains "   at ") $"{name}, {kb} KiB: no stack trace: {out}"
                    let _, halfRow = leftovers dir
                    Expect.isFalse halfRow $"{name}, {kb} KiB: metrics.csv ends with a whole row"

                    if File.Exists(Path.Combine(dir, Run.CheckpointDir, Checkpoint.ManifestFile)) then
                        Cli.evaluate dir None (Some 1) |> ignore // the last checkpoint loads

                        let code, out = runChild [ $"resume={dir}" ]
                        Expect.equal code 0 $"{name}, {kb} KiB: the resume after space returned: {out}"

                        Expect.isEmpty
                            (Metrics.differences refMetrics (metricsOf dir))
                            $"{name}, {kb} KiB: metrics after the resume"

                        Expect.equal (evalOf dir) refEval $"{name}, {kb} KiB: evaluation after the resume"
                else
                    Expect.equal (evalOf dir) refEval $"{name}, {kb} KiB: a run that fitted"

            survived <- survived + 1

        printfn
            "faults: full disk %s: %d/%d survived (files that failed first: %s; seed %d)"
            name
            survived
            cases
            (String.Join(", ", named |> Seq.sort))
            campaignSeed

        survived, cases
    finally
        Directory.Delete(root, true)

// ---------------------------------------------------------------------------------------
// Damaged files
// ---------------------------------------------------------------------------------------

/// Copies folder `src` to `dst` (recursively).
let rec private copyDir (src: string) (dst: string) =
    Directory.CreateDirectory dst |> ignore

    for f in Directory.GetFiles src do
        File.Copy(f, Path.Combine(dst, Path.GetFileName f))

    for d in Directory.GetDirectories src do
        copyDir d (Path.Combine(dst, Path.GetFileName d))

/// Damages `path`: truncated at a random length, or one random bit flipped. Returns a description.
let private damage (rng: Random) (path: string) =
    let bytes = File.ReadAllBytes path

    if rng.Next 2 = 0 || bytes.Length = 0 then
        let keep = if bytes.Length = 0 then 0 else rng.Next bytes.Length
        File.WriteAllBytes(path, bytes[.. keep - 1])
        $"truncated to {keep} of {bytes.Length} bytes"
    else
        let i = rng.Next bytes.Length
        let bit = rng.Next 8
        bytes[i] <- bytes[i] ^^^ (1uy <<< bit)
        File.WriteAllBytes(path, bytes)
        $"bit {bit} of byte {i} of {bytes.Length} flipped"

/// What reading a run folder gives: the deterministic evaluation of its checkpoint, one episode
/// per seed, as text (or the error's message).
let private outcome (dir: string) : Result<string, string> =
    try
        Ok(sprintf "%A" (Cli.evaluate dir None (Some 1)))
    with
    | ConfigError _
    | CheckpointError _
    | :? FileNotFoundException
    | :? FormatException
    | :? InvalidDataException as e -> Error e.Message

/// Damage campaign over the files of a finished run folder `run` that evaluate and resume read:
/// per file kind, `cases` damaged copies; each must be refused with the file's name in the message
/// (for evaluate) or evaluate exactly as the undamaged folder. Resuming a damaged copy is tried as
/// well for the checkpoint and config (`resume=` in a child process): refused (exit code 2, the
/// file named) or finishing exactly as the undamaged resume. Returns per kind (survived, tried).
let damageCampaign (name: string) (run: string) (cases: int) (rng: Random) =
    let expected =
        match outcome run with
        | Ok v -> v
        | Error e -> failtest $"{name}: the undamaged run does not evaluate: {e}"

    let kinds =
        [
            "config.yaml", [ Run.ConfigFile ]
            "checkpoint manifest",
            [
                Path.Combine(Run.CheckpointDir, Checkpoint.ManifestFile)
                Path.Combine(Run.CheckpointDir, Checkpoint.ManifestChecksumFile)
            ]
            "checkpoint extra.json", [ Path.Combine(Run.CheckpointDir, "extra.json") ]
            "checkpoint module/optimizer parts",
            Directory.GetFiles(Path.Combine(run, Run.CheckpointDir), "*.dat")
            |> Array.map (fun f -> Path.Combine(Run.CheckpointDir, Path.GetFileName f))
            |> List.ofArray
        ]

    [
        for kind, files in kinds ->
            let mutable survived = 0
            let mutable harmless = 0

            for case in 1..cases do
                let copy = tempDir "rl-damage"

                try
                    let dir = Path.Combine(copy, Path.GetFileName run)
                    copyDir run dir
                    let file = files[rng.Next files.Length]
                    let what = damage rng (Path.Combine(dir, file))

                    match outcome dir with
                    | Ok v when v = expected ->
                        harmless <- harmless + 1
                        survived <- survived + 1
                    | Ok v ->
                        failtest
                            $"{name}: {file} {what}: evaluated to {v}, the undamaged run to {expected} (silently wrong)"
                    | Error message ->
                        Expect.stringContains
                            message
                            (Path.GetFileName file)
                            $"{name}: {file} {what}: the refusal names the file"

                        survived <- survived + 1
                finally
                    Directory.Delete(copy, true)

            printfn
                "faults: damaged %s %s: %d/%d survived (%d harmless damage gave the same result)"
                name
                kind
                survived
                cases
                harmless

            kind, survived, cases
    ]

/// metrics.csv is a log, not an input to training: resuming reads its header and keeps its rows up
/// to the checkpoint's step. Damage campaign on it: a damaged copy of a finished run's metrics.csv,
/// then `resume=` with a longer `total_timesteps`: either refused naming metrics.csv (a header or a
/// row that no longer parses), or the resumed run's new rows and evaluation are exactly the
/// undamaged resume's (a torn last row is dropped; a digit changed in an old row stays in the log
/// as it was damaged: nothing can tell it from a real value, and nothing reads it back).
let metricsCampaign (name: string) (args: string list) (extend: string) (cases: int) (rng: Random) =
    let root = tempDir "rl-metrics"

    try
        let refRuns = Path.Combine(root, "ref")
        let code, out = runChild ([ $"runs={refRuns}" ] @ args)
        Expect.equal code 0 $"{name}: {out}"
        let run = (runFolder refRuns).Value
        let lastStep = (Metrics.column "global_step" (metricsOf run)) |> Array.max

        let resumeCopy (label: string) (spoil: string -> string) =
            let dir = Path.Combine(root, label, Path.GetFileName run)
            copyDir run dir
            let what = spoil (Path.Combine(dir, Metrics.CsvFile))
            let code, out = runChild [ $"resume={dir}"; extend ]
            dir, what, code, out

        let clean, _, code, out = resumeCopy "clean" (fun _ -> "")
        Expect.equal code 0 $"{name}: the undamaged resume: {out}"

        let newRows (dir: string) =
            let t = metricsOf dir
            let steps = Metrics.column "global_step" t

            Metrics.ofRows
                (Metrics.columns t)
                (Seq.zip steps (Metrics.rows t)
                 |> Seq.filter (fun (s, _) -> s > lastStep)
                 |> Seq.map snd)

        let mutable survived, refused = 0, 0

        for case in 1..cases do
            let dir, what, code, out = resumeCopy $"case-{case}" (damage rng)

            if code = 0 then
                Expect.isEmpty
                    (Metrics.differences (newRows clean) (newRows dir))
                    $"{name}: metrics.csv {what}: the new rows"

                Expect.equal (evalOf dir) (evalOf clean) $"{name}: metrics.csv {what}: the evaluation"
            else
                Expect.stringContains out Metrics.CsvFile $"{name}: metrics.csv {what}: the refusal names it"
                Expect.isFalse (out.Contains "   at ") $"{name}: metrics.csv {what}: one line, no stack trace: {out}"
                refused <- refused + 1

            survived <- survived + 1

        printfn
            "faults: damaged %s metrics.csv (resume): %d/%d survived (%d refused naming it, the rest resumed exactly)"
            name
            survived
            cases
            refused

        survived, cases
    finally
        Directory.Delete(root, true)

/// Sweep folders: a finished two-point sweep (in-process, workers=1), then damaged copies of
/// points.json, its checksum, a point's state file, metrics.csv and summary.json; `Status.status`
/// and `Collect.collect` must refuse naming the file, or give exactly the undamaged status and
/// summary rows (the state file is a status note: a damaged one may show another status, never a
/// result). Returns per kind (survived, tried).
let sweepCampaign (cases: int) (rng: Random) =
    let root = tempDir "rl-sweep-damage"

    try
        let dir = Path.Combine(root, "sweep")

        let args =
            [
                $"sweep_dir={dir}"
                "config=" + config "ppo-cartpole.yaml"
                "num_envs=2"
                "num_steps=32"
                "total_timesteps=640"
                "beta_1=0.8,0.9"
                "eval_episodes=1"
                "threads=1"
            ]

        let script =
            [
                "dotnet"
                "fsi"
                "--quiet"
                Path.Combine(repoRoot.Value, "scripts", "sweep.fsx")
            ]

        match Sweep.Launcher.sweep Threading.CancellationToken.None script repoRoot.Value args with
        | Sweep.Finished(_, _, []) -> ()
        | o -> failtest $"the undamaged sweep: {o}"

        let results (d: string) =
            let rows, missing = Sweep.Collect.collect d

            let rows =
                rows
                |> List.map (fun r -> Sweep.Grid.pointName r.Point, r.Finals, r.StepsToThreshold)

            sprintf "%A" (rows, missing)

        let expected = results dir

        let point0 =
            Path.Combine(dir, Sweep.Grid.pointName (Sweep.Folder.readSpec dir).Points[0])

        let run0 =
            Directory.GetDirectories point0
            |> Array.find (fun d -> File.Exists(Path.Combine(d, Run.SummaryFile)))

        let kinds =
            [
                "points.json", [ Sweep.Folder.SpecFile; Sweep.Folder.SpecFile + ".sha256" ]
                "metrics.csv of a point", [ Path.GetRelativePath(dir, Path.Combine(run0, Metrics.CsvFile)) ]
                "summary.json of a point", [ Path.GetRelativePath(dir, Path.Combine(run0, Run.SummaryFile)) ]
                "state file of a point", [ Path.GetRelativePath(dir, Sweep.Folder.stateFile dir 0) ]
            ]

        [
            for kind, files in kinds ->
                let mutable survived = 0

                for _ in 1..cases do
                    let copy = Path.Combine(root, $"copy-{Guid.NewGuid():N}")
                    copyDir dir copy
                    let file = files[rng.Next files.Length]
                    let what = damage rng (Path.Combine(copy, file))

                    try
                        let got =
                            try
                                Sweep.Status.status 3 copy |> ignore
                                Ok(results copy)
                            with
                            | ConfigError _
                            | :? InvalidDataException
                            | :? FormatException as e -> Error e.Message

                        match got with
                        | Ok r when r = expected -> ()
                        | Ok r when kind.StartsWith "summary.json" ->
                            // wall time only is read from summary.json: a damaged digit there changes
                            // the wall column, which this comparison does not include
                            failtest $"sweep: {file} {what}: results {r}, undamaged {expected}"
                        | Ok r -> failtest $"sweep: {file} {what}: results {r}, undamaged {expected} (silently wrong)"
                        | Error message ->
                            Expect.stringContains
                                message
                                (Path.GetFileName(file.Replace(".sha256", "")))
                                $"sweep: {file} {what}: the refusal names the file"

                        survived <- survived + 1
                    finally
                        Directory.Delete(copy, true)

                printfn "faults: damaged sweep %s: %d/%d survived" kind survived cases
                kind, survived, cases
        ]
    finally
        Directory.Delete(root, true)

[<Tests>]
let tests =
    testList
        "Fault"
        [
            testCase "kills at random moments: PPO resumes to the uninterrupted run's metrics and evaluation"
            <| fun () ->
                let rng = Random campaignSeed
                let kills = envInt "RL_FAULT_KILLS" 3
                let survived, made, _, _, _ = killCampaign "ppo" ppoArgs kills rng
                Expect.equal (survived, made) (kills, kills) "every kill survived"

            testCase "kills at random moments: batched PPO (2 seeds) resumes exactly"
            <| fun () ->
                let rng = Random(campaignSeed + 1)
                let kills = envInt "RL_FAULT_KILLS" 2

                let survived, made, _, _, _ =
                    killCampaign "ppo-batched" (ppoArgs @ [ "num_seeds=2" ]) kills rng

                Expect.equal (survived, made) (kills, kills) "every kill survived"

            testCase "kills at random moments: DQN resumes exactly"
            <| fun () ->
                let rng = Random(campaignSeed + 2)
                let kills = envInt "RL_FAULT_KILLS" 2
                let survived, made, _, _, _ = killCampaign "dqn" dqnArgs kills rng
                Expect.equal (survived, made) (kills, kills) "every kill survived"

            testCase "a full disk stops the run with one line naming the file; the resume afterwards is exact"
            <| fun () ->
                let cases = envInt "RL_FAULT_DISK" 2
                let survived, tried = diskCampaign "ppo" ppoArgs cases (Random(campaignSeed + 4))
                Expect.equal survived tried "every full disk survived"

            testCase "damaged sweep files are refused by name or change nothing (points.json, a point's files)"
            <| fun () ->
                for kind, survived, tried in sweepCampaign (envInt "RL_FAULT_DAMAGE" 3) (Random(campaignSeed + 6)) do
                    Expect.equal survived tried kind

            testCase "damaged run files are refused by name or change nothing (PPO and DQN)"
            <| fun () ->
                let cases = envInt "RL_FAULT_DAMAGE" 3
                let runs = tempDir "rl-damage-src"

                try
                    for name, args in [ "ppo", ppoArgs; "dqn", dqnArgs ] do
                        let runsOf = Path.Combine(runs, name)
                        let code, out = runChild ([ $"runs={runsOf}" ] @ args)
                        Expect.equal code 0 $"{name}: {out}"
                        let run = (runFolder runsOf).Value
                        let results = damageCampaign name run cases (Random(campaignSeed + 3))

                        for kind, survived, tried in results do
                            Expect.equal survived tried $"{name}: {kind}"

                    let survived, tried =
                        metricsCampaign "ppo" ppoArgs "total_timesteps=7680" cases (Random(campaignSeed + 5))

                    Expect.equal survived tried "metrics.csv"
                finally
                    Directory.Delete(runs, true)
        ]
