// Compares the metrics of two runs value by value, ignoring the timing columns (sps, *_s,
// *_seconds, images_per_second): the check that a refactor or an optimisation left training
// unchanged ("same seed, same config, same machine => identical metrics.csv").
//
//   dotnet fsi scripts/compare-metrics.fsx <run folder | metrics.csv> <run folder | metrics.csv>
//
// Compares the columns the first run has (the second may have more). Prints, per column, the
// number of rows that differ and the largest difference; exits 0 when every compared value is
// identical (NaN equals NaN), 1 when any differs, 2 on bad arguments or a missing file.
#load "prepare.fsx"
#load "load.fsx"

open System
open System.IO
open Rl

let csvOf (path: string) =
    if File.Exists path then
        path
    else
        Path.Combine(path, Metrics.CsvFile)

let args = fsi.CommandLineArgs |> Array.tail

if args.Length <> 2 then
    eprintfn "usage: dotnet fsi scripts/compare-metrics.fsx <run folder | metrics.csv> <run folder | metrics.csv>"
    exit 2

let paths = args |> Array.map csvOf

for p in paths do
    if not (File.Exists p) then
        eprintfn "no metrics file at %s" p
        exit 2

let a, b = Metrics.readCsv paths[0], Metrics.readCsv paths[1]

let differences = Metrics.differences a b

for d in differences do
    printfn "%s" d

printfn
    "%s: %d rows, %d columns compared (timing columns ignored)"
    (if differences.IsEmpty then "IDENTICAL" else "DIFFERENT")
    (Metrics.rows a).Length
    (Metrics.columns a |> List.filter (Metrics.isTimingColumn >> not)).Length

exit (if differences.IsEmpty then 0 else 1)
