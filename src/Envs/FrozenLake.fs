/// FrozenLake-v1: walk from S to G on a grid of frozen tiles (F) without falling into a hole (H),
/// possibly slipping sideways. Follows `gymnasium/envs/toy_text/frozen_lake.py` (Gymnasium 1.4.0,
/// commit 3f0476a8) with the registered `TimeLimit` of 100 steps.
///
/// State: the tile index `s = row * ncol + col`; in `IEnv` the observation is `[| float32 s |]`
/// (the env also has a typed int API: `ResetIndex`, `StepIndex`). Actions Discrete(4): 0 LEFT,
/// 1 DOWN, 2 RIGHT, 3 UP. Reward 1 on entering G, else 0; H and G are absorbing and terminal.
/// Slippery (the default): the intended direction with probability `success_rate` (1/3) and each
/// perpendicular direction with `(1 - success_rate) / 2`. The transition table `P[s][a]` is
/// exposed as data (`transitions`, `Env.P`) for dynamic programming.
module Rl.FrozenLake

open System
open TorchSharp
open Rl

/// Registered id.
[<Literal>]
let Id = "FrozenLake-v1"

/// TimeLimit length of FrozenLake-v1.
let maxEpisodeSteps = 100

/// Actions (`frozen_lake.py:15-18`).
let LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3

/// The named maps (`frozen_lake.py:20-32`).
let maps =
    Map
        [
            "4x4", [| "SFFF"; "FHFH"; "FFFH"; "HFFG" |]
            "8x8",
            [|
                "SFFFFFFF"
                "FFFFFFFF"
                "FFFHFFFF"
                "FFFFFHFF"
                "FFFHFFFF"
                "FHHFFFHF"
                "FHFFHFHF"
                "FFFHFFFG"
            |]
        ]

/// Default probability of moving in the intended direction when slippery.
let defaultSuccessRate = 1.0 / 3.0

/// One entry of `P[s][a]`: Gymnasium's tuple `(prob, next_state, reward, terminated)`.
type Transition =
    {
        Prob: float
        NextState: int
        Reward: float
        Terminated: bool
    }

/// Checks a map: non-empty, rectangular, only the letters S, F, H, G, at least one S. Raises
/// `ArgumentException` saying what is wrong.
let validateMap (desc: string[]) =
    if isNull desc || desc.Length = 0 || desc[0].Length = 0 then
        invalidArg "desc" $"{Id}: the map must have at least one non-empty row"

    let ncol = desc[0].Length

    desc
    |> Array.iteri (fun r row ->
        if isNull row || row.Length <> ncol then
            invalidArg
                "desc"
                $"{Id}: map row {r} '{row}' has length {row.Length}, expected {ncol} (rows must be equal)"

        row
        |> String.iteri (fun c ch ->
            if not ("SFHG".Contains ch) then
                invalidArg "desc" $"{Id}: map tile '{ch}' at row {r}, column {c}; allowed tiles are S, F, H, G"))

    if desc |> Array.forall (fun row -> not (row.Contains 'S')) then
        invalidArg "desc" $"{Id}: the map has no start tile S"

