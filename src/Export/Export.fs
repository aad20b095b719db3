/// `scripts/export.fsx`: a run's deterministic policy out of the library, as ONNX (`Onnx.model`)
/// for .NET applications and games (ONNX Runtime, Unity Sentis/Barracuda) and any other runtime,
/// or as PyTorch weights (`PyTorchExport`) for Python users.
module Rl.Export

open System
open System.IO
open Rl

/// The formats `format=` takes.
let formats = [ "onnx"; "pytorch" ]

/// The folder exports go to by default: `<run dir>/export/`.
[<Literal>]
let DefaultFolder = "export"

/// The file name (without extension) of one exported seed: `policy` when one seed is exported,
/// else `policy_seed_<s>` per seed.
let stem (seed: int64) (several: bool) =
    if several then $"policy_seed_{seed}" else "policy"

/// The seed indices to export of `policy`: `seed` when given (raises `ConfigError` naming the
/// run's seeds when it is not one of them), the seed of a `best/seed_<s>` folder, else all.
let seedIndices (policy: PolicyExport.LoadedPolicy) (path: string) (seed: int64 option) : int list =
    let indexOf (s: int64) (key: string) =
        match Array.tryFindIndex ((=) s) policy.Seeds with
        | Some k -> k
        | None ->
            let allowed = String.Join(", ", policy.Seeds)

            raise (
                ConfigError("arguments", key, string s, $"one of the run's seeds: {allowed}", "not a seed of this run")
            )

    match seed, Train.bestSeedOf path with
    | Some s, _ -> [ indexOf s "seed" ]
    | None, Some s -> [ indexOf s "run" ]
    | None, None -> List.init policy.Seeds.Length id

/// `format` in lower case when it is one of `formats`; else `ConfigError` naming them.
let checkFormat (format: string) =
    let format = format.Trim().ToLowerInvariant()

    if not (List.contains format formats) then
        raise (ConfigError("arguments", "format", format, String.Join(", ", formats), "unknown export format"))

    format

/// A run or checkpoint folder's absolute path without a trailing separator (so `Train.runDirOf`
/// and `Train.bestSeedOf` read it).
let fullPath (path: string) =
    Path.GetFullPath(path.TrimEnd('/', '\\'))

/// The policy saved in run (or checkpoint) folder `path`, by the run's own algorithm
/// (`Train.loadPolicy`). Raises `FileNotFoundException` for a path that is not a folder or a
/// folder without `config.yaml`, `ConfigError` for an algorithm without a policy (GRPO's
/// classifier, REINFORCE, which keeps no checkpoint), `CheckpointError` for a missing or damaged
/// checkpoint.
let load (path: string) : PolicyExport.LoadedPolicy =
    let path = fullPath path

    if not (Directory.Exists path) then
        raise (
            FileNotFoundException($"export: {path} is not a folder; give a run folder or its checkpoint folder", path)
        )

    let runDir = Train.runDirOf path
    let name = Cli.resolve None (Some runDir)

    match Cli.tryFind name with
    | Some e -> e.LoadPolicy path
    | None -> raise (ConfigError("arguments", "run", runDir, String.Join(", ", Cli.names), "unknown algorithm"))

/// Writes seed indices `indices` of `policy` in `format` into `folder` per seed (`stem`):
/// `<stem>.onnx` (`Onnx.model`), or `<stem>.pt`, `.safetensors` and `.json`
/// (`PyTorchExport.write`); each file written atomically (a temporary file renamed into place,
/// so no half-written file is ever left under the final name). Returns the files written. Raises
/// `ConfigError` for an unknown format.
let write (policy: PolicyExport.LoadedPolicy) (indices: int list) (format: string) (folder: string) : string list =
    let format = checkFormat format

    Directory.CreateDirectory folder |> ignore

    [
        for k in indices do
            let net = policy.Network k
            let name = stem net.Seed (indices.Length > 1)

            match format with
            | "onnx" ->
                let file = Path.Combine(folder, name + ".onnx")
                Files.writeBytesAtomic file (Onnx.toBytes (Onnx.model policy net))
                yield file
            | _ -> yield! PyTorchExport.write folder name policy net
    ]

/// Exports the policy saved in run (or checkpoint) folder `path` (`load`) in `format` into folder
/// `out` (None: `<run dir>/export/`), the seeds of `seedIndices` (`write`). Returns the files
/// written. Raises `ConfigError` for an unknown format (before loading) or seed, and `load`'s
/// errors. Nothing is written before the policy has loaded.
let export (path: string) (format: string) (seed: int64 option) (out: string option) : string list =
    let format = checkFormat format

    use policy = load path
    let full = fullPath path
    let folder = defaultArg out (Path.Combine(Train.runDirOf full, DefaultFolder))
    write policy (seedIndices policy full seed) format folder

/// `export.fsx`'s arguments: `run=<dir>` (required), `format=onnx` (default), `seed=<s>`,
/// `out=<folder>`. Returns the files written, or the one line (`export: ...`) naming what was
/// wrong: an unknown key or format, a folder that is not a run, a missing or damaged checkpoint,
/// an algorithm without a policy. Nothing is written when it fails.
let tryRun (args: string list) : Result<string list, string> =
    let allowed = [ "run"; "format"; "seed"; "out" ]

    try
        let pairs = args |> List.map Config.parseOverride

        for k, v in pairs do
            if not (List.contains k allowed) then
                let keys = String.Join(", ", allowed |> List.map (fun a -> a + "="))
                raise (ConfigError("arguments", k, v, keys, "unknown argument"))

        let get k =
            pairs |> List.tryFind (fst >> (=) k) |> Option.map snd

        let run =
            match get "run" with
            | Some r -> r
            | None ->
                raise (ConfigError("arguments", "run", "", "a run folder or its checkpoint folder", "run= is required"))

        let seed =
            get "seed"
            |> Option.map (fun v ->
                match Int64.TryParse v with
                | true, s -> s
                | _ -> raise (ConfigError("arguments", "seed", v, "an integer seed of the run", "not an integer")))

        Ok(export run (defaultArg (get "format") "onnx") seed (get "out"))
    with
    | ConfigError _ as e -> Error $"export: {e.Message}"
    | :? FileNotFoundException as e -> Error $"export: {e.Message}"
    | CheckpointError _ as e -> Error $"export: checkpoint error: {e.Message}"

/// Entry point of `scripts/export.fsx` (`tryRun`): prints each file written and returns 0, or
/// prints the one line naming what was wrong to stderr and returns 2.
let main (args: string list) : int =
    match tryRun args with
    | Ok files ->
        for file in files do
            printfn "wrote %s" file

        0
    | Error line ->
        eprintfn "%s" line
        2
