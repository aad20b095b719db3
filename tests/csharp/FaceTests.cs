// Tests of the C# face: settings validation, cancellation + resume, a custom C# environment that
// learns, the environment checker, registration, and the face's public signatures.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading;
using Rl.CSharp;
using Rl.Samples;
using Xunit;

namespace Rl.CSharp.Tests;

static class Temp
{
    public static string Dir(string prefix)
    {
        var d = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }

    public static string RepoConfig(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var p = Path.Combine(dir.FullName, "scripts", "configs", name);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException(name);
    }

    /// A small PPO CartPole run (6 updates of 64 steps), the peers' agent.
    public static PpoSettings SmallCartPole() => new()
    {
        EnvId = "CartPole-v1",
        NumEnvs = 2,
        NumSteps = 32,
        NumMinibatches = 2,
        UpdateEpochs = 1,
        TotalTimesteps = 384,
        SharedNetwork = true,
        ShareTrunk = false,
        Lr = 2.5e-4,
        AdamEps = 1e-5,
        VectorizationMode = "sync",
        EvalEpisodes = 1,
        Threads = 1,
    };

}

/// Cancels its token once the run reports `stopAt` steps or more (the report comes after the
/// update is logged, so the run stops at the next update boundary).
sealed class CancelAt : IProgress<TrainProgress>
{
    readonly CancellationTokenSource cts;
    readonly long stopAt;
    public readonly List<long> Steps = new();
    public CancelAt(CancellationTokenSource cts, long stopAt) { this.cts = cts; this.stopAt = stopAt; }
    public void Report(TrainProgress p)
    {
        Steps.Add(p.Step);
        if (p.Step >= stopAt) cts.Cancel();
    }
}

public class SettingsTests
{
    [Fact]
    public void InvalidValueNamesPropertyValueAndAllowed()
    {
        var s = new PpoSettings { Gamma = 1.5 };
        var e = Assert.Throws<ArgumentException>(() => s.Validate());
        Assert.Equal("Gamma", e.ParamName);
        Assert.Contains("PpoSettings.Gamma = 1.5", e.Message);
        Assert.Contains("(0, 1]", e.Message);
    }

    [Fact]
    public void CrossFieldCheckNamesTheProperty()
    {
        var s = new PpoSettings { NumEnvs = 2, NumSteps = 16, MinibatchSize = 64, NumMinibatches = 0 };
        var e = Assert.Throws<ArgumentException>(() => s.Validate());
        Assert.Equal("MinibatchSize", e.ParamName);
        Assert.Contains("64", e.Message);
        Assert.Contains("num_envs * num_steps = 32", e.Message);
    }

    [Fact]
    public void UnknownEnvAndContinuousDqnAreRefusedBeforeAnythingIsWritten()
    {
        var runs = Path.Combine(Path.GetTempPath(), $"rl-cs-none-{Guid.NewGuid():N}");
        var e = Assert.Throws<ArgumentException>(() => Ppo.Train(new PpoSettings { EnvId = "CartPol-v1" }, runsDir: runs));
        Assert.Equal("EnvId", e.ParamName);
        Assert.Contains("did you mean 'CartPole-v1'", e.Message);
        var d = Assert.Throws<ArgumentException>(() => Dqn.Train(new DqnSettings { EnvId = "Pendulum-v1" }, runsDir: runs));
        Assert.Equal("EnvId", d.ParamName);
        Assert.Contains("discrete actions", d.Message);
        Assert.False(Directory.Exists(runs), "nothing written");
    }

    [Fact]
    public void YamlRoundTripAndDefaults()
    {
        var s = PpoSettings.FromYaml(Temp.RepoConfig("ppo-cartpole.yaml"));
        Assert.Equal("CartPole-v1", s.EnvId);
        Assert.Equal(4, s.NumEnvs);
        Assert.Equal(new[] { 64, 64 }, s.Hidden);
        Assert.False(s.ShareTrunk);
        var path = Path.Combine(Path.GetTempPath(), $"rl-cs-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, s.ToYaml());
        try
        {
            var back = PpoSettings.FromYaml(path);
            Assert.Equal(s.ToString(), back.ToString());
        }
        finally { File.Delete(path); }
        Assert.Throws<FileNotFoundException>(() => PpoSettings.FromYaml("no-such-file.yaml"));
        Assert.Equal("TotalTimesteps", new PpoSettings().PropertyName("total_timesteps"));
        Assert.Equal("Beta1", new DqnSettings().PropertyName("beta_1"));
    }
}

public class TrainingTests
{
    static Dictionary<string, double[]> Columns(TrainResult r) =>
        r.Metrics[0].Columns.Where(c => !Rl.Metrics.isTimingColumn(c))
            .ToDictionary(c => c, c => r.Metrics.Select(m => m[c]).ToArray());

