(**
---
title: 03 Policy gradients: REINFORCE and the baseline
category: Notebooks
categoryindex: 1
index: 3
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
# Policy gradients: REINFORCE and the baseline

Notebooks 01 and 02 learned **values** and derived a policy from them (act greedily). This
notebook is the fourth module of the learning path: learning the **policy itself**.

## What DQN cannot do

* **Continuous actions.** DQN acts by $\arg\max_a Q(s, a)$. With two actions that is a
  comparison; with a real-valued torque it is an optimisation problem inside every step.
* **Stochastic policies.** The greedy policy of a Q-function is deterministic (ε-greedy
  noise aside). In games like rock–paper–scissors, or when the agent cannot see the whole state,
  the best policy is random, and a Q-function cannot express it.
* **Small changes, large effects.** A tiny change in the Q-values can flip the argmax and change
  the behaviour abruptly; a policy whose probabilities move smoothly with its parameters is
  easier to optimise.

**Policy-gradient** methods parameterise the policy directly, $\pi_\theta(a \mid s)$, here a
4 → 64 → 64 → 2 tanh network with a softmax over CartPole's two actions, and climb the
gradient of the expected return $J(\theta) = \mathbb E_{\pi_\theta}[G_0]$.

## REINFORCE

The **policy-gradient theorem** (Williams 1992; Sutton & Barto 2018, sec. 13.2) gives that
gradient as an expectation we can sample:

$$\nabla_\theta J(\theta) = \mathbb E_{\pi_\theta}\Big[\sum_t \nabla_\theta \log \pi_\theta(a_t \mid s_t)\; G_t\Big].$$

**REINFORCE** plays complete episodes with the current policy, computes the return $G_t$ of
every step, and takes a gradient step on the loss
$L = -\frac1E \sum_t \log \pi_\theta(a_t \mid s_t)\,G_t$ (`Losses.reinforce`). The intuition:
actions followed by high returns become more probable, actions followed by low returns less.
Nothing is bootstrapped: it is a Monte-Carlo method, unbiased but, as we will see, noisy.

## Credit assignment

Which actions deserve the credit for the return? An action cannot influence rewards received
*before* it, so each step is weighted by the **reward-to-go** $G_t = \sum_{k \ge t} \gamma^{k-t} r_k$,
not by the whole episode's return. On CartPole (+1 per step), a five-step episode gives the early
actions more credit than the last one, which led straight to the fall:
*)

let rewardToGo =
    let col (xs: float32[]) = torch.tensor(xs).reshape (int64 xs.Length, 1L)
    let zeros = col (Array.zeroCreate 5)
    let terminated = col [| 0.0f; 0.0f; 0.0f; 0.0f; 1.0f |]
    Advantage.discountedReturns 0.99 (col (Array.create 5 1.0f)) terminated zeros zeros
    |> Tensor.toArray

(*** include-value: rewardToGo ***)

(*** hide ***)
printfn "reward-to-go %A" rewardToGo

(**
Still, a single $G_t$ mixes the effect of $a_t$ with the luck of everything that came after
it: a good action followed by bad luck is punished. This is the credit-assignment problem, and
it shows up as **variance** in the gradient estimate.

## The baseline

Subtracting any function of the state $b(s_t)$ from the return does not change the expected
gradient, since $\mathbb E_{a \sim \pi}[\nabla_\theta \log \pi_\theta(a \mid s)\,b(s)] = b(s)\,\nabla_\theta \sum_a \pi_\theta(a \mid s) = 0$,
but it can shrink its variance enormously. The natural choice is a learned state value
$b(s) = V_\phi(s)$: then $G_t - V(s_t)$ asks "was this outcome **better or worse than
expected**?" rather than "was it large?". On CartPole every return is positive, so without a
baseline *every* action taken is pushed up, and only the differences in size carry signal.

## Training with and without the baseline

`Reinforce.Loop.train` runs S seeds as one batched computation. We train twice on the same seeds:
plain REINFORCE ($b = 0$) and REINFORCE with a value baseline (a 64-64 critic fitted to
$G_t$ by ten steps of regression after every update).
*)

let numSeeds = if quick then 2 else 3

let baseCfg =
    if quick then
        { Reinforce.ReinforceConfig.defaults with Iterations = 4; EpisodesPerBatch = 4; Run.NumSeeds = numSeeds }
    else
        { Reinforce.ReinforceConfig.defaults with Iterations = 150; Run.NumSeeds = numSeeds }

let varianceEvery = if quick then 2 else 15
let varianceBatches = if quick then 3 else 16

let withBaseline = Reinforce.Loop.train { baseCfg with Baseline = true } varianceEvery varianceBatches
let noBaseline = Reinforce.Loop.train { baseCfg with Baseline = false } 0 0

/// REINFORCE metrics rows as a table for the chart helpers.
let reinforceTable (rows: Reinforce.ReinforceMetrics list) =
    Metrics.ofRows
        [ Metrics.SeedColumn; "global_step"; "iteration"; "episodic_return"; "actor_loss"; "critic_loss"; "grad_norm" ]
        (rows
         |> List.map (fun m ->
             [| float m.Seed; float m.Step; float m.Iteration; m.EpisodicReturn; m.ActorLoss; m.CriticLoss; m.GradNorm |]))

let trainingSummary =
    $"{baseCfg.Iterations} updates of {baseCfg.EpisodesPerBatch} episodes x {numSeeds} seeds: {withBaseline.WallSeconds:F1} s with the baseline, {noBaseline.WallSeconds:F1} s without"

(*** include-value: trainingSummary ***)

