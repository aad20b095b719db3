// A custom environment written in C#: a corridor of `Length` cells. The agent starts in one of
// the first three cells (drawn from the env's seeded generator), moves left (0) or right (1),
// and earns +1 when it reaches the last cell (terminated); every step costs 0.01. The time limit
// truncates an episode after 40 steps. Observation: the position scaled to [0, 1].
// A random policy rarely reaches the goal within the limit; the best return is
// 1 - 0.01 * (steps to the goal), at least 0.91.
using System;
using Rl.CSharp;

namespace Rl.Samples;

public sealed class GridWalk : CustomEnv
{
    public const string EnvId = "GridWalk-v0";
    public const int Length = 10;
    int position;

    public GridWalk()
        : base(EnvId, SpaceSpec.Box(new[] { 0.0 }, new[] { 1.0 }), SpaceSpec.Discrete(2), maxEpisodeSteps: 40) { }

    float[] Observe() => new[] { position / (float)(Length - 1) };

    public override float[] OnReset(Random random)
    {
        position = random.Next(3);
        return Observe();
    }

    public override EnvStep OnStep(EnvAction action)
    {
        position = Math.Clamp(position + (action.Index == 1 ? 1 : -1), 0, Length - 1);
        bool atGoal = position == Length - 1;
        return new EnvStep(Observe(), (atGoal ? 1.0 : 0.0) - 0.01, terminated: atGoal);
    }

    // The state beyond the generator and counters, so that checkpointed PPO runs resume exactly.
    public override string CaptureState() => position.ToString();
    public override void RestoreState(string state) => position = int.Parse(state);
}
