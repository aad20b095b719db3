/// Plumbing shared by every environment: action checks with messages naming the env, the action
/// and the valid range; Python's floored modulo; and two abstract base classes, one for the single
/// form (Gymnasium's `Env` under the registered `TimeLimit(OrderEnforcing(...))` stack), here, and
/// one for the batched form (N copies as tensor operations with SAME_STEP auto-reset,
/// `gymnasium/vector/vector_env.py`, `AutoresetMode.SAME_STEP`), `BatchedClassicEnv` in
/// `BatchedBase.fs`.
namespace Rl

open System
open TorchSharp
open Rl

/// Small numeric and checking helpers used by the environments.
module EnvUtil =
    /// Raises `ArgumentException` unless `dtype` is float32 or float64 (the state dtypes the
    /// classic-control batched forms support).
    let checkFloatDtype (id: string) (dtype: TorchSharp.torch.ScalarType) =
        if dtype <> TorchSharp.torch.float32 && dtype <> TorchSharp.torch.float64 then
            invalidArg "dtype" $"{id}: dtype must be float32 or float64, got {dtype}"


    /// Python/numpy floored modulo `x % y` for doubles: the result takes the sign of `y`
    /// (`npy_divmod` in numpy, `float_rem` in CPython). .NET's `%` truncates (sign of `x`), so
    /// `y` is added when the signs differ; an exact zero becomes `+0.0` or `-0.0` with the sign
    /// of `y`, as numpy's `copysign(0, y)`.
    let pyMod (x: float) (y: float) : float =
        let m = x % y

        if m <> 0.0 then
            if (y < 0.0) <> (m < 0.0) then m + y else m
        elif y < 0.0 then
            -0.0
        else
            0.0

    /// `np.clip(x, lo, hi)` for a non-NaN double.
    let inline clip (lo: float) (hi: float) (x: float) =
        if x < lo then lo
        elif x > hi then hi
        else x

    let private fmt (xs: float[]) =
        if isNull xs then
            "null"
        else
            "[" + String.Join(", ", xs |> Array.map (fun x -> x.ToString "R")) + "]"

    /// Checks a single-env action against a `Space.Discrete` and returns the index.
    /// Raises `ArgumentException` naming the env, the action and the valid range when the index is
    /// out of range or the action is continuous.
    let discreteAction (envId: string) (space: Space) (action: Action) : int =
        match space with
        | Space.Discrete(n, start) ->
            match action with
            | Action.Discrete a when a >= start && a < start + n -> a
            | Action.Discrete a ->
                raise (
                    ArgumentException(
                        $"{envId}: action {a} is outside the action space {space}; valid actions are {start}..{start + n - 1}",
                        "action"
                    )
                )
            | Action.Continuous xs ->
                raise (
                    ArgumentException(
                        $"{envId}: expected a discrete action in {start}..{start + n - 1} ({space}), got the continuous action {fmt xs}",
                        "action"
                    )
                )
        | _ -> invalidArg "space" $"{envId}: discreteAction needs a Discrete space, got {space}"

    /// Checks a single-env action against a `Space.Box`: it must be `Action.Continuous` of the
    /// box's flat size with no NaN (infinities are allowed; the env clips them). Returns the values
    /// unclipped (some envs, e.g. MountainCarContinuous, use the unclipped action in the reward).
    /// Raises `ArgumentException` naming the env, the action and the box otherwise, also for a null
    /// array (`ArgumentNullException`; a C# caller's `Step(null)`), instead of a
    /// `NullReferenceException` from inside the env.
    let boxAction (envId: string) (space: Space) (action: Action) : float[] =
        match space with
        | Space.Box(low, high, _) ->
            match action with
            | Action.Continuous null ->
                raise (
                    ArgumentNullException(
                        "action",
                        $"{envId}: the action is null; the action space {space} needs {low.Length} values in {fmt low}..{fmt high}"
                    )
                )
            | Action.Continuous xs when xs.Length <> low.Length ->
                raise (
                    ArgumentException(
                        $"{envId}: action {fmt xs} has length {xs.Length}, but the action space {space} needs length {low.Length} (values in {fmt low}..{fmt high})",
                        "action"
                    )
                )
            | Action.Continuous xs when xs |> Array.exists Double.IsNaN ->
                raise (
                    ArgumentException(
                        $"{envId}: action {fmt xs} contains NaN; the action space is {space} (values in {fmt low}..{fmt high})",
                        "action"
                    )
                )
            | Action.Continuous xs -> xs
            | Action.Discrete a ->
                raise (
                    ArgumentException(
                        $"{envId}: expected a continuous action in {space} (values in {fmt low}..{fmt high}), got the discrete action {a}",
                        "action"
                    )
                )
        | _ -> invalidArg "space" $"{envId}: boxAction needs a Box space, got {space}"

    /// A `SeededRandom` (the stream of `System.Random(seed)`, with a state that checkpoints can
    /// save) for an int64 seed: folds the high bits into the 32-bit seed that `System.Random` takes;
    /// the same seed always gives the same stream.
    let randomOfSeed (seed: int64) =
        SeededRandom(int (seed &&& 0x7fffffffL) ^^^ int ((seed >>> 31) &&& 0x7fffffffL))

    /// Applies `f` to every element of a float64 tensor on the host (copy out, map, copy in);
    /// same shape, float64, on the CPU. Used to evaluate `sin`, `cos` and `pow` with .NET's
    /// `Math` functions (glibc's on Linux, as Gymnasium's numpy), which torch's vectorised
    /// kernels miss by one ulp on some inputs.
    let hostMap (f: float -> float) (t: torch.Tensor) : torch.Tensor =
        let values = t.contiguous().data<float>().ToArray()
        torch.tensor(Array.map f values, dtype = torch.float64).reshape(Tensor.sizes t)

    /// Uniform double in [lo, hi) from `rng`, computed as numpy's `uniform`: `lo + (hi - lo) * u`.
    let uniform (rng: Random) (lo: float) (hi: float) = lo + (hi - lo) * rng.NextDouble()

