// The C# consumer of the Rl NuGet package: `dotnet fsi build.fsx Test` (and `Pack`) copies this
// file into a fresh console project outside the repository that references only the package,
// then runs it. PPO on CartPole-v1 for a few updates, then the deterministic policy's return.
// The config is the same YAML the scripts read (every key not given keeps Ppo.seedDefaults).
using System;
using System.Linq;
using Rl;

const string yaml = """
    env_id: CartPole-v1
    num_envs: 4
    num_steps: 128
    total_timesteps: 2048
    update_epochs: 4
    num_minibatches: 4
    vectorization_mode: sync
    eval_episodes: 3
    """;

var cfg = Config.parse(Ppo.fields, Ppo.seedDefaults, yaml);
var result = Ppo.train(cfg, Ppo.noHooks, null);
var returns = Ppo.evaluate(Ppo.makeEnv(cfg), result.Agent, result.Normalizers.Obs, cfg.EvalEpisodes, cfg.EvalSeed);
var last = result.Metrics.Last();
Console.WriteLine($"updates: {result.Metrics.Length}, last training episodic return {last.EpisodicReturn:F1}");
Console.WriteLine($"CartPole-v1 eval return: {returns[0].Average():F1} over {cfg.EvalEpisodes} episodes (C#)");
