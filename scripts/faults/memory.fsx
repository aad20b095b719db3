// Fault campaign, part 6: long runs stay flat.
//
// Launches two long trainings, one after the other, as child processes
// (`dotnet fsi scripts/train.fsx ...`, working directory the repository root, `threads=1`,
// `eval_every` left at the config's value):
//   - PPO on CartPole-v1 with scripts/configs/ppo-cartpole.yaml for `ppo_steps` steps (default
//     2,000,000; CartPole rather than Pendulum because Pendulum runs ~1,000 steps/s on the shared
//     2-core host, so 2M steps would take over half an hour; CartPole runs 3,500-7,500 steps/s);
//   - DQN (`algo=dqn`, its default config scripts/configs/dqn-cartpole.yaml) for `dqn_steps` steps
//     (default 1,000,000).
// Every second it samples the training process (the `fsi.dll` process under the `dotnet fsi`
// launcher): resident memory (VmRSS of /proc/<pid>/status) and open file handles (entries of
// /proc/<pid>/fd), and writes the series to <out>/<algo>-memory.csv (time_s,rss_mb,fds; time since
// launch) next to the run folders (<out>/runs/) and the child's output (<out>/<algo>-train.log).
// The figures are taken over the training window: from the child's `run folder:` line (before it:
// compiling train.fsx, a library build when src/ changed, loading libtorch) to its last progress
// line (after it: final evaluation, summary, report; shown apart). Of the window's samples the first
// 5 % are a warm-up and left out of the tenths. For each series it prints the mean of the first
// tenth and of the last tenth of the remaining samples, the maximum over the window, and the growth
// (last-tenth mean - first-tenth mean) against the bounds:
//   RSS growth <= 64 MB and <= 10 % of the first tenth's mean; open-handle growth <= 8.
// It also estimates what the in-memory metrics table (src/Experiment/Metrics.fs keeps every row)
// weighs at the end of the run, from the run's metrics.csv.
//
// Run (from anywhere):
//   dotnet fsi scripts/faults/memory.fsx                                  # 2M PPO + 1M DQN, ~15 min
//   dotnet fsi scripts/faults/memory.fsx ppo_steps=100000 dqn_steps=100000 out=/tmp/rl-memory-quick
// Options (key=value): ppo_steps= (0 skips PPO), dqn_steps= (0 skips DQN), out= (default
// <temp folder>/rl-memory), ppo_config= (default scripts/configs/ppo-cartpole.yaml).
// Exit code: 0 when every bound holds, 1 when one is broken, 2 for bad arguments or a failed run.
// Run at most one such script at a time on a shared machine: each training takes a core.

open System
open System.Diagnostics
open System.Globalization
open System.IO

/// The repository root: two folders above this script (scripts/faults/).
let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, "..", ".."))

/// Invariant culture for parsing /proc and writing the CSV.
let inv = CultureInfo.InvariantCulture

/// Bound on RSS growth (last-tenth mean - first-tenth mean), MB.
let maxRssGrowthMb = 64.0
/// Bound on RSS growth relative to the first tenth's mean.
let maxRssGrowthFraction = 0.10
/// Bound on the growth of the number of open file handles.
let maxFdGrowth = 8.0
/// Fraction of the training window's samples dropped at its start as warm-up.
let warmupFraction = 0.05

/// One sample of the training process: seconds since launch, resident MB, open handles.
type Sample = { Time: float; RssMb: float; Fds: int }

/// The command-line options: `key=value` pairs parsed into a map; exits 2 on an unknown key or a
/// malformed argument.
let parseArgs (args: string[]) : Map<string, string> =
    let known = set [ "ppo_steps"; "dqn_steps"; "out"; "ppo_config" ]

    args
    |> Array.map (fun a ->
        match a.IndexOf '=' with
        | i when i > 0 && known.Contains(a.Substring(0, i)) -> a.Substring(0, i), a.Substring(i + 1)
        | _ ->
            eprintfn "bad argument '%s'; allowed: %s (as key=value)" a (String.Join(", ", known))
            exit 2)
    |> Map.ofArray