/// The transition table `P[s][a]` of a map, in Gymnasium's order (`frozen_lake.py:263-302`):
/// H and G tiles are absorbing `[(1.0, s, 0, true)]`; otherwise, when slippery, the entries for
/// directions `(a-1)%4, a, (a+1)%4` with probabilities `fail, success, fail` where
/// `fail = (1 - successRate) / 2` (entries are not merged); when not slippery one entry with
/// probability 1. Moving into a wall keeps the position; the reward is 1 on entering G.
/// Raises `ArgumentException` for an invalid map.
let transitions (desc: string[]) (isSlippery: bool) (successRate: float) : Transition[][][] =
    validateMap desc
    let nrow, ncol = desc.Length, desc[0].Length
    let failRate = (1.0 - successRate) / 2.0

    let inc row col a =
        if a = LEFT then row, max (col - 1) 0
        elif a = DOWN then min (row + 1) (nrow - 1), col
        elif a = RIGHT then row, min (col + 1) (ncol - 1)
        else max (row - 1) 0, col

    let update row col a =
        let r, c = inc row col a
        let letter = desc[r][c]
        r * ncol + c, (if letter = 'G' then 1.0 else 0.0), (letter = 'G' || letter = 'H')

    [|
        for row in 0 .. nrow - 1 do
            for col in 0 .. ncol - 1 do
                let s = row * ncol + col

                yield
                    [|
                        for a in 0..3 ->
                            let letter = desc[row][col]

                            if letter = 'G' || letter = 'H' then
                                [|
                                    {
                                        Prob = 1.0
                                        NextState = s
                                        Reward = 0.0
                                        Terminated = true
                                    }
                                |]
                            elif isSlippery then
                                [|
                                    for b in [ (a + 3) % 4; a; (a + 1) % 4 ] ->
                                        let ns, r, t = update row col b

                                        {
                                            Prob = (if b = a then successRate else failRate)
                                            NextState = ns
                                            Reward = r
                                            Terminated = t
                                        }
                                |]
                            else
                                let ns, r, t = update row col a

                                [|
                                    {
                                        Prob = 1.0
                                        NextState = ns
                                        Reward = r
                                        Terminated = t
                                    }
                                |]
                    |]
    |]

/// `categorical_sample` (`gymnasium/envs/toy_text/utils.py:4-8`): `argmax(cumsum(probs) > u)`,
/// the first index whose cumulative probability exceeds `u` (0 if none does, as numpy's argmax of
/// all-false).
let categoricalSample (probs: float[]) (u: float) =
    let mutable c = 0.0
    let mutable found = -1
    let mutable i = 0

    while found < 0 && i < probs.Length do
        c <- c + probs[i]

        if c > u then
            found <- i

        i <- i + 1

    max found 0

/// The initial-state distribution: uniform over the S tiles (`frozen_lake.py:258-259`).
let initialDistribution (desc: string[]) =
    let flat = String.Join("", desc)
    let isStart = flat |> Seq.map (fun c -> if c = 'S' then 1.0 else 0.0) |> Seq.toArray
    let total = Array.sum isStart
    isStart |> Array.map (fun x -> x / total)

let private resolveMap (desc: string[] option) (mapName: string option) =
    match desc with
    | Some d -> d
    | None ->
        let name = defaultArg mapName "4x4"

        match maps.TryFind name with
        | Some d -> d
        | None -> invalidArg "map_name" $"{Id}: unknown map_name '{name}'; valid names are 4x4, 8x8 (or give desc)"

let private numStates (desc: string[]) =
    validateMap desc
    desc.Length * desc[0].Length

/// The typed result of `Env.StepIndex`.
type IndexStep =
    {
        State: int
        Reward: float
        Terminated: bool
        Truncated: bool
        /// `info["prob"]`: the probability of the transition taken.
        Prob: float
    }

