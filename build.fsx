// Tasks of the Rl workspace: `dotnet fsi build.fsx <Target> [key=value ...]`.
//   Setup      restore tools and packages, install g++/patchelf when the TorchSharp native repair
//              needs them (as root, via apt-get), build, check libtorch loads, fetch data
//   Build      build the library and the tests (Release)
//   Test       Expecto suite, the conformance tool and every notebook in quick mode;
//              ends with one line "N passed, N failed"
//   Train      (default) PPO on Pendulum-v1 with scripts/configs/ppo-pendulum.yaml; extra
//              key=value arguments are passed to scripts/train.fsx as overrides
//   Notebooks  render notebooks/*.fsx with fsdocs (executed) to output/ as HTML
//   Bench      scripts/bench.fsx all
// Plain F#, no build framework: a target table and a few process helpers.

open System
open System.Diagnostics
open System.IO

let root = __SOURCE_DIRECTORY__
let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray
let target, rest =
    match args with
    | t :: r when not (t.Contains "=") -> t, r
    | r -> "Train", r

let isCi = not (String.IsNullOrEmpty(Environment.GetEnvironmentVariable "CI"))

/// Runs a process in the repository root, streaming its output; returns the exit code.
let exec (env: (string * string) list) (exe: string) (argv: string list) =
    let psi = ProcessStartInfo(exe, WorkingDirectory = root, UseShellExecute = false)
    for a in argv do
        psi.ArgumentList.Add a
    for k, v in env do
        psi.Environment[k] <- v
    use p = Process.Start psi
    p.WaitForExit()
    p.ExitCode

/// Runs a process and fails the build when it fails.
let run (exe: string) (argv: string list) =
    let code = exec [] exe argv
    if code <> 0 then
        let joined = String.Join(" ", argv)
        failwithf "'%s %s' failed with exit code %d" exe joined code

let onPath (exe: string) =
    (Environment.GetEnvironmentVariable "PATH").Split ':'
    |> Array.exists (fun d -> File.Exists(Path.Combine(d, exe)))

let hostLacksGlibcxx332 () =
    OperatingSystem.IsLinux()
    && (match
            [ "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"; "/lib/x86_64-linux-gnu/libstdc++.so.6"; "/usr/lib64/libstdc++.so.6" ]
            |> List.tryFind File.Exists
        with
        | Some p -> not ((Text.Encoding.ASCII.GetString(File.ReadAllBytes p)).Contains "GLIBCXX_3.4.32")
        | None -> false)

let isRoot () =
    OperatingSystem.IsLinux() && (try File.ReadAllText("/proc/self/status").Contains("Uid:\t0\t") with _ -> false)

let ensureNativeTools () =
    if hostLacksGlibcxx332 () then
        let missing = [ "g++"; "patchelf" ] |> List.filter (onPath >> not)
        if not missing.IsEmpty then
            let pkgs = String.Join(" ", missing)
            if isRoot () && onPath "apt-get" then
                printfn "Setup: this host's libstdc++ lacks GLIBCXX_3.4.32; installing %s for the TorchSharp repair" pkgs
                run "apt-get" [ "update"; "-qq" ]
                run "apt-get" ([ "install"; "-y"; "-qq"; "--no-install-recommends" ] @ missing)
            else
                failwithf
                    "This host's libstdc++ lacks GLIBCXX_3.4.32, which TorchSharp 0.107 needs; the project repairs a copy of its native library but needs %s. Install them (Debian/Ubuntu: sudo apt-get install -y %s) and run Setup again."
                    pkgs pkgs

let restore () =
    run "dotnet" [ "tool"; "restore" ]
    run "dotnet" [ "paket"; "restore" ]

let build () =
    run "dotnet" [ "build"; "tests/Rl.Tests.fsproj"; "-c"; "Release"; "--nologo"; "-v"; "quiet" ]

let fsi (env: (string * string) list) (script: string) (argv: string list) =
    exec env "dotnet" ([ "fsi"; "--quiet"; script ] @ argv)

let setup () =
    restore ()
    ensureNativeTools ()
    build ()
    if fsi [] "scripts/doctor.fsx" [] <> 0 then failwith "scripts/doctor.fsx: libtorch did not load (see above)"
    if File.Exists(Path.Combine(root, "scripts", "data.fsx")) then
        if fsi [] "scripts/data.fsx" [] <> 0 then failwith "scripts/data.fsx failed"

let notebooks () =
    Directory.GetFiles(Path.Combine(root, "notebooks"), "*.fsx")
    |> Array.filter (fun f -> Char.IsDigit((Path.GetFileName f).[0]))
    |> Array.sort
    |> List.ofArray