/// Reads an integer option `key` from `opts`, `fallback` when absent; exits 2 when it is not a
/// non-negative integer.
let intOption (opts: Map<string, string>) (key: string) (fallback: int64) : int64 =
    match opts.TryFind key with
    | None -> fallback
    | Some v ->
        match Int64.TryParse(v.Replace("_", ""), NumberStyles.Integer, inv) with
        | true, n when n >= 0L -> n
        | _ ->
            eprintfn "%s=%s: expected a non-negative integer" key v
            exit 2

/// The command line of process `pid` (NUL-separated arguments joined by spaces), "" when gone.
let cmdline (pid: int) : string =
    try
        File.ReadAllText($"/proc/{pid}/cmdline").Replace('\000', ' ')
    with _ ->
        ""

/// The ids of the direct children of process `pid`, from /proc/<pid>/task/*/children.
let children (pid: int) : int list =
    try
        Directory.GetDirectories($"/proc/{pid}/task")
        |> Seq.collect (fun t ->
            let f = Path.Combine(t, "children")

            if File.Exists f then
                File.ReadAllText(f).Split(' ', StringSplitOptions.RemoveEmptyEntries)
                |> Seq.map int
            else
                Seq.empty)
        |> List.ofSeq
    with _ ->
        []

/// The process that runs the training: the first descendant of `launcher` (or `launcher` itself)
/// whose command line runs fsi.dll (`dotnet fsi` starts `dotnet exec .../fsi.dll` as its child);
/// None until it exists.
let trainingPid (launcher: int) : int option =
    /// Breadth-first search of the process tree from `pids` for the fsi.dll process.
    let rec walk (pids: int list) =
        match pids with
        | [] -> None
        | p :: rest ->
            if (cmdline p).Contains "fsi.dll" then
                Some p
            else
                walk (rest @ children p)

    walk [ launcher ]

/// VmRSS of process `pid` in MB (from /proc/<pid>/status), None when the process is gone.
let rssMb (pid: int) : float option =
    try
        File.ReadAllLines($"/proc/{pid}/status")
        |> Array.tryFind (fun l -> l.StartsWith "VmRSS:")
        |> Option.map (fun l ->
            let kb = l.Substring(6).Trim().Split(' ')[0]
            float (Int64.Parse(kb, inv)) / 1024.0)
    with _ ->
        None

/// The number of open file handles of process `pid` (entries of /proc/<pid>/fd), None when gone.
let fdCount (pid: int) : int option =
    try
        Some(Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length)
    with _ ->
        None

/// What one sampled child run gave.
type Outcome =
    {
        /// Exit code of `dotnet fsi scripts/train.fsx`.
        Code: int
        /// One sample a second, from launch to exit.
        Samples: Sample list
        /// Wall time from launch to exit, seconds.
        Wall: float
        /// The run folder the child printed (`run folder: <dir>`).
        RunDir: string option
        /// Seconds since launch of the `run folder:` line: training starts.
        TrainStart: float option
        /// Seconds since launch of the last progress line (`... steps/s ...`): training ends.
        TrainEnd: float option
    }

/// Launches `dotnet fsi scripts/train.fsx <args>` in the repository root, echoes its output (also
/// written to `logPath`) and samples its training process once a second until it exits.
let runAndSample (args: string list) (logPath: string) : Outcome =
    let psi = ProcessStartInfo("dotnet")
    psi.WorkingDirectory <- root
    psi.UseShellExecute <- false
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true

    for a in "fsi" :: "scripts/train.fsx" :: args do
        psi.ArgumentList.Add a

    use log = new StreamWriter(logPath, false)
    let gate = obj ()
    let mutable runDir = None
    let mutable trainStart = None
    let mutable trainEnd = None
    let clock = Stopwatch()

    /// Echoes one output line of the child and keeps it in the log; notes the run folder.
    let onLine (isErr: bool) (line: string) =
        if not (isNull line) then
            lock gate (fun () ->
                log.WriteLine line
                log.Flush()

                if line.StartsWith "run folder: " then
                    runDir <- Some(line.Substring("run folder: ".Length).Trim())
                    trainStart <- Some clock.Elapsed.TotalSeconds

                if line.Contains " steps/s " then
                    trainEnd <- Some clock.Elapsed.TotalSeconds

                if isErr then eprintfn "  %s" line else printfn "  %s" line)

    printfn "$ dotnet fsi scripts/train.fsx %s" (String.Join(" ", args))
    clock.Start()
    use p = new Process(StartInfo = psi)
    p.OutputDataReceived.Add(fun e -> onLine false e.Data)
    p.ErrorDataReceived.Add(fun e -> onLine true e.Data)
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()

    // Ctrl+C here stops the child too (the whole tree), rather than leaving it running.
    use _cancel =
        Console.CancelKeyPress.Subscribe(fun _ ->
            try
                p.Kill true
            with _ ->
                ())

    let samples = ResizeArray<Sample>()
    let mutable target = None

    while not (p.WaitForExit 0) do
        if target.IsNone then
            target <- trainingPid p.Id

        match target with
        | Some pid ->
            match rssMb pid, fdCount pid with
            | Some r, Some f ->
                samples.Add
                    {
                        Time = clock.Elapsed.TotalSeconds
                        RssMb = r
                        Fds = f
                    }
            | _ -> ()
        | None -> ()

        // next sample on the next whole second since launch
        let next = 1000.0 * (floor clock.Elapsed.TotalSeconds + 1.0)
        let wait = int (next - clock.Elapsed.TotalMilliseconds)
        p.WaitForExit(max 1 wait) |> ignore

    p.WaitForExit() // drains the redirected output

    {
        Code = p.ExitCode
        Samples = List.ofSeq samples
        Wall = clock.Elapsed.TotalSeconds
        RunDir = runDir
        TrainStart = trainStart
        TrainEnd = trainEnd
    }

