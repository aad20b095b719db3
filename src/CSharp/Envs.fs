namespace Rl.CSharp

open System
open System.Collections.Generic
open System.Runtime.InteropServices
open System.Text.Json.Nodes
open TorchSharp
open Rl

/// An observation or action space (Gymnasium's `spaces.Discrete` and `spaces.Box`,
/// `gymnasium/spaces/discrete.py`, `gymnasium/spaces/box.py`): `Discrete(n, start)` holds the
/// integers start .. start + n - 1; `Box(low, high)` the real vectors with low <= x <= high
/// elementwise (bounds may be infinite).
[<Sealed; AllowNullLiteral>]
type SpaceSpec internal (space: Space) =
    /// `n` integers from `start` (default 0). Raises `ArgumentException` for n < 1.
    static member Discrete(n: int, [<Optional; DefaultParameterValue(0)>] start: int) : SpaceSpec =
        if n < 1 then
            invalidArg "n" $"a Discrete space needs n >= 1, got {n}"

        SpaceSpec(Space.Discrete(n, start))

    /// Vectors of `low.Length` reals with `low[i] <= x[i] <= high[i]`. Raises `ArgumentException`
    /// for empty or unequal bounds, NaN, or a low above its high.
    static member Box(low: double[], high: double[]) : SpaceSpec =
        if isNull low || isNull high || low.Length = 0 || low.Length <> high.Length then
            invalidArg "low" "a Box needs low and high of the same, non-zero length"

        if Array.exists2 (fun (l: float) h -> Double.IsNaN l || Double.IsNaN h || l > h) low high then
            invalidArg "low" "a Box needs low[i] <= high[i] without NaN"

        SpaceSpec(Space.Box(Array.copy low, Array.copy high, [| low.Length |]))

    member internal _.Space = space

    /// True for a Discrete space.
    member _.IsDiscrete =
        match space with
        | Space.Discrete _ -> true
        | Space.Box _ -> false

    /// The number of integers of a Discrete space; 0 for a Box.
    member _.N =
        match space with
        | Space.Discrete(n, _) -> n
        | Space.Box _ -> 0

    /// The first integer of a Discrete space; 0 for a Box.
    member _.Start =
        match space with
        | Space.Discrete(_, start) -> start
        | Space.Box _ -> 0

    /// A Box's lower bounds (a copy); empty for a Discrete space.
    member _.Low =
        match space with
        | Space.Box(low, _, _) -> Array.copy low
        | Space.Discrete _ -> [||]

    /// A Box's upper bounds (a copy); empty for a Discrete space.
    member _.High =
        match space with
        | Space.Box(_, high, _) -> Array.copy high
        | Space.Discrete _ -> [||]

    /// Values in one element: 1 for Discrete (the index), the vector length for a Box.
    member _.Size = space.FlatSize

    /// Whether `x` is an element (for Discrete: one whole number in range).
    member _.Contains(x: double[]) = not (isNull x) && space.Contains x

    override _.ToString() = string space

/// The action a custom environment receives: an index (Discrete action space) or a vector of
/// reals (Box), already checked against the action space.
[<Sealed; AllowNullLiteral>]
type EnvAction internal (isDiscrete: bool, index: int, values: double[]) =
    /// True when the action space is Discrete (use `Index`), false for a Box (use `Values`).
    member _.IsDiscrete = isDiscrete

    /// The chosen index. Raises `InvalidOperationException` for a continuous action.
    member _.Index =
        if isDiscrete then
            index
        else
            invalidOp "this is a continuous action; read Values"

    /// The action vector (a copy; unclipped). Raises `InvalidOperationException` for a discrete action.
    member _.Values =
        if isDiscrete then
            invalidOp "this is a discrete action; read Index"
        else
            Array.copy values

    override _.ToString() =
        if isDiscrete then
            string index
        else
            "[" + String.Join(", ", values) + "]"

