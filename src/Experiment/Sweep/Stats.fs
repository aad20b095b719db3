/// Sweep statistics: percentile-bootstrap confidence intervals, steps to a return threshold and
/// per-seed final returns of a metrics table.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// Statistics over seeds.
module Stats =
    /// Percentile-bootstrap confidence interval of the mean of `xs` (Efron & Tibshirani 1993, ch.
    /// 13): `resamples` resamples with replacement drawn by `Random(seed)`, interval at `level`
    /// (e.g. 0.95 gives the 2.5 % and 97.5 % percentiles of the resampled means). Returns (lo, hi);
    /// (x, x) for one value; (NaN, NaN) for none. Raises `ArgumentException` for `level` outside (0, 1)
    /// or `resamples < 1`.
    let bootstrapCi (level: float) (resamples: int) (seed: int) (xs: float[]) : float * float =
        if not (level > 0.0 && level < 1.0) then
            invalidArg "level" $"level must be in (0, 1), got {level}"

        if resamples < 1 then
            invalidArg "resamples" $"resamples must be >= 1, got {resamples}"

        match xs.Length with
        | 0 -> nan, nan
        | 1 -> xs[0], xs[0]
        | n ->
            let rng = Random seed

            let means =
                Array.init resamples (fun _ ->
                    let mutable s = 0.0

                    for _ in 1..n do
                        s <- s + xs[rng.Next n]

                    s / float n)
                |> Array.sort

            let alpha = (1.0 - level) / 2.0
            Charts.percentileOfSorted alpha means, Charts.percentileOfSorted (1.0 - alpha) means

    /// The first x at which `ys` reaches `threshold` (ys and xs in step order); None if never.
    /// Non-finite ys are skipped. Raises `ArgumentException` when the lengths differ.
    let stepsToThreshold (threshold: float) (xs: float[]) (ys: float[]) : float option =
        if xs.Length <> ys.Length then
            invalidArg "ys" $"stepsToThreshold: {xs.Length} xs but {ys.Length} ys"

        Array.zip xs ys
        |> Array.tryFind (fun (_, y) -> Double.IsFinite y && y >= threshold)
        |> Option.map fst

    /// The mean return of the most recent finished episodes, at each update: walking back from
    /// update i over whole updates (each `returns[j]` is the mean of `episodes[j]` episodes) until at
    /// least `minEpisodes` episodes are covered, weighted by the episode counts; NaN until that many
    /// have finished. One seed's updates in order. Unlike the per-update mean, this is not biased
    /// towards the short episodes that are the only ones to end in early updates (e.g. MountainCar's
    /// successful ones). Raises `ArgumentException` when the lengths differ or `minEpisodes < 1`.
    let recentReturns (minEpisodes: int) (returns: float[]) (episodes: float[]) : float[] =
        if returns.Length <> episodes.Length then
            invalidArg "episodes" $"recentReturns: {returns.Length} returns but {episodes.Length} episode counts"

        if minEpisodes < 1 then
            invalidArg "minEpisodes" $"recentReturns: minEpisodes must be >= 1, got {minEpisodes}"

        Array.init returns.Length (fun i ->
            let mutable n = 0.0
            let mutable sum = 0.0
            let mutable j = i

            while j >= 0 && n < float minEpisodes do
                if episodes[j] > 0.0 && Double.IsFinite returns[j] then
                    sum <- sum + returns[j] * episodes[j]
                    n <- n + episodes[j]

                j <- j - 1

            if n >= float minEpisodes then sum / n else nan)

    /// Episodes behind the steps-to-threshold statistic (see `thresholdStep`).
    [<Literal>]
    let ThresholdEpisodes = 20

    /// Steps to threshold of a metrics table (columns global_step, episodic_return, episodes, and
    /// seed when several): the first global step at which the mean over seeds of each seed's
    /// `recentReturns ThresholdEpisodes` reaches `threshold` (every seed needs that many finished
    /// episodes first). None if it never does.
    let thresholdStep (threshold: float) (table: MetricsTable) : float option =
        let perSeed =
            Metrics.bySeed table
            |> List.map (fun (_, t) ->
                Metrics.column "global_step" t,
                recentReturns ThresholdEpisodes (Metrics.column "episodic_return" t) (Metrics.column "episodes" t))
            |> Array.ofList

        // Seeds log the same steps (one row per update per seed); compare by update index.
        let n = perSeed |> Array.map (fun (xs, _) -> xs.Length) |> Array.min
        let xs = (fst perSeed[0])[.. n - 1]

        let mean =
            Array.init n (fun i ->
                let v = perSeed |> Array.map (fun (_, ys) -> ys[i])

                if Array.forall Double.IsFinite v then
                    Array.average v
                else
                    nan)

        stepsToThreshold threshold xs mean

    /// Final return per seed from a metrics table: the mean return of the episodes that finished in
    /// the last `fraction` of each seed's updates (at least one update), in seed order: each update's
    /// `episodic_return` weighted by its `episodes` count when the table has that column (so an update
    /// where one short episode ended does not weigh as much as one where twenty did), else the plain
    /// mean of the finite values. A table without a seed column is one seed. NaN for a seed without a
    /// finished episode there.
    let finalReturns (fraction: float) (table: MetricsTable) : float[] =
        Metrics.bySeed table
        |> List.map (fun (_, t) ->
            let ret = Metrics.column "episodic_return" t

            let counts =
                if Metrics.hasColumn "episodes" t then
                    Metrics.column "episodes" t
                else
                    Array.create ret.Length 1.0

            let k = max 1 (int (ceil (fraction * float ret.Length)))

            let tail =
                [| ret.Length - k .. ret.Length - 1 |]
                |> Array.filter (fun i -> Double.IsFinite ret[i] && counts[i] > 0.0)

            if tail.Length = 0 then
                nan
            else
                (tail |> Array.sumBy (fun i -> ret[i] * counts[i]))
                / (tail |> Array.sumBy (fun i -> counts[i])))
        |> Array.ofList