/// The single form. `desc` is a custom map (rows of S/F/H/G), else `mapName` ("4x4" default or
/// "8x8"); `isSlippery` defaults to true. Every `Reset` and every step consumes one uniform draw
/// in [0, 1), as Gymnasium's `np_random.random()`: from `uniformSource` / `UniformSource` when
/// given (to replay recorded draws), else from the env's generator (seeded by `Reset`).
type Env
    (
        ?desc: string[],
        ?mapName: string,
        ?isSlippery: bool,
        ?successRate: float,
        ?maxSteps: int,
        ?uniformSource: unit -> float
    ) =
    inherit
        ClassicEnv(
            Id,
            Space.Discrete(numStates (resolveMap desc mapName), 0),
            Space.Discrete(4, 0),
            defaultArg maxSteps maxEpisodeSteps
        )

    let desc = resolveMap desc mapName
    let isSlippery = defaultArg isSlippery true
    let successRate = defaultArg successRate defaultSuccessRate
    let p = transitions desc isSlippery successRate
    let nS = p.Length

    let initial = initialDistribution desc
    let mutable s = 0
    let mutable lastProb = 1.0
    let mutable lastIndex = 0
    let mutable lastAction: int option = None
    let mutable uniformSource: (unit -> float) option = uniformSource

    /// The map.
    member _.Desc = Array.copy desc
    member _.NRow = desc.Length
    member _.NCol = desc[0].Length
    member _.IsSlippery = isSlippery
    /// The transition table `P[s][a]` (see `transitions`).
    member _.P = p

    /// The current tile index (settable to re-synchronise; raises `ArgumentException` out of range).
    member _.S
        with get () = s
        and set v =
            if v < 0 || v >= nS then
                invalidArg "S" $"{Id}: state {v} is outside 0..{nS - 1}"

            s <- v

    /// Where the uniform draws come from; `None` (the default) uses the env's generator.
    member _.UniformSource
        with get () = uniformSource
        and set v = uniformSource <- v

    /// `info["prob"]` of the last step (1 after reset).
    member _.LastProb = lastProb
    /// Index in `P[s][a]` of the entry taken by the last step.
    member _.LastTransitionIndex = lastIndex

    /// The last step's action (0 left, 1 down, 2 right, 3 up), None after `Reset` (Gymnasium's
    /// `lastaction`; settable to draw a given state). Not part of the snapshot.
    member _.LastAction
        with get () = lastAction
        and set (v: int option) =
            match v with
            | Some a when a < 0 || a > 3 -> invalidArg "LastAction" $"{Id}: action {a} is outside 0..3"
            | _ -> lastAction <- v

    /// `Render.frozenLake` of the map, the tile and the last action.
    override _.Draw() = Render.frozenLake desc s lastAction

    /// Gymnasium's `render_mode="ansi"` text (`Render.frozenLakeAnsi`). Raises
    /// `InvalidOperationException` before the first `Reset`.
    member this.RenderAnsi() : string =
        if not this.EpisodeStarted then
            invalidOp $"{Id}: RenderAnsi was called before Reset; call Reset first (there is no state to draw)"

        Render.frozenLakeAnsi desc s lastAction

    member private this.Uniform() =
        match uniformSource with
        | Some f -> f ()
        | None -> this.Rng.NextDouble()

    override this.State
        with get () = [| float s |]
        and set v =
            if Array.length v <> 1 then
                invalidArg "State" $"{Id}: the state is [s], got {Array.length v} values"

            this.S <- int v[0]

    /// `s = categorical_sample(initial_state_distrib)` (`frozen_lake.py:343`): one draw.
    override this.ResetState _ =
        s <- categoricalSample initial (this.Uniform())
        lastProb <- 1.0
        lastAction <- None

    override _.Observe() = [| float32 s |]

    /// `frozen_lake.py:325-334`: one draw picks the entry of `P[s][a]`.
    override this.Advance action =
        match action with
        | Action.Discrete a ->
            let entries = p[s][a]
            let i = categoricalSample (entries |> Array.map (fun t -> t.Prob)) (this.Uniform())
            lastAction <- Some a
            let t = entries[i]
            s <- t.NextState
            lastProb <- t.Prob
            lastIndex <- i
            t.Reward, t.Terminated
        | Action.Continuous _ -> invalidOp "unreachable: checked by CheckAction"

    /// `Reset` with the tile index as an int.
    member this.ResetIndex(seed: int64 option) : int =
        this.Reset seed |> ignore
        s

    /// `Step` with the action and the next tile as ints (same errors as `Step`).
    member this.StepIndex(action: int) : IndexStep =
        let r = this.Step(Action.Discrete action)

        {
            State = s
            Reward = r.Reward
            Terminated = r.Terminated
            Truncated = r.Truncated
            Prob = lastProb
        }

