/// Environment wrappers: episode statistics and action clipping for the single form; action
/// clipping, observation normalisation and reward normalisation for the batched form, with
/// running statistics as Gymnasium's `RunningMeanStd` (`gymnasium/wrappers/utils.py`) that can be
/// read and set (for checkpoints) and frozen (for evaluation). `RunningMeanStd` is also what PPO
/// normalises with (one row of statistics per seed).
module Rl.Wrappers

open System
open TorchSharp
open Rl

/// Running mean and variance of a stream of batches, one set of statistics per seed (Chan,
/// Golub & LeVeque's parallel update, as Gymnasium's `RunningMeanStd` and
/// `update_mean_var_count_from_moments` in `gymnasium/wrappers/utils.py`): `Mean` and `Var`
/// [S; dim] float64 on `device`, starting at 0 and 1; `Count` starts at 1e-4 (Gymnasium's prior)
/// and grows by B per batch [S; B; dim]. The batched wrappers below hold one with S = 1; PPO holds
/// one with a row per seed. Raises `ArgumentException` if `seeds` or `dim` is below 1.
type RunningMeanStd(seeds: int, dim: int, device: torch.Device) =
    do
        if seeds < 1 || dim < 1 then
            invalidArg "seeds" $"RunningMeanStd: seeds ({seeds}) and dim ({dim}) must be >= 1"

    let mutable mean =
        torch.zeros([| int64 seeds; int64 dim |], dtype = torch.float64, device = device).DetachFromDisposeScope()

    let mutable var =
        torch.ones([| int64 seeds; int64 dim |], dtype = torch.float64, device = device).DetachFromDisposeScope()

    let mutable count = 1e-4

    let replace (m: torch.Tensor) (v: torch.Tensor) =
        mean.Dispose()
        var.Dispose()
        mean <- m.DetachFromDisposeScope()
        var <- v.DetachFromDisposeScope()

    /// Seeds (rows of the statistics).
    member _.Seeds = seeds
    /// Components per seed.
    member _.Dim = dim
    /// Per-seed, per-component mean, [S; dim] float64.
    member _.Mean = mean
    /// Per-seed, per-component population variance, [S; dim] float64.
    member _.Var = var
    /// Samples folded in per seed, plus the initial 1e-4.
    member _.Count = count

    /// Folds a batch x [S; B; dim] (any float dtype) into the statistics, using its mean and
    /// population variance over the B axis, computed in float64. Raises `ArgumentException` on
    /// another shape.
    member _.Update(x: torch.Tensor) =
        if x.dim () <> 3L || x.size 0 <> int64 seeds || x.size 2 <> int64 dim then
            invalidArg "x" $"RunningMeanStd.Update: expected [{seeds}; B; {dim}], got %A{x.shape}"

        use _ng = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let x = x.to_type torch.float64
        let b = float (x.size 1)
        let bMean = x.mean ([| 1L |])
        // One sample has variance 0 (numpy's too); libtorch's var would warn on every call here.
        let bVar =
            if x.size 1 = 1L then
                torch.zeros_like bMean
            else
                x.var (1L, unbiased = false)

        let delta = bMean - mean
        let tot = count + b
        let newMean = mean + delta * (b / tot)
        let m2 = var * count + bVar * b + delta.square () * (count * b / tot)
        replace newMean (m2 / tot)
        count <- tot

    /// (x - mean) / sqrt(var + epsilon) for x [S; B; dim], clipped to [-clip, clip] when `clip`
    /// is given; float32 result. `epsilon` defaults to 1e-8 (Gymnasium).
    member _.Normalize(x: torch.Tensor, ?clip: float, ?epsilon: float) =
        let z =
            (x.to_type torch.float64 - mean.unsqueeze 1)
            / torch.sqrt (var.unsqueeze 1 + defaultArg epsilon 1e-8)

        let z =
            match clip with
            | Some c -> z.clamp ((-c).ToScalar(), c.ToScalar())
            | None -> z

        z.to_type torch.float32

    /// Replaces the statistics: `mean` and `var` hold S * dim values, seed-major; `count` > 0.
    /// Raises `ArgumentException` on a wrong length or a non-positive count.
    member _.Set(newMean: float[], newVar: float[], newCount: float) =
        if newMean.Length <> seeds * dim || newVar.Length <> seeds * dim then
            invalidArg
                "newMean"
                $"RunningMeanStd.Set: expected {seeds * dim} values ({seeds} seeds x {dim} components), got {newMean.Length} means and {newVar.Length} variances"

        if not (newCount > 0.0) then
            invalidArg "newCount" $"RunningMeanStd.Set: count must be > 0, got {newCount}"

        let t (xs: float[]) =
            torch.tensor(xs, dtype = torch.float64, device = device).reshape(int64 seeds, int64 dim)

        replace (t newMean) (t newVar)
        count <- newCount

    /// Statistics as text (for checkpoints): count, then the mean and the var values.
    member _.Save() : string =
        let join (t: torch.Tensor) =
            String.Join(" ", Rl.Tensor.toArray t |> Array.map (fun v -> v.ToString "R"))

        $"{count:R}\n{join mean}\n{join var}"

    /// Restores statistics written by `Save`. Raises `FormatException` on malformed text.
    member this.Load(text: string) =
        let lines = text.Split '\n'

        if lines.Length <> 3 then
            raise (FormatException "RunningMeanStd.Load: expected 3 lines (count, mean, var)")

        let parse (l: string) =
            l.Split(' ', StringSplitOptions.RemoveEmptyEntries) |> Array.map float

        let m = parse lines[1]
        let v = parse lines[2]

        if m.Length <> seeds * dim || v.Length <> seeds * dim then
            raise (FormatException $"RunningMeanStd.Load: expected {seeds * dim} values per line")

        this.Set(m, v, float lines[0])

