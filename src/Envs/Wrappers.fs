/// Environment wrappers: episode statistics and action clipping for the single form; action
/// clipping, observation normalisation and reward normalisation for the batched form, with
/// running statistics as Gymnasium's `RunningMeanStd` (`gymnasium/wrappers/utils.py`) that can be
/// read and set (for checkpoints) and frozen (for evaluation).
module Rl.Wrappers

open System
open TorchSharp
open Rl

/// Running mean and variance of a stream of batches (Chan et al.'s parallel update), as
/// Gymnasium's `RunningMeanStd` (`gymnasium/wrappers/utils.py`,
/// `update_mean_var_count_from_moments`): mean 0, var 1, count 1e-4 initially; a batch [B; ...]
/// contributes its mean and population variance over the first axis. Held as float64 on the host.
type RunningStats =
    {
        /// Per-component mean.
        Mean: float[]
        /// Per-component (population) variance.
        Var: float[]
        /// Number of samples seen, plus the initial 1e-4.
        Count: float
    }

/// Functions on `RunningStats`.
module RunningStats =
    /// Fresh statistics for `dim` components: mean 0, var 1, count `epsilon` (Gymnasium: 1e-4).
    let create (dim: int) (epsilon: float) =
        {
            Mean = Array.zeroCreate dim
            Var = Array.create dim 1.0
            Count = epsilon
        }

    /// `update_mean_var_count_from_moments` (`gymnasium/wrappers/utils.py`): combines the
    /// statistics with a batch's mean, population variance and size. Raises `ArgumentException`
    /// on a length mismatch.
    let updateFromMoments (batchMean: float[]) (batchVar: float[]) (batchCount: float) (s: RunningStats) =
        if batchMean.Length <> s.Mean.Length || batchVar.Length <> s.Var.Length then
            invalidArg
                "batchMean"
                $"RunningStats: batch has {batchMean.Length} components, statistics have {s.Mean.Length}"

        let totCount = s.Count + batchCount

        let mean =
            Array.map2 (fun m bm -> let delta = bm - m in m + delta * batchCount / totCount) s.Mean batchMean

        let var =
            Array.init s.Mean.Length (fun i ->
                let delta = batchMean[i] - s.Mean[i]
                let mA = s.Var[i] * s.Count
                let mB = batchVar[i] * batchCount
                let m2 = mA + mB + delta * delta * s.Count * batchCount / totCount
                m2 / totCount)

        {
            Mean = mean
            Var = var
            Count = totCount
        }

    /// Updates with a batch [B; dim] (or [B] for dim 1) of any float dtype, using its mean and
    /// population variance over the first axis (computed in float64).
    let update (batch: torch.Tensor) (s: RunningStats) =
        use scope = torch.NewDisposeScope()
        let x = batch.``to``(torch.float64).reshape(batch.shape[0], -1L)
        let bm = x.mean([| 0L |]).cpu().data<float>().ToArray()
        let bv = x.var(0L, unbiased = false).cpu().data<float>().ToArray()
        updateFromMoments bm bv (float batch.shape[0]) s

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
    let dim = env.ObservationSpace.FlatSize
    let mutable stats = RunningStats.create dim 1e-4
    let mutable update = true
    let mutable meanT: torch.Tensor = null
    let mutable scaleT: torch.Tensor = null

    let refresh () =
        if not (isNull meanT) then
            meanT.Dispose()
            scaleT.Dispose()

        meanT <- torch.tensor(stats.Mean, dtype = torch.float64, device = env.Device).DetachFromDisposeScope()

        scaleT <-
            torch
                .tensor(
                    stats.Var |> Array.map (fun v -> 1.0 / Math.Sqrt(v + epsilon)),
                    dtype = torch.float64,
                    device = env.Device
                )
                .DetachFromDisposeScope()

    do refresh ()

    let normalize (obs: torch.Tensor) =
        let z = ((obs.``to`` torch.float64 - meanT) * scaleT).``to`` torch.float32

        match clip with
        | Some c -> z.clamp ((-c).ToScalar(), c.ToScalar())
        | None -> z

    /// The running statistics (settable, e.g. from a checkpoint; raises `ArgumentException` on a
    /// wrong length).
    member _.Statistics
        with get () = stats
        and set (v: RunningStats) =
            if v.Mean.Length <> dim || v.Var.Length <> dim then
                invalidArg "Statistics" $"{env.Id}: observation statistics need {dim} components, got {v.Mean.Length}"

            stats <- v
            refresh ()

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
            stats <- RunningStats.update obs stats
            refresh ()

        (normalize obs).MoveToOuterDisposeScope()

    override _.Step action =
        use scope = torch.NewDisposeScope()
        let r = env.Step action

        if update then
            stats <- RunningStats.update r.Obs stats
            refresh ()

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
    let mutable stats = RunningStats.create 1 1e-4
    let mutable update = true

    let mutable accumulated =
        torch.zeros([| int64 env.NumEnvs |], dtype = torch.float64, device = env.Device).DetachFromDisposeScope()

    /// The running statistics of the discounted return (settable, e.g. from a checkpoint).
    member _.Statistics
        with get () = stats
        and set (v: RunningStats) =
            if v.Mean.Length <> 1 || v.Var.Length <> 1 then
                invalidArg "Statistics" $"{env.Id}: reward statistics have 1 component, got {v.Mean.Length}"

            stats <- v

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
            stats <- RunningStats.update accumulated stats

        let scaled = r.Reward.``to`` torch.float64 / Math.Sqrt(stats.Var[0] + epsilon)

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
