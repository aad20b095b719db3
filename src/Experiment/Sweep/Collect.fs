/// Collecting what has finished: summary.csv and report.html of a sweep folder.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// summary.csv and report.html from the finished points.
module Collect =
    /// Writes `summary.csv` and `report.html` into sweep folder `dir` from `rows` (the finished
    /// points), with `missing` (names of grid points without a finished run) said in the report.
    let private writeOutputs (dir: string) (spec: SweepSpec) (rows: PointSummary list) (missing: string list) =
        Files.writeTextAtomic (Path.Combine(dir, "summary.csv")) (Summary.summaryCsv spec.Keys rows)

        let curves =
            Charts.compareRuns
                SeedView.MeanStd
                "global_step"
                "episodic_return"
                [
                    for r in rows -> Grid.pointName r.Point, Metrics.readCsv (Path.Combine(r.RunDir, Metrics.CsvFile))
                ]

        let swept =
            spec.Keys
            |> List.filter (fun k ->
                spec.Points
                |> List.choose (List.tryFind (fun (kk, _) -> kk = k))
                |> List.distinct
                |> List.length
                |> fun n -> n > 1)

        let fmt (x: float) =
            if Double.IsNaN x then
                "-"
            else
                x.ToString("G4", Globalization.CultureInfo.InvariantCulture)

        Report.write
            (Path.Combine(dir, Run.ReportFile))
            $"PPO sweep on {spec.EnvId}"
            [
                for r in rows do
                    yield
                        Grid.pointName r.Point,
                        $"final return {fmt r.Mean} +- {fmt r.Std} (95%% CI {fmt r.CiLow} .. {fmt r.CiHigh}, {r.Finals.Length} seeds), steps to threshold {fmt r.StepsToThreshold}, wall {fmt r.WallSeconds} s"
                if not missing.IsEmpty then
                    let names = String.Join("; ", missing)

                    yield
                        "missing", $"{missing.Length} of {spec.Points.Length} points have no finished run yet: {names}"
                yield "reading", Summary.reading rows
            ]
            [
                "Learning curves (mean and +-1 std band across seeds)", [ curves ]
                "Final return vs hyperparameter", [ for k in swept -> Summary.finalReturnChart k rows ]
            ]

    /// Builds `summary.csv` and `report.html` of sweep folder `dir` from the points that have
    /// finished (the same files as a local sweep writes) and returns the summary rows (grid order)
    /// and the names of the points without a finished run. Raises `ConfigError` when `dir` has no
    /// points.json.
    let collect (dir: string) : PointSummary list * string list =
        let dir = Path.GetFullPath dir
        let spec = Folder.readSpec dir

        let rows, missing =
            spec.Points
            |> List.map (fun p ->
                match Summary.finishedRun (Path.Combine(dir, Grid.pointName p)) with
                | Some run -> Choice1Of2(Summary.summarise spec.Threshold p run)
                | None -> Choice2Of2(Grid.pointName p))
            |> List.partition (function
                | Choice1Of2 _ -> true
                | _ -> false)

        let rows =
            rows
            |> List.choose (function
                | Choice1Of2 r -> Some r
                | _ -> None)

        let missing =
            missing
            |> List.choose (function
                | Choice2Of2 m -> Some m
                | _ -> None)

        writeOutputs dir spec rows missing
        rows, missing
