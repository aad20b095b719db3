// The C# consumer of the Rl NuGet package: `dotnet fsi build.fsx Test` (and `PackTest`) copies
// this file into a fresh console project outside the repository that references only the
// package, then runs it. PPO on CartPole-v1 for a few updates through the C# face (Rl.CSharp),
// then the deterministic policy's return; the F# consumer trains the same config through the
// F# API and must print the same number.
using System;
using System.Linq;
using Rl.CSharp;

var settings = new PpoSettings
{
    EnvId = "CartPole-v1",
    NumEnvs = 4,
    NumSteps = 128,
    TotalTimesteps = 2048,
    UpdateEpochs = 4,
    NumMinibatches = 4,
    VectorizationMode = "sync",
    EvalEpisodes = 3,
};

var result = Ppo.Train(settings);
var last = result.Metrics.Last();
Console.WriteLine($"run folder: {result.RunDir}");
Console.WriteLine($"updates: {result.Metrics.Count}, last training episodic return {last["episodic_return"]:F1}");
Console.WriteLine($"CartPole-v1 eval return: {result.EvalReturns[0].Average():F1} over {settings.EvalEpisodes} episodes (C#)");
