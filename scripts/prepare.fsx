// Loaded by every script and notebook on the line before load.fsx (`#load "prepare.fsx"`, then
// `#load "load.fsx"`), so that whichever one a user runs first on a fresh clone works: when
// src/bin/Release/net10.0/Rl.dll is missing or older than the library's sources, it restores the
// tools and packages (first time only) and builds src/Rl.fsproj (Release), saying so on stderr;
// on failure it stops with one line naming the command that shows why. This works because F#
// Interactive runs a script's #load before it resolves the #r lines of the next #load (a #load
// nested inside load.fsx would not: a loaded file's own #r lines are resolved before it runs).
// libtorch's native repair, where the host needs it, happens at the first load (src/Core/Native.fs).

open System
open System.Diagnostics
open System.IO

let private rlRoot = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))

let private rlDll =
    Path.Combine(rlRoot, "src", "bin", "Release", "net10.0", "Rl.dll")

let private rlStamp = rlDll + ".built"

/// Newest write time of everything the library's build reads.
let private newestInput () =
    let src = Path.Combine(rlRoot, "src")

    [
        yield! Directory.EnumerateFiles(src, "*.fs", SearchOption.AllDirectories)
        yield Path.Combine(src, "Rl.fsproj")
        yield Path.Combine(src, "paket.references")
        for f in
            [
                "paket.lock"
                "paket.dependencies"
                "Directory.Build.props"
                "Directory.Build.targets"
            ] do
            yield Path.Combine(rlRoot, f)
    ]
    |> List.filter (fun f ->
        File.Exists f
        && not (f.Contains $"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
    |> List.map File.GetLastWriteTimeUtc
    |> List.max

let private lastBuilt () =
    [ rlDll; rlStamp ]
    |> List.filter File.Exists
    |> List.map File.GetLastWriteTimeUtc
    |> function
        | [] -> DateTime.MinValue
        | ts -> List.max ts

/// Runs `dotnet args` in the repository root; its output is shown only when it fails.
let private step (args: string list) =
    let psi =
        ProcessStartInfo("dotnet", WorkingDirectory = rlRoot, UseShellExecute = false)

    for a in args do
        psi.ArgumentList.Add a

    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    use p = Process.Start psi
    let err = p.StandardError.ReadToEndAsync()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()

    if p.ExitCode <> 0 then
        eprintfn "%s%s" out err.Result

        eprintfn
            "Rl: `dotnet %s` failed (output above); run `dotnet fsi build.fsx Setup` in %s to restore and build step by step."
            (String.Join(" ", args))
            rlRoot

        exit 1

if not (File.Exists rlDll) || lastBuilt () < newestInput () then
    let fresh =
        not (File.Exists(Path.Combine(rlRoot, "src", "obj", "project.assets.json")))

    eprintfn
        "Rl: %s; building src/Rl.fsproj (Release) first (once after a clone or a change to src/)"
        (if File.Exists rlDll then
             "the library is older than its sources"
         else
             "the library is not built yet")

    if fresh then
        step [ "tool"; "restore" ]
        step [ "paket"; "restore" ]

    step [ "build"; "src/Rl.fsproj"; "-c"; "Release"; "--nologo"; "-v"; "quiet" ]
    File.WriteAllText(rlStamp, DateTime.UtcNow.ToString "o")