/// The episode bookkeeping of a single-form environment under Gymnasium's
/// `TimeLimit(OrderEnforcing(env))` stack, shared by `ClassicEnv` and the C# face's `CustomEnv`:
/// the generator resets draw from, the steps of the current episode, whether an episode started
/// and whether it ended, and their snapshot fields (`IEnvSnapshot`).
type EpisodeClock(maxEpisodeSteps: int) =
    let mutable rng = SeededRandom(Random.Shared.Next())

    /// The generator resets (and stochastic dynamics) draw from; replaced by `Begin (Some seed)`.
    member _.Rng = rng
    /// Steps of the current episode so far (TimeLimit's counter).
    member val Elapsed = 0 with get, set
    /// True once an episode was begun.
    member val Started = false with get, set
    /// True once a step of the current episode terminated or was truncated.
    member val Ended = false with get, set

    /// Starts an episode: `Some seed` reseeds the generator (as `reset(seed=...)`), `None`
    /// continues its stream; clears the step counter and the ended flag.
    member c.Begin(seed: int64 option) =
        match seed with
        | Some s -> rng <- EnvUtil.randomOfSeed s
        | None -> ()

        c.Elapsed <- 0
        c.Started <- true
        c.Ended <- false

    /// Counts one step and returns whether it is truncated (`truncatedByEnv`, or the time limit
    /// reached); the episode ends when it terminated or was truncated.
    member c.Count(terminated: bool, truncatedByEnv: bool) : bool =
        c.Elapsed <- c.Elapsed + 1
        let truncated = truncatedByEnv || c.Elapsed >= maxEpisodeSteps

        if terminated || truncated then
            c.Ended <- true

        truncated

    /// Writes the counter, the flags and the generator's state into a snapshot object.
    member c.Save(o: Text.Json.Nodes.JsonObject) =
        o["elapsed"] <- Text.Json.Nodes.JsonValue.Create c.Elapsed
        o["started"] <- Text.Json.Nodes.JsonValue.Create c.Started
        o["ended"] <- Text.Json.Nodes.JsonValue.Create c.Ended
        o["rng"] <- Snapshot.ofRandom rng

    /// Restores what `Save` wrote; every field is read before any is set. Raises
    /// `FormatException` for a missing or malformed field.
    member c.Load(o: Text.Json.Nodes.JsonNode) =
        let r = SeededRandom 0
        Snapshot.restoreRandom r (Snapshot.field "rng" o)
        let elapsed = (Snapshot.field "elapsed" o).GetValue<int>()
        let started = (Snapshot.field "started" o).GetValue<bool>()
        let ended = (Snapshot.field "ended" o).GetValue<bool>()
        c.Elapsed <- elapsed
        c.Started <- started
        c.Ended <- ended
        rng <- r

