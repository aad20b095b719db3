namespace Rl

open System
open TorchSharp
open Rl

/// Gymnasium's `SyncVectorEnv` (`gymnasium/vector/sync_vector_env.py`) in SAME_STEP auto-reset
/// mode: N single-form environments (`IEnv`, exact Gymnasium semantics in double precision)
/// stepped one after another on the host, with the results handed over as tensors on `device`.
///
/// On the CPU with a few copies this is the fast way to step the classic-control envs: a step of
/// the single form costs nanoseconds, while the tensor-batched form (`BatchedClassicEnv`) pays
/// some fifty tensor operations per step whatever N is. On CUDA it copies the actions to the host
/// and the results back every step; use the batched form there.
///
/// Seeding follows Gymnasium: `Reset seed` resets copy i with `seed + i`; `ResetEach` takes one
/// seed per copy. Auto-reset continues each copy's own generator (`reset(seed=None)`), so copy i's
/// episodes depend only on its own seed and actions.
///
/// Raises `ArgumentException` for an empty env array, for copies with different ids or spaces,
/// and for a bad action tensor (wrong shape or dtype, an index outside the action space, a NaN);
/// `InvalidOperationException` when stepped before `Reset`.
type SyncVectorEnv(envs: IEnv[], device: torch.Device) =
    do
        if isNull envs || envs.Length = 0 then
            invalidArg "envs" "SyncVectorEnv: need at least one environment"

        let e0 = envs[0]

        for e in envs do
            if
                e.Id <> e0.Id
                || e.ObservationSpace <> e0.ObservationSpace
                || e.ActionSpace <> e0.ActionSpace
            then
                invalidArg
                    "envs"
                    $"SyncVectorEnv: every copy must be the same environment; got {e0.Id} {e0.ObservationSpace} {e0.ActionSpace} and {e.Id} {e.ObservationSpace} {e.ActionSpace}"

    let n = envs.Length
    let e0 = envs[0]
    let id = e0.Id
    let obsDim = e0.ObservationSpace.FlatSize
    let obs = Array.zeroCreate<float32>(n * obsDim)
    let finalObs = Array.zeroCreate<float32>(n * obsDim)
    let reward = Array.zeroCreate<float32> n
    let terminated = Array.zeroCreate<bool> n
    let truncated = Array.zeroCreate<bool> n
    let epReturn = Array.zeroCreate<float> n
    let epLength = Array.zeroCreate<int64> n
    let episodeReturn = Array.zeroCreate<float32> n
    let episodeLength = Array.zeroCreate<int64> n
    let mutable started = false

    let fail (msg: string) =
        raise (ArgumentException(msg, "action"))

    let onDevice (t: torch.Tensor) =
        if device.``type`` = DeviceType.CPU then
            t
        else
            t.``to`` device

    // `torch.tensor` copies the array, so the buffers below are reused step after step.
    let f32 (values: float32[]) (shape: int64[]) =
        onDevice (torch.tensor (values, ReadOnlySpan<int64> shape))

    let i64 (values: int64[]) =
        onDevice (torch.tensor (values, ReadOnlySpan<int64> [| int64 values.Length |]))

    let bools (values: bool[]) =
        onDevice (torch.tensor (values, ReadOnlySpan<int64> [| int64 values.Length |]))

    /// The actions as host values, one `Action` per copy, checked against the action space.
    let actions (action: torch.Tensor) : Rl.Action[] =
        match e0.ActionSpace with
        | Space.Discrete(k, start) ->
            if not (Tensor.hasShape [| int64 n |] action) then
                fail
                    $"{id}: expected a discrete action tensor of shape [{n}] (one index in {start}..{start + k - 1} per copy), got shape {action.shape |> Array.toList}"

            if action.is_floating_point () || action.dtype = torch.ScalarType.Bool then
                fail $"{id}: expected an integer action tensor (int64), got dtype {action.dtype}"

            let a = action.``to``(torch.int64, torch.CPU).contiguous().data<int64>().ToArray()

            a
            |> Array.mapi (fun i v ->
                if v < int64 start || v >= int64 (start + k) then
                    fail
                        $"{id}: action {v} of copy {i} is outside the action space {e0.ActionSpace}; valid actions are {start}..{start + k - 1}"

                Action.Discrete(int v))
        | Space.Box(low, _, _) ->
            let d = low.Length

            if not (Tensor.hasShape [| int64 n; int64 d |] action) then
                fail
                    $"{id}: expected a continuous action tensor of shape [{n}; {d}] (action space {e0.ActionSpace}), got shape {action.shape |> Array.toList}"

            if not (action.is_floating_point ()) then
                fail $"{id}: expected a floating-point action tensor, got dtype {action.dtype}"

            let a = action.``to``(torch.float64, torch.CPU).contiguous().data<float>().ToArray()

            Array.init n (fun i ->
                let xs = a[i * d .. i * d + d - 1]

                if xs |> Array.exists Double.IsNaN then
                    fail $"{id}: the action of copy {i} contains NaN; the action space is {e0.ActionSpace}"

                Action.Continuous xs)

    /// The copies (the single-form environments, in order).
    member _.Envs = envs
    /// N, the number of copies.
    member _.NumEnvs = n
    member _.Device = device

    /// Resets copy i with `seeds[i]` (as `reset(seed=seeds[i])`); returns [N; obsDim] float32 on
    /// the device. Raises `ArgumentException` unless there is one seed per copy.
    member _.ResetEach(seeds: int64[]) : torch.Tensor =
        if seeds.Length <> n then
            invalidArg "seeds" $"{id}: ResetEach needs one seed per copy ({n}), got {seeds.Length}"

        for i in 0 .. n - 1 do
            let o = envs[i].Reset(Some seeds[i])
            Array.blit o 0 obs (i * obsDim) obsDim
            epReturn[i] <- 0.0
            epLength[i] <- 0L

        started <- true
        f32 obs [| int64 n; int64 obsDim |]

    /// Resets copy i with `seed + i` (Gymnasium's `SyncVectorEnv.reset(seed=seed)`).
    member this.Reset(seed: int64) : torch.Tensor =
        this.ResetEach(Array.init n (fun i -> seed + int64 i))

    /// Steps every copy with its action (see `IBatchedEnv.Step`); copies whose episode ends are
    /// reset within the step from their own generator.
    member _.Step(action: torch.Tensor) : BatchStep =
        if not started then
            invalidOp $"{id}: Step was called before Reset; call Reset seed first"

        let acts = actions action

        for i in 0 .. n - 1 do
            let r = envs[i].Step acts[i]
            Array.blit r.Obs 0 finalObs (i * obsDim) obsDim
            reward[i] <- float32 r.Reward
            terminated[i] <- r.Terminated
            truncated[i] <- r.Truncated
            epReturn[i] <- epReturn[i] + r.Reward
            epLength[i] <- epLength[i] + 1L

            if r.Terminated || r.Truncated then
                episodeReturn[i] <- float32 epReturn[i]
                episodeLength[i] <- epLength[i]
                epReturn[i] <- 0.0
                epLength[i] <- 0L
                let o = envs[i].Reset None
                Array.blit o 0 obs (i * obsDim) obsDim
            else
                episodeReturn[i] <- 0.0f
                episodeLength[i] <- 0L
                Array.blit r.Obs 0 obs (i * obsDim) obsDim

        let shape = [| int64 n; int64 obsDim |]
        let vec = [| int64 n |]

        {
            Obs = f32 obs shape
            Reward = f32 reward vec
            Terminated = bools terminated
            Truncated = bools truncated
            FinalObs = f32 finalObs shape
            EpisodeReturn = f32 episodeReturn vec
            EpisodeLength = i64 episodeLength
        }

    /// True when every copy implements `IEnvSnapshot` (then `SaveState` works).
    member _.CanSnapshot =
        envs
        |> Array.forall (fun e ->
            match e with
            | :? IEnvSnapshot as s -> s.CanSaveState
            | _ -> false)

    /// The running state as JSON: every copy's own `SaveState`, the running episodes' returns and
    /// lengths, and whether the vector was reset. Raises `NotSupportedException` naming the env
    /// when a copy does not implement `IEnvSnapshot`.
    member this.SaveState() : string =
        if not this.CanSnapshot then
            raise (
                NotSupportedException
                    $"{id}: SyncVectorEnv can save its state only when every copy implements IEnvSnapshot"
            )

        let o = Text.Json.Nodes.JsonObject()
        o["id"] <- Text.Json.Nodes.JsonValue.Create id

        o["copies"] <- Snapshot.ofTexts [ for e in envs -> (e :?> IEnvSnapshot).SaveState() ]
        o["episode_return"] <- Snapshot.ofFloats epReturn
        o["episode_length"] <- Snapshot.ofFloats (Array.map float epLength)
        o["started"] <- Text.Json.Nodes.JsonValue.Create started
        o.ToJsonString()

    /// Restores a state written by `SaveState` of a vector of the same env and number of copies.
    /// Raises `FormatException` naming what is wrong, `NotSupportedException` as `SaveState`.
    member this.LoadState(text: string) =
        if not this.CanSnapshot then
            raise (
                NotSupportedException
                    $"{id}: SyncVectorEnv can load a state only when every copy implements IEnvSnapshot"
            )

        let o = Snapshot.parseFor id text

        let copies =
            Snapshot.toTexts $"{id}: the copies of this SyncVectorEnv" n (Snapshot.field "copies" o)

        let rets = Snapshot.toFloats (Snapshot.field "episode_return" o)
        let lens = Snapshot.toFloats (Snapshot.field "episode_length" o)

        if rets.Length <> n || lens.Length <> n then
            raise (
                FormatException
                    $"{id}: the saved episode accumulators are for {rets.Length} copies, this SyncVectorEnv has {n}"
            )

        for i in 0 .. n - 1 do
            (envs[i] :?> IEnvSnapshot).LoadState copies[i]
            epReturn[i] <- rets[i]
            epLength[i] <- int64 lens[i]

        started <- (Snapshot.field "started" o).GetValue<bool>()

    interface IEnvSnapshot with
        member this.CanSaveState = this.CanSnapshot
        member this.SaveState() = this.SaveState()
        member this.LoadState text = this.LoadState text

    interface IBatchedEnv with
        member _.Id = id
        member _.NumEnvs = n
        member _.ObservationSpace = e0.ObservationSpace
        member _.ActionSpace = e0.ActionSpace
        member _.MaxEpisodeSteps = e0.MaxEpisodeSteps
        member _.Device = device
        member this.Reset seed = this.Reset seed
        member this.Step action = this.Step action

    interface IDisposable with
        member _.Dispose() = ()
