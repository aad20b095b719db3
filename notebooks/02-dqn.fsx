(**
---
title: 02 Deep Q-networks on CartPole
category: Notebooks
categoryindex: 1
index: 2
---
*)
(*** hide ***)
#load "../scripts/prepare.fsx"
#load "../scripts/load.fsx"

open System
open TorchSharp
open Plotly.NET
open Rl

/// Quick mode (RL_QUICK=1): the test suite runs this notebook with a tiny budget.
let quick = Environment.GetEnvironmentVariable "RL_QUICK" = "1"
(*** hide ***)
Charts.plotlyScript ()
(*** include-it-raw ***)

(**
# Deep Q-networks (DQN) on CartPole

Notebook 01 learned a Q-table for FrozenLake: 16 states × 4 actions, one number each. This
notebook is the third module of the learning path: what changes when the states can no longer be
listed, and the two tricks, **experience replay** and the **target network**, that made
Q-learning with neural networks work (Mnih et al. 2013, 2015).

## Function approximation

CartPole's state is four real numbers: cart position and velocity, pole angle and angular
velocity. There is no table to fill: a state seen once will never be seen again exactly. Instead
of a table we learn a **function** $Q(s, a; \theta)$, a neural network with parameters
$\theta$ that takes the observation and outputs one Q-value per action. Nearby states share
parameters, so what is learned in one state **generalises** to states never visited. Here the
network is the 4 → 120 → 84 → 2 ReLU MLP of CleanRL's `dqn.py` (seed 004: "a three-layer MLP").

The tabular update becomes a regression: minimise the squared TD error

$$L(\theta) = \big(\underbrace{r + \gamma \max_{a'} Q(s', a'; \theta^-)}_{\text{TD target}} - Q(s, a; \theta)\big)^2$$

by gradient descent on $\theta$ (the target is treated as a constant; no gradient flows
through it). Done naively, online, one transition at a time with $\theta^- = \theta$, this
diverges or oscillates for two reasons.

## Experience replay

Consecutive transitions are strongly **correlated** (the cart at step t and t + 1 are almost
the same), but stochastic gradient descent assumes independent samples; and every transition
would be used once and thrown away. DQN stores the last N transitions $(s, a, r, s', \text{terminated})$
in a **replay buffer** (here N = 10,000) and learns from **random minibatches** of it (a
minibatch of 128 every few environment steps). Sampling breaks the correlations and reuses each transition many
times.

## Target network

In the loss above the target depends on the very parameters being updated: every gradient step
moves the target too, and the network chases its own tail. DQN computes the target with a
**separate copy** $\theta^-$ of the network, frozen and synchronised with $\theta$ only every
C steps (here a hard copy every 500 steps). Between syncs the regression has a fixed target,
like supervised learning.

Exploration is ε-greedy as in notebook 01, with ε falling linearly from 1 to 0.05 over the
first 30% of training (CleanRL: the first half); learning starts once the buffer holds enough random transitions.

## Training several seeds at once

`Dqn.Loop.train` trains S independent agents (S seeds) as **one batched computation**: every weight
has a leading seed axis, so each seed gets its own network, buffer, exploration and
environment, and a learning curve over seeds costs little more than one run.
*)

let numSeeds = if quick then 2 else 3

let cfg =
    if quick then
        { Dqn.DqnConfig.defaults with
            TotalTimesteps = 3000L
            LearningStarts = 1000L
            BufferSize = 2000
            ExplorationFraction = 0.5
            LogEvery = 500
            Run.NumSeeds = numSeeds
            EvalEpisodes = 3 }
    else
        // A modest budget: 120k steps instead of CleanRL's 500k, so exploration ends by 36k
        // steps, learning starts after 5k and the network is updated every 4 steps.
        { Dqn.DqnConfig.defaults with
            TotalTimesteps = 120_000L
            LearningStarts = 5_000L
            ExplorationFraction = 0.3
            TrainFrequency = 4
            LogEvery = 2000
            Run.NumSeeds = numSeeds }

let result = Dqn.Loop.train cfg Dqn.Loop.noHooks None
let table = Dqn.Runner.table cfg.Run.NumSeeds result.Metrics

let trainingSummary =
    $"{cfg.TotalTimesteps} steps x {cfg.Run.NumSeeds} seeds in {result.WallSeconds:F1} s"

(*** include-value: trainingSummary ***)

(*** hide ***)
printfn "%s" trainingSummary

(**
The learning curve: the mean over seeds of the average return of each seed's last 20 training
episodes (with exploration), with a band of ± one standard deviation across seeds. CartPole pays
+1 per step up to the 500-step limit, so 500 is a perfect episode.
*)

Charts.learningCurve SeedView.MeanStd "global_step" "return_last20" table
|> Charts.toHtml
(*** include-it-raw ***)

(**
The diagnostics: the TD loss, the mean Q-value of the sampled batch, the gradient norm and ε.
The TD loss does *not* fall steadily as in supervised learning: as the policy improves, episodes
get longer, returns and Q-values grow (towards $1/(1-\gamma) = 100$), and the targets move with
them.
*)

Charts.panels SeedView.MeanStd "global_step" [ "td_loss"; "q_values"; "grad_norm"; "epsilon" ] table
|> Charts.toHtml
(*** include-it-raw ***)

(** ## Evaluation: the greedy policy (ε = 0), the same start states for every seed *)

let evalReturns =
    Dqn.Agent.evaluate (Dqn.DqnConfig.makeEnv cfg) result.Agent cfg.EvalEpisodes cfg.EvalSeed

let evalSummary =
    evalReturns
    |> Array.mapi (fun k r ->
        let m, s = Train.meanStd r
        $"seed {cfg.Seeds[k]}: {m:F1} +- {s:F1}")

(*** include-value: evalSummary ***)

(*** hide ***)
evalSummary |> Array.iter (printfn "%s")

(**
## Watch it

The first evaluation start before training (uniformly random pushes) and after (the greedy action
of the first seed's Q-network), drawn with Gymnasium's CartPole renderer (`Envs.frame`) at its 50
frames per second:
*)

let watchSeed = Some(cfg.EvalSeed + cfg.Seeds[0])

Video.sideBySide
    (Video.episodeHtml (Envs.make CartPole.Id) watchSeed (Video.randomAct CartPole.actionSpace (Random 0)) "before training (random pushes)")
    (Video.episodeHtml
        (Envs.make CartPole.Id)
        watchSeed
        (Video.actionOf (Dqn.Runner.policyOf cfg result.Agent) 0)
        $"after training (seed {cfg.Seeds[0]}, greedy)")
(*** include-it-raw ***)

(**
## Do the Q-values mean anything?

A Q-value is a prediction: the discounted return the agent expects from here on. We can check
it. Play one greedy episode per seed, record $\max_a Q(s_t, a)$ at every step, and compare it
with the discounted return that actually followed, $G_t = \sum_{k \ge 0} \gamma^k r_{t+k+1}$.
*)

/// One greedy episode of seed k: per step the predicted max_a Q(s_t, a) and the realised
/// discounted return G_t.
let predictedVsActual (k: int) =
    let env = Envs.make CartPole.Id :?> ClassicEnv
    let S = int64 cfg.Run.NumSeeds
    let mutable obs = env.Reset(Some(cfg.EvalSeed + 7L))
    let predicted = ResizeArray()
    let rewards = ResizeArray()
    let mutable fin = false

    while not fin do
        let q =
            use _ng = torch.no_grad ()
            let x = torch.tensor(obs).reshape(1L, 1L, 4L).expand (S, 1L, 4L)
            let out = result.Agent.QNet.forward x
            Tensor.toArray (out[int64 k].reshape [| -1L |])

        predicted.Add(Array.max q)
        let a = Array.IndexOf(q, Array.max q)
        let r = env.Step(Action.Discrete a)
        rewards.Add r.Reward
        obs <- r.Obs
        fin <- r.Terminated || r.Truncated

    let returns = Array.zeroCreate rewards.Count
    let mutable g = 0.0

    for t in rewards.Count - 1 .. -1 .. 0 do
        g <- rewards[t] + cfg.Gamma * g
        returns[t] <- g

    predicted.ToArray(), returns

let qChecks = Array.init cfg.Run.NumSeeds predictedVsActual

[ for k in 0 .. cfg.Run.NumSeeds - 1 do
      let predicted, actual = qChecks[k]
      let steps = Array.init predicted.Length float
      $"seed {cfg.Seeds[k]}: max Q(s, a)", steps, predicted
      $"seed {cfg.Seeds[k]}: actual G_t", steps, actual ]
|> Charts.lines "Predicted Q-value vs the discounted return that followed (one greedy episode per seed)" "step t" "value"
|> Charts.toHtml
(*** include-it-raw ***)

(*** hide ***)
qChecks
|> Array.iteri (fun k (p, a) -> printfn "seed %d: episode length %d, Q(s_0) %.2f, G_0 %.2f" k p.Length p[0] a[0])

(**
When the agent balances for the whole episode, the return that follows a step is
$\sum_k \gamma^k = (1 - \gamma^{T-t}) / (1 - \gamma)$: close to 100 for most of the episode and
falling to 0 at the 500-step time limit. The network cannot see the clock (time is not in the
observation), so it predicts a steady value near 100 and the curves split only at the end. That
is correct: the time limit is a **truncation**, not a failure, and DQN bootstraps through it.
An episode that ends early because the pole falls is a **termination**: there the return
really does drop to 0, and a good Q-network should see the fall coming a few steps ahead.
The estimates need not match the returns exactly: in the full-mode run (120k steps) $Q(s_0)$ sat
a few units *below* $G_0$ (about 91–93 against 97–99), because the network still averages over
the shorter episodes seen in training. The error can go the other way too: Q-learning is known
to **overestimate**, since $\max_{a'}$ over noisy estimates is biased upwards (Double DQN, van
Hasselt et al. 2016, decouples the choice of $a'$ from its evaluation to fix it).

## Summary

* A neural network replaces the table: Q-learning now generalises across continuous states.
* Experience replay decorrelates the samples and reuses data; the target network fixes the
  regression target between syncs. Without them, training is unstable.
* DQN still chooses actions by $\arg\max_a$, so it needs a small, discrete action set.
  Notebook 03 learns the policy itself instead.

## Try it yourself

    dotnet fsi scripts/train.fsx algo=dqn num_seeds=5
    dotnet fsi scripts/train.fsx algo=dqn target_network_frequency=1

The second syncs the target after every step, i.e. no target network: compare the curves.
*)