    [Fact]
    public void CancelThenResumeGivesTheMetricsOfAnUninterruptedRun()
    {
        var runs = Temp.Dir("rl-cs-resume");
        try
        {
            var full = Ppo.Train(Temp.SmallCartPole(), runsDir: Path.Combine(runs, "full"));
            Assert.Equal(6, full.Metrics.Count);

            using var cts = new CancellationTokenSource();
            var progress = new CancelAt(cts, 128);
            var stop = Assert.ThrowsAny<OperationCanceledException>(() =>
                Ppo.Train(Temp.SmallCartPole(), progress, cts.Token, runsDir: Path.Combine(runs, "cut")));
            var stopped = Assert.IsType<TrainingStoppedException>(stop);
            Assert.Equal(128, stopped.Step);
            Assert.True(stopped.Resumable);
            Assert.Equal(new long[] { 64, 128 }, progress.Steps);

            var resumed = Ppo.Resume(stopped.RunDir);
            Assert.Equal(stopped.RunDir, resumed.RunDir);
            var a = Columns(full);
            var b = Columns(resumed);
            Assert.Equal(a.Keys, b.Keys);
            foreach (var c in a.Keys)
                Assert.True(a[c].SequenceEqual(b[c]), $"column {c}: {string.Join(" ", a[c])} vs {string.Join(" ", b[c])}");
            Assert.Equal(full.EvalReturns[0], resumed.EvalReturns[0]);
        }
        finally { Directory.Delete(runs, true); }
    }
}

public class CustomEnvTests
{
    [Fact]
    public void GridWalkPassesTheCheckerAndLearnsWithPpo()
    {
        Assert.Empty(Envs.Problems(new GridWalk()));
        Envs.Register(GridWalk.EnvId, () => new GridWalk(), replace: true);
        var runs = Temp.Dir("rl-cs-grid");
        try
        {
            var settings = new PpoSettings
            {
                EnvId = GridWalk.EnvId, NumEnvs = 4, NumSteps = 64, NumMinibatches = 4, UpdateEpochs = 4,
                TotalTimesteps = 10_240, SharedNetwork = true, ShareTrunk = false, Lr = 2.5e-3,
                Hidden = new[] { 32, 32 }, Activation = "tanh", EntCoef = 0.01, EvalEpisodes = 5, Threads = 1,
            };
            var r = Ppo.Train(settings, runsDir: runs);
            double first = r.Metrics[0]["episodic_return"];
            Assert.True(first < 0.5, $"the first update's policy is still random: {first}");
            Assert.True(r.EvalReturnMean >= 0.9, $"solved: eval return {r.EvalReturnMean}");
        }
        finally { Directory.Delete(runs, true); }
    }

    [Fact]
    public void RegisteredIdsWorkEverywhereAndBadIdsAreRefused()
    {
        Envs.Register(GridWalk.EnvId, () => new GridWalk(), replace: true);
        Assert.Contains(GridWalk.EnvId, Envs.Ids);
        var env = Envs.Make(GridWalk.EnvId);
        Assert.Equal(new[] { 0.0 }, env.ObservationSpace.Low);
        var obs = env.Reset(3);
        Assert.Equal(obs, env.Reset(3));
        using var vec = Envs.MakeVector(GridWalk.EnvId, 3);
        Assert.Equal(3, vec.ResetArrays(0).Length);
        var step = vec.Step(new[] { 1, 1, 0 });
        Assert.Equal(3, step.Reward.Length);
        new DqnSettings { EnvId = GridWalk.EnvId }.Validate();
        Assert.Throws<ArgumentException>(() => Envs.Register("not an id", () => new GridWalk()));
        Assert.Throws<ArgumentException>(() => Envs.Register("CartPole-v1", () => new GridWalk()));
        Assert.Throws<ArgumentException>(() => Envs.Register(GridWalk.EnvId, () => new GridWalk()));
        var other = Assert.Throws<ArgumentException>(() => Envs.Register("Other-v0", () => new GridWalk()));
        Assert.Contains("GridWalk-v0", other.Message);
    }