/// Test: Expecto suite (writes its counts to a file), the conformance tool over the shared
/// reference files, and every notebook in quick mode; prints "N passed, N failed".
let test () =
    setup ()
    let summary = Path.Combine(Path.GetTempPath(), $"rl-tests-{Environment.ProcessId}.txt")
    // Sequenced: TorchSharp scalars and dispose scopes misbehave when tests run on several
    // threads at once ("Unknown scalar type"); the suite is CPU-bound on 2 cores anyway.
    let expectoArgs = [ "--summary"; "--sequenced" ] @ (if isCi then [ "--colours"; "0"; "--no-spinner" ] else []) @ rest
    let code = exec [ ("RL_TEST_SUMMARY", summary) ] "dotnet" ([ "tests/bin/Release/net10.0/Rl.Tests.dll" ] @ expectoArgs)
    let passed, failed =
        if File.Exists summary then
            let parts = File.ReadAllText(summary).Split ' '
            File.Delete summary
            int parts[0], int parts[1]
        else
            0, 1
    let failed = if code <> 0 && failed = 0 then failed + 1 else failed
    let mutable passed = passed
    let mutable failed = failed
    let check name ok =
        if ok then passed <- passed + 1
        else
            failed <- failed + 1
            eprintfn "FAILED: %s" name
    let reference = Path.GetFullPath(Path.Combine(root, "..", "shared", "reference", "gymnasium"))
    if Directory.Exists reference && File.Exists(Path.Combine(root, "scripts", "conformance.fsx")) then
        check "scripts/conformance.fsx" (fsi [] "scripts/conformance.fsx" [ reference ] = 0)
    for nb in notebooks () do
        printfn "notebook (quick mode): %s" (Path.GetFileName nb)
        let sw = Stopwatch.StartNew()
        let ok = fsi [ ("RL_QUICK", "1") ] nb [] = 0
        printfn "  %s in %.0f s" (if ok then "ok" else "FAILED") sw.Elapsed.TotalSeconds
        check nb ok
    printfn "%d passed, %d failed" passed failed
    if failed > 0 then exit 1


/// Converts a literate notebook (.fsx with `(** markdown *)` blocks, fsdocs style) to a Jupyter
/// notebook: markdown blocks become markdown cells, the code between them code cells; fsdocs
/// directives `(*** ... ***)` and the front-matter block are dropped.
let toIpynb (fsx: string) (ipynb: string) =
    let text = File.ReadAllText(fsx).Replace("\r\n", "\n")
    let cells = ResizeArray<string * string>()
    let addCode (code: string) =
        let lines =
            code.Split '\n'
            |> Array.filter (fun l -> not (l.TrimStart().StartsWith "(***"))
        let c = String.Join("\n", lines).Trim('\n', ' ')
        // the page-level plotly.js include is for the HTML rendering only
        if c <> "" && c <> "Charts.plotlyScript ()" then cells.Add("code", c)
    let mutable i = 0
    while i < text.Length do
        let start = text.IndexOf("(**", i)
        let isMarkdown = start >= 0 && (start + 3 >= text.Length || text[start + 3] <> '*')
        if start < 0 then
            addCode (text.Substring i)
            i <- text.Length
        elif not isMarkdown then
            // a directive: skip to its end
            let e = text.IndexOf("***)", start)
            addCode (text.Substring(i, start - i))
            i <- if e < 0 then text.Length else e + 4
        else
            addCode (text.Substring(i, start - i))
            let e = text.IndexOf("*)", start + 3)
            let md = text.Substring(start + 3, (if e < 0 then text.Length else e) - start - 3).Trim()
            if not (md.StartsWith "---") then cells.Add("markdown", md)
            i <- if e < 0 then text.Length else e + 2
    let json (s: string) = Text.Json.JsonSerializer.Serialize s
    let cell (kind, src: string) =
        let lines = src.Split '\n' |> Array.mapi (fun j l -> json (if j < src.Split('\n').Length - 1 then l + "\n" else l))
        let source = String.Join(", ", lines)
        if kind = "code" then
            sprintf "{\"cell_type\": \"code\", \"execution_count\": null, \"metadata\": {}, \"outputs\": [], \"source\": [%s]}" source
        else
            sprintf "{\"cell_type\": \"markdown\", \"metadata\": {}, \"source\": [%s]}" source
    let body = String.Join(",\n  ", cells |> Seq.map cell)
    let meta =
        "{\"kernelspec\": {\"display_name\": \".NET (F#)\", \"language\": \"F#\", \"name\": \".net-fsharp\"}, \"language_info\": {\"name\": \"F#\", \"file_extension\": \".fsx\"}}"
    File.WriteAllText(ipynb, sprintf "{\n \"cells\": [\n  %s\n ],\n \"metadata\": %s,\n \"nbformat\": 4,\n \"nbformat_minor\": 5\n}\n" body meta)

let targets =
    [ "Setup", setup
      "Build", (fun () -> restore (); build ())
      "Test", test
      "Train",
      (fun () ->
          setup ()
          let code = fsi [] "scripts/train.fsx" rest
          if code <> 0 then exit code)
      "Notebooks",
      (fun () ->
          setup ()
          run "dotnet" [ "fsdocs"; "build"; "--eval"; "--clean"; "--input"; "notebooks"; "--output"; "output"; "--noapidocs" ]
          for nb in notebooks () do
              let target = Path.Combine(root, "output", Path.ChangeExtension(Path.GetFileName nb, ".ipynb"))
              toIpynb nb target
              printfn "wrote %s" target)
      "Bench",
      (fun () ->
          setup ()
          let code = fsi [] "scripts/bench.fsx" (if rest.IsEmpty then [ "all" ] else rest)
          if code <> 0 then exit code) ]

match targets |> List.tryFind (fun (n, _) -> String.Equals(n, target, StringComparison.OrdinalIgnoreCase)) with
| Some(_, f) ->
    try
        f ()
    with e ->
        eprintfn "build.fsx %s: %s" target e.Message
        exit 1
| None ->
    let names = String.Join(", ", targets |> List.map fst)
    eprintfn "Unknown target '%s'. Targets: %s" target names
    exit 2