/// The batched form: state [N; 1] int64 tile indices on `device`; actions [N] int64 in 0..3;
/// observations [N; 1] float32. The transition table is held as tensors [S*4; K] (K = 3 when
/// slippery, else 1) of cumulative probabilities, next states, rewards and terminal flags; each
/// step draws one float64 uniform per copy from the env's generator (or `NextUniforms`).
type BatchedEnv
    (
        numEnvs: int,
        device: torch.Device,
        ?desc: string[],
        ?mapName: string,
        ?isSlippery: bool,
        ?successRate: float,
        ?maxSteps: int
    ) =
    inherit
        BatchedClassicEnv(
            Id,
            numEnvs,
            device,
            torch.int64,
            Space.Discrete(numStates (resolveMap desc mapName), 0),
            Space.Discrete(4, 0),
            defaultArg maxSteps maxEpisodeSteps,
            1
        )

    let desc = resolveMap desc mapName
    let isSlippery = defaultArg isSlippery true
    let p = transitions desc isSlippery (defaultArg successRate defaultSuccessRate)
    let nS = p.Length

    let k = p |> Array.collect id |> Array.map Array.length |> Array.max

    let table (f: Transition -> float) (pad: float) (dtype: torch.ScalarType) =
        let rows =
            [|
                for s in 0 .. nS - 1 do
                    for a in 0..3 ->
                        let e = p[s][a]
                        Array.init k (fun i -> if i < e.Length then f e[i] else pad)
            |]

        torch
            .tensor(Array2D.init rows.Length k (fun i j -> rows[i][j]), dtype = dtype, device = device)
            .DetachFromDisposeScope()

    let cumulative =
        let rows =
            [|
                for s in 0 .. nS - 1 do
                    for a in 0..3 ->
                        let e = p[s][a]
                        let c = Array.scan (+) 0.0 (e |> Array.map (fun t -> t.Prob)) |> Array.tail
                        Array.init k (fun i -> if i < c.Length then c[i] else Double.PositiveInfinity)
            |]

        torch
            .tensor(Array2D.init rows.Length k (fun i j -> rows[i][j]), dtype = torch.float64, device = device)
            .DetachFromDisposeScope()

    let counts =
        torch
            .tensor(p |> Array.collect (Array.map (fun e -> int64 e.Length)), dtype = torch.int64, device = device)
            .DetachFromDisposeScope()

    let nextStates = table (fun t -> float t.NextState) 0.0 torch.int64
    let rewards = table (fun t -> t.Reward) 0.0 torch.float64

    let terminals =
        table (fun t -> if t.Terminated then 1.0 else 0.0) 0.0 torch.ScalarType.Bool

    let initial = initialDistribution desc

    let initialCum =
        torch
            .tensor(Array.scan (+) 0.0 initial |> Array.tail, dtype = torch.float64, device = device)
            .DetachFromDisposeScope()

    let mutable nextUniforms: torch.Tensor option = None

    /// The transition table `P[s][a]`.
    member _.P = p

    /// Uniform draws [N] float64 to use for the next step instead of the generator (consumed by
    /// that step); for replaying recorded draws.
    member _.NextUniforms
        with get () = nextUniforms
        and set v = nextUniforms <- v

    override _.InitialStates(count, generator) =
        use scope = torch.NewDisposeScope()

        let u =
            torch.rand ([| count |], dtype = torch.float64, device = device, generator = generator)
        // categorical_sample over the S tiles: the number of cumulative sums <= u (0 if all are)
        let idx = initialCum.unsqueeze(0).le(u.unsqueeze 1).sum(1L)

        let idx =
            idx.masked_fill (idx.ge ((int64 initial.Length).ToScalar()), 0L.ToScalar())

        idx.unsqueeze(1).MoveToOuterDisposeScope()

    override _.Observe state = state.``to`` torch.float32

    override this.Dynamics(state, action) =
        let row = state.select (1, 0L) * 4L + action

        let u =
            match nextUniforms with
            | Some u ->
                nextUniforms <- None
                u.``to`` (torch.float64, device)
            | None ->
                torch.rand ([| state.shape[0] |], dtype = torch.float64, device = device, generator = this.Generator)

        // argmax(cumsum > u): the number of entries with cumsum <= u; 0 when none exceeds u
        let i = cumulative.index_select(0, row).le(u.unsqueeze 1).sum(1L)
        let i = i.masked_fill (i.ge (counts.index_select (0, row)), 0L.ToScalar())
        let flat = row * int64 k + i
        let ns = nextStates.flatten().index_select(0, flat)
        let r = rewards.flatten().index_select(0, flat)
        let t = terminals.flatten().index_select(0, flat)
        ns.unsqueeze 1, r, t
