// C# samples of the Rl library (`dotnet run --project samples/csharp`):
//   1. PPO on Pendulum-v1 from the repository's YAML config, with the library's progress bar,
//      an IProgress<TrainProgress> of our own, and the run folder it wrote;
//   2. a custom environment written in C# (GridWalk.cs), checked, registered and trained with PPO
//      until solved.
// RL_QUICK=1 shortens both (CI runs it that way).
using System;
using System.IO;
using System.Linq;
using Rl.CSharp;
using Rl.Samples;

bool quick = Environment.GetEnvironmentVariable("RL_QUICK") == "1";
string repo = FindRepository();

// 1. PPO on Pendulum-v1: the repository's tuned config, three seeds trained at once.
var pendulum = PpoSettings.FromYaml(Path.Combine(repo, "scripts", "configs", "ppo-pendulum.yaml"));
pendulum.NumSeeds = 3;
if (quick)
{
    pendulum.TotalTimesteps = 8_192; // the config's own budget is 100,000 steps
    pendulum.EvalEpisodes = 2;
    pendulum.EvalEvery = 4_096;
}

var lastDecile = -1;
var report = new Progress<TrainProgress>(p =>
{
    int decile = (int)(p.Fraction * 10);
    if (decile > lastDecile) { lastDecile = decile; Console.WriteLine($"  [sample] {p}"); }
});
var result = Ppo.Train(pendulum, report, runsDir: Path.Combine(repo, "runs"));
Console.WriteLine($"Pendulum-v1: run folder {result.RunDir}");
for (int k = 0; k < result.Seeds.Count; k++)
    Console.WriteLine($"  seed {result.Seeds[k]}: eval return {result.EvalReturns[k].Average():F1}");
Console.WriteLine($"  last update's training return (seed {result.Seeds[0]}): " +
                  $"{result.Metrics.Last(r => !r.Has("seed") || r["seed"] == result.Seeds[0])["episodic_return"]:F1}");

// 2. A custom environment: check it, register it, train PPO on it until it is solved.
Envs.Check(new GridWalk());
Envs.Register(GridWalk.EnvId, () => new GridWalk());
var grid = new PpoSettings
{
    EnvId = GridWalk.EnvId,
    NumEnvs = 4,
    NumSteps = 64,
    NumMinibatches = 4,
    UpdateEpochs = 4,
    TotalTimesteps = 20_480,
    SharedNetwork = true,
    ShareTrunk = false,
    Lr = 2.5e-3,
    Hidden = new[] { 32, 32 },
    Activation = "tanh",
    EntCoef = 0.01,
    EvalEpisodes = 5,
};
var walk = Ppo.Train(grid, runsDir: Path.Combine(repo, "runs"));
double mean = walk.EvalReturnMean;
Console.WriteLine($"{GridWalk.EnvId}: eval return {mean:F2} (solved at >= 0.9; the best is 0.91-0.93); run folder {walk.RunDir}");
return mean >= 0.9 ? 0 : 1;

static string FindRepository()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "scripts", "configs", "ppo-pendulum.yaml")))
            return dir.FullName;
    throw new DirectoryNotFoundException("run the samples from inside the repository (scripts/configs not found above " + AppContext.BaseDirectory + ")");
}
