(**
---
title: 07 GRPO on MNIST
category: Notebooks
categoryindex: 1
index: 7
---
*)
(*** hide ***)
#load "../scripts/prepare.fsx"
#load "../scripts/load.fsx"

open System
open System.IO
open System.Diagnostics
open TorchSharp
open Plotly.NET
open Rl

/// Quick mode (RL_QUICK=1): the test suite runs this notebook with a tiny budget.
let quick = Environment.GetEnvironmentVariable "RL_QUICK" = "1"
(*** hide ***)
Charts.plotlyScript ()
(*** include-it-raw ***)

(**
# GRPO on MNIST: PPO without a critic

Notebook 04 trained PPO with two networks: the actor πθ and the critic Vφ, whose only job is to
supply the baseline in the advantage A = R − V(s). **Group Relative Policy Optimization**
(Shao et al. 2024, *DeepSeekMath*, section 4.1) drops the critic. For each input it samples a
*group* of G outputs from the old policy, scores them, and uses the group's own mean reward as
the baseline:

    A_i = r_i − mean(r_1 … r_G)          (optionally divided by std(r_1 … r_G) + ε)

Everything else is PPO: the clipped surrogate over the old policy's log-probabilities, a few
inner epochs per batch, and optionally a KL penalty β·KL(πθ ‖ πref) to a frozen reference
policy (DeepSeekMath eq. 3, with the k3 estimator of eq. 4).

## The trade-off

* **Saved:** the critic's weights, gradients and optimizer state. For an LLM that is a whole
  second copy of the model (notebook 06 does the arithmetic: 64 GB for 8B parameters in bf16).
* **Paid:** G samples per input instead of one. For an LLM each sample is a full generation, so
  the rollout costs G times as much.

On MNIST, seed 004 module 7 makes classification a one-step RL problem: the state is an image,
the action the guessed digit, the reward 1 if right and 0 otherwise. The actor is
784 → 128 → 128 → 10 with a Categorical head. Here is what the critic would have cost, from
`Memory.ofModules` on live networks (float32, Adam):
*)

let adam = Optim.Adam(0.9, 0.999, 1e-8)
let actorOnly = new Nn.Actor("actor", 1, 784, [ 128; 128 ], Nn.Relu, Nn.CategoricalHead 10)
let critic = new Nn.Critic("critic", 1, 784, [ 128; 128 ], Nn.Relu)

let memoryTable =
    Memory.table
        [ "GRPO: actor only", Memory.ofModules adam torch.ScalarType.Float32 [ actorOnly ]
          "PPO: actor + critic", Memory.ofModules adam torch.ScalarType.Float32 [ actorOnly :> torch.nn.Module; critic ] ]

(*** include-value: memoryTable ***)

(**
The critic is as large as the actor minus its 10-way head, so GRPO halves the training memory.
The price on MNIST is small, and it is worth seeing why: one "generation" is one draw from a
10-way Categorical, and the network runs **once per image** whatever G is; the G guesses only
gather G log-probabilities from the same output. For an LLM the G generations are the expensive
part. The measurement at the end of this notebook shows both sides.

## Group advantages by hand

Four guesses per image for three images: one image got two of four right, one all four, one
none. The all-correct and the all-wrong groups carry **no signal**: their advantages are zero.
*)

let rewards =
    torch.tensor([| 1.0f; 0.0f; 0.0f; 1.0f; 1.0f; 1.0f; 1.0f; 1.0f; 0.0f; 0.0f; 0.0f; 0.0f |]).reshape (3L, 4L)

let handAdvantages =
    Advantage.groupRelative false rewards |> Tensor.toArray |> Array.chunkBySize 4

(*** include-value: handAdvantages ***)

(**
That is GRPO's blind spot: once the policy is confidently wrong on an image, all G guesses are
wrong and nothing pushes it away. The `zero_adv_fraction` metric below counts such groups.

## Training

`Grpo.Loop.train` reads like DeepSeekMath's Algorithm 1: take a batch of images, sample G guesses per
image from the old policy, score them, compute group-relative advantages, take `update_epochs`
steps of the clipped surrogate (`Losses.ppoClip`, the same function PPO uses), discard. Three
seeds train at once as one batched computation (every weight has a leading seed axis).
The config is `scripts/configs/grpo-mnist.yaml`.
*)

let configPath =
    Path.Combine(__SOURCE_DIRECTORY__, "..", "scripts", "configs", "grpo-mnist.yaml")

let baseCfg = Config.load Grpo.GrpoConfig.fields Grpo.GrpoConfig.defaults configPath

let cfg =
    if quick then
        { baseCfg with
            TrainSize = 3000
            TestSize = 1000
            Epochs = 2
            Run.NumSeeds = 2
            LogEvery = 10 }
    else
        { baseCfg with Run.NumSeeds = 3 }

let data = Grpo.Agent.loadData cfg
let result = Grpo.Loop.train data cfg Grpo.Loop.noHooks
let table = Grpo.Runner.table cfg.Run.NumSeeds result.Metrics