/// One step of an environment (Gymnasium's `step` 5-tuple less `info`): the observation reached,
/// the reward, `Terminated` (a terminal state of the MDP: do not bootstrap) and `Truncated` (cut
/// short, e.g. by the time limit: bootstrap from `Obs`).
[<Sealed; AllowNullLiteral>]
type EnvStep
    (obs: float32[], reward: float, terminated: bool, [<Optional; DefaultParameterValue(false)>] truncated: bool) =
    /// The observation after the step.
    member _.Obs = obs
    /// The reward of this step.
    member _.Reward = reward
    /// The episode reached a terminal state of the MDP (do not bootstrap from `Obs`).
    member _.Terminated = terminated
    /// The episode was cut short, e.g. by the time limit (bootstrap from `Obs`).
    member _.Truncated = truncated

    override _.ToString() =
        let o = String.Join(", ", obs)
        $"EnvStep(obs [{o}], reward {reward}, terminated {terminated}, truncated {truncated})"

/// Base class of an environment written in C#. Subclasses give the id (`Name-vN`), the spaces
/// and the time limit to the constructor and implement `OnReset` (draw the initial state from the
/// given generator; return the first observation) and `OnStep` (apply an action; return the
/// observation, the reward and whether a terminal state was reached). The base class does what
/// Gymnasium's wrappers do for registered envs: seeding (`Reset(seed)` reseeds the generator
/// `Random`, `Reset()` continues it), the time limit (`TimeLimit`: truncated at
/// `MaxEpisodeSteps`), order enforcing (no `Step` before `Reset` or after the episode ended) and
/// the checks of `PassiveEnvChecker`: every observation must have the space's size and lie in
/// it, every reward must be finite, every action is checked before `OnStep`. A broken rule
/// raises `EnvContractException` naming the env id, the step and the rule. Draw all randomness
/// from `Random` so that seeding is reproducible (`Envs.Check` tests it). Override
/// `CaptureState`/`RestoreState` to let checkpointed PPO runs resume exactly.
[<AbstractClass>]
type CustomEnv(id: string, observationSpace: SpaceSpec, actionSpace: SpaceSpec, maxEpisodeSteps: int) =
    do
        if isNull observationSpace || isNull actionSpace then
            nullArg "observationSpace"

        if maxEpisodeSteps < 1 then
            invalidArg "maxEpisodeSteps" $"{id}: maxEpisodeSteps must be >= 1, got {maxEpisodeSteps}"

    let clock = EpisodeClock maxEpisodeSteps

    let brokenAt (step: int) (rule: string) (detail: string) =
        raise (EnvContractException(id, step, rule, detail))

    let broken (rule: string) (detail: string) = brokenAt clock.Elapsed rule detail

    let checkObs (what: string) (obs: float32[]) =
        match EnvChecker.observationProblem observationSpace.Space obs with
        | Some p -> broken $"{what} must lie in the observation space" p
        | None -> obs

    /// Draws an initial state from `random` (the env's own generator) and returns the first
    /// observation (`ObservationSpace.Size` values inside the space).
    abstract OnReset: random: Random -> float32[]

    /// Applies a checked action to the state; returns the observation, the reward and whether the
    /// episode terminated (set `truncated` only for cuts other than the time limit).
    abstract OnStep: action: EnvAction -> EnvStep

    /// The env's state beyond the generator and counters, as text, for exact resume; null (the
    /// default) when not supported.
    abstract CaptureState: unit -> string
    default _.CaptureState() = null

    /// Restores what `CaptureState` returned.
    abstract RestoreState: state: string -> unit

    default _.RestoreState _ =
        raise (NotSupportedException $"{id}: override CaptureState and RestoreState to save this env's state")

    /// Draws the current state as a frame (`new Frame(width, height, rgbBytes)`, RGB rows top to
    /// bottom, one size for the whole episode) for `Env.Render` and videos (`capture_video`,
    /// `evaluate.fsx video=true`). The default draws nothing (null): rendering or recording such an
    /// env stops with a message saying to override this.
    abstract Render: unit -> Frame
    default _.Render() = null

    /// Registered id, e.g. `MyGrid-v0`.
    member _.Id = id
    /// What `OnReset` and `OnStep` must return: `Size` values inside the space.
    member _.ObservationSpace = observationSpace
    /// What `OnStep` receives (checked before it is called).
    member _.ActionSpace = actionSpace
    /// The time limit (steps per episode).
    member _.MaxEpisodeSteps = maxEpisodeSteps
    /// The generator `OnReset` and `OnStep` must draw from (reseeded by `Reset(seed)`).
    member _.Random: Random = clock.Rng
    /// Steps of the current episode so far.
    member _.ElapsedSteps = clock.Elapsed

    /// Starts an episode: a seed reseeds the generator (as `reset(seed=...)`), null continues its
    /// stream. Returns the first observation. Raises `EnvContractException` for an observation
    /// outside the observation space.
    member this.Reset([<Optional>] seed: Nullable<int64>) : float32[] =
        clock.Begin(Option.ofNullable seed)
        checkObs "the first observation" (this.OnReset clock.Rng)

    member private this.StepChecked(action: EnvAction) : EnvStep =
        if not clock.Started then
            broken "Reset before Step (order enforcing)" "Step was called before Reset"

        if clock.Ended then
            broken
                "Reset after the episode ended (order enforcing)"
                $"the episode ended (terminated or truncated) after {clock.Elapsed} steps; call Reset before stepping again"

        let r = this.OnStep action

        // the step that returned nothing is the next one: the clock counts only returned steps
        if isNull r then
            brokenAt (clock.Elapsed + 1) "OnStep must return an EnvStep" "it returned null"

        let truncated = clock.Count(r.Terminated, r.Truncated)
        let obs = checkObs "every observation" r.Obs

        if not (Double.IsFinite r.Reward) then
            broken "the reward must be finite" $"reward {r.Reward}"

        EnvStep(obs, r.Reward, r.Terminated, truncated)

    /// One step with a discrete action. Raises `ArgumentException` naming the env, the action and
    /// the valid range for an index outside a Discrete action space (or for a Box action space),
    /// `EnvContractException` before `Reset`, after the episode ended, or for a bad observation or
    /// reward.
    member this.Step(action: int) : EnvStep =
        match actionSpace.Space with
        | Space.Discrete _ ->
            this.StepChecked(
                EnvAction(true, EnvUtil.discreteAction id actionSpace.Space (Action.Discrete action), null)
            )
        | Space.Box _ ->
            invalidArg "action" $"{id}: the action space is {actionSpace}; pass a double[] of length {actionSpace.Size}"

    /// One step with a continuous action (length `ActionSpace.Size`, no NaN; unclipped). Raises as
    /// `Step(int)` does.
    member this.Step(action: double[]) : EnvStep =
        match actionSpace.Space with
        | Space.Box _ ->
            this.StepChecked(EnvAction(false, 0, EnvUtil.boxAction id actionSpace.Space (Action.Continuous action)))
        | Space.Discrete _ ->
            if not (isNull action) && action.Length = 1 && action[0] = Math.Floor action[0] then
                this.Step(int action[0])
            else
                invalidArg "action" $"{id}: the action space is {actionSpace}; pass an int"

    member internal this.StepAction(action: Action) : StepResult =
        let r =
            match action with
            | Action.Discrete a -> this.Step a
            | Action.Continuous xs -> this.Step xs

        {
            Obs = r.Obs
            Reward = r.Reward
            Terminated = r.Terminated
            Truncated = r.Truncated
        }

    interface IEnv with
        member this.Id = id
        member this.ObservationSpace = observationSpace.Space
        member this.ActionSpace = actionSpace.Space
        member this.MaxEpisodeSteps = maxEpisodeSteps
        member this.Reset seed = this.Reset(Option.toNullable seed)
        member this.Step action = this.StepAction action

    interface IRenderable with
        member this.Render() =
            if not clock.Started then
                invalidOp $"{id}: Render was called before Reset; call Reset first (there is no state to draw)"

            this.Render()

    interface IEnvSnapshot with
        member this.CanSaveState = not (isNull (this.CaptureState()))

        member this.SaveState() =
            let user = this.CaptureState()

            if isNull user then
                raise (NotSupportedException $"{id}: override CaptureState and RestoreState to save this env's state")

            let o = JsonObject()
            o["id"] <- JsonValue.Create id
            o["user"] <- JsonValue.Create user
            clock.Save o
            o.ToJsonString()

        member this.LoadState text =
            let o = Snapshot.parseFor id text
            this.RestoreState(string (Snapshot.field "user" o))
            clock.Load o

