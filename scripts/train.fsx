// Train from the command line:
//   dotnet fsi scripts/train.fsx [algo=ppo] [config=<file.yaml>] [key=value ...] [resume=<run dir>]
// Defaults to PPO on Pendulum-v1 with scripts/configs/ppo-pendulum.yaml. Writes
// runs/<algo>-<env>-<timestamp>/ (config.yaml, metrics.csv, TensorBoard events, checkpoint/,
// summary.json, report.html). Exit code 2 for a bad config, 1 for a failed run.
#load "prepare.fsx"
#load "load.fsx"

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray
exit (Rl.Cli.main args)
