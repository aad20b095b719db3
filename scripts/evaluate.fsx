// Evaluate a saved run's deterministic policy:
//   dotnet fsi scripts/evaluate.fsx <run dir or its checkpoint dir> [episodes=N] [algo=<name>]
// Watch it: `video=true` records N deterministic episodes per seed (default 1) as videos in the
// run folder's videos/ (rl-video-episode-<i>.mp4, per seed rl-video-seed-<s>-episode-<i>.mp4 in a
// batched run; PNG frames without ffmpeg) instead of printing the evaluation. Exit code 1 when
// ffmpeg fails.
// The run folder knows its algorithm (the `# algo:` line of its config.yaml); `algo=` is only
// needed for folders written before that line existed and named otherwise. Exit code 2 for a
// bad argument, a missing or damaged run, or an algorithm that does not reload its policy.
#load "prepare.fsx"
#load "load.fsx"

open System

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray

let usage () =
    eprintfn
        "usage: dotnet fsi scripts/evaluate.fsx <run dir or checkpoint dir> [episodes=N] [algo=<name>] [video=true]"

    exit 2

let path, options =
    match args with
    | p :: rest when not (p.Contains "=") -> p, rest
    | _ -> usage ()

let option (key: string) =
    options
    |> List.tryPick (fun a ->
        if a.StartsWith(key + "=") then
            Some(a.Substring(key.Length + 1))
        else
            None)

for a in options do
    if not (a.StartsWith "episodes=" || a.StartsWith "algo=" || a.StartsWith "video=") then
        eprintfn
            "evaluate: unknown argument '%s'; allowed: episodes=N, algo=<%s>, video=true|false"
            a
            (String.Join("|", Rl.Cli.names))

        exit 2

let episodes =
    option "episodes"
    |> Option.map (fun v ->
        match Int32.TryParse v with
        | true, n when n >= 1 -> n
        | _ ->
            eprintfn "evaluate: episodes=%s: allowed: an integer >= 1" v
            exit 2)

let video =
    match option "video" |> Option.map (fun v -> v.Trim().ToLowerInvariant()) with
    | None
    | Some "false" -> false
    | Some "true" -> true
    | Some v ->
        eprintfn "evaluate: video=%s: allowed: true or false" v
        exit 2

try
    if video then
        // K deterministic episodes per seed as videos in <run>/videos/ (K = episodes=, default 1)
        Rl.Cli.recordVideos path (option "algo") (defaultArg episodes 1) |> ignore
    else
        let returns = Rl.Cli.evaluate path (option "algo") episodes

        for k in 0 .. returns.Length - 1 do
            let m, s = Rl.Train.meanStd returns[k]
            printfn "seed index %d: eval return %.1f +- %.1f over %d episodes" k m s returns[k].Length
with
| Rl.Video.VideoError _ as e ->
    eprintfn "evaluate: %s" e.Message
    exit 1
| :? NotSupportedException as e ->
    eprintfn "evaluate: %s" e.Message
    exit 2
| :? IO.FileNotFoundException as e ->
    eprintfn "%s" e.Message
    exit 2
| Rl.CheckpointError _ as e ->
    eprintfn "checkpoint error: %s" e.Message
    exit 2
| Rl.ConfigError _ as e ->
    eprintfn "evaluate: %s" e.Message
    exit 2