/// A single environment for C# (built-in or registered): `Reset(seed)` / `Step(action)` with
/// Gymnasium's semantics, including the registered time limit.
[<Sealed; AllowNullLiteral>]
type Env internal (env: IEnv) =
    member internal _.Inner = env
    /// Registered id, e.g. `CartPole-v1`.
    member _.Id = env.Id
    /// The space of the observations `Reset` and `Step` return.
    member _.ObservationSpace = SpaceSpec env.ObservationSpace
    /// The space of the actions `Step` takes.
    member _.ActionSpace = SpaceSpec env.ActionSpace
    /// The time limit (e.g. 500 for CartPole-v1).
    member _.MaxEpisodeSteps = env.MaxEpisodeSteps

    /// Starts an episode: a seed reseeds the env's generator, null continues it. Returns the first
    /// observation.
    member _.Reset([<Optional>] seed: Nullable<int64>) : float32[] = env.Reset(Option.ofNullable seed)

    member private _.Convert(r: StepResult) =
        EnvStep(r.Obs, r.Reward, r.Terminated, r.Truncated)

    /// One step with a discrete action. Raises `ArgumentException` for an action outside the
    /// action space and `InvalidOperationException` before `Reset` or after the episode ended.
    member this.Step(action: int) : EnvStep =
        this.Convert(env.Step(Action.Discrete action))

    /// One step with a continuous action of `ActionSpace.Size` values (clipped to the box by the env).
    member this.Step(action: double[]) : EnvStep =
        this.Convert(env.Step(Action.Continuous action))

    /// The current state as a frame (Gymnasium's `render()` in `rgb_array` mode): `Width`,
    /// `Height` and `Pixels` (RGB bytes, rows top to bottom); `Frame.SavePng(path)` writes it.
    /// Raises `InvalidOperationException` before `Reset` or when a custom env draws nothing, and
    /// `NotSupportedException` for an env that does not draw itself.
    member _.Render() : Frame = Envs.frame env

    member private _.Record(path: string, seed: Nullable<int64>, act: float32[] -> Action) : string =
        if String.IsNullOrWhiteSpace path then
            invalidArg "path" "give the video's file path, e.g. videos/cartpole.mp4"

        let episode = Video.recordEpisode env (Option.ofNullable seed) act
        Video.saveAs path (Video.fpsOf env.Id) episode

    /// Plays one episode with `act` (observation -> discrete action) from `Reset(seed)` and writes
    /// it as the MP4 video `path` at the env's frames per second (ffmpeg; without it, PNG frames in
    /// the folder `path` without its extension). Returns the path written. Every state is drawn
    /// with `Render` (a custom env's override too). Raises `Video.VideoError` when ffmpeg fails,
    /// and `Render`'s errors.
    member this.RecordVideo(path: string, act: Func<float32[], int>, [<Optional>] seed: Nullable<int64>) : string =
        if isNull act then
            nullArg "act"

        this.Record(path, seed, fun obs -> Action.Discrete(act.Invoke obs))

    /// `RecordVideo` for a continuous action space: `act` returns `ActionSpace.Size` values.
    member this.RecordVideo(path: string, act: Func<float32[], double[]>, [<Optional>] seed: Nullable<int64>) : string =
        if isNull act then
            nullArg "act"

        this.Record(path, seed, fun obs -> Action.Continuous(act.Invoke obs))

    /// FrozenLake-v1's text form (Gymnasium's `render_mode="ansi"`): the last action, then the
    /// map with the agent's tile on a red background (ANSI escape codes). Raises
    /// `NotSupportedException` for other envs and `InvalidOperationException` before `Reset`.
    member _.RenderAnsi() : string =
        match env with
        | :? FrozenLake.Env as lake -> lake.RenderAnsi()
        | _ ->
            raise (
                NotSupportedException
                    $"{env.Id} has no ansi render mode; only FrozenLake-v1 does (use Render for a frame)"
            )

    /// Releases the environment (its native tensors, for the batched forms behind it), so that
    /// `using var env = Envs.Make(...)` works; the built-in single environments hold none.
    interface IDisposable with
        member _.Dispose() =
            match env with
            | :? IDisposable as d -> d.Dispose()
            | _ -> ()

