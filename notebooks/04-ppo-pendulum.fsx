(**
---
title: 04 PPO on Pendulum-v1
category: Notebooks
categoryindex: 1
index: 4
---
*)
(*** hide ***)
#load "../scripts/prepare.fsx"
#load "../scripts/load.fsx"

open System
open System.IO
open TorchSharp
open Plotly.NET
open Rl

/// Quick mode (RL_QUICK=1): the test suite runs this notebook with a tiny budget.
let quick = Environment.GetEnvironmentVariable "RL_QUICK" = "1"
(*** hide ***)
Charts.plotlyScript ()
(*** include-it-raw ***)

(**
# PPO on Pendulum-v1: continuous control

Notebooks 01–03 learned *values* (tabular Q-learning, DQN) and then a *policy* directly
(REINFORCE). This notebook puts the two together in **Proximal Policy Optimization** (Schulman
et al. 2017), the algorithm behind most modern control results and RLHF, and uses it on a task
that value-based methods cannot even state: choosing a real-valued torque.

## The task

`Pendulum-v1` (Gymnasium's `classic_control/pendulum.py`): a pendulum hangs from a pivot; the
agent applies a torque `u` in `[-2, 2]`; the observation is `[cos θ, sin θ, θ̇]` (θ = 0 is
upright); every step costs `θ² + 0.1 θ̇² + 0.001 u²` (θ wrapped to `[-π, π]`). Episodes last 200
steps and never terminate early, so every episode ends by **truncation**, a distinction that
matters below. Returns run from about −1600 (spinning at the bottom) to 0 (balanced from the
start); "solved" is commonly quoted near −200.

## Why DQN cannot do this

DQN acts by `argmax_a Q(s, a)`. With two actions that is a comparison; with a continuous
action it is an optimisation problem inside every step. We could discretise the torque, but
the number of bins grows exponentially with action dimensions and coarse bins make smooth
control impossible. The way out is to learn the **policy itself**, πθ(a|s): here a Normal
distribution whose mean μ(s) and standard deviation σ(s) come from a network. Sampling gives
exploration for free; the mean is the deterministic controller.

## Actor and critic

Seed document 002's actor is a 3→64→64 ReLU MLP with two heads: `μ = 2 tanh(·)` (squashed to the
torque range) and `σ = softplus(·) + 1e-5`. The critic Vφ(s) is a 3→64→64→1 MLP. In this library
both live in `Rl.Nn` with a leading *seed axis*: every weight has shape `[S; in; out]`, so S
independent agents train as one batched computation (notebook 05 uses that for many seeds).
*)

(*** hide ***)
let configPath =
    Path.Combine(__SOURCE_DIRECTORY__, "..", "scripts", "configs", "ppo-pendulum.yaml")

let baseCfg = Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults configPath

(** The actor for one seed, applied to a batch of three observations: *)

let demoActor =
    new Nn.Actor("actor", 1, 3, [ 64; 64 ], Nn.Relu, Nn.GaussianHead(1, Some 2.0, Nn.Softplus))

demoActor.Initialise(Nn.TorchDefault, Nn.TorchDefault, [| 0L |])

let demoObs =
    torch.tensor([| 1.0f; 0.0f; 0.0f; -1.0f; 0.0f; 0.0f; 0.0f; 1.0f; 4.0f |]).reshape(1L, 3L, 3L)

let demoMeanStd =
    match demoActor.Dist demoObs with
    | Nn.Normal(m, s) -> Tensor.toArray m, Tensor.toArray s
    | Nn.Categorical _ -> failwith "a Gaussian head"

(*** include-value: demoMeanStd ***)

