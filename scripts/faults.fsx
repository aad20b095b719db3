// The fault campaign at full size: what survives what, with counts.
//
//   dotnet fsi scripts/faults.fsx [kills=20] [damage=30] [disk=12] [seed=2026] [memory=true]
//
// Runs the suite's fault tests (tests/FaultTests.fs: kills, full disks, damaged files;
// tests/HostileInputTests.fs: generated hostile input; tests/LockTests.fs: two writers) with
// campaign sizes instead of the suite's quick ones (the same code: RL_FAULT_KILLS,
// RL_FAULT_DAMAGE, RL_FAULT_DISK, RL_FAULT_SEED, RL_HOSTILE_SCALE), then, with memory=true,
// scripts/faults/memory.fsx (a 2M-step PPO and a 1M-step DQN run, resident memory and open files
// sampled every second). Prints every "faults:" line of the tests, the counts per fault kind, and
// exits with code 1 when any case was lost. Builds the tests first (dotnet build, Release).
// Takes about 40 minutes on a 2-core machine at the default sizes (memory=true adds about 25).

open System
open System.Diagnostics
open System.IO

let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))

let args =
    fsi.CommandLineArgs
    |> Array.skip 1
    |> Array.map (fun a ->
        match a.Split('=', 2) with
        | [| k; v |] -> k, v
        | _ ->
            eprintfn "faults: '%s' is not key=value; allowed: kills=N damage=N disk=N seed=N memory=true|false" a
            exit 2)
    |> Map.ofArray

for k in args.Keys do
    if not (List.contains k [ "kills"; "damage"; "disk"; "seed"; "memory"; "hostile" ]) then
        eprintfn "faults: unknown argument '%s'; allowed: kills=N damage=N disk=N hostile=N seed=N memory=true|false" k
        exit 2

/// An integer argument (>= 1) or its default.
let intArg (key: string) (fallback: int) =
    match args.TryFind key with
    | None -> fallback
    | Some v ->
        match Int32.TryParse v with
        | true, n when n >= 1 -> n
        | _ ->
            eprintfn "faults: %s=%s: allowed: an integer >= 1" key v
            exit 2

/// Runs `program args` in the repository root with extra environment variables, echoing its
/// output; returns the exit code and the output lines.
let run (program: string) (argv: string list) (env: (string * string) list) =
    let psi =
        ProcessStartInfo(program, WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true)

    for a in argv do
        psi.ArgumentList.Add a

    for k, v in env do
        psi.Environment[k] <- v

    use p = Process.Start psi
    let lines = Collections.Concurrent.ConcurrentQueue<string>()

    let echo (e: DataReceivedEventArgs) =
        if not (isNull e.Data) then
            lines.Enqueue e.Data

            if
                e.Data.Contains "faults:"
                || e.Data.StartsWith "hostile: "
                || e.Data.Contains "ERR]"
                || e.Data.Contains "EXPECTO!"
            then
                printfn "%s" e.Data

    p.OutputDataReceived.Add echo
    p.ErrorDataReceived.Add echo
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p.WaitForExit()
    p.ExitCode, List.ofSeq lines

let clock = Stopwatch.StartNew()

let build, _ =
    run "dotnet" [ "build"; "tests/Rl.Tests.fsproj"; "-c"; "Release"; "-v"; "q" ] []

if build <> 0 then
    eprintfn "faults: the tests do not build"
    exit 1

let env =
    [
        "RL_FAULT_KILLS", string (intArg "kills" 20)
        "RL_FAULT_DAMAGE", string (intArg "damage" 30)
        "RL_FAULT_DISK", string (intArg "disk" 12)
        "RL_FAULT_SEED", string (intArg "seed" 2026)
        "RL_HOSTILE_SCALE", string (intArg "hostile" 10)
        "RL_PROGRESS", "off"
    ]

/// Runs one test list of the suite with the campaign's sizes; returns its exit code and lines.
let testList (name: string) =
    run
        "dotnet"
        [
            "tests/bin/Release/net10.0/Rl.Tests.dll"
            "--sequenced"
            "--summary"
            "--colours"
            "0"
            "--no-spinner"
            "--filter-test-list"
            name
        ]
        env

let code, lines = testList "Fault"
let others = [ testList "HostileInput"; testList "Lock" ]

let otherCodes = others |> List.map fst

let memoryCode =
    match args.TryFind "memory" with
    | Some "true" -> fst (run "dotnet" [ "fsi"; "scripts/faults/memory.fsx" ] [])
    | _ ->
        printfn "faults: memory: skipped (memory=true runs scripts/faults/memory.fsx, about 25 minutes)"
        0

printfn "\nfaults: summary (%.0f s)" clock.Elapsed.TotalSeconds

for l in lines |> List.filter (fun l -> l.Contains "faults:") do
    printfn "  %s" (l.Substring(l.IndexOf "faults:" + 8))

for l in
    others
    |> List.collect snd
    |> List.filter (fun l -> l.StartsWith "hostile: " && l.Contains "generated cases") do
    printfn "  %s" l

printfn
    "  two writers (Lock list): %s"
    (if otherCodes[1] = 0 then
         "every refusal and takeover as expected"
     else
         "FAILED")

let failed = code <> 0 || List.exists ((<>) 0) otherCodes || memoryCode <> 0

printfn
    "faults: %s"
    (if failed then
         "SOME CASES WERE LOST (see above)"
     else
         "every case survived")

exit (if failed then 1 else 0)
