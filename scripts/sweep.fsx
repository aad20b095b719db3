// Hyperparameter sweep of PPO over a grid of config values, seeds batched inside each run:
//
//   dotnet fsi scripts/sweep.fsx config=ppo-mountaincar.yaml beta_1=0.8,0.9,0.95,0.99 num_seeds=10
//
// Arguments: config=<file or name in scripts/configs>, sweep_dir=<folder> (default
// runs/sweep-<time>; give the same folder again to resume: finished grid points are skipped),
// threshold=<return> (for steps-to-threshold), and any PPO config key as key=v1,v2,...
// Writes <sweep_dir>/<point>/ppo-*/ per grid point, summary.csv and report.html.
// Build first: dotnet build src/Rl.fsproj -c Release
#load "prepare.fsx"
#load "load.fsx"

open Rl

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray

try
    let dir, rows = Sweep.runPpo args

    for r in rows do
        printfn
            "%-40s final return %8.1f +- %6.1f  (95%% CI %8.1f .. %8.1f)  %6.1f s"
            (Sweep.pointName r.Point)
            r.Mean
            r.Std
            r.CiLow
            r.CiHigh
            r.WallSeconds

    printfn "%s" (Sweep.reading rows)
    printfn "summary: %s/summary.csv, report: %s/report.html" dir dir
with ConfigError _ as e ->
    eprintfn "%s" e.Message
    exit 2
