// Tasks of the Rl workspace: `dotnet fsi build.fsx <Target> [key=value ...]`.
//   Setup      restore tools and packages, build, check libtorch loads (making the TorchSharp
//              native repair where needed, installing g++/patchelf with apt-get when root), fetch data,
//              and install Slurm and munge (apt-get, when root and missing) for the Slurm sweep tests,
//              Chromium and ffmpeg for the headless-browser tests
//   Build      build the library and the tests (Release)
//   Test       Expecto suite, the conformance tool, every notebook in quick mode, and the package
//              (Pack, then fresh F# and C# console projects that use it); ends with one line
//              "N passed, N failed"
//   Train      (default) PPO on Pendulum-v1 with scripts/configs/ppo-pendulum.yaml; extra
//              key=value arguments are passed to scripts/train.fsx as overrides
//   Notebooks  render notebooks/*.fsx with fsdocs (executed) to output/ as HTML pages that open
//              styled from disk and offline (notebooks/_template.html, see fsdocsArgs)
//   Pack       output/Rl.<version>.nupkg (the library as a NuGet package)
//   PackTest   Pack, then the F# and C# consumer projects of Test alone
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

let restore () =
    run "dotnet" [ "tool"; "restore" ]
    run "dotnet" [ "paket"; "restore" ]

let build () =
    run "dotnet" [ "build"; "tests/Rl.Tests.fsproj"; "-c"; "Release"; "--nologo"; "-v"; "quiet" ]

let fsi (env: (string * string) list) (script: string) (argv: string list) =
    exec env "dotnet" ([ "fsi"; "--quiet"; script ] @ argv)

let setup () =
    restore ()
    build ()
    // libtorch's first load makes the native repair where the host needs it (installing g++ and
    // patchelf with apt-get when root; see src/Core/Native.fs)
    if fsi [] "scripts/doctor.fsx" [] <> 0 then failwith "scripts/doctor.fsx: libtorch did not load (see above)"
    if File.Exists(Path.Combine(root, "scripts", "data.fsx")) then
        if fsi [] "scripts/data.fsx" [] <> 0 then failwith "scripts/data.fsx failed"

let notebooks () =
    Directory.GetFiles(Path.Combine(root, "notebooks"), "*.fsx")
    |> Array.filter (fun f -> Char.IsDigit((Path.GetFileName f).[0]))
    |> Array.sort
    |> List.ofArray

/// The package version: `<Version>` in src/Rl.fsproj.
let packageVersion () =
    let text = File.ReadAllText(Path.Combine(root, "src", "Rl.fsproj"))
    let m = Text.RegularExpressions.Regex.Match(text, "<Version>([^<]+)</Version>")
    if m.Success then m.Groups[1].Value else failwith "src/Rl.fsproj has no <Version> element"

let outputDir = Path.Combine(root, "output")

/// Pack: `dotnet pack` of src/Rl.fsproj into output/Rl.<version>.nupkg (XML docs, embedded
/// sources, README, license; TorchSharp-cpu and the other packages as minimum-version dependencies).
let pack () =
    run "dotnet" [ "pack"; "src/Rl.fsproj"; "-c"; "Release"; "-o"; outputDir; "--nologo"; "-v"; "quiet" ]
    let nupkg = Path.Combine(outputDir, $"Rl.{packageVersion ()}.nupkg")
    if not (File.Exists nupkg) then failwithf "dotnet pack did not write %s" nupkg
    printfn "wrote %s" nupkg