(*** hide ***)
printfn "%s" trainingSummary

(**
The learning curves: the mean return of each update's batch of episodes, mean over seeds with
a band of ± one standard deviation (500 is the maximum).
*)

Charts.compareRuns
    SeedView.MeanStd
    "iteration"
    "episodic_return"
    [ "with baseline b = V(s)", reinforceTable withBaseline.Metrics
      "without baseline (b = 0)", reinforceTable noBaseline.Metrics ]
|> Charts.toHtml
(*** include-it-raw ***)

let finalReturns =
    [ for name, r in [ "with baseline", withBaseline; "without baseline", noBaseline ] ->
          let last = r.Metrics |> List.filter (fun m -> m.Iteration > baseCfg.Iterations - 10)
          let m, s = Train.meanStd (last |> List.map (fun m -> m.EpisodicReturn) |> Array.ofList)
          $"{name}: mean return over the last 10 updates {m:F1} +- {s:F1}" ]

(*** include-value: finalReturns ***)

(*** hide ***)
finalReturns |> List.iter (printfn "%s")

(**
In the full-mode run (150 updates of 8 episodes, 3 seeds) the baseline run reached a mean
return of about 497 over its last 10 updates, while plain REINFORCE stood at about 184 with a
spread across seeds as large as its mean: same data budget, same learning rate, only the
noise of the gradient differs.

### Watch it

One CartPole start before training (uniformly random pushes) and after, for the first seed of each
run (the most likely action of its policy), drawn with Gymnasium's renderer at 50 frames per
second:
*)

let watchSeed = Some(baseCfg.EvalSeed + baseCfg.Seeds[0])

/// The first seed's most likely action of a trained REINFORCE agent.
let reinforceAct (run: Reinforce.TrainResult) =
    Video.actOfSeeds run.Agent.Seeds.Length 0 (fun obs -> Nn.Dist.mode (run.Agent.Actor.Dist obs))

String.Join(
    "",
    [ Video.episodeHtml (Envs.make CartPole.Id) watchSeed (Video.randomAct CartPole.actionSpace (Random 0)) "before training (random pushes)"
      Video.episodeHtml (Envs.make CartPole.Id) watchSeed (reinforceAct noBaseline) "REINFORCE, no baseline"
      Video.episodeHtml (Envs.make CartPole.Id) watchSeed (reinforceAct withBaseline) "REINFORCE with the baseline" ]
)
|> fun videos -> $"<div style=\"display:flex;flex-wrap:wrap;gap:1em\">{videos}</div>"
(*** include-it-raw ***)

(**
## The variance problem, measured

`Reinforce.Agent.gradientVariance` freezes the current policy, collects several independent batches
of episodes, and computes on *each* batch both gradient estimates, with $b = 0$ and with
$b = V(s)$. Their variance across batches (summed over all policy parameters) is the noise of
the estimator; the squared norm of the mean gradient is the signal. The measurements below are
taken along the run with the baseline, every few updates.
*)

let varianceRows =
    withBaseline.Variance
    |> List.map (fun (it, v) -> float it, Array.average v.NoBaseline, Array.average v.WithBaseline, Array.average v.MeanGradSqNorm)
    |> Array.ofList

let its = varianceRows |> Array.map (fun (i, _, _, _) -> i)

Charts.lines
    "Variance of the policy-gradient estimate (mean over seeds; log scale)"
    "update"
    "total gradient variance"
    [ "without baseline (b = 0)", its, varianceRows |> Array.map (fun (_, a, _, _) -> a)
      "with baseline (b = V(s))", its, varianceRows |> Array.map (fun (_, _, b, _) -> b)
      "signal: |mean gradient|²", its, varianceRows |> Array.map (fun (_, _, _, s) -> s) ]
|> Chart.withYAxis (LayoutObjects.LinearAxis.init (AxisType = StyleParam.AxisType.Log, Title = Title.init "total gradient variance"))
|> Charts.toHtml
(*** include-it-raw ***)

let varianceRatios =
    varianceRows
    |> Array.map (fun (i, a, b, _) -> $"update {i}: variance ratio (no baseline / baseline) {a / b:F1}")

(*** include-value: varianceRatios ***)

(*** hide ***)
varianceRatios |> Array.iter (printfn "%s")

(**
At the first update the critic is untrained and $V(s) \approx 0$, so the two estimates are
nearly the same. Once the critic has learned what returns to expect, subtracting it removes the
part of $G_t$ that does not depend on the action, and the variance drops by a large factor at the
same batch size (6 to 19 times in the full-mode run); equivalently, without the baseline we would need that many times more episodes
per update for the same gradient quality. As the policy improves, episodes get longer, returns
grow, and the raw estimator's variance grows with them.

## Summary

* Policy gradients optimise $\pi_\theta$ directly, so they handle stochastic policies and (with
  a Gaussian head) continuous actions, where DQN's argmax fails.
* REINFORCE weights $\nabla \log \pi$ by the reward-to-go: unbiased, but high variance.
* A state-value baseline leaves the expected gradient unchanged and cuts the variance; the
  difference $G_t - V(s_t)$ is an estimate of the **advantage**.
* Replacing $G_t$ by a bootstrapped estimate and reusing each batch for several epochs safely
  leads to actor–critic methods and PPO: notebook 04.

## Try it yourself

REINFORCE has no `scripts/train.fsx` entry yet: edit `baseCfg` above and rerun the notebook.
With `EpisodesPerBatch = 32` the plain estimator's variance falls by about a factor of four
(it is an average over episodes, so its variance scales as 1/E): compare that with the
baseline's reduction above.
*)
