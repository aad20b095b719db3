/// Pages checked in a real headless browser (Debian's Chromium, see `Browser`): videos embedded
/// as data: URIs (made by ffmpeg) load and play, broken ones report an error; the checker sees
/// CDN requests and rendered Plotly charts; a notebook page rendered by fsdocs opens styled from
/// disk without any external request. Each test skips (one line why) without Chromium, or
/// without ffmpeg for the videos: `dotnet fsi build.fsx Setup` installs both when root.
module Rl.Tests.BrowserTests

open System
open System.Diagnostics
open System.IO
open Expecto
open Plotly.NET
open Rl
open Rl.Tests.TestPaths

/// ffmpeg as the library finds it (`RL_FFMPEG`, else on PATH).
let private ffmpeg = Video.ffmpeg

/// Runs `exe` with `argv` in `cwd`, output captured; fails after `timeoutS` seconds. Returns the
/// exit code and the output (stdout then stderr).
let private run (cwd: string) (timeoutS: int) (exe: string) (argv: string list) =
    let psi =
        ProcessStartInfo(
            exe,
            WorkingDirectory = cwd,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    for a in argv do
        psi.ArgumentList.Add a

    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()

    if not (p.WaitForExit(timeoutS * 1000)) then
        p.Kill true
        failtestf "%s %s did not finish within %d s" exe (String.Join(" ", argv)) timeoutS

    p.WaitForExit()
    p.ExitCode, out.Result + err.Result

/// Skips the test when Chromium is missing.
let private needChromium () =
    if (Browser.find ()).IsNone then
        skiptest "Chromium not found (apt-get install chromium, or set RL_CHROMIUM)"

/// ffmpeg's path; skips the test when Chromium or ffmpeg is missing.
let private needVideoTools () =
    needChromium ()

    match ffmpeg () with
    | Some f -> f
    | None -> skiptest "ffmpeg not found (apt-get install ffmpeg)"

/// A 2-second, 30 fps, 320x240 video of ffmpeg's synthetic test pattern, encoded with `codec`
/// (ffmpeg arguments) into a file of extension `ext`; returns its bytes.
let private makeVideo (ffmpeg: string) (ext: string) (codec: string list) =
    let dir = tempDir "rl-video"

    try
        let file = Path.Combine(dir, $"clip.{ext}")

        let argv =
            [
                "-y"
                "-hide_banner"
                "-loglevel"
                "error"
                "-f"
                "lavfi"
                "-i"
                "testsrc=size=320x240:rate=30"
                "-t"
                "2"
            ]
            @ codec
            @ [ file ]

        let code, out = run dir 120 ffmpeg argv
        Expect.equal code 0 $"ffmpeg failed: {out}"
        File.ReadAllBytes file
    finally
        Directory.Delete(dir, true)

/// A page with one `<video>` whose `src` is `bytes` as a base64 data: URI of type `mime`.
let private videoPage (mime: string) (bytes: byte[]) =
    let b64 = Convert.ToBase64String bytes
    $"<!DOCTYPE html><html><body><video controls muted playsinline preload=\"auto\" src=\"data:{mime};base64,{b64}\"></video></body></html>"

/// Checks that the page's only video loaded, lasts 2 s, is 320x240 and played.
let private expectPlays (what: string) (checks: Browser.VideoCheck list) =
    match checks with
    | [ v ] ->
        Expect.isTrue v.Loaded $"{what}: metadata loaded ({v})"
        Expect.floatClose { absolute = 0.05; relative = 0.0 } v.Duration 2.0 $"{what}: duration {v.Duration} s"
        Expect.equal (v.Width, v.Height) (320, 240) $"{what}: video size"
        Expect.isTrue v.Played $"{what}: currentTime passed 0.2 s after play() ({v})"
        Expect.isGreaterThan v.Frames 0 $"{what}: frames were decoded"
        Expect.isNone v.Error $"{what}: no error"
    | _ -> failtestf "%s: expected one video, got %A" what checks

/// The tiny literate notebook of the fsdocs test: front matter as in notebooks/*.fsx, one
/// markdown block, one evaluated value, and (with the library loaded as the notebooks load it)
/// an episode video and a chart as the notebooks show them.
let private tinyNotebook (scripts: string) =
    let lib =
        $"""(*** hide ***)
#load "{scripts}/prepare.fsx"
#load "{scripts}/load.fsx"
open Rl
Charts.plotlyScript ()
(*** include-it-raw ***)
(** An episode as the notebooks show one: *)
Video.episodeHtml (Envs.make CartPole.Id) (Some 1L) (Video.randomAct CartPole.actionSpace (System.Random 0)) "random pushes"
(*** include-it-raw ***)
Charts.lines "a chart" "x" "y" [ "line", [| 0.0; 1.0 |], [| 0.0; 1.0 |] ] |> Charts.toHtml
(*** include-it-raw ***)
"""

    """(**
---
title: Browser check
category: Notebooks
categoryindex: 1
index: 1
---
*)
(**
# A page opened from disk

This page was rendered by `fsdocs build --eval` for tests/BrowserTests.fs.
*)
1 + 1
(*** include-it ***)
"""
    + lib

/// The arguments of build.fsx's `fsdocsArgs` (the Notebooks target): keep the two in step.
let private fsdocsArgs (input: string) (output: string) =
    [
        "fsdocs"
        "build"
        "--eval"
        "--clean"
        "--input"
        input
        "--output"
        output
        "--noapidocs"
        "--ignoreprojects"
        "--parameters"
        "root"
        "./"
        "fsdocs-collection-name"
        "Rl notebooks"
    ]

/// The headless-browser tests (`--filter-test-list Browser`).
[<Tests>]
let tests =
    testList
        "Browser"
        [
            testCase "an H.264 MP4 (libx264, yuv420p, faststart) as a data: URI loads, lasts 2 s and plays"
            <| fun () ->
                let ffmpeg = needVideoTools ()

                let mp4 =
                    makeVideo ffmpeg "mp4" [ "-c:v"; "libx264"; "-pix_fmt"; "yuv420p"; "-movflags"; "+faststart" ]

                Browser.checkVideos (videoPage "video/mp4" mp4) |> expectPlays "H.264 MP4"

            testCase "a VP9 WebM (libvpx-vp9) as a data: URI loads, lasts 2 s and plays"
            <| fun () ->
                let ffmpeg = needVideoTools ()

                let webm =
                    makeVideo
                        ffmpeg
                        "webm"
                        [
                            "-c:v"
                            "libvpx-vp9"
                            "-pix_fmt"
                            "yuv420p"
                            "-b:v"
                            "0"
                            "-crf"
                            "40"
                            "-deadline"
                            "realtime"
                            "-cpu-used"
                            "8"
                        ]

                Browser.checkVideos (videoPage "video/webm" webm) |> expectPlays "VP9 WebM"

            testCase "videos of garbage bytes (src, and <source>) do not load and report an error"
            <| fun () ->
                needChromium ()
                let garbage = Array.init 50_000 (fun i -> byte ((i * 7919 + 13) % 251))
                let b64 = Convert.ToBase64String garbage

                let html =
                    $"<!DOCTYPE html><html><body>\
                      <video muted src=\"data:video/mp4;base64,{b64}\"></video>\
                      <video muted><source type=\"video/mp4\" src=\"data:video/mp4;base64,{b64}\"></video>\
                      </body></html>"

                let checks = Browser.checkVideos html
                Expect.equal checks.Length 2 $"two videos: {checks}"

                for v in checks do
                    Expect.isFalse v.Loaded $"video {v.Index} must not load ({v})"
                    Expect.isFalse v.Played $"video {v.Index} must not play"
                    Expect.isSome v.Error $"video {v.Index} reports an error"

            testCase "the page checker sees CDN requests, a missing stylesheet and an unstyled page"
            <| fun () ->
                needChromium ()

                let html =
                    """<!DOCTYPE html><html><head>
<link href="https://fonts.googleapis.com/css2?family=Fira+Code" rel="stylesheet">
<link href="missing.css" rel="stylesheet">
<script src="https://cdn.plot.ly/plotly-2.28.0.min.js"></script>
</head><body><p>text</p></body></html>"""

                let p = Browser.checkPage html
                Expect.isFalse p.Styled "no stylesheet loaded"

                Expect.containsAll
                    p.ExternalRequests
                    [
                        "https://fonts.googleapis.com/css2?family=Fira+Code"
                        "https://cdn.plot.ly/plotly-2.28.0.min.js"
                    ]
                    "both CDN addresses are seen"

                Expect.isTrue
                    (p.FailedRequests |> List.exists (fun f -> f.Contains "missing.css"))
                    $"the missing stylesheet failed: {p.FailedRequests}"

                Expect.isGreaterThanOrEqual p.FailedRequests.Length 3 "all three requests failed"
                Expect.equal p.PlotlyCharts 0 "no chart"

            testCase "a Plotly chart with inline plotly.js renders offline, in a styled page"
            <| fun () ->
                needChromium ()

                let chart =
                    Chart.Line([ 0.0; 1.0; 2.0 ], [ 1.0; 3.0; 2.0 ]) |> GenericChart.toChartHTML

                let html =
                    $"<!DOCTYPE html><html><head><style>body {{ font-family: sans-serif; margin: 2em; }}</style>{Charts.plotlyScript ()}</head><body>{chart}</body></html>"

                let p = Browser.checkPage html
                Expect.equal p.PlotlyCharts 1 $"one chart rendered ({p})"
                Expect.isTrue p.Styled "the inline stylesheet applies"
                Expect.isEmpty p.ExternalRequests "no external request"
                Expect.isEmpty p.FailedRequests "no failed request"
                Expect.isEmpty p.ScriptErrors "no script error"

            testCase "a notebook page rendered by fsdocs (build.fsx's arguments) opens styled from disk, offline"
            <| fun () ->
                needChromium ()
                let input = tempDir "rl-fsdocs-in"
                let output = tempDir "rl-fsdocs-out"

                try
                    let scripts = Path.Combine(repoRoot.Value, "scripts").Replace('\\', '/')
                    File.WriteAllText(Path.Combine(input, "browser-check.fsx"), tinyNotebook scripts)

                    File.Copy(
                        Path.Combine(repoRoot.Value, "notebooks", "_template.html"),
                        Path.Combine(input, "_template.html")
                    )

                    // the repository root: `dotnet fsdocs` is a local tool of .config/dotnet-tools.json
                    let code, out = run repoRoot.Value 600 "dotnet" (fsdocsArgs input output)
                    Expect.equal code 0 $"dotnet fsdocs build failed: {out}"
                    let page = Path.Combine(output, "browser-check.html")
                    Expect.isTrue (File.Exists page) $"fsdocs wrote {page}: {out}"
                    let html = File.ReadAllText page
                    Expect.stringContains html "A page opened from disk" "the markdown is on the page"
                    let p = Browser.checkPageFile page
                    Expect.isTrue p.Styled $"the page is styled ({p})"
                    Expect.isEmpty p.ExternalRequests "no request leaves the machine"
                    Expect.isEmpty p.FailedRequests "every local file loads"
                    Expect.isEmpty p.ScriptErrors "no script error"
                    Expect.equal p.PlotlyCharts 1 "the chart renders"
                    // the episode video plays (needs ffmpeg; without it the page shows PNG frames)
                    if Video.ffmpeg().IsSome then
                        match Browser.checkVideosFile page with
                        | [ v ] ->
                            Expect.isTrue v.Loaded $"the episode video loads ({v})"
                            Expect.isTrue v.Played "and plays"
                            Expect.isGreaterThan v.Duration 0.1 "for the episode's length"
                        | other -> failtest $"expected one video, got {other}"
                    else
                        Expect.stringContains html "data:image/png;base64," "frames as images without ffmpeg"
                finally
                    Directory.Delete(input, true)
                    Directory.Delete(output, true)
        ]