(**
An untrained actor: means near 0, standard deviations near softplus(0) ≈ 0.69.

## Advantage and GAE

The policy gradient pushes up the log-probability of actions in proportion to how much
better they turned out than expected: the **advantage** A(s, a) = Q(s, a) − V(s). PPO estimates
it with **Generalised Advantage Estimation** (Schulman et al. 2016, eq. 16), a backward
recursion over the rollout:

    δt = rt + γ V(s't) (1 − terminatedt) − V(st)
    At = δt + γ λ (1 − donet) At+1

λ = 0 is the one-step TD error (low variance, biased by the critic); λ = 1 is the Monte-Carlo
return minus the baseline (unbiased, noisy). `Advantage.gae` takes both episode-end flags:
a **terminated** step has no future (no bootstrap), a **truncated** step (Pendulum's 200-step
limit) still has one, so it bootstraps from the value of the observation it reached, s't, which
the batched environment reports as `FinalObs` before resetting. Treating truncation as
termination teaches the critic that the world ends every 200 steps.

A three-step example by hand, γ = 0.9, λ = 0.8, with the episode truncated at the middle step:
*)

let t3 (xs: float32 list) =
    torch.tensor(Array.ofList xs).reshape(3L, 1L)

let handAdvantages, handReturns =
    Advantage.gae
        0.9
        0.8
        (t3 [ 1.0f; 2.0f; 3.0f ])
        (t3 [ 0.5f; 1.0f; 1.5f ])
        (t3 [ 1.0f; 1.5f; 2.0f ])
        (t3 [ 0.0f; 0.0f; 0.0f ])
        (t3 [ 0.0f; 1.0f; 0.0f ])

let handCase = Tensor.toArray handAdvantages
(*** include-value: handCase ***)

(**
δ = (1.4, 2.35, 3.3); the truncated middle step keeps its bootstrap (2.35 = 2 + 0.9·1.5 − 1)
but stops the recursion, so A1 = δ1 and A0 = 1.4 + 0.72·2.35 = 3.092.

## The clip

With the advantages fixed, PPO reuses one rollout for several epochs of minibatch updates.
The probability ratio r = πθ(a|s) / πθold(a|s) measures how far the policy has moved; the
clipped surrogate (eq. 7)

    L = −mean( min( r A, clip(r, 1 − ε, 1 + ε) A ) )

stops rewarding moves beyond `1 ± ε` in the direction the advantage asks for, while still
punishing moves in the wrong direction. `Losses.ppoClip` returns the loss with its diagnostics:
the approximate KL divergence (k3 estimator) and the fraction of clipped samples.
*)

let ratioGrid = [| 0.5..0.01..1.5 |]

let surrogate (adv: float) =
    ratioGrid
    |> Array.map (fun r ->
        let lp = torch.tensor([| float32 (log r) |]).reshape(1L, 1L)

        let loss, _ =
            Losses.ppoClip 0.2 lp (torch.zeros (1L, 1L)) (torch.tensor([| float32 adv |]).reshape(1L, 1L))

        -(Tensor.item loss))

let clipChart =
    Charts.lines
        "Clipped surrogate objective (ε = 0.2)"
        "probability ratio r"
        "objective"
        [ "A = +1", ratioGrid, surrogate 1.0; "A = −1", ratioGrid, surrogate -1.0 ]

clipChart |> Charts.toHtml
(*** include-it-raw ***)

(**
## Training

The library's `Ppo.Loop.train` runs the loop of seed 002 (collect → GAE → epochs of minibatches →
discard) with the default config `scripts/configs/ppo-pendulum.yaml`. That config starts from the
seed's table and changes what the peers' runs show must change (see the comments in the file):
several parallel environments with short rollouts (4 × 256 steps per update, so 97 updates in
the seed's 100k steps instead of 48), a shorter horizon (γ = 0.95), a state-independent log-std,
observation and reward normalisation, and annealed learning rates. Over ten seeds nobody tuned
on (1000-1009, `bench.fsx learning`) every one evaluates above −200 by 100k steps, the median at
31k.
*)

let cfg =
    if quick then
        { baseCfg with
            TotalTimesteps = 4096L
            NumEnvs = 2
            NumSteps = 1024
            Run.NumSeeds = 1
            EvalEpisodes = 3
        }
    else
        baseCfg

let result = Ppo.Loop.train cfg Ppo.Loop.noHooks None
let table = Ppo.Runner.table cfg.Run.NumSeeds result.Metrics

let trainingSummary =
    $"{cfg.TotalTimesteps} steps x {cfg.Run.NumSeeds} seed(s) in {result.WallSeconds:F1} s"

(*** include-value: trainingSummary ***)

let curve =
    Charts.learningCurve SeedView.MeanStd "global_step" "episodic_return" table

curve |> Charts.toHtml
(*** include-it-raw ***)

(**
The standard deviation σ of the policy is its exploration: it starts at exp(0) = 1 and the
policy lowers it as it becomes confident. PPO has no entropy bonus here (`ent_coef: 0`), so
σ falls only as fast as the advantages ask.
*)

let diagnostics =
    Charts.panels
        SeedView.MeanStd
        "global_step"
        [
            "sigma_mean"
            "approx_kl"
            "clip_fraction"
            "explained_variance"
            "actor_loss"
            "critic_loss"
        ]
        table

diagnostics |> Charts.toHtml
(*** include-it-raw ***)

(** ## Evaluation: the deterministic policy (mean action) over 10 episodes *)

let evalReturns =
    Ppo.Evaluate.evaluate (Ppo.PpoConfig.makeEnv cfg) result.Agent result.Normalizers.Obs cfg.EvalEpisodes cfg.EvalSeed

let evalSummary =
    evalReturns
    |> Array.mapi (fun k r ->
        let m, s = Train.meanStd r
        $"seed {cfg.Seeds[k]}: {m:F1} +- {s:F1}")

(*** include-value: evalSummary ***)

(**
## Watch it

Seed 002 ends by watching the agent: "the pendulum can quickly rotate to the top and stay
stable". The same start (the first evaluation seed) before training (uniformly random torques)
and after (the trained policy's mean action): `Video.episodeHtml` draws every state with
Gymnasium's renderer (`Envs.frame`) and plays it at Pendulum's 30 frames per second. The arrow is
the torque of the last step. (`capture_video: true` records the same after a `train.fsx` run, into
the run folder's `videos/` and its report.)
*)

let watchSeed = Some(cfg.EvalSeed + cfg.Seeds[0])

let before =
    Video.episodeHtml (Envs.make Pendulum.Id) watchSeed (Video.randomAct Pendulum.actionSpace (Random 0)) "before training (random torques)"

let after =
    let policy = Ppo.Runner.policyOf cfg result.Agent result.Normalizers
    Video.episodeHtml (Envs.make Pendulum.Id) watchSeed (Video.actionOf policy 0) $"after training (seed {cfg.Seeds[0]})"

Video.sideBySide before after
(*** include-it-raw ***)

(**
## What the networks learned

Pendulum's state is two numbers, so we can look at the whole function. The critic V(θ, θ̇)
and the actor's mean torque μ(θ, θ̇) on a grid (θ = 0 is upright; the observation is
`[cos θ, sin θ, θ̇]`, normalised as in training):
*)

let thetas = Array.init 61 (fun i -> -Math.PI + 2.0 * Math.PI * float i / 60.0)
let thetaDots = Array.init 41 (fun j -> -8.0 + 16.0 * float j / 40.0)

let gridObs =
    [|
        for td in thetaDots do
            for th in thetas -> [| float32 (cos th); float32 (sin th); float32 td |]
    |]
    |> Array.concat

let valueGrid, meanGrid =
    use _ng = torch.no_grad ()
    let S = int64 cfg.Run.NumSeeds
    let n = int64 (thetas.Length * thetaDots.Length)
    let obs = torch.tensor(gridObs).reshape(1L, n, 3L).expand(S, n, 3L)
    let x = Ppo.Normalizers.preprocess result.Normalizers.Obs obs
    let v = Tensor.toArray (result.Agent.Critic.forward(x)[0])

    let mu =
        match result.Agent.Actor.Dist x with
        | Nn.Normal(m, _) -> Tensor.toArray (m[0])
        | Nn.Categorical _ -> failwith "Pendulum has a Gaussian policy"

    let rows (xs: float[]) =
        Array.init thetaDots.Length (fun j -> xs[j * thetas.Length .. (j + 1) * thetas.Length - 1])

    rows v, rows mu

Charts.heatmap "Critic V(θ, θ̇)" "θ (rad, 0 = upright)" "θ̇ (rad/s)" "value" thetas thetaDots valueGrid
|> Charts.toHtml
(*** include-it-raw ***)

Charts.heatmap "Actor mean torque μ(θ, θ̇)" "θ (rad, 0 = upright)" "θ̇ (rad/s)" "torque" thetas thetaDots meanGrid
|> Charts.toHtml
(*** include-it-raw ***)

(**
The value is highest in a band around the upright position with small velocity, and the
mean torque has the shape of an energy-pumping controller: far from upright it pushes along
the direction of motion to swing up; near upright it opposes the velocity and the angle to
balance.
*)

(**
## Why a ratio at all: importance sampling (seed 003)

The policy gradient is an expectation under the *current* policy,
∇J(θ) = E_{a∼πθ}[A ∇ log πθ(a|s)], so strictly every gradient step needs fresh samples. Seed
document 003 derives how PPO escapes that: for any θ′ (the policy that collected the data),
E_{a∼πθ}[f(a)] = E_{a∼πθ′}[(πθ(a|s) / πθ′(a|s)) f(a)]. With f = A ∇ log πθ and
∇πθ = πθ ∇ log πθ the gradient becomes E_{a∼πθ′}[∇(r A)], r = πθ/πθ′: the gradient of the
surrogate J^θ′(θ) = E_{θ′}[r A]. At θ = θ′ it *is* the policy gradient (r = 1), so one rollout
can be reused for several epochs. The catch is the variance: when πθ drifts from πθ′, a few
samples with large r dominate the estimate.

The experiment below makes that visible with nothing but tensors: data from πθ′ = N(0, 1), an
"advantage" A(a) = a, whose true expectation under πθ = N(μ, 1) is μ. The importance-weighted
estimate mean(r A) from 256 old samples tracks μ while KL(πθ′ || πθ) = μ²/2 is small, then its
spread across 200 repeated draws explodes. That is why TRPO bounds the KL, PPO1 penalises it
and PPO2 clips r.
*)

let isDemo =
    use gen = new torch.Generator(7UL)
    let n, repeats = 256L, 200L
    let a = torch.randn ([| repeats; n |], generator = gen, dtype = torch.float64) // samples from N(0, 1)

    [|
        for mu in 0.0..0.25..3.0 ->
            // log N(a; mu, 1) - log N(a; 0, 1) = mu a - mu^2 / 2
            let r = torch.exp (a * mu - mu * mu / 2.0)
            let est = Tensor.toArray ((r * a).mean([| 1L |]))
            let m = Array.average est
            let sd = sqrt (est |> Array.averageBy (fun e -> (e - m) ** 2.0))
            mu, m, sd
    |]

let isChart =
    let mus = isDemo |> Array.map (fun (mu, _, _) -> mu)

    Charts.lines
        "Importance-sampled E_new[A] from old samples (200 draws)"
        "mean μ of the new policy (KL(old || new) = μ²/2)"
        "estimate"
        [
            "true value μ", mus, mus
            "estimate: mean", mus, isDemo |> Array.map (fun (_, m, _) -> m)
            "estimate: mean + 1 sd", mus, isDemo |> Array.map (fun (_, m, sd) -> m + sd)
            "estimate: mean − 1 sd", mus, isDemo |> Array.map (fun (_, m, sd) -> m - sd)
        ]

isChart |> Charts.toHtml
(*** include-it-raw ***)

(**
## Clip or KL penalty

The PPO paper (section 4) and seed 003 give two ways to keep πθ near πθ′. **PPO1**, the
*KL-penalised surrogate*, maximises r A − β KL(πθ′ || πθ) and adapts β after every update
from the measured d = mean KL: β halves when d < d_targ/1.5 and doubles when d > 1.5 d_targ
(`Losses.ppoKlPenalty`, `Losses.adaptKlBeta`; config `loss: kl_penalty`, `kl_beta`,
`kl_target`). **PPO2**, the clip above, needs no KL at all. Both are trained here on the same
config and the same seeds; `kl` is the analytic KL(old || new) after each update (`Dist.kl`),
`kl_beta` the coefficient the penalised run used.
*)

let compareSeeds = 3

let compareCfg =
    if quick then
        { cfg with
            Run.NumSeeds = compareSeeds
            TotalTimesteps = 4096L
        }
    else
        { baseCfg with Run.NumSeeds = compareSeeds }

let klCfg =
    { compareCfg with
        Loss = "kl_penalty"
        KlBeta = 1.0
        KlTarget = 0.01
    }

let clipRun = Ppo.Loop.train compareCfg Ppo.Loop.noHooks None
let klRun = Ppo.Loop.train klCfg Ppo.Loop.noHooks None
let clipTable = Ppo.Runner.table compareSeeds clipRun.Metrics
let klTable = Ppo.Runner.table compareSeeds klRun.Metrics

Charts.compareRuns
    SeedView.MeanStd
    "global_step"
    "episodic_return"
    [ "clip (PPO2)", clipTable; "KL penalty (PPO1)", klTable ]
|> Charts.toHtml
(*** include-it-raw ***)

Charts.compareRuns SeedView.MeanStd "global_step" "kl" [ "clip (PPO2)", clipTable; "KL penalty (PPO1)", klTable ]
|> Charts.toHtml
(*** include-it-raw ***)

Charts.learningCurve SeedView.PerSeed "global_step" "kl_beta" klTable
|> Charts.toHtml
(*** include-it-raw ***)

let evalOf (run: Ppo.TrainResult) (c: Ppo.PpoConfig) =
    Ppo.Evaluate.evaluate (Ppo.PpoConfig.makeEnv c) run.Agent run.Normalizers.Obs c.EvalEpisodes c.EvalSeed
    |> Array.map (fun r -> Math.Round(Array.average r, 1))

let clipVsKl =
    [
        "clip (PPO2)", evalOf clipRun compareCfg
        "KL penalty (PPO1)", evalOf klRun klCfg
    ]

(*** include-value: clipVsKl ***)

(**
What the full run showed with the earlier default (4 × 1024 steps per update, 300k steps, seeds 0-2,
measured 2026-12-02; deterministic evaluation over 10 episodes per seed): clip −194.4 / −167.1 / −185.2 (mean −182.2), KL penalty
−205.7 / −167.4 / −160.0 (mean −177.7): the same quality within the seed-to-seed spread. The
difference is in *how far* each update moves. Under the clip the KL per update falls from about
0.013 in the first half of training to 0.005 in the second (the learning rate anneals and fewer
ratios reach the clip); the penalised run holds it near d_targ (0.011 to 0.014) by shrinking β
from 1 to 0.125, and pays for its slowness early on: the first updates of seed 2 moved little, β
was halved twice to 0.25, and updates 3 and 4 then jumped to KL 0.11 and 0.34, 10 to 30 times
d_targ, before two doublings of β brought it back. The clip bounds every sample's ratio at every
step; the penalty only corrects after the fact, one factor of two per update.
That is why PPO2 replaced PPO1 as the default.
*)

(**
## Try it yourself

    dotnet fsi scripts/train.fsx seed=3 total_timesteps=200000
    dotnet fsi scripts/train.fsx config=scripts/configs/ppo-pendulum-seed.yaml
    dotnet fsi scripts/train.fsx loss=kl_penalty kl_target=0.01 num_seeds=3
    dotnet fsi scripts/train.fsx sigma=fixed fixed_sigma=0.5

The second runs seed 002's table exactly: compare its learning curve in
`runs/*/report.html` with the default's.
*)