    sealed class WrongSize : CustomEnv
    {
        public WrongSize() : base("WrongSize-v0", SpaceSpec.Box(new[] { 0.0 }, new[] { 1.0 }), SpaceSpec.Discrete(2), 10) { }
        public override float[] OnReset(Random random) => new[] { 0f, 0f };
        public override EnvStep OnStep(EnvAction action) => new(new[] { 0f }, 0, false);
    }

    sealed class Escapes : CustomEnv
    {
        int t;
        public Escapes() : base("Escapes-v0", SpaceSpec.Box(new[] { 0.0 }, new[] { 1.0 }), SpaceSpec.Discrete(2), 10) { }
        public override float[] OnReset(Random random) { t = 0; return new[] { 0f }; }
        public override EnvStep OnStep(EnvAction action) { t++; return new(new[] { t * 0.4f }, 0, false); }
    }

    sealed class Unseeded : CustomEnv
    {
        readonly Random own = new();
        public Unseeded() : base("Unseeded-v0", SpaceSpec.Box(new[] { 0.0 }, new[] { 1.0 }), SpaceSpec.Discrete(2), 10) { }
        public override float[] OnReset(Random random) => new[] { (float)own.NextDouble() };
        public override EnvStep OnStep(EnvAction action) => new(new[] { (float)own.NextDouble() }, 0, false);
    }

    [Fact]
    public void TheCheckerRejectsBrokenEnvsWithClearMessages()
    {
        var size = Assert.Throws<Rl.EnvChecker.EnvCheckException>(() => Envs.Check(new WrongSize()));
        Assert.Contains("WrongSize-v0", size.Message);
        Assert.Contains("has 2 values", size.Message);
        Assert.Contains("needs 1", size.Message);

        var escapes = Envs.Problems(new Escapes());
        Assert.Contains(escapes, p => p.Contains("Escapes-v0, step 3") && p.Contains("outside the observation space"));

        var unseeded = Envs.Problems(new Unseeded());
        Assert.Contains(unseeded, p => p.StartsWith("seeding:"));
    }

    [Fact]
    public void AContractBreakAtRunTimeNamesEnvStepAndRule()
    {
        var env = new Escapes();
        env.Reset(0);
        env.Step(1);
        env.Step(1);
        var e = Assert.Throws<Rl.EnvContractException>(() => env.Step(1));
        Assert.Equal("Escapes-v0", e.EnvId);
        Assert.Equal(3, e.Step);
        Assert.Contains("observation space", e.Rule);

        var grid = new GridWalk();
        Assert.Throws<Rl.EnvContractException>(() => grid.Step(1));
        grid.Reset(1);
        var bad = Assert.Throws<ArgumentException>(() => grid.Step(5));
        Assert.Contains("GridWalk-v0", bad.Message);
        Assert.Contains("0..1", bad.Message);
    }
}

public class SignatureTests
{
    static bool IsFSharpOnly(Type t)
    {
        if (t.IsByRef || t.IsArray || t.IsPointer) return IsFSharpOnly(t.GetElementType()!);
        if (t.IsGenericType && t.GetGenericArguments().Any(IsFSharpOnly)) return true;
        var name = t.IsGenericType ? t.GetGenericTypeDefinition().FullName ?? t.Name : t.FullName ?? t.Name;
        if (name.StartsWith("Microsoft.FSharp.Collections.FSharpList")
            || name.StartsWith("Microsoft.FSharp.Core.FSharpOption")
            || name.StartsWith("Microsoft.FSharp.Core.FSharpValueOption")
            || name.StartsWith("Microsoft.FSharp.Core.FSharpFunc")
            || name.StartsWith("Microsoft.FSharp.Collections.FSharpMap")
            || name.StartsWith("Microsoft.FSharp.Collections.FSharpSet")
            || name.StartsWith("Microsoft.FSharp.Core.FSharpResult"))
            return true;
        // F# unions carry CompilationMapping(SourceConstructFlags.SumType)
        return t.GetCustomAttributes(false).Any(a => a.GetType().FullName == "Microsoft.FSharp.Core.CompilationMappingAttribute"
            && a.GetType().GetProperty("SourceConstructFlags")!.GetValue(a)!.ToString()!.Contains("SumType"));
    }