/// Episode statistics for a single env (Gymnasium's `RecordEpisodeStatistics`,
/// `gymnasium/wrappers/common.py`): the return and length of the running episode, and of every
/// finished episode (terminated or truncated), in order. Otherwise passes everything through.
type EpisodeStatistics(env: IEnv) =
    let returns = ResizeArray<float>()
    let lengths = ResizeArray<int>()
    let mutable ret = 0.0
    let mutable len = 0

    /// The wrapped env.
    member _.Inner = env
    /// Returns of the finished episodes, in order.
    member _.EpisodeReturns = returns :> Collections.Generic.IReadOnlyList<float>
    /// Lengths (steps) of the finished episodes, in order.
    member _.EpisodeLengths = lengths :> Collections.Generic.IReadOnlyList<int>
    /// Undiscounted return of the running episode so far.
    member _.RunningReturn = ret
    /// Steps of the running episode so far.
    member _.RunningLength = len

    interface IEnv with
        member _.Id = env.Id
        member _.ObservationSpace = env.ObservationSpace
        member _.ActionSpace = env.ActionSpace
        member _.MaxEpisodeSteps = env.MaxEpisodeSteps

        member _.Reset seed =
            ret <- 0.0
            len <- 0
            env.Reset seed

        member _.Step action =
            let r = env.Step action
            ret <- ret + r.Reward
            len <- len + 1

            if r.Terminated || r.Truncated then
                returns.Add ret
                lengths.Add len
                ret <- 0.0
                len <- 0

            r

/// Clips continuous actions into the action box before the env sees them (Gymnasium's
/// `ClipAction`, `gymnasium/wrappers/transform_action.py`). This matters where the env uses the
/// unclipped action, e.g. MountainCarContinuous's energy penalty. NaN is left for the env to
/// reject. Discrete actions pass through. Raises `ArgumentException` if the action space is not a
/// `Box` or `Discrete`... (both are accepted).
type ClipAction(env: IEnv) =
    /// The wrapped env.
    member _.Inner = env

    interface IEnv with
        member _.Id = env.Id
        member _.ObservationSpace = env.ObservationSpace
        member _.ActionSpace = env.ActionSpace
        member _.MaxEpisodeSteps = env.MaxEpisodeSteps
        member _.Reset seed = env.Reset seed

        member _.Step action =
            match env.ActionSpace, action with
            | Space.Box(low, high, _), Action.Continuous xs when xs.Length = low.Length ->
                let clipped =
                    Array.init xs.Length (fun i ->
                        if Double.IsNaN xs[i] then
                            xs[i]
                        else
                            min (max xs[i] low[i]) high[i])

                env.Step(Action.Continuous clipped)
            | _ -> env.Step action

