/// Episode videos: a policy's deterministic episodes drawn frame by frame (`Envs.frame`) and
/// written as MP4 (H.264) through ffmpeg, named as Gymnasium's `RecordVideo` names them
/// (`{name_prefix}-episode-{episode_id}.mp4`, `gymnasium/wrappers/rendering.py`), under the run
/// folder's `videos/`; without ffmpeg, the frames as PNG files in a folder of that name. Also the
/// HTML that embeds a video so that it plays offline (reports, notebooks).
module Rl.Video

open System
open System.Diagnostics
open System.IO
open Rl

/// The run folder's video folder.
[<Literal>]
let VideosDir = "videos"

/// Gymnasium's `RecordVideo` default `name_prefix`.
[<Literal>]
let NamePrefix = "rl-video"

/// Environment variable naming the ffmpeg program (default: `ffmpeg` on PATH).
[<Literal>]
let FfmpegEnvVar = "RL_FFMPEG"

/// The name prefix of a run's videos: `rl-video` for a run of one seed, `rl-video-seed-<s>` per
/// seed of a batched run (labelled by seed).
let prefixFor (seeds: int64[]) (k: int) =
    if seeds.Length = 1 then
        NamePrefix
    else
        $"{NamePrefix}-seed-{seeds[k]}"

/// `{prefix}-episode-{episode}.mp4`, as `RecordVideo` names its files.
let fileName (prefix: string) (episode: int) = $"{prefix}-episode-{episode}.mp4"

/// The frames per second of `id`'s videos: Gymnasium's `metadata["render_fps"]` (CartPole 50,
/// Pendulum and both MountainCars 30, Acrobot 15, FrozenLake 4); 30 for a custom env.
let fpsOf (id: string) =
    match id with
    | CartPole.Id -> 50
    | Pendulum.Id
    | MountainCar.Id
    | MountainCarContinuous.Id -> 30
    | Acrobot.Id -> 15
    | FrozenLake.Id -> 4
    | _ -> 30

/// The ffmpeg program: `RL_FFMPEG` when set (it must exist), else `ffmpeg` found on PATH; None
/// when there is none.
let ffmpeg () : string option =
    match Environment.GetEnvironmentVariable FfmpegEnvVar with
    | null
    | "" ->
        (Environment.GetEnvironmentVariable "PATH"
         |> Option.ofObj
         |> Option.defaultValue "")
            .Split
            ':'
        |> Array.filter (fun d -> d <> "")
        |> Array.map (fun d -> Path.Combine(d, "ffmpeg"))
        |> Array.tryFind File.Exists
    | p -> Some p

/// One line saying how to get ffmpeg.
let howToGetFfmpeg =
    "ffmpeg was not found: install it (Debian/Ubuntu: sudo apt-get install -y ffmpeg; `dotnet fsi build.fsx Setup` does it when run as root) or name it in RL_FFMPEG"

/// One recorded episode: its frames (the first after `Reset`, then one after every step),
/// undiscounted return and length in steps.
type Episode =
    {
        Frames: Frame list
        Return: float
        Length: int
    }

/// Runs one episode of `act` (observation in, action out) on the single env `env`, reset with
/// `seed` (None: continue the env's stream), and draws every state with `Envs.frame`. Raises
/// `NotSupportedException` / `InvalidOperationException` from `Envs.frame` for an env that does
/// not draw itself or draws nothing.
let recordEpisode (env: IEnv) (seed: int64 option) (act: float32[] -> Action) : Episode =
    let mutable obs = env.Reset seed
    let frames = ResizeArray [ Envs.frame env ]
    let mutable total = 0.0
    let mutable steps = 0
    let mutable finished = false

    while not finished do
        let r = env.Step(act obs)
        total <- total + r.Reward
        steps <- steps + 1
        frames.Add(Envs.frame env)
        obs <- r.Obs
        finished <- r.Terminated || r.Truncated

    {
        Frames = List.ofSeq frames
        Return = total
        Length = steps
    }

/// The action of a loaded policy for seed index `k` as the single env takes it.
let actionOf (policy: PolicyExport.LoadedPolicy) (k: int) (obs: float32[]) : Action =
    let a = policy.ActFor(k, obs)

    match policy.ActionSpace with
    | Space.Discrete _ -> Action.Discrete(int a[0])
    | _ -> Action.Continuous a