/// Base of the single form of the classic-control environments: Gymnasium's
/// `TimeLimit(OrderEnforcing(env))` stack (`gymnasium/wrappers/common.py:130-133` for the time
/// limit). Subclasses supply the reset distribution, the observation and the transition.
///
/// `Step` refuses to run before `Reset` and after the episode ended (terminated or truncated)
/// with `InvalidOperationException`. `StepUnchecked` is the explicit opt-in to Gymnasium's own
/// behaviour of stepping on past the end (the elapsed-step counter keeps counting, so `truncated`
/// stays true once the limit is reached); it still refuses to run before the first `Reset`.
[<AbstractClass>]
type ClassicEnv(id: string, observationSpace: Space, actionSpace: Space, maxEpisodeSteps: int) =
    let clock = EpisodeClock maxEpisodeSteps

    /// Draws a fresh initial state from `rng` (Gymnasium's `reset` body).
    abstract ResetState: rng: Random -> unit
    /// The observation of the current state.
    abstract Observe: unit -> float32[]
    /// Applies a validated action (index in range, or a NaN-free vector of the right length) to the
    /// state and returns (reward, terminated).
    abstract Advance: action: Action -> float * bool
    /// The internal state as doubles (layout per env, as the reference files' `state_layout`).
    /// Setting it copies the values; raises `ArgumentException` on a wrong length.
    abstract State: float[] with get, set

    /// Episode bookkeeping beyond `State` that a snapshot must keep (e.g. CartPole's
    /// `steps_beyond_terminated`); empty by default. Setting it takes what getting it returned.
    abstract Extra: float[] with get, set

    default _.Extra
        with get () = [||]
        and set _ = ()

    /// Draws the current state as Gymnasium's `rgb_array` renderer does (see `Render`); every
    /// built-in env overrides it. Raises `NotSupportedException` by default.
    abstract Draw: unit -> Frame

    default _.Draw() =
        raise (NotSupportedException $"{id} does not draw itself (no rgb_array renderer)")

    /// The render mode given to `Envs.makeWith` (`render_mode`), None when none was given;
    /// `Envs.render` answers in this mode (rgb_array when None).
    member val RenderMode: string option = None with get, set

    /// The current state as a frame (`Draw`), Gymnasium's `env.render()` in `rgb_array` mode.
    /// Reads the state only. Raises `InvalidOperationException` before the first `Reset`.
    member this.Render() : Frame =
        if not clock.Started then
            invalidOp $"{id}: Render was called before Reset; call Reset first (there is no state to draw)"

        this.Draw()

    /// Registered id, e.g. `Pendulum-v1`.
    member _.Id = id
    member _.ObservationSpace = observationSpace
    member _.ActionSpace = actionSpace
    /// The `TimeLimit` length.
    member _.MaxEpisodeSteps = maxEpisodeSteps
    /// The generator that `Reset` draws from (reseeded by `Reset (Some seed)`).
    member _.Rng: Random = clock.Rng

    /// TimeLimit's elapsed-step counter (settable to re-synchronise with a recorded trajectory).
    member _.ElapsedSteps
        with get () = clock.Elapsed
        and set v = clock.Elapsed <- v

    /// True once `Reset` was called (a state exists to step and draw).
    member _.EpisodeStarted = clock.Started

    /// True once a step of the current episode returned terminated or truncated (cleared by `Reset`,
    /// settable for tests).
    member _.EpisodeEnded
        with get () = clock.Ended
        and set v = clock.Ended <- v

    /// Starts an episode: `Some seed` reseeds the generator (as `reset(seed=...)`), `None`
    /// continues its stream. Clears the elapsed-step counter. Returns the first observation.
    member this.Reset(seed: int64 option) : float32[] =
        clock.Begin seed
        this.ResetState clock.Rng
        this.Observe()

    /// Validates the action against `ActionSpace` (see `EnvUtil.discreteAction` and
    /// `EnvUtil.boxAction`): raises `ArgumentException` on a bad action.
    member _.CheckAction(action: Action) : Action =
        match actionSpace with
        | Space.Discrete _ -> Action.Discrete(EnvUtil.discreteAction id actionSpace action)
        | Space.Box _ -> Action.Continuous(EnvUtil.boxAction id actionSpace action)

    /// One step as Gymnasium does it, also past the end of an episode (the `post_done_trajectories`
    /// of the reference files). Raises `InvalidOperationException` before the first `Reset` and
    /// `ArgumentException` for a bad action.
    member this.StepUnchecked(action: Action) : StepResult =
        if not clock.Started then
            invalidOp $"{id}: Step was called before Reset (Gymnasium's OrderEnforcing); call Reset first"

        let action = this.CheckAction action
        let reward, terminated = this.Advance action
        let truncated = clock.Count(terminated, false)

        {
            Obs = this.Observe()
            Reward = reward
            Terminated = terminated
            Truncated = truncated
        }

    /// One step. Raises `InvalidOperationException` before `Reset` or when the episode already
    /// ended (call `Reset`, or use `StepUnchecked` to step on as Gymnasium allows), and
    /// `ArgumentException` for a bad action (see `CheckAction`).
    member this.Step(action: Action) : StepResult =
        if clock.Ended then
            invalidOp
                $"{id}: the episode ended (terminated or truncated) after {clock.Elapsed} steps; call Reset before stepping again (StepUnchecked steps on past the end as Gymnasium does)"

        this.StepUnchecked action

    /// The running state as JSON: `State`, `Extra`, the elapsed-step counter, whether an episode
    /// started and ended, and the generator's state (see `IEnvSnapshot`).
    member this.SaveState() : string =
        let o = Text.Json.Nodes.JsonObject()
        o["id"] <- Text.Json.Nodes.JsonValue.Create id
        o["state"] <- Snapshot.ofFloats this.State
        o["extra"] <- Snapshot.ofFloats this.Extra
        clock.Save o
        o.ToJsonString()

    /// Restores a state written by `SaveState` of the same env id. Raises `FormatException`
    /// naming what is wrong (another id, a missing field, a state of the wrong length).
    member this.LoadState(text: string) =
        let o = Snapshot.parseFor id text

        try
            this.State <- Snapshot.toFloats (Snapshot.field "state" o)
        with :? ArgumentException as e ->
            raise (FormatException $"{id}: {e.Message}")

        this.Extra <- Snapshot.toFloats (Snapshot.field "extra" o)
        clock.Load o

    interface IEnv with
        member this.Id = id
        member this.ObservationSpace = observationSpace
        member this.ActionSpace = actionSpace
        member this.MaxEpisodeSteps = maxEpisodeSteps
        member this.Reset seed = this.Reset seed
        member this.Step action = this.Step action

    interface IEnvSnapshot with
        member _.CanSaveState = true
        member this.SaveState() = this.SaveState()
        member this.LoadState text = this.LoadState text

    interface IRenderable with
        member this.Render() = this.Render()