let perEpoch =
    [ for e in 0 .. result.EpochAccuracy.Length - 1 ->
          let accs = result.EpochAccuracy[e] |> Array.map (fun a -> Math.Round(100.0 * a, 2))
          $"""epoch {e + 1}: test accuracy (%%) per seed {String.Join(", ", accs)}; {result.EpochSeconds[e]:F1} s""" ]

(*** include-value: perEpoch ***)

(**
Accuracy is the greedy policy (argmax) on the test images after each epoch; seed 004's bar is
95 % within 10 epochs.
*)

Charts.learningCurve SeedView.MeanStd "epoch" "test_accuracy" table |> Charts.toHtml
(*** include-it-raw ***)

Charts.learningCurve SeedView.MeanStd "global_step" "reward_mean" table |> Charts.toHtml
(*** include-it-raw ***)

(**
The mean reward is the accuracy of the *sampled* guesses, which trails the greedy accuracy while
the policy is still uncertain. The diagnostics: the KL to the reference (the initial policy),
PPO's approximate KL between old and new policy and its clip fraction, the entropy, and the
fraction of groups with no signal, which climbs as the policy gets sure of itself.
*)

Charts.panels SeedView.MeanStd "global_step" [ "kl_ref"; "approx_kl"; "clip_fraction"; "entropy"; "zero_adv_fraction"; "grad_norm" ] table
|> Charts.toHtml
(*** include-it-raw ***)

(**
## What the policy sees

Sixteen test digits (seed 0's policy) and the probability it gives each class. Rows of the right
chart follow the digits left to right, top to bottom.
*)

let shown = 16
let testImages = data.Test.Images.narrow (0L, 0L, int64 shown)
let probs = (Grpo.Agent.probabilities result.Agent.Actor testImages)[0] |> Tensor.toArray |> Array.chunkBySize 10
let pixels = Tensor.toArray testImages |> Array.chunkBySize 784
let labels = Tensor.toArray (data.Test.Labels.narrow (0L, 0L, int64 shown)) |> Array.map int

// A 4 x 4 tile of 28 x 28 digits (row 0 at the top).
let tile =
    Array.init (4 * 28) (fun r ->
        Array.init (4 * 28) (fun c ->
            let k = (r / 28) * 4 + c / 28
            pixels[k][(r % 28) * 28 + c % 28]))
    |> Array.rev

Charts.heatmap "Test digits" "" "" "pixel" [| 0.0 .. 111.0 |] [| 0.0 .. 111.0 |] tile
|> Chart.withSize (450, 420)
|> Charts.toHtml
(*** include-it-raw ***)

let rowNames =
    Array.init shown (fun k ->
        let guess = Array.findIndex (fun p -> p = Array.max probs[k]) probs[k]
        $"#{k} label {labels[k]} guess {guess}")

Chart.Heatmap(zData = Array.rev probs, X = [ 0..9 ], Y = Array.rev rowNames, ColorScale = StyleParam.Colorscale.Viridis)
|> Chart.withTitle "π(digit | image)"
|> Chart.withXAxisStyle "digit"
|> Chart.withSize (650, 550)
|> Charts.toHtml
(*** include-it-raw ***)

(**
## The effect of G

The same run for one epoch with groups of 2, 4 and 16 guesses (one seed; 20,000 training
images, or 2,000 in quick mode). Larger groups find the right digit more often on hard images,
so fewer groups are all-wrong; the time grows only a little, because the network runs once per
image whatever G is.
*)

let groupRuns =
    [ for g in [ 2; 4; 16 ] ->
          let c =
              { cfg with
                  GroupSize = g
                  Epochs = 1
                  Run.NumSeeds = 1
                  TrainSize = (if quick then 2000 else 20000)
                  TestSize = (if quick then 1000 else 10000) }

          use d = Grpo.Agent.loadData c
          let r = Grpo.Loop.train d c Grpo.Loop.noHooks
          use _a = r.Agent
          g, r.EpochAccuracy[0][0], r.EpochSeconds[0] ]

let groupTable =
    [ for g, acc, secs in groupRuns -> $"G = {g,2}: test accuracy {100.0 * acc:F2} %%, {secs:F1} s per epoch" ]

(*** include-value: groupTable ***)

Charts.lines
    "Effect of the group size G (one epoch)"
    "G"
    "test accuracy"
    [ ("accuracy", (groupRuns |> List.map (fun (g, _, _) -> float g) |> Array.ofList), (groupRuns |> List.map (fun (_, a, _) -> a) |> Array.ofList)) ]
|> Charts.toHtml
(*** include-it-raw ***)

(*** hide ***)
(result.Agent :> IDisposable).Dispose()
(data :> IDisposable).Dispose()

(**
## Try it yourself

    dotnet fsi scripts/train.fsx algo=grpo num_seeds=3
    dotnet fsi scripts/train.fsx algo=grpo group_size=4 beta=0.04 ref_update_epochs=1

The second adds DeepSeekMath's KL penalty to a reference refreshed every epoch. Each run writes
`runs/grpo-MNIST-*/report.html` and `summary.json` with `test_accuracy`.
*)
