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

let isTiming (c: string) =
    c = "sps"
    || c.EndsWith "_s"
    || c.EndsWith "_seconds"
    || c.EndsWith "_per_second"

let same (x: float) (y: float) =
    x = y || (Double.IsNaN x && Double.IsNaN y)

let ra, rb = Metrics.rows a, Metrics.rows b
let compared = Metrics.columns a |> List.filter (isTiming >> not)
let mutable differing = 0

if ra.Length <> rb.Length then
    printfn "rows: %d vs %d" ra.Length rb.Length
    differing <- differing + 1

for c in compared do
    if not (Metrics.hasColumn c b) then
        printfn "%-22s missing in %s" c paths[1]
        differing <- differing + 1
    else
        let xs, ys = Metrics.column c a, Metrics.column c b
        let n = min xs.Length ys.Length

        let gap (x: float) (y: float) =
            let d = abs (x - y)
            if Double.IsNaN d then Double.PositiveInfinity else d // one side NaN

        let diffs =
            [
                for i in 0 .. n - 1 do
                    if not (same xs[i] ys[i]) then
                        yield gap xs[i] ys[i]
            ]

        if not diffs.IsEmpty then
            printfn "%-22s %d of %d rows differ, largest difference %g" c diffs.Length n (List.max diffs)
            differing <- differing + 1

printfn
    "%s: %d rows, %d columns compared (timing columns ignored)"
    (if differing = 0 then "IDENTICAL" else "DIFFERENT")
    ra.Length
    compared.Length

exit (if differing = 0 then 0 else 1)