/// Writes `samples` to `path` as CSV with the header `time_s,rss_mb,fds`.
let writeCsv (path: string) (samples: Sample list) =
    let lines =
        [
            yield "time_s,rss_mb,fds"
            for s in samples do
                yield String.Format(inv, "{0:F1},{1:F1},{2}", s.Time, s.RssMb, s.Fds)
        ]

    File.WriteAllLines(path, lines)

/// The mean of a non-empty array.
let mean (xs: float[]) = Array.average xs

/// Mean of the first tenth, mean of the last tenth (both after dropping the warm-up) and the
/// maximum of one series; the tenths hold at least one sample each.
let tenths (xs: float[]) : float * float * float =
    let skip = int (float xs.Length * warmupFraction)
    let kept = xs[skip..]
    let n = max 1 (kept.Length / 10)
    mean kept[.. n - 1], mean kept[kept.Length - n ..], Array.max xs

/// Estimated bytes of the in-memory metrics table for a run folder's metrics.csv: per row one
/// float[] of the columns (8 bytes each + a 24-byte array header) and an 8-byte reference in the
/// table's ResizeArray. Returns rows, columns and bytes; None when the file is missing.
let metricsTableEstimate (runDir: string) : (int * int * float) option =
    let path = Path.Combine(runDir, "metrics.csv")

    if File.Exists path then
        let lines = File.ReadAllLines path
        let cols = lines[0].Split(',').Length
        let rows = lines.Length - 1
        Some(rows, cols, float rows * (24.0 + 8.0 * float cols + 8.0))
    else
        None

