(**
# 1. Reinforcement-learning foundations

This notebook is the first module of the learning path: the vocabulary of reinforcement
learning (RL), the agent–environment loop, and the Markov decision process (MDP) behind it,
shown on the six environments of `Rl.Envs` (re-implementations of Gymnasium's classic-control
and toy-text environments, checked bit for bit against Gymnasium's own trajectories).

Run it from the repository root with `dotnet fsi notebooks/01-rl-foundations.fsx` (after
building the library). Set `RL_QUICK=1` to run with tiny episode counts in a few seconds.
*)

#load "../scripts/load.fsx"

open System
open Plotly.NET
open Rl

/// Quick mode (RL_QUICK=1) shrinks every episode count.
let quick = Environment.GetEnvironmentVariable "RL_QUICK" = "1"
let episodesPerEnv = if quick then 5 else 200

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

(** ## Part 2 — Tabular Q-learning (to be added) *)
