(**
---
title: 01 Reinforcement-learning foundations
category: Notebooks
categoryindex: 1
index: 1
---
*)
(**
# 1. Reinforcement-learning foundations

This notebook is the first module of the learning path: the vocabulary of reinforcement
learning (RL), the agent–environment loop, and the Markov decision process (MDP) behind it,
shown on the six environments of `Rl.Envs` (re-implementations of Gymnasium's classic-control
and toy-text environments, checked bit for bit against Gymnasium's own trajectories).

Run it from the repository root with `dotnet fsi notebooks/01-rl-foundations.fsx` (after
building the library). Set `RL_QUICK=1` to run with tiny episode counts in a few seconds.
*)

(*** hide ***)
#load "../scripts/prepare.fsx"
#load "../scripts/load.fsx"

open System
open Plotly.NET
open Rl

/// Quick mode (RL_QUICK=1) shrinks every episode count.
let quick = Environment.GetEnvironmentVariable "RL_QUICK" = "1"
let episodesPerEnv = if quick then 5 else 200
(*** hide ***)
Charts.plotlyScript ()
(*** include-it-raw ***)

(**
## 1.1 The agent–environment loop

Everything in RL is an interaction loop between an **agent** (the learner and decision maker)
and an **environment** (the world it acts in):

1. the environment is in a **state** $S_t$ and shows the agent an **observation** of it;
2. the agent chooses an **action** $A_t$;
3. the environment moves to a new state $S_{t+1}$ and pays a **reward** $R_{t+1}$, a scalar
   feedback signal (a coin: +10, an enemy: −50);
4. repeat, until the episode ends.

The agent has one goal: to maximise the **cumulative future reward**, the return
$G_t = R_{t+1} + \gamma R_{t+2} + \gamma^2 R_{t+3} + \dots$ with a discount $0 \le \gamma \le 1$.

An episode ends in one of two ways, and the difference matters for learning:
**terminated** means the MDP reached a terminal state (the pole fell, the car reached the flag):
there is no future reward to estimate. **Truncated** means a time limit cut the episode
(Pendulum after 200 steps): the future still exists, and a learner should bootstrap from the
last observation.

In code the loop is `Reset`, then `Step` until `Terminated || Truncated`:
*)

/// Plays one episode with `policy` (observation -> action) and returns the rewards and the
/// environment's internal state after reset and after every step.
let playEpisode (env: ClassicEnv) (policy: float32[] -> Action) (seed: int64) =
    let mutable obs = env.Reset(Some seed)
    let states = ResizeArray [ env.State ]
    let rewards = ResizeArray()
    let mutable fin = false

    while not fin do
        let r = env.Step(policy obs)
        rewards.Add r.Reward
        states.Add env.State
        obs <- r.Obs
        fin <- r.Terminated || r.Truncated

    rewards.ToArray(), states.ToArray()

(**
## 1.2 The environments, and the MDP view

Formally, the loop is a **Markov decision process** $(\mathcal S, \mathcal A, P, R, \gamma)$:
states, actions, transition probabilities $P(s' \mid s, a)$, rewards and a discount. Its core
assumption is the **Markov property** ("memorylessness"): the next state depends only on the
current state and action, not on how the agent got there. The current state already holds all
the history a decision needs. Go is Markov (the board is everything); poker, seen by one
player, is not (the opponents' past bets matter).

Each environment declares its spaces: a `Discrete(n)` space of actions or states $0..n-1$, or a
`Box` of real vectors with bounds.
*)

for id in Envs.ids do
    let env = Envs.make id
    printfn "%-26s obs %-60s action %-22s limit %d" id (string env.ObservationSpace) (string env.ActionSpace) env.MaxEpisodeSteps

(**
FrozenLake is small enough to write its MDP down as data: `P[s][a]` lists the possible
outcomes of action `a` in state `s` as (probability, next state, reward, terminated). On the
slippery lake, "right" from the start tile moves down, right or up with probability 1/3 each
(moving up into the wall keeps the agent in place):
*)

let lake = FrozenLake.Env()

for t in lake.P[0][FrozenLake.RIGHT] do
    printfn "  p = %.4f  ->  s' = %2d  reward %.0f  terminated %b" t.Prob t.NextState t.Reward t.Terminated

(**
## 1.3 Policy and value function

A **policy** $\pi(a \mid s)$ is the agent's behaviour: the probability of taking action $a$ in
state $s$. The **value function** $V^\pi(s)$ says how good a state is: the expected return
from $s$ when following $\pi$. They satisfy the Bellman equation
$V^\pi(s) = \sum_a \pi(a \mid s) \sum_{s'} P(s' \mid s, a)\,[R + \gamma V^\pi(s')]$,
which we can iterate directly on FrozenLake's table. Here is $V^\pi$ of the uniformly random
policy ($\gamma = 0.99$): only the tiles near the goal are worth anything, because a random
walker mostly falls into a hole first.
*)

let randomPolicyValue (env: FrozenLake.Env) (gamma: float) (sweeps: int) =
    let p = env.P
    let mutable v = Array.zeroCreate<float> p.Length

    for _ in 1..sweeps do
        v <-
            Array.init p.Length (fun s ->
                [ 0..3 ]
                |> List.averageBy (fun a ->
                    p[s][a]
                    |> Array.sumBy (fun t -> t.Prob * (t.Reward + gamma * (if t.Terminated then 0.0 else v[t.NextState])))))

    v

let vRandom = randomPolicyValue lake 0.99 (if quick then 50 else 1000)

let valueChart =
    let grid = Array.init lake.NRow (fun r -> Array.init lake.NCol (fun c -> vRandom[r * lake.NCol + c]))

    Chart.Heatmap(zData = grid, ReverseYAxis = true, ShowScale = true)
    |> Chart.withTitle "FrozenLake 4x4 (slippery): value of the random policy, gamma 0.99 (row 0 at the top)"
    |> Chart.withSize (520, 480)

valueChart |> GenericChart.toChartHTML
(*** include-it-raw ***)

(**
## 1.4 A random agent on every environment

The simplest agent ignores the observation and samples an action uniformly from the action
space. Its returns are the baseline every learner must beat. The histograms show the return of
each episode (the seed differs per episode).
*)

let randomPolicy (space: Space) (rng: Random) =
    fun (_: float32[]) ->
        match space with
        | Space.Discrete(n, start) -> Action.Discrete(start + rng.Next n)
        | Space.Box _ -> Action.Continuous(space.Sample rng)

let randomReturns =
    [ for id in Envs.ids ->
          let env = Envs.make id :?> ClassicEnv
          let rng = Random 0

          let returns =
              Array.init episodesPerEnv (fun ep ->
                  let rewards, _ = playEpisode env (randomPolicy env.ActionSpace rng) (int64 ep)
                  Array.sum rewards)

          id, returns ]

for id, returns in randomReturns do
    printfn "%-26s random agent: mean return %9.2f  (min %9.2f, max %9.2f, %d episodes)" id (Array.average returns) (Array.min returns) (Array.max returns) returns.Length

let histograms =
    randomReturns
    |> List.map (fun (id, returns) ->
        Chart.Histogram(X = returns, Name = id, ShowLegend = true)
        |> Chart.withXAxisStyle "return"
        |> Chart.withYAxisStyle "episodes")
    |> Chart.Grid(2, 3)
    |> Chart.withTitle "Returns of a uniformly random agent"
    |> Chart.withSize (1100, 650)

histograms |> GenericChart.toChartHTML
(*** include-it-raw ***)

(**
What the random agent tells us:

* **CartPole** pays +1 per step, so the return is the episode length; random pushing keeps the
  pole up for only about 20 steps (the limit is 500).
* **Pendulum** pays the negative of the cost of angle, speed and torque: random torques leave the
  pendulum hanging down, about −1200 per episode (good control reaches about −200).
* **MountainCar** pays −1 per step until the flag; a random car almost never gets there in 200
  steps, so the return is −200 nearly always: the reward gives no gradient until the goal is
  found by exploration.
* **MountainCarContinuous** charges 0.1 a² per step; random forces cost about −30 and rarely
  earn the +100 of the flag.
* **Acrobot** pays −1 per step until the tip swings above the line; random torques sometimes
  manage it within the 500 steps.
* **FrozenLake** pays 1 for reaching the goal and 0 otherwise: a random walker succeeds in about
  1.5% of the episodes.

## 1.5 One episode, seen from the inside

The observation is what the agent sees; the state is what the environment integrates. Here is
the state over one random episode of each environment: the pendulum's angle (normalised to
[−π, π), 0 is upright), the cart's position and the pole's angle, the car's position with the
goal line, the acrobot's two joint angles, and FrozenLake's tile index.
*)

let episodeOf id seed =
    let env = Envs.make id :?> ClassicEnv
    let _, states = playEpisode env (randomPolicy env.ActionSpace (Random 1)) seed
    states

let line (name: string) (ys: float[]) =
    Chart.Line(x = [ 0 .. ys.Length - 1 ], y = ys, Name = name, ShowLegend = true)

let statePanels =
    let pendulum = episodeOf Pendulum.Id 3L
    let cart = episodeOf CartPole.Id 3L
    let car = episodeOf MountainCar.Id 3L
    let carC = episodeOf MountainCarContinuous.Id 3L
    let acrobot = episodeOf Acrobot.Id 3L
    let frozen = episodeOf FrozenLake.Id 3L
    let col j (xs: float[][]) = xs |> Array.map (fun s -> s[j])

    [ line "pendulum angle (rad)" (pendulum |> Array.map (fun s -> Pendulum.angleNormalize s[0]))
      Chart.combine [ line "cart position (m)" (col 0 cart); line "pole angle (rad)" (col 2 cart) ]
      Chart.combine
          [ line "car position" (col 0 car)
            line "goal" (Array.create car.Length MountainCar.goalPosition) ]
      Chart.combine
          [ line "car position (continuous)" (col 0 carC)
            line "goal (continuous)" (Array.create carC.Length MountainCarContinuous.goalPosition) ]
      Chart.combine [ line "theta1 (rad)" (col 0 acrobot); line "theta2 (rad)" (col 1 acrobot) ]
      line "FrozenLake tile" (col 0 frozen) ]
    |> Chart.Grid(3, 2)
    |> Chart.withTitle "The state over one random episode (x axis: step)"
    |> Chart.withSize (1100, 900)

statePanels |> GenericChart.toChartHTML
(*** include-it-raw ***)

(**
## 1.6 Exploration versus exploitation

A learning agent faces a dilemma at every step. **Exploitation** picks the best action
according to what it knows now (the favourite restaurant, reliably 90 points). **Exploration**
deliberately tries something unknown to gather information (a new restaurant: 10 points or
100). A good agent balances the two. The most common recipe is **ε-greedy**: with probability
1 − ε (say 90%) exploit, with probability ε (10%) act at random. The random agent above is the
ε = 1 extreme; MountainCar shows why pure exploitation of an uninformed estimate never finds
the goal, and why the next module's Q-learning needs exploration to get started.
*)

(**
# Part 2 — Tabular Q-learning

Part 1 evaluated a *given* policy. Now the agent has to find a good policy by itself, from
experience alone: it does not get to read `P`. This is the second module of the learning path:
the Q-function, temporal-difference (TD) learning, and Q-learning on FrozenLake.

## 2.1 The Q-function

$V^\pi(s)$ says how good a *state* is. To choose between actions we need more: the
**action-value function** $Q^\pi(s, a)$, the expected return from taking action $a$ in state
$s$ and following $\pi$ afterwards. The two are related by $V^\pi(s) = \sum_a \pi(a \mid s)\,Q^\pi(s, a)$.
The optimal action values $Q^*(s, a) = \max_\pi Q^\pi(s, a)$ satisfy the Bellman optimality
equation

$$Q^*(s, a) = \sum_{s'} P(s' \mid s, a)\,\big[R + \gamma \max_{a'} Q^*(s', a')\big],$$

and once we have $Q^*$ the optimal policy is simply greedy: $\pi^*(s) = \arg\max_a Q^*(s, a)$.
With 16 states and 4 actions, FrozenLake's Q-function is a **Q-table** of 64 numbers.

When the model $P$ is known we can solve the equation by **value iteration** (repeat the
right-hand side as an assignment until nothing changes): `QLearning.valueIteration`. This is
the yardstick for everything learned below. `QLearning.successProbability` computes exactly
(by propagating the state distribution, no sampling) the probability that a policy reaches the
goal within FrozenLake's 100-step limit.
*)

let gamma = 0.99

let optimum (slippery: bool) =
    let env = FrozenLake.Env(isSlippery = slippery)
    let qStar = QLearning.valueIteration gamma 1e-10 env.P
    let success =
        QLearning.successProbability env.P (FrozenLake.initialDistribution env.Desc) env.MaxEpisodeSteps (QLearning.greedyPolicy qStar)
    qStar, success

let qStarDet, optimumDet = optimum false
let qStarSlip, optimumSlip = optimum true

let optimumSummary =
    $"value iteration's greedy policy reaches the goal with probability {optimumDet:F4} (deterministic) and {optimumSlip:F4} (slippery)"

(*** include-value: optimumSummary ***)

(*** hide ***)
printfn "%s" optimumSummary

(**
On the deterministic lake the optimal policy always succeeds. On the slippery lake no policy
can do better than about 74%: every move goes sideways two times out of three, and some tiles
next to holes cannot be crossed safely at all.

## 2.2 Temporal-difference learning

Without the model we cannot take the expectation over $s'$. **TD learning** replaces it with
the one sample the environment just gave us. After a transition $(S, A, R, S')$:

* the **TD target** $R + \gamma \max_{a'} Q(S', a')$ is a one-step estimate of the return,
  itself built on the current estimate — it *bootstraps* —; a terminal $S'$ has no future, so
  the target is just $R$;
* the **TD error** $\delta = \text{target} - Q(S, A)$ says how surprised we were;
* the **update** $Q(S, A) \leftarrow Q(S, A) + \alpha\,\delta$ moves the estimate a fraction
  $\alpha$ (the learning rate) towards the target.

Unlike a Monte-Carlo estimate, TD learns after every step, without waiting for the episode to
end, at the price of a bias from bootstrapping on its own guesses. Because the target uses
$\max_{a'}$ (the greedy action) regardless of which action the agent will actually take next,
Q-learning is **off-policy**: it learns about the greedy policy while behaving exploratorily.

One update by hand: the agent is on tile 14, moves right onto the goal (reward 1, terminal),
with $Q(14, \text{right}) = 0.5$ and $\alpha = 0.1$:
*)

let handTarget = QLearning.tdTarget gamma 1.0 true [| 0.0; 0.0; 0.0; 0.0 |]
let handError = QLearning.tdError handTarget 0.5
let handUpdated = QLearning.updated 0.1 0.5 handError
let handStep = $"target {handTarget}, TD error {handError}, new Q(14, right) = {handUpdated}"

(*** include-value: handStep ***)

(*** hide ***)
printfn "%s" handStep

(**
## 2.3 Q-learning on the deterministic lake

`QLearning.train` runs the whole loop: reset, act ε-greedily, `learn` from every transition,
decay ε once per episode ($\varepsilon_k = \max(0.01,\ 0.995^k)$ here). Every few episodes it
records the fraction of *training* episodes that reached the goal (with exploration) and the
exact success probability of the current *greedy* policy.
*)

let detCfg =
    if quick then
        { QLearning.deterministicDefaults with Episodes = 300; EvalEvery = 20 }
    else
        QLearning.deterministicDefaults

let det = QLearning.train detCfg

/// The success curves of a Q-learning run, with the value-iteration optimum as a flat line.
let successChart (title: string) (result: QLearning.QLearningResult) (best: float) =
    let xs = result.Curve |> List.map (fun p -> float p.Episode) |> Array.ofList
    let ys f = result.Curve |> List.map f |> Array.ofList

    Charts.lines
        title
        "episode"
        "success rate"
        [ "training episodes (with exploration)", xs, ys (fun p -> p.TrainSuccess)
          "greedy policy (exact)", xs, ys (fun p -> p.GreedySuccess)
          "epsilon", xs, ys (fun p -> p.Epsilon)
          "value-iteration optimum", xs, Array.create xs.Length best ]

successChart "Q-learning on the deterministic 4x4 lake" det optimumDet |> Charts.toHtml
(*** include-it-raw ***)

(**
Early on ε is near 1 and the agent wanders at random; the goal reward has to be found by chance
before anything can be learned (every Q-value starts at 0). Once it is found, the value
propagates backwards one tile per visit, the greedy policy starts succeeding, and as ε decays the
training success rate follows it.

### The Q-table

The heatmap shows $\max_a Q(s, a)$ on every tile and the arrow of the greedy action
(S start, H hole, G goal; holes and the goal are terminal and keep Q = 0):
*)

let arrowOf a =
    match a with
    | 0 -> "←"
    | 1 -> "↓"
    | 2 -> "→"
    | _ -> "↑"

/// Heatmap of max_a Q(s, a) over the lake with the greedy action of every tile as text.
let qTableChart (title: string) (desc: string[]) (q: float[,]) =
    let nRow, nCol = desc.Length, desc[0].Length
    let s r c = r * nCol + c
    let z = Array.init nRow (fun r -> Array.init nCol (fun c -> Array.init 4 (fun a -> q[s r c, a]) |> Array.max))

    let labels =
        [| for r in 0 .. nRow - 1 do
               for c in 0 .. nCol - 1 ->
                   match desc[r][c] with
                   | 'H' -> "H"
                   | 'G' -> "G"
                   | tile -> (if tile = 'S' then "S " else "") + arrowOf (QLearning.greedy q (s r c)) |]

    let xs = [| for _ in 0 .. nRow - 1 do for c in 0 .. nCol - 1 -> c |]
    let ys = [| for r in 0 .. nRow - 1 do for _ in 0 .. nCol - 1 -> r |]

    let annotations =
        Array.map3
            (fun (x: int) (y: int) (text: string) ->
                LayoutObjects.Annotation.init (
                    X = x,
                    Y = y,
                    Text = text,
                    ShowArrow = false,
                    BGColor = Color.fromString "rgba(0, 0, 0, 0.35)",
                    Font = Font.init (Size = 22, Color = Color.fromString "white")
                ))
            xs
            ys
            labels

    Chart.Heatmap(zData = z, ColorScale = StyleParam.Colorscale.Viridis, ColorBar = ColorBar.init (Title = Title.init "max_a Q"))
    |> Chart.withAnnotations annotations
    |> Chart.withTitle title
    |> Chart.withYAxis (LayoutObjects.LinearAxis.init (AutoRange = StyleParam.AutoRange.Reversed, Title = Title.init "row"))
    |> Chart.withXAxisStyle "column"
    |> Chart.withSize (560, 500)

qTableChart "Deterministic lake: learned Q-table and greedy actions" FrozenLake.maps["4x4"] det.Q
|> Charts.toHtml
(*** include-it-raw ***)

(**
### Watch it

An episode before learning (uniformly random actions) and after (the greedy action of the learned
table: its path from S to G), drawn with Gymnasium's FrozenLake renderer (`Envs.frame`) at its
4 frames per second. `Envs.render` with `render_mode = "ansi"` gives Gymnasium's text form
instead; the last frame of the greedy episode is printed below as text.
*)

let deterministicLake () =
    Envs.makeWith FrozenLake.Id [ "is_slippery", box false ]

let greedyAct (obs: float32[]) =
    Action.Discrete(QLearning.greedy det.Q (int obs[0]))

Video.sideBySide
    (Video.episodeHtml (deterministicLake ()) (Some 0L) (Video.randomAct (Space.Discrete(4, 0)) (Random 1)) "before learning (random actions)")
    (Video.episodeHtml (deterministicLake ()) (Some 0L) greedyAct "after learning (greedy)")
(*** include-it-raw ***)

let greedyText =
    let env = Envs.makeWith FrozenLake.Id [ "is_slippery", box false; "render_mode", box "ansi" ]
    let mutable obs = env.Reset(Some 0L)
    let mutable finished = false

    while not finished do
        let r = env.Step(greedyAct obs)
        obs <- r.Obs
        finished <- r.Terminated || r.Truncated

    match Envs.render env with
    | Envs.Rendered.Ansi text -> text.Replace("\u001b[41m", "[").Replace("\u001b[0m", "]")
    | Envs.Rendered.Rgb _ -> ""

(*** include-value: greedyText ***)

(**
On the deterministic lake $Q^*(s, a) = \gamma^{d-1}$ where $d$ is the number of steps to the
goal, so the values fall by a factor 0.99 per tile away from it. Q-learning only needs the
greedy *ranking* to be right on the tiles it visits, and it finds a shortest path.

## 2.4 The slippery lake

On the slippery lake the same action leads to three different tiles, so every TD target is a
noisy sample. The defaults use a smaller step size ($\alpha = 0.05$), ten times more episodes
and a slower ε decay ($0.9995^k$).
*)

let slipCfg =
    if quick then
        { QLearning.slipperyDefaults with Episodes = 1500; EvalEvery = 100 }
    else
        QLearning.slipperyDefaults

let slip = QLearning.train slipCfg

successChart "Q-learning on the slippery 4x4 lake" slip optimumSlip |> Charts.toHtml
(*** include-it-raw ***)

let slipFinal = (List.last slip.Curve).GreedySuccess

let slipSummary =
    $"after {slipCfg.Episodes} episodes the greedy policy succeeds with probability {slipFinal:F4}; the optimum is {optimumSlip:F4}"

(*** include-value: slipSummary ***)

(*** hide ***)
printfn "%s" slipSummary

(** The learned table beside value iteration's $Q^*$: *)

qTableChart "Slippery lake: Q-learning" FrozenLake.maps["4x4"] slip.Q |> Charts.toHtml
(*** include-it-raw ***)

qTableChart "Slippery lake: value iteration (Q*)" FrozenLake.maps["4x4"] qStarSlip |> Charts.toHtml
(*** include-it-raw ***)

(**
The optimal slippery policy looks strange at first: on the start tile and the tile below it
it pushes *left*, into the wall. Since a move goes sideways two times out of three, pushing against the wall means the
agent either stays put or slides down/up along the column, and never into the hole beside it.
Q-learning's values are lower than $Q^*$ on tiles it rarely visits (they have seen few updates),
but the greedy actions on the frequently visited tiles agree.

## 2.5 Exploration versus exploitation

How much should the agent explore? Here ε is held *fixed* during training (no decay) and we
measure, over a few seeds, the exact success probability of the final greedy policy and the
success rate of the training episodes themselves (what the agent earns while learning).
*)

let epsilons = [| 0.0; 0.01; 0.05; 0.1; 0.2; 0.4; 0.7; 1.0 |]
let sweepSeeds = if quick then [ 0L ] else [ 0L .. 4L ]
let sweepEpisodes = if quick then 300 else 5000

let sweep =
    epsilons
    |> Array.map (fun eps ->
        let runs =
            sweepSeeds
            |> List.map (fun seed ->
                let r =
                    QLearning.train
                        { QLearning.slipperyDefaults with
                            Episodes = sweepEpisodes
                            EvalEvery = sweepEpisodes
                            EpsilonStart = eps
                            EpsilonEnd = eps
                            EpsilonDecay = 1.0
                            Seed = seed }

                let p = List.last r.Curve
                p.GreedySuccess, p.TrainSuccess)

        List.averageBy fst runs, List.averageBy snd runs)

Charts.lines
    $"Fixed epsilon on the slippery lake ({sweepEpisodes} episodes, mean of {sweepSeeds.Length} seed(s))"
    "epsilon"
    "success rate"
    [ "greedy policy after training (exact)", epsilons, Array.map fst sweep
      "training episodes (with exploration)", epsilons, Array.map snd sweep
      "value-iteration optimum", epsilons, Array.create epsilons.Length optimumSlip ]
|> Charts.toHtml
(*** include-it-raw ***)

(*** hide ***)
Array.iter2 (fun e (g, t) -> printfn "epsilon %.2f: greedy %.4f, training %.4f" e g t) epsilons sweep

(**
The two curves pull in opposite directions. More exploration visits more state–action pairs,
so the *learned* greedy policy gets better; but every random action costs reward *now*, so the
agent's success while training falls towards the random walker's 1.5% as ε → 1. With ε = 0
the agent still moves at random while a row of Q is all zeros (ties are broken randomly), but
once one action looks good it keeps taking it and may never discover a better one. In the full-mode sweep
(5000 episodes, 5 seeds), ε = 0 ended with a greedy policy that succeeds only 7% of the time;
every ε from 0.05 up reached 0.68–0.74 (the optimum is 0.74), while the success of the training
episodes peaked near ε = 0.1 (24%) and fell to 1.4% at ε = 1. A decaying ε,
as in 2.3 and 2.4, gets the best of both: explore while the table is empty, exploit once it is
filled in.

## Summary

* $Q(s, a)$ ranks actions; acting greedily on $Q^*$ is optimal.
* TD learning updates an estimate towards a bootstrapped one-step target; Q-learning's target
  uses $\max_{a'}$, which makes it off-policy.
* A table only works when states can be enumerated. CartPole's state is four real numbers:
  notebook 02 replaces the table with a neural network (DQN).
*)
