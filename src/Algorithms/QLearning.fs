/// Tabular Q-learning (Watkins 1989; Sutton & Barto 2018, sec. 6.5) on FrozenLake-v1 with
/// epsilon-greedy exploration (seed 004 module 2, implementation `1_Q_Learning`), plus the exact
/// tools to judge it: value iteration on the transition table and the exact probability that a
/// policy reaches the goal within the time limit.
///
/// The Q-table is a float[,] of [nStates; nActions] on the host: 16 x 4 numbers need no tensors.
module Rl.QLearning

open System
open Rl

/// Q-learning hyperparameters.
type QLearningConfig =
    {
        /// Training episodes.
        Episodes: int
        /// Learning rate alpha in (0, 1].
        Alpha: float
        /// Discount gamma in [0, 1].
        Gamma: float
        /// Exploration rate at the first episode.
        EpsilonStart: float
        /// Exploration floor.
        EpsilonEnd: float
        /// Multiplicative decay per episode: epsilon_k = max(EpsilonEnd, EpsilonStart * decay^k).
        EpsilonDecay: float
        /// FrozenLake's slippery ice (1/3 chance each of the intended and the two side moves).
        IsSlippery: bool
        /// Map name ("4x4" or "8x8").
        MapName: string
        /// Seed of the environment and of the exploration draws.
        Seed: int64
        /// Record the greedy policy's exact success probability every this many episodes.
        EvalEvery: int
    }

/// Defaults for the deterministic 4x4 map (alpha 0.1 and gamma 0.99 as seed 004 module 2.3
/// gives them as examples).
let deterministicDefaults =
    {
        Episodes = 2000
        Alpha = 0.1
        Gamma = 0.99
        EpsilonStart = 1.0
        EpsilonEnd = 0.01
        EpsilonDecay = 0.995
        IsSlippery = false
        MapName = "4x4"
        Seed = 0L
        EvalEvery = 50
    }

/// Defaults for the slippery 4x4 map: more episodes, a smaller alpha (the TD targets are noisy)
/// and a slower epsilon decay.
let slipperyDefaults =
    { deterministicDefaults with
        Episodes = 20000
        Alpha = 0.05
        EpsilonDecay = 0.9995
        IsSlippery = true
        EvalEvery = 500
    }

/// The TD target of seed 004 module 2.3, R + gamma * max_a' Q(S', a'), with the bootstrap
/// dropped when S' is terminal (`terminated`; a truncated step still bootstraps).
/// `qNext` is the row Q(S', .).
let tdTarget (gamma: float) (reward: float) (terminated: bool) (qNext: float[]) : float =
    reward + (if terminated then 0.0 else gamma * Array.max qNext)

/// The TD error of seed 004 module 2.3: TD target - Q(S, A).
let tdError (target: float) (q: float) : float = target - q

/// The update of seed 004 module 2.3: Q(S, A) + alpha * TD error.
let updated (alpha: float) (q: float) (tdErr: float) : float = q + alpha * tdErr