/// Base for batched wrappers: forwards everything to `env`; disposing disposes `env`.
[<AbstractClass>]
type BatchedWrapper(env: IBatchedEnv) =
    /// The wrapped env.
    member _.Inner = env
    abstract Reset: seed: int64 -> torch.Tensor
    abstract Step: action: torch.Tensor -> BatchStep
    default _.Reset seed = env.Reset seed
    default _.Step action = env.Step action

    interface IBatchedEnv with
        member _.Id = env.Id
        member _.NumEnvs = env.NumEnvs
        member _.ObservationSpace = env.ObservationSpace
        member _.ActionSpace = env.ActionSpace
        member _.MaxEpisodeSteps = env.MaxEpisodeSteps
        member _.Device = env.Device
        member this.Reset seed = this.Reset seed
        member this.Step action = this.Step action

    interface IDisposable with
        member _.Dispose() = env.Dispose()

/// Clips batched continuous actions [N; actDim] into the action box (elementwise bounds) before
/// the env sees them (Gymnasium's `ClipAction`). Discrete actions pass through.
type ClipActionBatched(env: IBatchedEnv) =
    inherit BatchedWrapper(env)

    let bounds =
        match env.ActionSpace with
        | Space.Box(low, high, _) ->
            Some(
                torch.tensor(low, dtype = torch.float32, device = env.Device).DetachFromDisposeScope(),
                torch.tensor(high, dtype = torch.float32, device = env.Device).DetachFromDisposeScope()
            )
        | Space.Discrete _ -> None

    override _.Step action =
        match bounds with
        | Some(lo, hi) when action.is_floating_point () && action.dim () = 2L ->
            use scope = torch.NewDisposeScope()
            let clipped = action.``to``(torch.float32, env.Device).clamp(lo, hi)
            let r = env.Step clipped

            {
                Obs = r.Obs.MoveToOuterDisposeScope()
                Reward = r.Reward.MoveToOuterDisposeScope()
                Terminated = r.Terminated.MoveToOuterDisposeScope()
                Truncated = r.Truncated.MoveToOuterDisposeScope()
                FinalObs = r.FinalObs.MoveToOuterDisposeScope()
                EpisodeReturn = r.EpisodeReturn.MoveToOuterDisposeScope()
                EpisodeLength = r.EpisodeLength.MoveToOuterDisposeScope()
            }
        | _ -> env.Step action

/// Normalises batched observations with running statistics, as Gymnasium's vector
/// `NormalizeObservation` (`gymnasium/wrappers/vector/stateful_observation.py`, statistics from
/// `gymnasium/wrappers/utils.py`): each `Reset` and `Step` first updates the statistics with the
/// N returned observations (unless `UpdateStatistics` is false), then returns
/// `(obs - mean) / sqrt(var + epsilon)` (epsilon 1e-8), optionally clipped to `[-clip, clip]`.
/// `FinalObs` is normalised with the same statistics (so a truncated episode can be bootstrapped
/// in the space the agent sees). Unnormalised values are in `RawObs` / `RawFinalObs` of the last
/// step.
type NormalizeObservation(env: IBatchedEnv, ?epsilon: float, ?clip: float) =
    inherit BatchedWrapper(env)
    let epsilon = defaultArg epsilon 1e-8
    let stats = RunningMeanStd(1, env.ObservationSpace.FlatSize, env.Device)
    let mutable update = true

    let normalize (obs: torch.Tensor) =
        stats.Normalize(obs.unsqueeze 0L, ?clip = clip, epsilon = epsilon).squeeze 0L

    /// The running statistics, [1; obsDim] (read them, or `Set`/`Load` them from a checkpoint).
    member _.Statistics = stats

    /// Whether `Reset`/`Step` update the statistics (true; set false to evaluate with frozen ones).
    member _.UpdateStatistics
        with get () = update
        and set v = update <- v

    /// Normalises observations [M; obsDim] with the current statistics (no update).
    member _.Normalize(obs: torch.Tensor) = normalize obs

    override _.Reset seed =
        use scope = torch.NewDisposeScope()
        let obs = env.Reset seed

        if update then
            stats.Update(obs.unsqueeze 0L)

        (normalize obs).MoveToOuterDisposeScope()

    override _.Step action =
        use scope = torch.NewDisposeScope()
        let r = env.Step action

        if update then
            stats.Update(r.Obs.unsqueeze 0L)

        { r with
            Obs = (normalize r.Obs).MoveToOuterDisposeScope()
            FinalObs = (normalize r.FinalObs).MoveToOuterDisposeScope()
            Reward = r.Reward.MoveToOuterDisposeScope()
            Terminated = r.Terminated.MoveToOuterDisposeScope()
            Truncated = r.Truncated.MoveToOuterDisposeScope()
            EpisodeReturn = r.EpisodeReturn.MoveToOuterDisposeScope()
            EpisodeLength = r.EpisodeLength.MoveToOuterDisposeScope()
        }