    [Fact]
    public void NoFSharpListOptionFunctionOrUnionInThePublicFace()
    {
        var face = typeof(PpoSettings).Assembly.GetExportedTypes().Where(t => t.Namespace == "Rl.CSharp").ToArray();
        Assert.Contains(face, t => t.Name == "Ppo");
        Assert.Contains(face, t => t.Name == "CustomEnv");
        var bad = new List<string>();
        foreach (var t in face)
        {
            if (IsFSharpOnly(t)) bad.Add(t.FullName!);
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var m in t.GetMethods(flags))
            {
                foreach (var ty in m.GetParameters().Select(p => p.ParameterType).Append(m.ReturnType))
                    if (IsFSharpOnly(ty)) bad.Add($"{t.Name}.{m.Name}: {ty}");
            }
            foreach (var p in t.GetProperties(flags))
                if (IsFSharpOnly(p.PropertyType)) bad.Add($"{t.Name}.{p.Name}: {p.PropertyType}");
            foreach (var c in t.GetConstructors())
                foreach (var p in c.GetParameters())
                    if (IsFSharpOnly(p.ParameterType)) bad.Add($"{t.Name}..ctor: {p.ParameterType}");
        }
        Assert.True(bad.Count == 0, "F#-only types in the C# face:\n" + string.Join("\n", bad));
    }
}

public class PolicyTests
{
    /// A short PPO Pendulum run of the shipped config (2 updates of 4 x 256 steps).
    static TrainResult SmallPendulum(string runs)
    {
        var s = PpoSettings.FromYaml(Temp.RepoConfig("ppo-pendulum.yaml"));
        s.TotalTimesteps = 2048;
        s.EvalEpisodes = 2;
        s.EvalEvery = 0;
        return Ppo.Train(s, runsDir: runs);
    }