/// Seed index `k`'s deterministic action as a single env takes it, from `act`, which maps
/// observations [S; B; obsDim] float32 (S = `seeds`) to actions: [S; B] int64 indices (discrete)
/// or [S; B; actDim] (continuous). No gradient is recorded. For the in-memory agents of the
/// notebooks (e.g. `fun obs -> Nn.Dist.mode (agent.Actor.Dist obs)`).
let actOfSeeds
    (seeds: int)
    (k: int)
    (act: TorchSharp.torch.Tensor -> TorchSharp.torch.Tensor)
    (obs: float32[])
    : Action =
    use _ng = TorchSharp.torch.no_grad ()
    use scope = TorchSharp.torch.NewDisposeScope()

    let x =
        TorchSharp.torch.tensor(obs).reshape(1L, 1L, int64 obs.Length).expand(int64 seeds, 1L, int64 obs.Length)

    let a = act x
    let row = a[int64 k, 0L]

    if row.dtype = TorchSharp.torch.int64 || row.dtype = TorchSharp.torch.int32 then
        Action.Discrete(int (row.item<int64>()))
    else
        Action.Continuous(row.``to``(TorchSharp.torch.float64).data<float>().ToArray())

/// A uniformly random action of `space` drawn from `rng` (the "before training" episodes).
let randomAct (space: Space) (rng: Random) (_: float32[]) : Action =
    match space with
    | Space.Discrete(n, start) -> Action.Discrete(start + rng.Next n)
    | Space.Box(low, high, _) ->
        Action.Continuous(Array.init low.Length (fun i -> low[i] + (high[i] - low[i]) * rng.NextDouble()))

/// Raised when a video cannot be written: names the file and what failed (ffmpeg's own message).
exception VideoError of path: string * reason: string with
    override e.Message = $"could not write the video {e.path}: {e.reason}"

let private checkSizes (path: string) (frames: Frame list) =
    match frames with
    | [] -> raise (VideoError(path, "the episode has no frames"))
    | first :: _ ->
        frames
        |> List.iteri (fun i f ->
            if f.Width <> first.Width || f.Height <> first.Height then
                raise (
                    VideoError(
                        path,
                        $"frame {i} is {f.Width} x {f.Height}, but the first frame is {first.Width} x {first.Height}; every frame of a video must have one size"
                    )
                ))

        first

/// Encodes `frames` at `fps` frames per second as an H.264 MP4 (yuv420p, `+faststart`, odd sizes
/// padded to even) at `path` with the ffmpeg program `program`, writing a temporary file first and
/// renaming it, so that a failure leaves no partial video. Raises `VideoError` naming the file and
/// ffmpeg's message when ffmpeg fails or cannot start.
let writeMp4 (program: string) (fps: int) (path: string) (frames: Frame list) =
    let first = checkSizes path frames

    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path))
    |> ignore

    let temp = path + ".partial.mp4"

    let psi =
        ProcessStartInfo(
            program,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false
        )

    for a in
        [
            "-y"
            "-loglevel"
            "error"
            "-f"
            "rawvideo"
            "-pix_fmt"
            "rgb24"
            "-s"
            $"{first.Width}x{first.Height}"
            "-r"
            string fps
            "-i"
            "-"
            "-vf"
            "pad=ceil(iw/2)*2:ceil(ih/2)*2"
            "-c:v"
            "libx264"
            "-pix_fmt"
            "yuv420p"
            "-movflags"
            "+faststart"
            "-f"
            "mp4"
            temp
        ] do
        psi.ArgumentList.Add a

    let proc =
        try
            Process.Start psi
        with e ->
            raise (VideoError(path, $"could not start ffmpeg ({program}): {e.Message}"))

    use _ = proc
    let stderr = proc.StandardError.ReadToEndAsync()
    let stdout = proc.StandardOutput.ReadToEndAsync()

    let fed =
        try
            use input = proc.StandardInput.BaseStream

            for f in frames do
                input.Write(f.Pixels, 0, f.Pixels.Length)

            None
        with :? IOException as e ->
            Some e.Message

    proc.WaitForExit()
    stdout.Wait()
    let message = stderr.Result.Trim()

    if proc.ExitCode <> 0 || fed.IsSome then
        (try
            File.Delete temp
         with _ ->
             ())

        let detail =
            [
                if proc.ExitCode <> 0 then
                    $"ffmpeg exited with code {proc.ExitCode}"
                match fed with
                | Some m -> $"writing frames to ffmpeg failed ({m})"
                | None -> ()
                if message <> "" then
                    message.Split('\n') |> Array.last
            ]

        raise (VideoError(path, String.Join("; ", detail)))

    File.Move(temp, path, true)

/// Writes `frames` as `frame-00000.png`, ... into folder `dir` (the fallback without ffmpeg).
let writePngs (dir: string) (frames: Frame list) =
    Directory.CreateDirectory dir |> ignore

    frames
    |> List.iteri (fun i f -> File.WriteAllBytes(Path.Combine(dir, $"frame-{i:D5}.png"), Render.toPng f))