/// One Q-learning step on transition (s, a, r, s', terminated): updates `q[s, a]` in place
/// with `updated alpha q[s,a] (tdError (tdTarget ...) q[s,a])` and returns the TD error.
let learn
    (alpha: float)
    (gamma: float)
    (q: float[,])
    (s: int)
    (a: int)
    (reward: float)
    (s': int)
    (terminated: bool)
    : float =
    let target =
        tdTarget gamma reward terminated (Array.init (Array2D.length2 q) (fun j -> q[s', j]))

    let err = tdError target q[s, a]
    q[s, a] <- updated alpha q[s, a] err
    err

/// The greedy action argmax_a q[s, a]; ties go to the lowest action index.
let greedy (q: float[,]) (s: int) : int =
    let mutable best = 0

    for a in 1 .. Array2D.length2 q - 1 do
        if q[s, a] > q[s, best] then
            best <- a

    best

/// The greedy action with ties broken uniformly at random (so an all-zero row explores).
let greedyRandomTies (rng: Random) (q: float[,]) (s: int) : int =
    let row = Array.init (Array2D.length2 q) (fun a -> q[s, a])
    let m = Array.max row

    let best =
        [|
            for a in 0 .. row.Length - 1 do
                if row[a] = m then
                    a
        |]

    best[rng.Next best.Length]

/// Epsilon-greedy (seed 004 module 1.4): with probability epsilon a uniformly random action,
/// otherwise the greedy one (random ties).
let epsilonGreedy (rng: Random) (epsilon: float) (q: float[,]) (s: int) : int =
    if rng.NextDouble() < epsilon then
        rng.Next(Array2D.length2 q)
    else
        greedyRandomTies rng q s

/// The greedy policy of a Q-table: one action per state (ties to the lowest index).
let greedyPolicy (q: float[,]) : int[] =
    Array.init (Array2D.length1 q) (greedy q)

/// Value iteration (Sutton & Barto 2018, sec. 4.4) on a transition table `p[s][a]` (see
/// `FrozenLake.transitions`) until the largest change is below `tol`. Returns Q* as a
/// [nStates; nActions] table. Raises `ArgumentException` for gamma outside [0, 1) or tol <= 0.
let valueIteration (gamma: float) (tol: float) (p: FrozenLake.Transition[][][]) : float[,] =
    if gamma < 0.0 || gamma >= 1.0 then
        invalidArg "gamma" $"valueIteration: gamma must be in [0, 1), got {gamma}"

    if not (tol > 0.0) then
        invalidArg "tol" $"valueIteration: tol must be > 0, got {tol}"

    let nS, nA = p.Length, p[0].Length
    let q = Array2D.zeroCreate nS nA
    let mutable delta = infinity

    while delta >= tol do
        delta <- 0.0
        let v = Array.init nS (fun s -> Array.init nA (fun a -> q[s, a]) |> Array.max)

        for s in 0 .. nS - 1 do
            for a in 0 .. nA - 1 do
                let x =
                    p[s][a]
                    |> Array.sumBy (fun t ->
                        t.Prob * (t.Reward + (if t.Terminated then 0.0 else gamma * v[t.NextState])))

                delta <- max delta (abs (x - q[s, a]))
                q[s, a] <- x

    q

/// The exact probability that `policy` (an action per state) collects a positive reward (reaches
/// the goal) within `horizon` steps from the initial distribution `initial` (see
/// `FrozenLake.initialDistribution`), by propagating the state distribution through `p`
/// (FrozenLake's time limit is 100 steps). Raises `ArgumentException` when the policy's length
/// differs from the number of states.
let successProbability (p: FrozenLake.Transition[][][]) (initial: float[]) (horizon: int) (policy: int[]) : float =
    if policy.Length <> p.Length then
        invalidArg "policy" $"successProbability: policy has {policy.Length} actions, the table {p.Length} states"

    let mutable dist = Array.copy initial
    let mutable success = 0.0

    for _ in 1..horizon do
        let next = Array.zeroCreate p.Length

        for s in 0 .. p.Length - 1 do
            if dist[s] > 0.0 then
                for t in p[s][policy[s]] do
                    let m = dist[s] * t.Prob

                    if t.Reward > 0.0 then
                        success <- success + m
                    elif not t.Terminated then
                        next[t.NextState] <- next[t.NextState] + m

        dist <- next

    success

/// The Monte-Carlo success rate of `policy` over `episodes` episodes of `env` (the first reset
/// seeded with `seed`, the next continuing its stream): the fraction of episodes with a positive
/// return.
let successRate (env: FrozenLake.Env) (policy: int[]) (episodes: int) (seed: int64) : float =
    let mutable wins = 0

    for ep in 0 .. episodes - 1 do
        let mutable s = env.ResetIndex(if ep = 0 then Some seed else None)
        let mutable fin = false

        while not fin do
            let r = env.StepIndex policy[s]
            s <- r.State
            fin <- r.Terminated || r.Truncated

            if r.Reward > 0.0 then
                wins <- wins + 1

    float wins / float episodes

/// One point of a Q-learning learning curve.
type QLearningPoint =
    {
        /// Episodes trained so far.
        Episode: int
        /// Exploration rate at that episode.
        Epsilon: float
        /// Fraction of the training episodes since the previous point that reached the goal
        /// (with exploration).
        TrainSuccess: float
        /// Exact success probability of the greedy policy within the time limit.
        GreedySuccess: float
    }

/// What `train` returns.
type QLearningResult =
    {
        /// The learned table [nStates; nActions].
        Q: float[,]
        /// The curve, one point every `EvalEvery` episodes.
        Curve: QLearningPoint list
        /// The environment (for its map and transition table).
        Env: FrozenLake.Env
    }

/// The FrozenLake environment of a config (time limit 100).
let makeEnv (cfg: QLearningConfig) =
    FrozenLake.Env(mapName = cfg.MapName, isSlippery = cfg.IsSlippery)

/// The config keys of `QLearningConfig` (snake_case), with documentation and allowed values.
let fields: Field<QLearningConfig> list =
    [
        Field.int "episodes" "Training episodes." (Allow.ge 1) (fun c -> c.Episodes) (fun c v ->
            { c with Episodes = v })
        Field.float "alpha" "Learning rate alpha." (Allow.openClosed 0.0 1.0) (fun c -> c.Alpha) (fun c v ->
            { c with Alpha = v })
        Field.float "gamma" "Discount factor." (Allow.between 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
            { c with Gamma = v })
        Field.float
            "epsilon_start"
            "Exploration rate at the first episode."
            (Allow.between 0.0 1.0)
            (fun c -> c.EpsilonStart)
            (fun c v -> { c with EpsilonStart = v })
        Field.float "epsilon_end" "Exploration floor." (Allow.between 0.0 1.0) (fun c -> c.EpsilonEnd) (fun c v ->
            { c with EpsilonEnd = v })
        Field.float
            "epsilon_decay"
            "Multiplicative decay of epsilon per episode."
            (Allow.between 0.0 1.0)
            (fun c -> c.EpsilonDecay)
            (fun c v -> { c with EpsilonDecay = v })
        Field.bool "is_slippery" "FrozenLake's slippery ice." (fun c -> c.IsSlippery) (fun c v ->
            { c with IsSlippery = v })
        Field.choice "map_name" "FrozenLake map." [ "4x4"; "8x8" ] (fun c -> c.MapName) (fun c v ->
            { c with MapName = v })
        Field.int64
            "seed"
            "Seed of the environment and of the exploration draws."
            (Allow.ge 0L)
            (fun c -> c.Seed)
            (fun c v -> { c with Seed = v })
        Field.int
            "eval_every"
            "Record the greedy policy's exact success probability every this many episodes."
            (Allow.ge 1)
            (fun c -> c.EvalEvery)
            (fun c v -> { c with EvalEvery = v })
    ]

/// Cross-field checks of a Q-learning config: none beyond each key's own range.
let validate (_: QLearningConfig) = ()

/// Trains a Q-table from zeros: for each episode, act epsilon-greedily, `learn` from every
/// transition, then decay epsilon. Deterministic for a given config. Raises
/// `ArgumentException` for alpha outside (0, 1], gamma outside [0, 1], epsilons outside [0, 1],
/// or Episodes/EvalEvery below 1.
let train (cfg: QLearningConfig) : QLearningResult =
    if not (cfg.Alpha > 0.0 && cfg.Alpha <= 1.0) then
        invalidArg "Alpha" $"QLearning: alpha must be in (0, 1], got {cfg.Alpha}"

    if cfg.Gamma < 0.0 || cfg.Gamma > 1.0 then
        invalidArg "Gamma" $"QLearning: gamma must be in [0, 1], got {cfg.Gamma}"

    for name, e in
        [
            "EpsilonStart", cfg.EpsilonStart
            "EpsilonEnd", cfg.EpsilonEnd
            "EpsilonDecay", cfg.EpsilonDecay
        ] do
        if e < 0.0 || e > 1.0 then
            invalidArg name $"QLearning: {name} must be in [0, 1], got {e}"

    if cfg.Episodes < 1 || cfg.EvalEvery < 1 then
        invalidArg "Episodes" $"QLearning: Episodes and EvalEvery must be >= 1, got {cfg.Episodes} and {cfg.EvalEvery}"

    let env = makeEnv cfg
    let nS = env.P.Length
    let q = Array2D.zeroCreate nS 4

    let rng =
        Random(int (Seed.derive cfg.Seed "qlearning-explore" % int64 Int32.MaxValue))

    let initial = FrozenLake.initialDistribution env.Desc
    let curve = ResizeArray()
    let mutable wins = 0
    let mutable epsilon = cfg.EpsilonStart

    for ep in 1 .. cfg.Episodes do
        let mutable s = env.ResetIndex(if ep = 1 then Some cfg.Seed else None)
        let mutable fin = false

        while not fin do
            let a = epsilonGreedy rng epsilon q s
            let r = env.StepIndex a
            learn cfg.Alpha cfg.Gamma q s a r.Reward r.State r.Terminated |> ignore
            s <- r.State
            fin <- r.Terminated || r.Truncated

            if r.Reward > 0.0 then
                wins <- wins + 1

        if ep % cfg.EvalEvery = 0 || ep = cfg.Episodes then
            let window = (ep - 1) % cfg.EvalEvery + 1

            curve.Add
                {
                    Episode = ep
                    Epsilon = epsilon
                    TrainSuccess = float wins / float window
                    GreedySuccess = successProbability env.P initial env.MaxEpisodeSteps (greedyPolicy q)
                }

            wins <- 0

        epsilon <- max cfg.EpsilonEnd (epsilon * cfg.EpsilonDecay)

    {
        Q = q
        Curve = List.ofSeq curve
        Env = env
    }