/// One step of a vector of environments as arrays (copy i at index i).
[<Sealed; AllowNullLiteral>]
type VectorStep internal (step: BatchStep) =
    let rows (t: torch.Tensor) =
        let values = t.``to``(torch.float32).cpu().contiguous().data<float32>().ToArray()
        let n = int t.shape[0]
        let d = values.Length / n
        Array.init n (fun i -> values[i * d .. i * d + d - 1])

    let bools (t: torch.Tensor) =
        t.cpu().contiguous().data<bool>().ToArray()

    /// The observations to act on next, [N][obsDim] (a fresh episode's first one where an episode
    /// ended: SAME_STEP auto-reset).
    member val Obs = rows step.Obs
    /// The observations the step reached before any auto-reset, [N][obsDim].
    member val FinalObs = rows step.FinalObs
    /// Rewards, [N].
    member val Reward = Tensor.toArray step.Reward
    /// Per copy: the episode reached a terminal state at this step, [N].
    member val Terminated = bools step.Terminated
    /// Per copy: the episode was cut by the time limit at this step, [N].
    member val Truncated = bools step.Truncated
    /// Undiscounted return of the episode that ended at this step (0 elsewhere), [N].
    member val EpisodeReturn = Tensor.toArray step.EpisodeReturn
    /// Tensors of the step, for tensor code (each [N; ...] on the env's device).
    member _.Tensors = step