/// Runs a process in `cwd` with its output captured; returns the exit code and the output.
let capture (cwd: string) (exe: string) (argv: string list) =
    let psi = ProcessStartInfo(exe, WorkingDirectory = cwd, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    for a in argv do
        psi.ArgumentList.Add a
    use p = Process.Start psi
    let err = p.StandardError.ReadToEndAsync()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out + err.Result

/// The version of a package in the main group of paket.lock.
let lockedVersion (package: string) =
    let m = Text.RegularExpressions.Regex.Match(File.ReadAllText(Path.Combine(root, "paket.lock")), $@"(?m)^    {Text.RegularExpressions.Regex.Escape package} \(([^)]+)\)")
    if m.Success then m.Groups[1].Value else failwithf "%s is not in paket.lock" package

/// A consumer of the package built by `pack`, as a new user makes one: a fresh console project
/// (`lang` "F#" or "C#") in a temporary folder outside the repository, with output/ added as a
/// package source, `dotnet add package Rl`, tests/package/Program.{fs,cs} as its program, run
/// with `dotnet run`. Returns the program's "eval return" line, or an error naming the failed step.
let consumer (lang: string) : Result<string, string> =
    let ext = if lang = "F#" then "fs" else "cs"
    let dir = Path.Combine(Path.GetTempPath(), $"rl-consumer-{ext}-{Guid.NewGuid():N}")
    Directory.CreateDirectory dir |> ignore
    try
        let steps =
            [ [ "new"; "console"; "--language"; lang; "--name"; "RlConsumer"; "--output"; dir ]
              [ "new"; "nugetconfig"; "--output"; dir ]
              [ "nuget"; "add"; "source"; outputDir; "--name"; "rl-local"; "--configfile"; Path.Combine(dir, "nuget.config") ]
              [ "add"; "package"; "Rl"; "--version"; packageVersion () ] ]
        let failed =
            steps
            |> List.tryPick (fun argv ->
                let code, out = capture dir "dotnet" argv
                if code <> 0 then Some $"""`dotnet {String.Join(" ", argv)}` failed ({code}): {out}""" else None)
        match failed with
        | Some e -> Error e
        | None ->
            if lang = "F#" then
                // the SDK's implicit FSharp.Core is older than the one Plotly.NET needs (else NU1605)
                let fsproj = Path.Combine(dir, "RlConsumer.fsproj")
                let version = lockedVersion "FSharp.Core"
                let update = $"  <ItemGroup><PackageReference Update=\"FSharp.Core\" Version=\"{version}\" /></ItemGroup>\n</Project>"
                File.WriteAllText(fsproj, File.ReadAllText(fsproj).Replace("</Project>", update))
            File.Copy(Path.Combine(root, "tests", "package", $"Program.{ext}"), Path.Combine(dir, $"Program.{ext}"), true)
            let code, out = capture dir "dotnet" [ "run"; "-c"; "Release" ]
            let line = out.Split('\n') |> Array.tryFind (fun l -> l.Contains "eval return:")
            match code, line with
            | 0, Some l -> Ok(l.Trim())
            | _ -> Error $"`dotnet run` of the {lang} consumer exited {code} without an eval return line: {out}"
    finally
        try Directory.Delete(dir, true) with _ -> ()

/// Packs, then builds and runs the F# and the C# consumer; both train the same config and seed,
/// so they must report the same eval return. The global NuGet cache's copy of this version is
/// removed first, so the consumers get the package just built, not an older one of the same
/// version. Returns (name, passed) checks.
let packageChecks () =
    pack ()
    let nugetRoot =
        match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
        | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
        | p -> p
    let cached = Path.Combine(nugetRoot, "rl", packageVersion ())
    if Directory.Exists cached then Directory.Delete(cached, true)
    let results =
        [ for lang in [ "F#"; "C#" ] do
              let sw = Stopwatch.StartNew()
              let r = consumer lang
              match r with
              | Ok line -> printfn "package consumer (%s): %s  [%.0f s]" lang line sw.Elapsed.TotalSeconds
              | Error e -> eprintfn "package consumer (%s) FAILED: %s" lang e
              yield lang, r ]
    let number (line: string) = line.Substring(line.IndexOf "eval return:" + 12).Trim().Split(' ')[0]
    [ for lang, r in results -> $"package consumer ({lang})", Result.isOk r
      match results with
      | [ _, Ok fs; _, Ok cs ] ->
          let same = number fs = number cs
          if not same then eprintfn "F# and C# consumers differ: %s vs %s" fs cs
          yield "package consumers agree (F# and C#, same config and seed)", same
      | _ -> () ]

/// Slurm and munge for the one-node cluster of tests/SlurmTests.fs (sweeps with launcher=slurm):
/// when any of their programs is missing, installed with apt-get (slurm-wlm, munge) if run as
/// root on a host with apt-get, after an `apt-get update` when the first try fails (a clean
/// machine has no package lists); otherwise one line saying the Slurm tests will be skipped and
/// the command that installs them. Never fails the build: the tests skip without Slurm.
/// Installs Debian `packages` with apt-get when `missing` (a description of what is absent, or
/// None) says something is absent and this is root; otherwise says what will be skipped and the
/// one command that installs them.
let aptEnsure (missing: string option) (packages: string list) (purpose: string) =
    match missing with
    | None -> ()
    | Some what ->
        let names = String.Join(" ", packages)
        let isRoot =
            try
                let code, out = capture root "id" [ "-u" ]
                code = 0 && out.Trim() = "0"
            with _ -> false
        if isRoot && File.Exists "/usr/bin/apt-get" then
            printfn "Setup: %s missing; installing %s with apt-get (%s)" what names purpose
            let env = [ "DEBIAN_FRONTEND", "noninteractive" ]
            let install () = exec env "apt-get" ([ "install"; "-y"; "-q" ] @ packages) = 0
            let ok = install () || (exec env "apt-get" [ "update"; "-q" ] = 0 && install ())
            if not ok then
                eprintfn "Setup: apt-get could not install %s; %s will be skipped" names purpose
        else
            printfn "Setup: %s missing, so %s will be skipped; to run them: sudo apt-get install -y %s" what purpose names

let setupSlurm () =
    let programs = [ "munged"; "slurmctld"; "slurmd"; "sbatch"; "squeue"; "scontrol"; "scancel"; "sinfo" ]
    let onPath (p: string) =
        [ "/usr/sbin"; "/usr/bin" ] @ List.ofArray ((Environment.GetEnvironmentVariable "PATH" |> Option.ofObj |> Option.defaultValue "").Split(':'))
        |> List.exists (fun d -> d <> "" && File.Exists(Path.Combine(d, p)))
    let missing = programs |> List.filter (onPath >> not)
    aptEnsure (if missing.IsEmpty then None else Some(String.Join(", ", missing))) [ "slurm-wlm"; "munge" ] "the Slurm sweep tests"

/// Debian's python3 with torch and numpy, for the test that loads `export.fsx format=pytorch`
/// files in Python (tests/python/check_pytorch_export.py).
let setupPythonTorch () =
    let ok =
        try
            File.Exists "/usr/bin/python3" && fst (capture root "/usr/bin/python3" [ "-c"; "import torch, numpy" ]) = 0
        with _ -> false
    aptEnsure (if ok then None else Some "python3 with torch") [ "python3-torch"; "python3-numpy" ] "the PyTorch export test"

/// Debian's Chromium (and a font for it), for the headless-browser tests of tests/BrowserTests.fs
/// (videos that play, notebook pages that open styled from disk); RL_CHROMIUM may name another
/// Chromium instead. Never fails the build: those tests skip without it.
let setupBrowser () =
    let given = Environment.GetEnvironmentVariable "RL_CHROMIUM"
    let ok = File.Exists "/usr/bin/chromium" || (not (String.IsNullOrWhiteSpace given) && File.Exists given)
    aptEnsure (if ok then None else Some "chromium") [ "chromium"; "fonts-dejavu-core" ] "the headless-browser tests"

/// Debian's ffmpeg: episode videos (`capture_video`, `evaluate.fsx video=true`, the notebooks)
/// and the test videos of tests/BrowserTests.fs and tests/RenderTests.fs. Never fails the build:
/// without it videos are written as PNG frames and the video tests skip.
let setupFfmpeg () =
    aptEnsure (if File.Exists "/usr/bin/ffmpeg" then None else Some "ffmpeg") [ "ffmpeg" ] "the browser video tests"

/// The `dotnet fsdocs` arguments that render the literate notebooks of `input` to `output` as
/// HTML pages that open styled from disk and work offline: `root` "./" makes the links to
/// fsdocs' content/ folder relative (the default, "/<folder>/", only works on a web server), and
/// notebooks/_template.html (fsdocs takes _template.html from its input folder) references
/// nothing but those local files (fsdocs' default template loads Google Fonts, iconify and, from
/// ES modules that browsers refuse on file:// pages, lit and fuse.js from CDNs).
/// `--ignoreprojects`: the notebooks need no API docs, so no project cracking (msbuild).
/// tests/BrowserTests.fs repeats this list: keep the two in step.
let fsdocsArgs (input: string) (output: string) =
    [ "fsdocs"; "build"; "--eval"; "--clean"; "--input"; input; "--output"; output; "--noapidocs"; "--ignoreprojects"
      "--parameters"; "root"; "./"; "fsdocs-collection-name"; "Rl notebooks" ]

/// Test: Expecto suite (writes its counts to a file), the conformance tool over the
/// repository's reference files (tests/data/gymnasium), the C# face's xUnit tests (tests/csharp)
/// and samples (samples/csharp, quick mode), every notebook in quick mode and the package
/// consumers; prints "N passed, N failed".
let test () =
    setup ()
    setupSlurm ()
    setupPythonTorch ()
    setupBrowser ()
    setupFfmpeg ()
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
    check "scripts/conformance.fsx" (fsi [] "scripts/conformance.fsx" [ Path.Combine(root, "tests", "data", "gymnasium") ] = 0)
    // The C# face: its xUnit tests (each test counts), then the C# samples in quick mode.
    let csResults = Path.Combine(Path.GetTempPath(), $"rl-cs-tests-{Environment.ProcessId}")
    let csCode =
        exec [ ("RL_PROGRESS", "off") ] "dotnet"
            [ "test"; "tests/csharp/Rl.CSharp.Tests.csproj"; "-c"; "Release"; "--nologo"; "-v"; "quiet"
              "--logger"; "trx;LogFileName=cs.trx"; "--results-directory"; csResults ]
    let trx = Path.Combine(csResults, "cs.trx")
    if File.Exists trx then
        let counters = Text.RegularExpressions.Regex.Match(File.ReadAllText trx, "<Counters [^>]*passed=\"(\\d+)\" failed=\"(\\d+)\"")
        if counters.Success then
            passed <- passed + int counters.Groups[1].Value
            failed <- failed + int counters.Groups[2].Value
        else check "C# tests (tests/csharp): trx counters" false
        Directory.Delete(csResults, true)
    else check "C# tests (tests/csharp) ran" false
    if csCode <> 0 then eprintfn "FAILED: C# tests (tests/csharp), exit code %d" csCode
    printfn "C# samples (quick mode): samples/csharp"
    let sw = Stopwatch.StartNew()
    let samplesOk = exec [ ("RL_QUICK", "1") ] "dotnet" [ "run"; "-c"; "Release"; "--project"; "samples/csharp" ] = 0
    printfn "  %s in %.0f s" (if samplesOk then "ok" else "FAILED") sw.Elapsed.TotalSeconds
    check "samples/csharp (quick mode)" samplesOk
    for nb in notebooks () do
        printfn "notebook (quick mode): %s" (Path.GetFileName nb)
        let sw = Stopwatch.StartNew()
        let ok = fsi [ ("RL_QUICK", "1") ] nb [] = 0
        printfn "  %s in %.0f s" (if ok then "ok" else "FAILED") sw.Elapsed.TotalSeconds
        check nb ok
    for name, ok in packageChecks () do
        check name ok
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
    [ "Setup",
      (fun () ->
          setup ()
          setupSlurm ()
          setupPythonTorch ()
          setupBrowser ()
          setupFfmpeg ())
      "Build", (fun () -> restore (); build ())
      "Test", test
      "Train",
      (fun () ->
          setup ()
          setupFfmpeg ()
          let code = fsi [] "scripts/train.fsx" rest
          if code <> 0 then exit code)
      "Notebooks",
      (fun () ->
          setup ()
          run "dotnet" (fsdocsArgs "notebooks" "output")
          for nb in notebooks () do
              let target = Path.Combine(root, "output", Path.ChangeExtension(Path.GetFileName nb, ".ipynb"))
              toIpynb nb target
              printfn "wrote %s" target)
      "Pack", (fun () -> restore (); pack ())
      "PackTest",
      (fun () ->
          restore ()
          let checks = packageChecks ()
          let failed = checks |> List.filter (snd >> not) |> List.length
          printfn "%d passed, %d failed" (checks.Length - failed) failed
          if failed > 0 then exit 1)
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
