// Replays Gymnasium reference trajectories through the single and batched forms of the envs.
//
//   dotnet fsi scripts/conformance.fsx <file.json | folder>
//   dotnet fsi scripts/conformance.fsx              (default: the repository's tests/data/gymnasium)
//
// Prints, per environment, trajectory and mode, the max absolute deviation of obs, rewards and
// states, the max deviation scaled by max(1, |value|), flag mismatches and non-bit-exact values,
// then one summary line. Exits 1 on any mismatch (see Rl.Conformance.passes for the criteria),
// 2 on bad arguments or a missing or damaged reference file. Build first: dotnet build src/Rl.fsproj -c Release
#load "prepare.fsx"
#load "load.fsx"

open System
open Rl

let target =
    match fsi.CommandLineArgs |> Array.tail with
    | [| path |] -> path
    | [||] ->
        match Conformance.findReferenceFolder __SOURCE_DIRECTORY__ with
        | Some d -> d
        | None ->
            eprintfn
                "No %s folder found above %s; give a file or folder."
                Conformance.ReferenceFolder
                __SOURCE_DIRECTORY__

            exit 2
    | _ ->
        eprintfn "usage: dotnet fsi scripts/conformance.fsx <file.json | folder>"
        exit 2

let files =
    try
        Conformance.referenceFiles target
    with :? IO.FileNotFoundException as e ->
        eprintfn "%s" e.Message
        exit 2

let load path =
    try
        Conformance.load path
    with
    | :? IO.FileNotFoundException
    | :? IO.InvalidDataException as e ->
        eprintfn "%s" e.Message
        exit 2

let rows =
    [
        for path in files do
            let file = load path
            printfn "== %s (%s, %d trajectories)" file.EnvId (IO.Path.GetFileName path) file.Trajectories.Length

            for row in Conformance.runFile file do
                printfn "%s" (Conformance.formatRow row)
                yield row
    ]

let failed = rows |> List.filter (fun r -> not r.Passed)

let worst f mode =
    rows |> List.filter (fun r -> r.Mode = mode) |> List.map f |> List.fold max 0.0

printfn
    "SUMMARY: %d files, %d rows, %d failed; single max dev %.2e (inexact values %d); batched float32 max scaled dev %.2e; batched float64 max dev %.2e; batched float64 exact-math max dev %.2e"
    files.Length
    rows.Length
    failed.Length
    (max
        (worst (fun r -> max r.Deviation.MaxState (max r.Deviation.MaxObs r.Deviation.MaxReward)) "single/resync")
        (worst (fun r -> max r.Deviation.MaxState (max r.Deviation.MaxObs r.Deviation.MaxReward)) "single/rollout"))
    (rows
     |> List.filter (fun r -> r.Mode.StartsWith "single")
     |> List.sumBy (fun r -> r.Deviation.Inexact))
    (worst (fun r -> r.Deviation.MaxScaled) "batched-float32/resync")
    (worst (fun r -> max r.Deviation.MaxState (max r.Deviation.MaxObs r.Deviation.MaxReward)) "batched-float64/resync")
    (worst
        (fun r -> max r.Deviation.MaxState (max r.Deviation.MaxObs r.Deviation.MaxReward))
        "batched-float64-exact/resync")

exit (if failed.IsEmpty then 0 else 1)
