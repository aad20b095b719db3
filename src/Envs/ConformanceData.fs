/// The Gymnasium reference files (`tests/data/gymnasium/`, format in its README.md) as data: the
/// record types of a file, its trajectories, their steps and FrozenLake's transition tables, and
/// their reading from a parsed JSON document. `Conformance.load` reads a file with its checks and
/// error messages; `Conformance` replays the trajectories.
module Rl.ConformanceData

open System
open System.Text.Json
open Rl

/// One recorded step (README "Step object").
type RefStep =
    {
        T: int
        Action: Action
        Obs: float[]
        Reward: float
        Terminated: bool
        Truncated: bool
        State: float[]
        /// FrozenLake: `info["prob"]`.
        Prob: float option
        /// Slippery FrozenLake: the uniform draw of this step.
        U: float option
        /// Slippery FrozenLake: index of the chosen entry in `P[s][a]`.
        TransitionIndex: int option
    }

/// One recorded trajectory (README "Trajectory object").
type RefTrajectory =
    {
        Id: string
        /// Which list it came from: `trajectories`, `post_done_trajectories` or `slippery_trajectories`.
        List: string
        Description: string
        /// kwargs given to `gymnasium.make` (JSON bools, numbers and strings as .NET values).
        EnvKwargs: (string * obj) list
        ResetSeed: int64
        InitialState: float[]
        InitialObs: float[]
        DoneAtStep: int
        Steps: RefStep[]
    }

/// One entry of FrozenLake's transition table `P[s][a]`.
type RefTransition =
    {
        Prob: float
        NextState: int
        Reward: float
        Terminated: bool
    }

/// A reference file.
type RefFile =
    {
        Path: string
        EnvId: string
        MaxEpisodeSteps: int
        ObservationSpace: Space
        ActionSpace: Space
        /// All trajectories of all lists, in file order.
        Trajectories: RefTrajectory list
        /// FrozenLake: `transition_tables` by name (`slippery`, `deterministic`), `P[s][a][i]`.
        TransitionTables: (string * RefTransition[][][]) list
    }

let private num (e: JsonElement) =
    match e.ValueKind with
    | JsonValueKind.String ->
        match e.GetString() with
        | "Infinity" -> Double.PositiveInfinity
        | "-Infinity" -> Double.NegativeInfinity
        | "NaN" -> Double.NaN
        | s -> invalidOp $"not a number: {s}"
    | _ -> e.GetDouble()

let private nums (e: JsonElement) =
    match e.ValueKind with
    | JsonValueKind.Array -> [| for x in e.EnumerateArray() -> num x |]
    | _ -> [| num e |]

let private opt (name: string) (e: JsonElement) =
    match e.TryGetProperty name with
    | true, v when v.ValueKind <> JsonValueKind.Null -> Some v
    | _ -> None

let private parseSpace (e: JsonElement) =
    match e.GetProperty("type").GetString() with
    | "Discrete" -> Space.Discrete(e.GetProperty("n").GetInt32(), e.GetProperty("start").GetInt32())
    | "Box" ->
        Space.Box(
            nums (e.GetProperty "low"),
            nums (e.GetProperty "high"),
            [| for x in e.GetProperty("shape").EnumerateArray() -> x.GetInt32() |]
        )
    | t -> invalidOp $"unknown space type {t}"

let private jsonValue (e: JsonElement) : obj =
    match e.ValueKind with
    | JsonValueKind.True -> box true
    | JsonValueKind.False -> box false
    | JsonValueKind.String -> box (e.GetString())
    | JsonValueKind.Number ->
        match e.TryGetInt32() with
        | true, i -> box i
        | _ -> box (e.GetDouble())
    | JsonValueKind.Array -> box [| for x in e.EnumerateArray() -> x.GetString() |]
    | k -> invalidOp $"unsupported kwarg value kind {k}"

let private parseStep (e: JsonElement) =
    let a = e.GetProperty "action"

    {
        T = e.GetProperty("t").GetInt32()
        Action =
            (match a.ValueKind with
             | JsonValueKind.Array -> Action.Continuous(nums a)
             | _ -> Action.Discrete(a.GetInt32()))
        Obs = nums (e.GetProperty "obs")
        Reward = num (e.GetProperty "reward")
        Terminated = e.GetProperty("terminated").GetBoolean()
        Truncated = e.GetProperty("truncated").GetBoolean()
        State = nums (e.GetProperty "state")
        Prob = opt "prob" e |> Option.map num
        U = opt "u" e |> Option.map num
        TransitionIndex = opt "transition_index" e |> Option.map (fun v -> v.GetInt32())
    }

let private parseTrajectory (list: string) (e: JsonElement) =
    {
        Id = e.GetProperty("id").GetString()
        List = list
        Description = e.GetProperty("description").GetString()
        EnvKwargs =
            [
                for p in e.GetProperty("env_kwargs").EnumerateObject() -> p.Name, jsonValue p.Value
            ]
        ResetSeed = e.GetProperty("reset_seed").GetInt64()
        InitialState = nums (e.GetProperty "initial_state")
        InitialObs = nums (e.GetProperty "initial_obs")
        DoneAtStep = e.GetProperty("done_at_step").GetInt32()
        Steps = [| for s in e.GetProperty("steps").EnumerateArray() -> parseStep s |]
    }

/// Reads the parsed top level of the reference file at `path` (its `schema_version` already
/// checked by `Conformance.load`). Raises `KeyNotFoundException` for a missing field,
/// `InvalidOperationException` for a value of the wrong kind and `FormatException` for a number
/// out of range.
let internal parseFile (path: string) (root: JsonElement) : RefFile =

    let lists =
        [
            for name in [ "trajectories"; "post_done_trajectories"; "slippery_trajectories" ] do
                match opt name root with
                | Some l ->
                    for t in l.EnumerateArray() do
                        yield parseTrajectory name t
                | None -> ()
        ]

    let tables =
        match opt "transition_tables" root with
        | None -> []
        | Some t ->
            [
                for p in t.EnumerateObject() do
                    if p.Value.ValueKind = JsonValueKind.Array then
                        yield
                            p.Name,
                            [|
                                for s in p.Value.EnumerateArray() ->
                                    [|
                                        for a in s.EnumerateArray() ->
                                            [|
                                                for x in a.EnumerateArray() ->
                                                    {
                                                        Prob = x.GetProperty("prob").GetDouble()
                                                        NextState = x.GetProperty("next_state").GetInt32()
                                                        Reward = num (x.GetProperty "reward")
                                                        Terminated = x.GetProperty("terminated").GetBoolean()
                                                    }
                                            |]
                                    |]
                            |]
            ]

    {
        Path = path
        EnvId = root.GetProperty("env_id").GetString()
        MaxEpisodeSteps = root.GetProperty("max_episode_steps").GetInt32()
        ObservationSpace = parseSpace (root.GetProperty "observation_space")
        ActionSpace = parseSpace (root.GetProperty "action_space")
        Trajectories = lists
        TransitionTables = tables
    }