/// Runs one training (`name` in file names, `args` for train.fsx) with sampling, writes its CSV
/// and prints its figures over the training window. Returns Ok(true) when the bounds hold,
/// Ok(false) when one is broken, Error when the run failed or gave too few samples.
let measure (out: string) (name: string) (args: string list) : Result<bool, string> =
    let csv = Path.Combine(out, $"{name}-memory.csv")
    let logPath = Path.Combine(out, $"{name}-train.log")
    let o = runAndSample args logPath
    writeCsv csv o.Samples
    printfn ""

    printfn
        "== %s: exit code %d, wall time %.0f s (%.1f min), %d samples -> %s"
        name
        o.Code
        o.Wall
        (o.Wall / 60.0)
        o.Samples.Length
        csv

    let t0 = defaultArg o.TrainStart 0.0
    let t1 = defaultArg o.TrainEnd o.Wall

    let window =
        o.Samples |> List.filter (fun s -> s.Time >= t0 && s.Time <= t1) |> Array.ofList

    if o.Code <> 0 then
        Error $"{name}: training exited with code {o.Code} (see {logPath})"
    elif window.Length < 20 then
        Error $"{name}: only {window.Length} samples while training; run longer"
    else
        let skip = int (float window.Length * warmupFraction)

        printfn
            "   training window t = %.0f..%.0f s (%.0f s, %d samples); warm-up: its first 5%% (%d samples, to t = %.0f s) left out; tenths of %d samples"
            t0
            t1
            (t1 - t0)
            window.Length
            skip
            window[max 0 (skip - 1)].Time
            (max 1 ((window.Length - skip) / 10))

        let rss = window |> Array.map (fun s -> s.RssMb)
        let fds = window |> Array.map (fun s -> float s.Fds)
        let r0, r1, rMax = tenths rss
        let f0, f1, fMax = tenths fds
        let rGrowth = r1 - r0
        let fGrowth = f1 - f0
        let rssOk = rGrowth <= maxRssGrowthMb && rGrowth <= maxRssGrowthFraction * r0
        let fdOk = fGrowth <= maxFdGrowth

        printfn
            "   RSS MB : first tenth %.1f, last tenth %.1f, max %.1f, growth %+.1f MB (%+.1f %%) -> %s (bound: <= %.0f MB and <= %.0f %%)"
            r0
            r1
            rMax
            rGrowth
            (100.0 * rGrowth / r0)
            (if rssOk then "OK" else "BROKEN")
            maxRssGrowthMb
            (100.0 * maxRssGrowthFraction)

        printfn
            "   fds    : first tenth %.1f, last tenth %.1f, max %.0f, growth %+.1f -> %s (bound: <= %.0f)"
            f0
            f1
            fMax
            fGrowth
            (if fdOk then "OK" else "BROKEN")
            maxFdGrowth

        let before = o.Samples |> List.filter (fun s -> s.Time < t0)
        let after = o.Samples |> List.filter (fun s -> s.Time > t1)

        for label, part in [ "before training (startup)", before; "after training (eval, report)", after ] do
            if not part.IsEmpty then
                printfn
                    "   %s: %d samples, max RSS %.1f MB, max fds %d"
                    label
                    part.Length
                    (part |> List.map (fun s -> s.RssMb) |> List.max)
                    (part |> List.map (fun s -> s.Fds) |> List.max)

        match o.RunDir |> Option.bind metricsTableEstimate with
        | Some(rows, cols, bytes) ->
            printfn
                "   metrics table kept in memory: %d rows x %d columns, about %.2f MB (%.0f bytes per row)"
                rows
                cols
                (bytes / 1048576.0)
                (bytes / float (max 1 rows))
        | None -> ()

        o.RunDir |> Option.iter (printfn "   run folder: %s")
        printfn ""
        Ok(rssOk && fdOk)

/// Parses the options, runs PPO then DQN with sampling and returns the exit code.
let main (argv: string[]) : int =
    let opts = parseArgs argv
    let ppoSteps = intOption opts "ppo_steps" 2_000_000L
    let dqnSteps = intOption opts "dqn_steps" 1_000_000L

    let out =
        Path.GetFullPath(
            opts.TryFind "out"
            |> Option.defaultValue (Path.Combine(Path.GetTempPath(), "rl-memory"))
        )

    let ppoConfig =
        opts.TryFind "ppo_config"
        |> Option.defaultValue "scripts/configs/ppo-cartpole.yaml"

    Directory.CreateDirectory out |> ignore
    let runs = Path.Combine(out, "runs")

    let jobs =
        [
            if ppoSteps > 0L then
                "ppo",
                [
                    $"config={ppoConfig}"
                    $"total_timesteps={ppoSteps}"
                    "threads=1"
                    $"runs={runs}"
                ]
            if dqnSteps > 0L then
                "dqn", [ "algo=dqn"; $"total_timesteps={dqnSteps}"; "threads=1"; $"runs={runs}" ]
        ]

    let results = jobs |> List.map (fun (name, args) -> name, measure out name args)

    printfn
        "== summary (bounds: RSS growth <= %.0f MB and <= %.0f %% of the first tenth; fds growth <= %.0f)"
        maxRssGrowthMb
        (100.0 * maxRssGrowthFraction)
        maxFdGrowth

    for name, r in results do
        match r with
        | Ok true -> printfn "   %s: flat" name
        | Ok false -> printfn "   %s: GROWS beyond the bound" name
        | Error e -> printfn "   %s: %s" name e

    if results |> List.exists (fun (_, r) -> Result.isError r) then
        2
    elif results |> List.forall (fun (_, r) -> r = Ok true) then
        0
    else
        1

exit (main (fsi.CommandLineArgs |> Array.skip 1))
