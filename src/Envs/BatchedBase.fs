/// The base class of the batched form of the classic-control environments, `BatchedClassicEnv`:
/// N copies as tensor operations with SAME_STEP auto-reset (`gymnasium/vector/vector_env.py`,
/// `AutoresetMode.SAME_STEP`). The single form's base, `ClassicEnv`, and the action checks of
/// `EnvUtil` are in `Base.fs`.
namespace Rl

open System
open TorchSharp
open Rl

/// Base of the batched form: N copies of an environment as tensors of shape [N; stateDim] on one
/// device, stepped together, with per-copy elapsed steps, episode return and length, and
/// auto-reset in Gymnasium's SAME_STEP mode (`gymnasium/vector/vector_env.py`): a copy whose
/// episode ends at a step is reset within that step, `Obs` is its new first observation and
/// `FinalObs` the observation the step reached.
///
/// Reset draws come from a `torch.Generator` on the env's device, seeded by `Reset seed`.
/// Internal tensors are detached from dispose scopes (a caller's scope never frees them); the
/// tensors of a returned `BatchStep` belong to the caller's current dispose scope, if any.
[<AbstractClass>]
type BatchedClassicEnv
    (
        id: string,
        numEnvs: int,
        device: torch.Device,
        stateDtype: torch.ScalarType,
        observationSpace: Space,
        actionSpace: Space,
        maxEpisodeSteps: int,
        stateDim: int
    ) =
    do
        if numEnvs < 1 then
            invalidArg "numEnvs" $"{id}: the number of copies must be at least 1, got {numEnvs}"

    let n = int64 numEnvs
    let keep (t: torch.Tensor) = t.DetachFromDisposeScope()

    let mutable state =
        keep (torch.zeros ([| n; int64 stateDim |], dtype = stateDtype, device = device))

    let mutable elapsed =
        keep (torch.zeros ([| n |], dtype = torch.int64, device = device))

    let mutable epReturn =
        keep (torch.zeros ([| n |], dtype = torch.float64, device = device))

    let mutable generator: torch.Generator = null
    let mutable started = false
    let mutable validate = true
    let mutable syncFree = device.``type`` <> DeviceType.CPU
    let mutable disposed = false
    let mutable exactMath = false

    let host () =
        exactMath && stateDtype = torch.float64 && device.``type`` = DeviceType.CPU

    let replace (old: torch.Tensor) (t: torch.Tensor) =
        let t = keep t
        old.Dispose()
        t

    let fail (msg: string) =
        raise (ArgumentException(msg, "action"))

    /// Draws `count` initial states, [count; stateDim] in the state dtype on the device.
    abstract InitialStates: count: int64 * generator: torch.Generator -> torch.Tensor
    /// The observation of states [M; stateDim]: [M; obsDim] float32.
    abstract Observe: state: torch.Tensor -> torch.Tensor
    /// One transition of all copies: state [N; stateDim], action as prepared by `PrepareAction`;
    /// returns (new state [N; stateDim] in the state dtype, reward [N] (any float dtype),
    /// terminated [N] bool).
    abstract Dynamics: state: torch.Tensor * action: torch.Tensor -> torch.Tensor * torch.Tensor * torch.Tensor

    /// Checks and converts an action tensor: discrete spaces take [N] of an integer dtype
    /// (returned as int64; floating, complex and bool tensors are refused), boxes take [N; actDim]
    /// of a floating dtype (returned in the state dtype,
    /// unclipped). Moves it to the env's device. Raises `ArgumentException` naming the env, the
    /// shape or offending value and the valid range. The value checks (range, NaN) read one
    /// scalar back from the device; `ValidateActions <- false` skips them.
    abstract PrepareAction: action: torch.Tensor -> torch.Tensor

    default this.PrepareAction(action: torch.Tensor) =
        match actionSpace with
        | Space.Discrete(k, start) ->
            if not (Tensor.hasShape [| n |] action) then
                fail
                    $"{id}: expected a discrete action tensor of shape [{n}] (one index in {start}..{start + k - 1} per copy), got shape {action.shape |> Array.toList}"

            // complex tensors too: converting one to int64 would silently drop its imaginary part
            if
                action.is_floating_point ()
                || action.is_complex ()
                || action.dtype = torch.ScalarType.Bool
            then
                fail $"{id}: expected an integer action tensor (int64), got dtype {action.dtype}"

            let a = action.``to`` (torch.int64, device)

            if validate then
                let lo, hi = int64 start, int64 (start + k)

                let badIndex =
                    if device.``type`` = DeviceType.CPU then
                        // one copy to the host is cheaper than four tensor operations
                        a.contiguous().data<int64>().ToArray()
                        |> Array.tryFindIndex (fun v -> v < lo || v >= hi)
                    else
                        use bad = a.lt(lo.ToScalar()).logical_or(a.ge (hi.ToScalar()))

                        if bad.any().item<bool>() then
                            use idx = bad.nonzero ()
                            Some(int (idx[0, 0].item<int64>()))
                        else
                            None

                match badIndex with
                | Some i ->
                    let v = a[int64 i].item<int64>()

                    fail
                        $"{id}: action {v} of copy {i} is outside the action space {actionSpace}; valid actions are {start}..{start + k - 1}"
                | None -> ()

            a
        | Space.Box(low, high, _) ->
            let d = int64 low.Length

            if not (Tensor.hasShape [| n; d |] action) then
                fail
                    $"{id}: expected a continuous action tensor of shape [{n}; {d}] (action space {actionSpace}), got shape {action.shape |> Array.toList}"

            if not (action.is_floating_point ()) then
                fail $"{id}: expected a floating-point action tensor, got dtype {action.dtype}"

            let a = action.``to`` (stateDtype, device)

            if validate then
                let nanIndex =
                    if device.``type`` = DeviceType.CPU then
                        let values = a.``to``(torch.float64).contiguous().data<float>().ToArray()
                        values |> Array.tryFindIndex Double.IsNaN |> Option.map (fun j -> j / int d)
                    else
                        use nan = a.isnan ()

                        if nan.any().item<bool>() then
                            use idx = nan.nonzero ()
                            Some(int (idx[0, 0].item<int64>()))
                        else
                            None

                match nanIndex with
                | Some i -> fail $"{id}: the action of copy {i} contains NaN; the action space is {actionSpace}"
                | None -> ()

            a

    /// Registered id.
    member _.Id = id
    /// The generator of reset draws (and of any other randomness of the dynamics); null before
    /// the first `Reset`.
    member _.Generator = generator
    /// N, the number of copies.
    member _.NumEnvs = numEnvs
    member _.Device = device
    /// The dtype the state is held and integrated in (float32 or float64; int64 for FrozenLake).
    member _.StateDtype = stateDtype
    member _.ObservationSpace = observationSpace
    member _.ActionSpace = actionSpace
    member _.MaxEpisodeSteps = maxEpisodeSteps

    /// Whether `Step` checks action values (range, NaN); true by default. The check reads one
    /// boolean back from the device per step.
    member _.ValidateActions
        with get () = validate
        and set v = validate <- v

    /// How auto-reset draws: false (the CPU default) reads back whether any copy is done and draws
    /// initial states only for those; true (the CUDA default) draws N initial states every step and
    /// selects with `where`, which never waits for the device. Both are deterministic for a seed,
    /// but give different streams.
    member _.SyncFreeAutoReset
        with get () = syncFree
        and set v = syncFree <- v

    /// When true (default false), a float64 env on the CPU evaluates `sin`, `cos` and squares on
    /// the host with `Math.Sin`, `Math.Cos` and `Math.Pow(x, 2.0)` (see `EnvUtil.hostMap`), which
    /// makes it bit-identical to the single form and to Gymnasium; slower. Ignored for float32 or
    /// CUDA. Without it, torch's vectorised `sin`/`cos` differ from glibc by one ulp on some inputs.
    member _.ExactMath
        with get () = exactMath
        and set v = exactMath <- v

    /// Elementwise sine: `torch.sin`, or `Math.Sin` on the host under `ExactMath`.
    member _.Sin(t: torch.Tensor) =
        if host () then EnvUtil.hostMap Math.Sin t else t.sin ()

    /// Elementwise cosine: `torch.cos`, or `Math.Cos` on the host under `ExactMath`.
    member _.Cos(t: torch.Tensor) =
        if host () then EnvUtil.hostMap Math.Cos t else t.cos ()

    /// Elementwise `x**2` of Python: `torch.pow(x, 2)` (which is `x * x`), or glibc's
    /// `Math.Pow(x, 2.0)` on the host under `ExactMath`.
    member _.Square(t: torch.Tensor) =
        if host () then
            EnvUtil.hostMap (fun x -> Math.Pow(x, 2.0)) t
        else
            t.pow ((2.0).ToScalar())

    /// The state of all copies, [N; stateDim] in `StateDtype` (a copy). Setting it copies the
    /// given tensor (converted to the state dtype and device); raises `ArgumentException` on a wrong
    /// shape. Used to re-synchronise with recorded trajectories.
    member _.State
        with get () = state.clone ()
        and set (v: torch.Tensor) =
            if v.shape <> state.shape then
                invalidArg
                    "State"
                    $"{id}: state must have shape {state.shape |> Array.toList}, got {v.shape |> Array.toList}"

            state <- replace state (v.``to``(stateDtype, device).clone())

    /// TimeLimit's elapsed-step counters, [N] int64 (a copy); settable like `State`.
    member _.ElapsedSteps
        with get () = elapsed.clone ()
        and set (v: torch.Tensor) =
            if v.shape <> elapsed.shape then
                invalidArg "ElapsedSteps" $"{id}: must have shape [{n}], got {v.shape |> Array.toList}"

            elapsed <- replace elapsed (v.``to``(torch.int64, device).clone())

    /// Return accumulated so far by each copy's running episode, [N] float64 (a copy).
    member _.RunningReturn = epReturn.clone ()

    /// Resets all copies from a generator on the device seeded with `seed`; returns [N; obsDim]
    /// float32.
    member this.Reset(seed: int64) : torch.Tensor =
        if disposed then
            raise (ObjectDisposedException id)

        if not (isNull generator) then
            generator.Dispose()

        generator <- new torch.Generator(uint64 seed, device)
        use scope = torch.NewDisposeScope()
        state <- replace state (this.InitialStates(n, generator))
        elapsed <- replace elapsed (torch.zeros ([| n |], dtype = torch.int64, device = device))
        epReturn <- replace epReturn (torch.zeros ([| n |], dtype = torch.float64, device = device))
        started <- true
        this.Observe(state).MoveToOuterDisposeScope()

    /// Steps all copies (see `IBatchedEnv.Step`). Raises `InvalidOperationException` before the first
    /// `Reset` and `ArgumentException` for a bad action (see `PrepareAction`).
    member this.Step(action: torch.Tensor) : BatchStep =
        if not started then
            invalidOp $"{id}: Step was called before Reset; call Reset seed first"

        use scope = torch.NewDisposeScope()
        let a = this.PrepareAction action
        let newState, reward, terminated = this.Dynamics(state, a)
        // the internal counters are updated in place (they are detached from every scope)
        elapsed.add_ (1L.ToScalar()) |> ignore
        epReturn.add_ reward |> ignore
        let truncated = elapsed.ge ((int64 maxEpisodeSteps).ToScalar())
        let ended = terminated.logical_or truncated
        let finalObs = this.Observe newState
        let episodeReturn = epReturn.mul(ended).``to`` torch.float32
        let episodeLength = elapsed.mul ended

        let nextState, obs =
            if syncFree then
                let fresh = this.InitialStates(n, generator)
                let s = torch.where (ended.unsqueeze 1, fresh, newState)
                s, torch.where (ended.unsqueeze 1, this.Observe fresh, finalObs)
            else
                let idx = ended.nonzero().squeeze 1
                let k = idx.size 0

                if k = 0L then
                    newState, finalObs.clone ()
                else
                    let fresh = this.InitialStates(k, generator)
                    let s = newState.index_copy (0, idx, fresh)
                    s, finalObs.index_copy (0, idx, this.Observe fresh)

        state <-
            replace
                state
                (if nextState.dtype = stateDtype then
                     nextState
                 else
                     nextState.``to`` stateDtype)

        elapsed.masked_fill_ (ended, 0L.ToScalar()) |> ignore
        epReturn.masked_fill_ (ended, 0.0.ToScalar()) |> ignore

        let reward =
            if reward.dtype = torch.float32 then
                reward
            else
                reward.``to`` torch.float32

        {
            Obs = obs.MoveToOuterDisposeScope()
            Reward = reward.MoveToOuterDisposeScope()
            Terminated = terminated.MoveToOuterDisposeScope()
            Truncated = truncated.MoveToOuterDisposeScope()
            FinalObs = finalObs.MoveToOuterDisposeScope()
            EpisodeReturn = episodeReturn.MoveToOuterDisposeScope()
            EpisodeLength = episodeLength.MoveToOuterDisposeScope()
        }

    /// The running state as JSON: the state, elapsed-step counters and episode returns of every
    /// copy, whether it was reset, and the reset generator's state (see `IEnvSnapshot`).
    member _.SaveState() : string =
        let o = Text.Json.Nodes.JsonObject()
        o["id"] <- Text.Json.Nodes.JsonValue.Create id
        o["state"] <- Snapshot.ofTensor state
        o["elapsed"] <- Snapshot.ofTensor elapsed
        o["episode_return"] <- Snapshot.ofTensor epReturn
        o["started"] <- Text.Json.Nodes.JsonValue.Create started

        if not (isNull generator) then
            o["generator"] <- Snapshot.ofGenerator generator

        o.ToJsonString()

    /// Restores a state written by `SaveState` of the same env id and number of copies. Raises
    /// `FormatException` naming what is wrong.
    member _.LoadState(text: string) =
        let o = Snapshot.parseFor id text

        let read name (like: torch.Tensor) =
            Snapshot.toTensorLike $"{id}: '{name}' ({numEnvs} copies)" like (Snapshot.field name o)

        let newState = read "state" state
        let newElapsed = read "elapsed" elapsed
        let newReturn = read "episode_return" epReturn
        state <- replace state newState
        elapsed <- replace elapsed newElapsed
        epReturn <- replace epReturn newReturn
        started <- (Snapshot.field "started" o).GetValue<bool>()

        let saved = o.AsObject()

        if saved.ContainsKey "generator" && not (isNull saved["generator"]) then
            if isNull generator then
                generator <- new torch.Generator(0UL, device)

            Snapshot.restoreGenerator generator saved["generator"]

    /// Frees the internal tensors.
    member _.Dispose() =
        if not disposed then
            disposed <- true
            state.Dispose()
            elapsed.Dispose()
            epReturn.Dispose()

            if not (isNull generator) then
                generator.Dispose()

    interface IBatchedEnv with
        member this.Id = id
        member this.NumEnvs = numEnvs
        member this.ObservationSpace = observationSpace
        member this.ActionSpace = actionSpace
        member this.MaxEpisodeSteps = maxEpisodeSteps
        member this.Device = device
        member this.Reset seed = this.Reset seed
        member this.Step action = this.Step action

    interface IEnvSnapshot with
        member _.CanSaveState = true
        member this.SaveState() = this.SaveState()
        member this.LoadState text = this.LoadState text

    interface IDisposable with
        member this.Dispose() = this.Dispose()