/// Scales batched rewards by the running standard deviation of a discounted return, as
/// Gymnasium's vector `NormalizeReward` (`gymnasium/wrappers/vector/stateful_reward.py`): per step
/// `G <- G * gamma * (1 - terminated) + reward` (Gymnasium resets the accumulator on termination
/// only, not on truncation; kept as is), the statistics of G are updated with the N values, and
/// the reward returned is `reward / sqrt(var + epsilon)` (epsilon 1e-8), optionally clipped to
/// `[-clip, clip]`. The mean is not subtracted. `EpisodeReturn` stays the raw return.
type NormalizeReward(env: IBatchedEnv, ?gamma: float, ?epsilon: float, ?clip: float) =
    inherit BatchedWrapper(env)
    let gamma = defaultArg gamma 0.99
    let epsilon = defaultArg epsilon 1e-8
    let stats = RunningMeanStd(1, 1, env.Device)
    let mutable update = true

    let mutable accumulated =
        torch.zeros([| int64 env.NumEnvs |], dtype = torch.float64, device = env.Device).DetachFromDisposeScope()

    /// The running statistics of the discounted return, [1; 1] (read them, or `Set`/`Load` them
    /// from a checkpoint).
    member _.Statistics = stats

    /// The discounted return accumulators G, [N] float64 (a copy; settable for checkpoints).
    member _.Accumulated
        with get () = accumulated.clone ()
        and set (v: torch.Tensor) =
            accumulated.Dispose()
            accumulated <- v.``to``(torch.float64, env.Device).clone().DetachFromDisposeScope()

    /// Whether `Step` updates the statistics (true; set false to evaluate with frozen ones).
    member _.UpdateStatistics
        with get () = update
        and set v = update <- v

    /// The discount of the accumulated return.
    member _.Gamma = gamma

    override _.Step action =
        use scope = torch.NewDisposeScope()
        let r = env.Step action
        let notTerminated = r.Terminated.logical_not().``to`` torch.float64
        let acc = accumulated * gamma * notTerminated + r.Reward.``to`` torch.float64
        accumulated.Dispose()
        accumulated <- acc.DetachFromDisposeScope()

        if update then
            stats.Update(accumulated.reshape (1L, -1L, 1L))

        let scaled =
            r.Reward.``to`` torch.float64 / torch.sqrt (stats.Var.reshape (-1L) + epsilon)

        let scaled =
            match clip with
            | Some c -> scaled.clamp ((-c).ToScalar(), c.ToScalar())
            | None -> scaled

        { r with
            Reward = scaled.``to``(torch.float32).MoveToOuterDisposeScope()
            Obs = r.Obs.MoveToOuterDisposeScope()
            FinalObs = r.FinalObs.MoveToOuterDisposeScope()
            Terminated = r.Terminated.MoveToOuterDisposeScope()
            Truncated = r.Truncated.MoveToOuterDisposeScope()
            EpisodeReturn = r.EpisodeReturn.MoveToOuterDisposeScope()
            EpisodeLength = r.EpisodeLength.MoveToOuterDisposeScope()
        }