/// N copies of an environment stepped together (Gymnasium's `make_vec`): the tensor-batched
/// form (`mode = "vector"`, on `Device`) or `SyncVectorEnv` (`"sync"`), with SAME_STEP auto-reset.
/// Use tensors (`Reset`, `Step(Tensor)`) or arrays (`ResetArrays`, `Step(int[])`, `Step(double[][])`).
[<Sealed; AllowNullLiteral>]
type VectorEnv internal (env: IBatchedEnv) =
    member internal _.Inner = env
    /// Registered id of the copies.
    member _.Id = env.Id
    /// N, the number of copies.
    member _.NumEnvs = env.NumEnvs
    /// The space of one copy's observation (a row of the observation tensor).
    member _.ObservationSpace = SpaceSpec env.ObservationSpace
    /// The space of one copy's action.
    member _.ActionSpace = SpaceSpec env.ActionSpace
    /// The time limit of each copy's episodes.
    member _.MaxEpisodeSteps = env.MaxEpisodeSteps
    /// The device of the tensors, e.g. `cpu`.
    member _.Device = string env.Device

    /// Resets copy i with `seed + i`; returns the observations [N; obsDim] float32.
    member _.Reset(seed: int64) : torch.Tensor = env.Reset seed

    /// Resets copy i with `seed + i`; returns the observations [N][obsDim].
    member _.ResetArrays(seed: int64) : float32[][] =
        use o = env.Reset seed
        let values = o.cpu().contiguous().data<float32>().ToArray()
        let d = values.Length / env.NumEnvs
        Array.init env.NumEnvs (fun i -> values[i * d .. i * d + d - 1])

    /// Steps every copy: actions [N] int64 (Discrete) or [N; actDim] float32 (Box). Raises
    /// `ArgumentException` for a wrong shape or an action outside the space.
    member _.Step(actions: torch.Tensor) : BatchStep = env.Step actions

    /// Steps every copy with one index each (Discrete action space).
    member _.Step(actions: int[]) : VectorStep =
        use a = torch.tensor (Array.map int64 actions)
        VectorStep(env.Step a)

    /// Steps every copy with one action vector each (Box action space), [N][actDim].
    member _.Step(actions: double[][]) : VectorStep =
        if isNull actions || actions.Length = 0 then
            invalidArg "actions" $"{env.Id}: one action per copy ({env.NumEnvs})"

        let d = actions[0].Length

        use a =
            torch.tensor(Array.concat actions |> Array.map float32).reshape(int64 actions.Length, int64 d)

        VectorStep(env.Step a)

    interface IDisposable with
        member _.Dispose() = env.Dispose()

