/// The command line of `scripts/train.fsx` and `scripts/evaluate.fsx`: the one list of algorithms
/// that `algo=` names, the algorithm of a run folder (so `resume=` and `evaluate.fsx` work for
/// every algorithm without `algo=`), and the exit codes. A new algorithm plugs in by adding its
/// `Runner.algorithm` to `algorithms`.
module Rl.Cli

open System
open System.IO
open Rl

/// Every algorithm the command line trains, by `algo=` name; the first is the default.
let algorithms: Train.Entry list =
    [
        Train.entry Ppo.Runner.algorithm
        Train.entry Dqn.Runner.algorithm
        Train.entry Grpo.Runner.algorithm
        Train.entry Reinforce.Runner.algorithm
    ]

/// The `algo=` names, in `algorithms` order.
let names = algorithms |> List.map (fun a -> a.Name)

/// The algorithm named `name`, or None.
let tryFind (name: string) : Train.Entry option =
    algorithms |> List.tryFind (fun a -> a.Name = name)

/// The algorithm of a command: `algo=` when given; else the run folder's own (`Run.algorithmOf`)
/// for `resume=<dir>` or an evaluated folder; else the default (PPO). Raises `ConfigError` when
/// `algo=` names another algorithm than the folder's, or the folder's is not in `algorithms`.
let resolve (algo: string option) (runDir: string option) : string =
    let folders = runDir |> Option.bind Run.algorithmOf

    match algo, folders, runDir with
    | Some a, Some f, Some dir when a <> f ->
        raise (
            ConfigError(
                "arguments",
                "algo",
                a,
                $"{f} (the algorithm of {dir}), or no algo= at all",
                "the run folder was written by another algorithm"
            )
        )
    | Some a, _, _ -> a
    | None, Some f, Some dir when (tryFind f).IsNone ->
        raise (
            ConfigError(
                "arguments",
                "resume",
                dir,
                "a run folder of " + String.Join(", ", names),
                $"its algorithm '{f}' is not one of these; give algo="
            )
        )
    | None, Some f, _ -> f
    | None, None, _ -> names.Head

/// Entry point of `scripts/train.fsx`: dispatches on `algo=` (default ppo; for `resume=`, the run
/// folder's own algorithm); SIGTERM/SIGINT stop the run at the next update boundary
/// (`Train.stopOnSignals`). Returns an exit code: 0 on success, 2 for a bad config or arguments,
/// 1 for a failed run, 3 for a run stopped by a signal (after its checkpoint, when the algorithm
/// resumes), 4 for a write or read that failed (a full disk: one line naming the file and the
/// cause).
let main (args: string list) : int =
    try
        let special, _ = Train.splitArgs args
        use stop = Train.stopOnSignals ()
        let name = resolve (special.TryFind "algo") (special.TryFind "resume")

        match tryFind name with
        | Some algo ->
            args
            |> List.filter (fun a -> not (a.StartsWith "algo="))
            |> algo.DriveWith stop.Token
            |> ignore

            0
        | None ->
            eprintfn "unknown algo '%s'; allowed: %s" name (String.Join(", ", names))
            2
    with
    | ConfigError _ as e ->
        eprintfn "config error: %s" e.Message
        2
    | :? FileNotFoundException as e ->
        eprintfn "%s" e.Message
        2
    | CheckpointError _ as e ->
        eprintfn "checkpoint error: %s" e.Message
        2
    | Mnist.MnistDataError msg ->
        eprintfn "data error: %s" msg
        2
    | Train.TrainingDivergedException _ -> 1
    | :? Train.RunStoppedException -> 3
    | :? InvalidDataException as e ->
        eprintfn "damaged file: %s" e.Message
        2
    | :? IOException as e ->
        // a full disk, a file-size limit, a failing device: the checkpoints are written atomically,
        // so the last complete one is intact, and a failed metrics row is cut back off
        eprintfn
            "I/O error: %s (the last complete checkpoint is intact: free space and resume the run with resume=<run folder>)"
            e.Message

        4

/// `evaluate.fsx`: the saved policy of run folder (or checkpoint folder) `path`, with the
/// algorithm `algo` (None: the folder's own, see `resolve`), `episodes` deterministic episodes
/// per seed (None: the run's `eval_episodes`). Returns per seed the episode returns. Raises
/// `ConfigError` (unknown or mismatched algorithm, or one that does not reload its policy),
/// `FileNotFoundException`, `CheckpointError`.
let evaluate (path: string) (algo: string option) (episodes: int option) : float[][] =
    let name = resolve algo (Some(Train.runDirOf path))

    match tryFind name with
    | Some a -> a.EvaluateRun path episodes
    | None -> raise (ConfigError("arguments", "algo", name, String.Join(", ", names), "unknown algorithm"))

/// `evaluate.fsx video=true`: records `episodes` deterministic episodes per seed of the policy saved
/// in run folder (or checkpoint folder) `path` into the run folder's `videos/` (see
/// `Train.recordVideos`); returns the paths written. Raises as `evaluate`, and `Video.VideoError`.
let recordVideos (path: string) (algo: string option) (episodes: int) : string list =
    let name = resolve algo (Some(Train.runDirOf path))

    match tryFind name with
    | Some a -> a.RecordVideos path episodes
    | None -> raise (ConfigError("arguments", "algo", name, String.Join(", ", names), "unknown algorithm"))
