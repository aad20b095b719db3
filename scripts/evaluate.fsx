// Evaluate a saved run's deterministic policy:
//   dotnet fsi scripts/evaluate.fsx <run dir or its checkpoint dir> [episodes=N]
#load "prepare.fsx"
#load "load.fsx"

open System

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray

let path, episodes =
    match args with
    | p :: rest ->
        let episodes =
            rest
            |> List.tryPick (fun a ->
                if a.StartsWith "episodes=" then
                    Some(int (a.Substring 9))
                else
                    None)

        p, episodes
    | [] ->
        eprintfn "usage: dotnet fsi scripts/evaluate.fsx <run dir or checkpoint dir> [episodes=N]"
        exit 2

try
    let returns = Rl.Train.evaluatePpo path episodes

    for k in 0 .. returns.Length - 1 do
        let m, s = Rl.Train.meanStd returns[k]
        printfn "seed index %d: eval return %.1f +- %.1f over %d episodes" k m s returns[k].Length
with
| :? IO.FileNotFoundException as e ->
    eprintfn "%s" e.Message
    exit 2
| Rl.CheckpointError _ as e ->
    eprintfn "checkpoint error: %s" e.Message
    exit 2