/// Saves an episode as the MP4 file `path` with ffmpeg, or, without ffmpeg, as PNG frames in the
/// folder `path` without its extension (printing `howToGetFfmpeg`). Returns the path written.
/// Raises `VideoError` when ffmpeg fails.
let saveAs (path: string) (fps: int) (episode: Episode) : string =
    match ffmpeg () with
    | Some program ->
        writeMp4 program fps path episode.Frames
        path
    | None ->
        let folder = Path.ChangeExtension(path, null)
        writePngs folder episode.Frames
        eprintfn "video: %s; the %d frames were written as PNG files in %s" howToGetFfmpeg episode.Frames.Length folder
        folder

/// Saves an episode as `dir/{prefix}-episode-{episode}.mp4` with ffmpeg, or, without ffmpeg, as
/// PNG frames in the folder `dir/{prefix}-episode-{episode}/` (printing `howToGetFfmpeg` once per
/// call). Returns the path written. Raises `VideoError` when ffmpeg fails.
let save (dir: string) (prefix: string) (episodeId: int) (fps: int) (episode: Episode) : string =
    saveAs (Path.Combine(dir, fileName prefix episodeId)) fps episode

/// The index of a run's videos, `videos/episodes.csv`: one row per recorded episode.
[<Literal>]
let IndexFile = "episodes.csv"

/// Appends a row `file,seed,episode,reset_seed,return,length` to `dir/episodes.csv` (with its
/// header when new); `file` is the name of what `save` wrote.
let appendIndex (dir: string) (file: string) (seed: int64) (episode: int) (resetSeed: int64 option) (e: Episode) =
    let path = Path.Combine(dir, IndexFile)

    if not (File.Exists path) then
        File.WriteAllText(path, "file,seed,episode,reset_seed,return,length\n")

    let reset =
        match resetSeed with
        | Some s -> string s
        | None -> ""

    File.AppendAllText(
        path,
        String.Join(
            ",",
            [
                file
                string seed
                string episode
                reset
                e.Return.ToString("R", Globalization.CultureInfo.InvariantCulture)
                string e.Length
            ]
        )
        + "\n"
    )

/// The caption of a video of run folder `runDir` from `videos/episodes.csv` (its last row for
/// `file`): seed, return and length; the file name alone when the index has no row for it.
let captionIn (runDir: string) (file: string) : string =
    let path = Path.Combine(runDir, VideosDir, IndexFile)

    let row =
        if File.Exists path then
            File.ReadAllLines path
            |> Array.skip 1
            |> Array.map (fun l -> l.Split ',')
            |> Array.filter (fun c -> c.Length = 6 && c[0] = file)
            |> Array.tryLast
        else
            None

    match row with
    | Some c ->
        let ret = Double.Parse(c[4], Globalization.CultureInfo.InvariantCulture)

        let start = if c[3] = "" then "" else $", start seed {c[3]}"
        $"seed {c[1]}, deterministic episode {c[2]}{start}: return {ret:F1} over {c[5]} steps"
    | None -> file

/// HTML showing one episode of `act` on `env` (reset with `seed`), for notebooks and pages: the
/// episode as an MP4 `<video>` that plays offline (see `Report.videoHtml`) with `caption` and the
/// episode's return; without ffmpeg, its first, middle and last frames as images and one line
/// saying how to get ffmpeg. Raises `VideoError` when ffmpeg fails, `Envs.frame`'s errors for an
/// env that does not draw itself.
let episodeHtml (env: IEnv) (seed: int64 option) (act: float32[] -> Action) (caption: string) : string =
    let e = recordEpisode env seed act
    let caption = $"{caption}: return {e.Return:F1} over {e.Length} steps"

    match ffmpeg () with
    | Some program ->
        let dir = Path.Combine(Path.GetTempPath(), $"rl-video-{Guid.NewGuid():N}")
        let path = Path.Combine(dir, fileName NamePrefix 0)

        try
            writeMp4 program (fpsOf env.Id) path e.Frames
            Report.videoHtml path caption
        finally
            try
                Directory.Delete(dir, true)
            with _ ->
                ()
    | None ->
        let pick = [ List.head e.Frames; e.Frames[e.Frames.Length / 2]; List.last e.Frames ]

        let images =
            pick
            |> List.map (fun f ->
                $"<img style=\"max-width:32%%;border:1px solid #ddd\" src=\"data:image/png;base64,{Convert.ToBase64String(f.ToPng())}\">")

        let note = Net.WebUtility.HtmlEncode howToGetFfmpeg

        $"<figure class=\"rl-video\" style=\"margin:0\">{String.Join(String.Empty, images)}<figcaption style=\"font-size:90%%;color:#555\">{Net.WebUtility.HtmlEncode caption} (first, middle and last frame; {note})</figcaption></figure>"

/// Two episodes side by side (e.g. before and after training), each as `episodeHtml` gives it.
let sideBySide (left: string) (right: string) : string =
    $"<div style=\"display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start\">{left}{right}</div>"