/// Environments for C#: `Make`, `MakeVector`, `Register` (bring your own env), `Check`.
[<AbstractClass; Sealed>]
type Envs =
    /// The built-in ids and the registered custom ones.
    static member Ids: IReadOnlyList<string> = Rl.Envs.allIds () |> Array.ofList :> _

    /// The single form of `id` (Gymnasium's `gymnasium.make`), with options named as Gymnasium's
    /// kwargs (e.g. `max_episode_steps`, `g` for Pendulum, `is_slippery` for FrozenLake). Raises
    /// `ArgumentException` for an unknown id (listing the valid ones), option or value.
    static member Make
        (
            id: string,
            [<Optional; DefaultParameterValue(null: IDictionary<string, obj>)>] options: IDictionary<string, obj>
        ) : Env =
        let opts =
            if isNull options then
                []
            else
                [ for kv in options -> kv.Key, kv.Value ]

        new Env(Rl.Envs.makeWith id opts)

    /// `numEnvs` copies of `id`: `mode` "vector" (tensor-batched, the default; custom envs step
    /// their single forms) or "sync" (`SyncVectorEnv`), on `device` ("cpu", "cuda", "auto").
    /// Raises `ArgumentException` for an unknown id or mode, or `numEnvs < 1`.
    static member MakeVector
        (
            id: string,
            numEnvs: int,
            [<Optional; DefaultParameterValue("vector")>] mode: string,
            [<Optional; DefaultParameterValue("cpu")>] device: string
        ) : VectorEnv =
        new VectorEnv(Rl.Envs.makeVec mode id numEnvs (Native.device device))

    /// Registers a custom environment under `id` (Gymnasium's `gymnasium.register`): `factory`
    /// makes a fresh instance per call, whose `Id` must be `id`. Then `Make`, `MakeVector`, every
    /// algorithm's `EnvId`, YAML configs and sweeps accept the id. Raises `ArgumentException` for
    /// an id that is not `Name-vN`, a built-in id, an id already registered (unless `replace`), or
    /// a factory whose env has another id.
    static member Register
        (id: string, factory: Func<CustomEnv>, [<Optional; DefaultParameterValue(false)>] replace: bool)
        : unit =
        if isNull factory then
            nullArg "factory"

        Rl.Envs.registerWith replace id (fun () -> factory.Invoke() :> IEnv)

    /// Removes a registered custom id; false when it was not registered.
    static member Unregister(id: string) : bool = Rl.Envs.unregister id

    /// Every problem the environment checker finds (Gymnasium's `check_env` idea): valid spaces,
    /// observations inside the observation space, finite rewards, reproducible seeding, the time
    /// limit ending an episode, `Step` refused after the episode ended. Empty when it passes.
    static member Problems(env: CustomEnv) : IReadOnlyList<string> =
        EnvChecker.problems (env :> IEnv) |> Array.ofList :> _

    /// The checker's problems for a fresh env of a built-in or registered id.
    static member Problems(id: string) : IReadOnlyList<string> =
        EnvChecker.problems (Rl.Envs.make id) |> Array.ofList :> _

    /// Runs the checker (see `Problems`); raises `EnvCheckException` naming the env and listing
    /// every problem.
    static member Check(env: CustomEnv) : unit = EnvChecker.check (env :> IEnv)

    /// Runs the checker on a fresh env of a built-in or registered id.
    static member Check(id: string) : unit = EnvChecker.check (Rl.Envs.make id)
