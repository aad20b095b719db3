/// Tests of rendering and videos (`Rl.Render`, `Envs.frame`/`Envs.render`, `Rl.Video`,
/// `capture_video`, `evaluate.fsx video=true`): our frames against Gymnasium 1.4.0's own frames of
/// the same states (`tests/data/frames`, recorded with pygame by `tests/python/record_frames.py`),
/// their pixel agreement and geometry; FrozenLake's ansi text to the byte; rendering leaves
/// trajectories unchanged; videos through ffmpeg, the PNG fallback and a failing ffmpeg; a
/// trained run's report whose video plays in headless Chromium.
module Rl.Tests.RenderTests

open System
open System.IO
open System.Text.Json
open Expecto
open Rl
open Rl.Tests.TestPaths

let private framesDir () =
    Path.Combine(repoRoot.Value, "tests", "data", "frames")

let private index =
    lazy (JsonDocument.Parse(File.ReadAllText(Path.Combine(framesDir (), "frames.json"))).RootElement)

/// Property `name` of `r` read with `read`, None when it is JSON null (Python's None).
let private optional (r: JsonElement) (name: string) (read: JsonElement -> 'T) : 'T option =
    let e = r.GetProperty name

    if e.ValueKind = JsonValueKind.Null then
        None
    else
        Some(read e)

/// The env of a reference record with the record's state set (and Pendulum's last torque,
/// FrozenLake's last action), reset first so that it may be drawn.
let private envOf (r: JsonElement) : IEnv =
    let id = r.GetProperty("env_id").GetString()

    let options =
        [
            for p in r.GetProperty("env_kwargs").EnumerateObject() ->
                p.Name,
                match p.Value.ValueKind with
                | JsonValueKind.String -> box (p.Value.GetString())
                | JsonValueKind.True
                | JsonValueKind.False -> box (p.Value.GetBoolean())
                | _ -> box (p.Value.GetDouble())
        ]

    let env = Envs.makeWith id options
    env.Reset(Some 0L) |> ignore
    let state = r.GetProperty "state"

    match env with
    | :? FrozenLake.Env as lake ->
        lake.S <- state.GetInt32()
        lake.LastAction <- optional r "lastaction" (fun a -> a.GetInt32())
    | :? ClassicEnv as c ->
        c.State <- [| for x in state.EnumerateArray() -> x.GetDouble() |]

        match env with
        | :? Pendulum.Env as p -> p.LastU <- optional r "last_u" (fun u -> u.GetDouble())
        | _ -> ()
    | _ -> failtest $"unexpected env {id}"

    env

let private reference (r: JsonElement) =
    Render.ofPng (File.ReadAllBytes(Path.Combine(framesDir (), r.GetProperty("file").GetString())))

/// Largest channel difference of pixel i.
let private diff (a: Frame) (b: Frame) (i: int) =
    max (abs (int a.Pixels[3 * i] - int b.Pixels[3 * i])) (abs (int a.Pixels[3 * i + 1] - int b.Pixels[3 * i + 1]))
    |> max (abs (int a.Pixels[3 * i + 2] - int b.Pixels[3 * i + 2]))

/// (exact, within 64 per channel) fractions of all pixels, and the within-64 fraction of the
/// pixels that are not white in either frame (the drawing itself).
let private agreement (ours: Frame) (theirs: Frame) =
    let n = ours.Width * ours.Height
    let mutable exact, near, ink, inkNear = 0, 0, 0, 0

    let white (f: Frame) i =
        f.Pixels[3 * i] = 255uy
        && f.Pixels[3 * i + 1] = 255uy
        && f.Pixels[3 * i + 2] = 255uy

    for i in 0 .. n - 1 do
        let d = diff ours theirs i

        if d = 0 then
            exact <- exact + 1

        if d <= 64 then
            near <- near + 1

        if not (white ours i && white theirs i) then
            ink <- ink + 1

            if d <= 64 then
                inkNear <- inkNear + 1

    float exact / float n, float near / float n, float inkNear / float ink

/// Pixel count, centroid (x, y) and principal-axis angle (degrees, 0 = horizontal, in [0, 180)) of
/// the interior pixels of exactly `colour` (the pixel and its four neighbours have it: stray
/// anti-aliasing pixels of another shape that happen to match are left out).
let private blob (f: Frame) (r: byte, g: byte, b: byte) =
    let is x y =
        x >= 0
        && y >= 0
        && x < f.Width
        && y < f.Height
        && (let i = 3 * (y * f.Width + x)
            f.Pixels[i] = r && f.Pixels[i + 1] = g && f.Pixels[i + 2] = b)

    let pts =
        [|
            for y in 0 .. f.Height - 1 do
                for x in 0 .. f.Width - 1 do
                    if is x y && is (x - 1) y && is (x + 1) y && is x (y - 1) && is x (y + 1) then
                        yield float x, float y
        |]

    if pts.Length = 0 then
        0, nan, nan, nan
    else
        let cx = pts |> Array.averageBy fst
        let cy = pts |> Array.averageBy snd
        let sxx = pts |> Array.averageBy (fun (x, _) -> (x - cx) ** 2.0)
        let syy = pts |> Array.averageBy (fun (_, y) -> (y - cy) ** 2.0)
        let sxy = pts |> Array.averageBy (fun (x, y) -> (x - cx) * (y - cy))
        let angle = 0.5 * Math.Atan2(2.0 * sxy, sxx - syy) * 180.0 / Math.PI
        pts.Length, cx, cy, (angle + 180.0) % 180.0

/// The smallest difference of two axis angles in degrees (180 = 0).
let private angleGap (a: float) (b: float) =
    let d = abs (a - b) % 180.0
    min d (180.0 - d)

/// The colours whose geometry each env's frames must share with Gymnasium's (interior pixels of
/// the shapes, exact colour), and whether the shape is elongated (its axis angle is compared too).
let private shapes =
    Map.ofList
        [
            "CartPole-v1",
            [
                (202uy, 152uy, 101uy), true
                (0uy, 0uy, 0uy), false
                (129uy, 132uy, 203uy), false
            ]
            "Pendulum-v1", [ (204uy, 77uy, 77uy), true ]
            "MountainCar-v0", [ (128uy, 128uy, 128uy), false; (204uy, 204uy, 0uy), false ]
            "MountainCarContinuous-v0", [ (128uy, 128uy, 128uy), false; (204uy, 204uy, 0uy), false ]
            "Acrobot-v1", [ (0uy, 204uy, 204uy), false; (204uy, 204uy, 0uy), false ]
        ]

/// The smallest pixel agreement (within 64 per channel, over the whole frame) each env must reach.
/// FrozenLake's tiles and elf are our own drawings, not Gymnasium's images: its bar says the
/// layout matches (same size, same grid), not the pictures.
let private bars =
    Map.ofList
        [
            "CartPole-v1", 0.9995
            "Pendulum-v1", 0.99
            "MountainCar-v0", 0.9995
            "MountainCarContinuous-v0", 0.9995
            "Acrobot-v1", 0.9995
            "FrozenLake-v1", 0.80
        ]

/// The FrozenLake cells (row-major) whose pixels differ between two frames of one map.
let private changedCells (a: Frame) (b: Frame) (ncol: int) (nrow: int) =
    let cw, ch = a.Width / ncol, a.Height / nrow

    set
        [
            for row in 0 .. nrow - 1 do
                for col in 0 .. ncol - 1 do
                    let mutable changed = 0

                    for y in row * ch + 2 .. (row + 1) * ch - 3 do
                        for x in col * cw + 2 .. (col + 1) * cw - 3 do
                            if diff a b (y * a.Width + x) > 0 then
                                changed <- changed + 1

                    if changed > cw * ch / 20 then
                        yield row * ncol + col
        ]

/// A seeded random-action episode of `id` (stopping at its end): observations and rewards, and the
/// env's snapshot at the end; `draw` renders after reset and every step.
let private episode (id: string) (draw: bool) =
    let env = Envs.make id
    let rng = Random 7
    let obs = ResizeArray [ env.Reset(Some 11L) ]
    let rewards = ResizeArray()

    if draw then
        Envs.frame env |> ignore

    let mutable finished = false

    while not finished do
        let action = Video.randomAct env.ActionSpace rng [||]

        let r = env.Step action
        obs.Add r.Obs
        rewards.Add r.Reward

        if draw then
            Envs.frame env |> ignore

        finished <- r.Terminated || r.Truncated || obs.Count > 300

    obs |> Seq.map (Array.map float) |> Array.concat, rewards.ToArray(), (env :?> IEnvSnapshot).SaveState()

/// An env that does not draw itself (no `IRenderable`).
type private Blind() =
    interface IEnv with
        member _.Id = "Blind-v0"
        member _.ObservationSpace = Space.Box([| 0.0 |], [| 1.0 |], [| 1 |])
        member _.ActionSpace = Space.Discrete(2, 0)
        member _.MaxEpisodeSteps = 3
        member _.Reset _ = [| 0.5f |]

        member _.Step _ =
            {
                Obs = [| 0.5f |]
                Reward = 1.0
                Terminated = false
                Truncated = false
            }

/// One that claims to draw but returns no frame.
type private Empty() =
    inherit Blind()

    interface IRenderable with
        member _.Render() = null

let private ffmpegOrSkip () =
    match Video.ffmpeg () with
    | Some p -> p
    | None -> skiptest $"ffmpeg not found ({Video.howToGetFfmpeg})"

/// (frames, fps) of an MP4 read back with ffprobe (next to ffmpeg).
let private probe (ffmpeg: string) (path: string) =
    let ffprobe = Path.Combine(Path.GetDirectoryName ffmpeg, "ffprobe")

    let psi =
        Diagnostics.ProcessStartInfo(ffprobe, RedirectStandardOutput = true, RedirectStandardError = true)

    for a in
        [
            "-v"
            "error"
            "-count_frames"
            "-select_streams"
            "v:0"
            "-show_entries"
            "stream=nb_read_frames,r_frame_rate,width,height,codec_name"
            "-of"
            "json"
            path
        ] do
        psi.ArgumentList.Add a

    use p = Diagnostics.Process.Start psi
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    let s = JsonDocument.Parse(out).RootElement.GetProperty("streams")[0]

    s.GetProperty("codec_name").GetString(),
    int (s.GetProperty("nb_read_frames").GetString()),
    s.GetProperty("r_frame_rate").GetString(),
    s.GetProperty("width").GetInt32(),
    s.GetProperty("height").GetInt32()

/// Runs `f`, which must raise `'E`; returns the exception.
let private throws<'E when 'E :> exn> (f: unit -> unit) : 'E =
    try
        f ()
        failtest $"expected {typeof<'E>.Name}, nothing was raised"
    with :? 'E as e ->
        e

/// Sets an environment variable for the duration of `f`.
let private withEnv (name: string) (value: string) (f: unit -> 'T) =
    let before = Environment.GetEnvironmentVariable name
    Environment.SetEnvironmentVariable(name, value)

    try
        f ()
    finally
        Environment.SetEnvironmentVariable(name, before)

let private cartPoleRun =
    [
        "config=" + config "ppo-cartpole.yaml"
        "num_envs=2"
        "num_steps=32"
        "num_minibatches=2"
        "update_epochs=1"
        "total_timesteps=128"
        "eval_episodes=1"
        "threads=1"
        "capture_video=true"
    ]

[<Tests>]
let tests =
    testList
        "Render"
        [
            testCase "our frames agree with Gymnasium's for the same states (pixels and geometry)"
            <| fun () ->
                let records = index.Value.GetProperty("frames").EnumerateArray() |> List.ofSeq
                Expect.isGreaterThanOrEqual records.Length 30 "the reference set"
                let worst = Collections.Generic.Dictionary<string, float * float * float>()

                for r in records do
                    let id = r.GetProperty("env_id").GetString()
                    let file = r.GetProperty("file").GetString()
                    let ours = Envs.frame (envOf r)
                    let theirs = reference r
                    Expect.equal (ours.Width, ours.Height) (theirs.Width, theirs.Height) $"{file}: frame size"
                    let exact, near, ink = agreement ours theirs

                    Expect.isGreaterThanOrEqual
                        near
                        bars[id]
                        $"{file}: pixels within 64 of Gymnasium's (exact {exact:F4}, drawing {ink:F3})"

                    match worst.TryGetValue id with
                    | true, (e, n, i) -> worst[id] <- (min e exact, min n near, min i ink)
                    | _ -> worst[id] <- (exact, near, ink)

                    for colour, elongated in Map.tryFind id shapes |> Option.defaultValue [] do
                        let n1, x1, y1, a1 = blob ours colour
                        let n2, x2, y2, a2 = blob theirs colour

                        if n2 > 20 then
                            Expect.isLessThan
                                (abs (float n1 - float n2) / float n2)
                                0.3
                                $"{file}: {colour} pixel count {n1} vs {n2}"

                            Expect.isLessThan
                                (sqrt ((x1 - x2) ** 2.0 + (y1 - y2) ** 2.0))
                                1.5
                                $"{file}: {colour} centroid ({x1:F2}, {y1:F2}) vs ({x2:F2}, {y2:F2})"

                            if elongated then
                                Expect.isLessThan
                                    (angleGap a1 a2)
                                    1.0
                                    $"{file}: {colour} axis {a1:F2} vs {a2:F2} degrees"

                for KeyValue(id, (e, n, i)) in worst do
                    printfn
                        "render agreement %-26s worst frame: exact %.4f, within 64 %.4f, drawing within 64 %.3f"
                        id
                        e
                        n
                        i

            testCase "FrozenLake's agent and grid sit where Gymnasium draws them"
            <| fun () ->
                let records =
                    index.Value.GetProperty("frames").EnumerateArray()
                    |> Seq.filter (fun r -> r.GetProperty("env_id").GetString() = FrozenLake.Id)
                    |> List.ofSeq

                let grid = (180uy, 200uy, 230uy)

                for r in records do
                    let ours = Envs.frame (envOf r)
                    let theirs = reference r

                    let isGrid (f: Frame) i =
                        let (a, b, c) = grid
                        f.Pixels[3 * i] = a && f.Pixels[3 * i + 1] = b && f.Pixels[3 * i + 2] = c

                    let theirsGrid =
                        [| 0 .. theirs.Width * theirs.Height - 1 |] |> Array.filter (isGrid theirs)

                    let shared = theirsGrid |> Array.filter (isGrid ours)
                    // Gymnasium's outline pixels are ours too, but where a sprite covers them
                    Expect.isGreaterThan theirsGrid.Length 500 "Gymnasium's outlines"
                    Expect.isGreaterThan (float shared.Length / float theirsGrid.Length) 0.9 "outline pixels in common"

                // moving the agent changes the same cells in both renderers
                for map in [ "4x4"; "8x8" ] do
                    let ofMap =
                        records
                        |> List.filter (fun r -> r.GetProperty("env_kwargs").GetProperty("map_name").GetString() = map)

                    for a in ofMap do
                        for b in ofMap do
                            let sa, sb = a.GetProperty("state").GetInt32(), b.GetProperty("state").GetInt32()

                            if sa < sb then
                                let n = if map = "4x4" then 4 else 8
                                let ours = changedCells (Envs.frame (envOf a)) (Envs.frame (envOf b)) n n
                                let theirs = changedCells (reference a) (reference b) n n
                                Expect.equal ours theirs $"{map}: cells that change from s={sa} to s={sb}"
                                Expect.equal ours (set [ sa; sb ]) "exactly the two agent cells"

            testCase "FrozenLake's ansi text is Gymnasium's to the byte"
            <| fun () ->
                let records = index.Value.GetProperty("ansi").EnumerateArray() |> List.ofSeq
                Expect.isGreaterThanOrEqual records.Length 10 "the reference set"

                for r in records do
                    let map = r.GetProperty("env_kwargs").GetProperty("map_name").GetString()

                    let env =
                        Envs.makeWith FrozenLake.Id [ "map_name", box map; "render_mode", box "ansi" ]

                    env.Reset(Some 0L) |> ignore
                    let lake = env :?> FrozenLake.Env
                    lake.S <- r.GetProperty("s").GetInt32()
                    lake.LastAction <- optional r "lastaction" (fun a -> a.GetInt32())

                    match Envs.render env with
                    | Envs.Rendered.Ansi text ->
                        Expect.equal text (r.GetProperty("ansi").GetString()) $"map {map}, s {lake.S}"
                    | other -> failtest $"expected ansi, got {other}"

            testCase "render_mode: allowed values, refusals listing them, and the mode render answers in"
            <| fun () ->
                let refused (id: string) (mode: obj) (expected: string) =
                    let e =
                        throws<ArgumentException>(fun () -> Envs.makeWith id [ "render_mode", mode ] |> ignore)

                    Expect.stringContains e.Message expected $"{id}, render_mode {mode}"

                refused CartPole.Id "rgb" "unknown render_mode 'rgb'; allowed values: rgb_array"
                refused CartPole.Id "ansi" "allowed values: rgb_array"
                refused FrozenLake.Id "video" "allowed values: rgb_array, ansi"
                refused Pendulum.Id "human" "not offered"
                refused Pendulum.Id (box 3) "allowed values: rgb_array"

                let e =
                    throws<ArgumentException>(fun () ->
                        Envs.makeBatchedWith CartPole.Id 2 TorchSharp.torch.CPU [ "render_mode", box "rgb_array" ]
                        |> ignore)

                Expect.stringContains e.Message "unknown option 'render_mode'" "batched forms do not render"

                let env = Envs.makeWith CartPole.Id [ "render_mode", box "rgb_array" ]
                let early = throws<InvalidOperationException>(fun () -> Envs.frame env |> ignore)
                Expect.stringContains early.Message "before Reset" "no state before Reset"
                env.Reset(Some 1L) |> ignore

                match Envs.render env with
                | Envs.Rendered.Rgb f -> Expect.equal (f.Width, f.Height) (600, 400) "CartPole's screen"
                | other -> failtest $"expected a frame, got {other}"

            testCase "a custom env that does not draw, or draws nothing, is refused with a message"
            <| fun () ->
                let blind = Blind() :> IEnv
                let e = throws<NotSupportedException>(fun () -> Envs.frame blind |> ignore)
                Expect.stringContains e.Message "does not draw itself" "message"
                let empty = Empty() :> IEnv
                let e = throws<InvalidOperationException>(fun () -> Envs.frame empty |> ignore)
                Expect.stringContains e.Message "Render returned no frame" "message"

                let e =
                    throws<InvalidOperationException>(fun () ->
                        Video.recordEpisode empty (Some 0L) (fun _ -> Action.Discrete 0) |> ignore)

                Expect.stringContains e.Message "must draw its state" "the recorder says so too"

            testCase "rendering every step changes no trajectory (every built-in env)"
            <| fun () ->
                for id in Envs.ids do
                    let obs1, rewards1, state1 = episode id false
                    let obs2, rewards2, state2 = episode id true
                    Expect.sequenceEqual obs2 obs1 $"{id}: observations"
                    Expect.sequenceEqual rewards2 rewards1 $"{id}: rewards"
                    Expect.equal state2 state1 $"{id}: the env's state at the end"

            testCase "a PNG round trip keeps every pixel"
            <| fun () ->
                let env = Envs.make Acrobot.Id
                env.Reset(Some 3L) |> ignore
                let f = Envs.frame env
                let back = Render.ofPng (f.ToPng())
                Expect.sequenceEqual back.Pixels f.Pixels "pixels"

                throws<FormatException>(fun () -> Render.ofPng [| 1uy; 2uy; 3uy |] |> ignore)
                |> ignore

            testCase "an episode video: one frame per state at the env's render_fps, H.264"
            <| fun () ->
                let ffmpeg = ffmpegOrSkip ()
                let dir = tempDir "rl-video"

                try
                    let env = Envs.make CartPole.Id
                    let e = Video.recordEpisode env (Some 5L) (fun _ -> Action.Discrete 1)
                    Expect.equal e.Frames.Length (e.Length + 1) "reset frame + one per step"
                    let path = Video.save dir Video.NamePrefix 0 (Video.fpsOf CartPole.Id) e
                    Expect.equal (Path.GetFileName path) "rl-video-episode-0.mp4" "RecordVideo's name"
                    let codec, frames, rate, w, h = probe ffmpeg path
                    Expect.equal (codec, frames, rate, w, h) ("h264", e.Length + 1, "50/1", 600, 400) "stream"
                    Expect.isEmpty (Directory.GetFiles(dir, "*.partial*")) "no temporary file left"
                finally
                    Directory.Delete(dir, true)

            testCase "without ffmpeg the frames are PNG files; a failing ffmpeg leaves no partial video"
            <| fun () ->
                let dir = tempDir "rl-video"

                try
                    let env = Envs.make MountainCar.Id
                    let e = Video.recordEpisode env (Some 5L) (fun _ -> Action.Discrete 2)

                    let e =
                        { e with
                            Frames = List.truncate 5 e.Frames
                        }
                    // no ffmpeg on an empty PATH
                    let written =
                        withEnv "PATH" "" (fun () ->
                            withEnv Video.FfmpegEnvVar null (fun () -> Video.save dir "rl-video" 0 30 e))

                    Expect.equal (Path.GetFileName written) "rl-video-episode-0" "the folder is named as the video"
                    let pngs = Directory.GetFiles(written, "*.png") |> Array.sort
                    Expect.equal pngs.Length 5 "one PNG per frame"

                    Expect.sequenceEqual
                        (Render.ofPng(File.ReadAllBytes pngs[0]).Pixels)
                        e.Frames.Head.Pixels
                        "first frame"
                    // an ffmpeg that fails
                    let err =
                        withEnv Video.FfmpegEnvVar "/bin/false" (fun () ->
                            try
                                Video.save dir "rl-video" 1 30 e |> ignore
                                None
                            with Video.VideoError(path, reason) as ex ->
                                Some(path, reason, ex.Message))

                    match err with
                    | Some(path, reason, message) ->
                        Expect.equal (Path.GetFileName path) "rl-video-episode-1.mp4" "names the file"
                        Expect.stringContains reason "exited with code 1" "says what failed"
                        Expect.stringContains message "could not write the video" "message"
                    | None -> failtest "a failing ffmpeg must raise VideoError"

                    Expect.isEmpty (Directory.GetFiles(dir, "*.mp4*")) "no partial video"
                    // frames of two sizes are refused before ffmpeg starts
                    let other = Envs.make FrozenLake.Id
                    other.Reset(Some 1L) |> ignore
                    let mixed = e.Frames.Head :: [ Envs.frame other ]

                    let ex =
                        throws<Video.VideoError>(fun () ->
                            Video.writeMp4 "/bin/false" 30 (Path.Combine(dir, "x.mp4")) mixed)

                    Expect.stringContains ex.Message "every frame of a video must have one size" "sizes"
                finally
                    Directory.Delete(dir, true)

            testCase
                "capture_video: a batched run records one video per seed, the report embeds them, and they play in Chromium"
            <| fun () ->
                let ffmpeg = ffmpegOrSkip ()
                let runs = tempDir "rl-capture"

                try
                    let dir = Ppo.Runner.run ("runs=" + runs :: "num_seeds=2" :: cartPoleRun)

                    let videos =
                        Directory.GetFiles(Path.Combine(dir, "videos"), "*.mp4")
                        |> Array.map Path.GetFileName
                        |> Array.sort

                    Expect.equal
                        videos
                        [| "rl-video-seed-0-episode-0.mp4"; "rl-video-seed-1-episode-0.mp4" |]
                        "labelled by seed"

                    let rows = File.ReadAllLines(Path.Combine(dir, "videos", "episodes.csv"))
                    Expect.equal rows.Length 3 "header + one row per video"
                    let lengths = rows[1..] |> Array.map (fun r -> int (r.Split(',')[5]))

                    for v, length in Array.zip videos lengths do
                        let _, frames, rate, _, _ = probe ffmpeg (Path.Combine(dir, "videos", v))

                        Expect.equal
                            (frames, rate)
                            (length + 1, "50/1")
                            $"{v}: the episode's states at CartPole's 50 fps"

                    let report = File.ReadAllText(Path.Combine(dir, "report.html"))
                    Expect.equal (report.Split("data:video/mp4;base64,").Length - 1) 2 "both videos embedded"
                    Expect.stringContains report "seed 0, deterministic episode 0, start seed 1000000" "caption"

                    match Browser.find () with
                    | None -> printfn "capture_video browser check skipped: no Chromium (install the chromium package)"
                    | Some _ ->
                        let checks = Browser.checkVideosFile (Path.Combine(dir, "report.html"))
                        Expect.equal checks.Length 2 "two video elements"

                        for c in checks do
                            Expect.isTrue c.Loaded $"video {c.Index} loads ({c.Error})"
                            Expect.isTrue c.Played $"video {c.Index} plays"

                        let durations = checks |> List.map (fun c -> Math.Round(c.Duration, 3)) |> List.sort

                        let expected =
                            lengths
                            |> Array.map (fun l -> Math.Round(float (l + 1) / 50.0, 3))
                            |> List.ofArray
                            |> List.sort

                        Expect.equal durations expected "durations = frames / render_fps"
                finally
                    Directory.Delete(runs, true)

            testCase "evaluate.fsx video=true: K episodes of a saved run; a failing ffmpeg keeps the run intact"
            <| fun () ->
                ffmpegOrSkip () |> ignore
                let runs = tempDir "rl-capture"

                try
                    let dir =
                        withEnv Video.FfmpegEnvVar "/bin/false" (fun () ->
                            Ppo.Runner.run ("runs=" + runs :: cartPoleRun))

                    Expect.isEmpty (Directory.GetFiles(Path.Combine(dir, "videos"), "*.mp4")) "ffmpeg failed: no video"
                    Expect.isTrue (File.Exists(Path.Combine(dir, "summary.json"))) "the run finished"

                    Expect.isFalse
                        ((File.ReadAllText(Path.Combine(dir, "report.html"))).Contains "<video")
                        "no video in the report"

                    let written = Cli.recordVideos dir None 2

                    Expect.equal
                        (written |> List.map Path.GetFileName)
                        [ "rl-video-episode-0.mp4"; "rl-video-episode-1.mp4" ]
                        "K = 2 episodes"
                    // the checkpoint still loads and evaluates as before
                    Expect.equal (Cli.evaluate dir None (Some 1)).Length 1 "evaluates"
                finally
                    Directory.Delete(runs, true)
        ]