    [Fact]
    public void PolicyActsAsTheRunsEvaluationAndTheOnnxSampleAgrees()
    {
        var runs = Temp.Dir("rl-cs-policy");
        try
        {
            var result = SmallPendulum(runs);
            using var policy = Policy.Load(result.RunDir);
            Assert.Equal("Pendulum-v1", policy.EnvId);
            Assert.Equal(3, policy.ObservationSize);
            Assert.Equal(1, policy.ActionSize);
            Assert.False(policy.IsDiscrete);

            // the policy's greedy episodes on the evaluation's start states score the run's evaluation
            var evalSeed = 1_000_000L; // the config's eval_seed, plus seed 0
            using (var env = Envs.MakeVector("Pendulum-v1", 2))
            {
                var obs = env.ResetArrays(evalSeed);
                var returns = new double[2];
                var done = new bool[2];
                for (int t = 0; t < env.MaxEpisodeSteps && !done.All(d => d); t++)
                {
                    var step = env.Step(policy.ActBatch(obs).Select(a => a.Select(x => (double)x).ToArray()).ToArray());
                    for (int i = 0; i < 2; i++)
                        if (!done[i] && (step.Terminated[i] || step.Truncated[i])) { returns[i] = step.EpisodeReturn[i]; done[i] = true; }
                    obs = step.Obs;
                }
                Assert.Equal(result.EvalReturns[0].Average(), returns.Average(), 6);
            }

            // the ONNX sample (ONNX Runtime alone) prints the actions Policy.Act computes
            var file = policy.ExportOnnx(Path.Combine(runs, "export"));
            var states = new[] { new[] { 1f, 0f, 0f }, new[] { 0f, 1f, 0f }, new[] { -1f, 0f, 0f }, new[] { -0.96f, 0.28f, 1.5f }, new[] { 0.6f, -0.8f, -8f } };
            var project = Path.Combine(Path.GetDirectoryName(Temp.RepoConfig("ppo-pendulum.yaml"))!, "..", "..", "samples", "csharp-onnx");
            var psi = new System.Diagnostics.ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var a in new[] { "run", "-c", "Release", "--project", project, "--", file })
                psi.ArgumentList.Add(a);
            foreach (var o in states)
                psi.ArgumentList.Add(string.Join(",", o.Select(x => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
            using var p = System.Diagnostics.Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            var lines = p.StandardOutput.ReadToEnd().Split('\n').Where(l => l.StartsWith("obs ")).ToArray();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"samples/csharp-onnx failed: {err.Result}");
            Assert.Equal(states.Length, lines.Length);
            for (int i = 0; i < states.Length; i++)
            {
                var onnx = double.Parse(lines[i].Split("-> action ")[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(Math.Abs(onnx - policy.Act(states[i])[0]) <= 1e-5, $"state {i}: ONNX {onnx}, Policy.Act {policy.Act(states[i])[0]}");
            }
        }
        finally { Directory.Delete(runs, true); }
    }

    [Fact]
    public void PolicyRefusesWhatItCannotLoad()
    {
        var runs = Temp.Dir("rl-cs-policy");
        try
        {
            var result = SmallPendulum(runs);
            var e = Assert.Throws<ArgumentException>(() => Policy.Load(result.RunDir, 3));
            Assert.Equal("seed", e.ParamName);
            Assert.Contains("one of the run's seeds: 0", e.Message);
            Assert.Throws<FileNotFoundException>(() => Policy.Load(runs));
            using var policy = Policy.Load(result.RunDir);
            Assert.Throws<ArgumentException>(() => policy.Act(new float[2]));
            Assert.Throws<InvalidOperationException>(() => policy.ActIndex(new float[3]));
        }
        finally { Directory.Delete(runs, true); }
    }

    [Fact]
    public void EnvIsDisposable()
    {
        using var env = Envs.Make("CartPole-v1");
        Assert.Equal(4, env.Reset(1).Length);
    }

    [Fact]
    public void RenderGivesGymnasiumSizedFramesAndFrozenLakeText()
    {
        using var env = Envs.Make("CartPole-v1");
        Assert.Throws<InvalidOperationException>(() => env.Render());
        env.Reset(1);
        var frame = env.Render();
        Assert.Equal(600, frame.Width);
        Assert.Equal(400, frame.Height);
        Assert.Equal(600 * 400 * 3, frame.Pixels.Length);
        Assert.Equal((255, 255, 255), (frame.Pixels[0], frame.Pixels[1], frame.Pixels[2]));
        Assert.Throws<NotSupportedException>(() => env.RenderAnsi());

        using var lake = Envs.Make("FrozenLake-v1");
        lake.Reset(0);
        Assert.Equal("\n\u001b[41mS\u001b[0mFFF\nFHFH\nFFFH\nHFFG\n", lake.RenderAnsi());
        Assert.Equal((256, 256), (lake.Render().Width, lake.Render().Height));
    }

    /// A custom env that draws its own frames: a 4 x 2 strip, the agent's cell red.
    sealed class Strip : CustomEnv
    {
        public const string EnvId = "Strip-v0";
        int pos;
        public Strip() : base(EnvId, SpaceSpec.Box(new[] { 0.0 }, new[] { 3.0 }), SpaceSpec.Discrete(2), 6) { }
        public override float[] OnReset(Random random) { pos = 0; return new[] { 0f }; }
        public override EnvStep OnStep(EnvAction action)
        {
            pos = Math.Clamp(pos + (action.Index == 1 ? 1 : -1), 0, 3);
            return new(new[] { (float)pos }, pos == 3 ? 1 : 0, pos == 3);
        }
        public override Rl.Frame Render()
        {
            var pixels = new byte[4 * 2 * 3];
            for (var x = 0; x < 4; x++)
                for (var y = 0; y < 2; y++)
                {
                    var i = (y * 4 + x) * 3;
                    pixels[i] = x == pos ? (byte)255 : (byte)0;
                }
            return new Rl.Frame(4, 2, pixels);
        }
    }

    [Fact]
    public void ACustomEnvDrawsItsOwnFramesAndTheRecorderTakesThem()
    {
        Envs.Register(Strip.EnvId, () => new Strip(), replace: true);
        var dir = Temp.Dir("rl-cs-video");
        try
        {
            using var env = Envs.Make(Strip.EnvId);
            env.Reset(0);
            env.Step(1);
            Assert.Equal(255, env.Render().Pixels[3]);
            var written = env.RecordVideo(Path.Combine(dir, "strip.mp4"), obs => 1, seed: 0);
            // an MP4 with ffmpeg, else the frames as PNG files in a folder named as the video
            Assert.True(File.Exists(written) || Directory.GetFiles(written, "*.png").Length == 4, written);

            // a custom env that does not override Render draws nothing: a clear refusal
            Envs.Register(GridWalk.EnvId, () => new GridWalk(), replace: true);
            using var walk = Envs.Make(GridWalk.EnvId);
            walk.Reset(0);
            var e = Assert.Throws<InvalidOperationException>(() => walk.Render());
            Assert.Contains("Render returned no frame", e.Message);
        }
        finally
        {
            Envs.Unregister(Strip.EnvId);
            Directory.Delete(dir, true);
        }
    }
}
