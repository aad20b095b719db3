/// DQN's metrics: one row per seed per log window (CleanRL's TensorBoard tags), the finished
/// training episodes and the statistics read from them, and the on-device accumulators of a log
/// window (nothing is read back per step).
namespace Rl.Dqn

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// One metrics row per seed per `LogEvery` environment steps.
type DqnMetrics =
    {
        Seed: int64
        /// Environment steps done by this seed so far.
        Step: int64
        /// Mean return of the episodes that ended in this window (NaN if none).
        EpisodicReturn: float
        /// Mean length of those episodes (NaN if none).
        EpisodicLength: float
        /// Episodes that ended in this window.
        Episodes: int
        /// Mean return of the seed's last 20 training episodes (NaN before 20 episodes).
        ReturnLast20: float
        /// Mean TD loss, Q(s, a) and pre-clip gradient norm over this window's gradient steps
        /// (NaN before learning starts).
        TdLoss: float
        QMean: float
        GradNorm: float
        /// Epsilon at the end of the window.
        Epsilon: float
        /// Environment steps per second over all seeds in this window.
        Sps: float
    }

/// Metrics columns and episode statistics.
module Diagnostics =
    /// Metric names in CSV column order, with CleanRL's TensorBoard tags.
    let metricColumns =
        [
            "global_step", ""
            "episodic_return", "charts/episodic_return"
            "episodic_length", "charts/episodic_length"
            "episodes", "charts/episodes"
            "return_last20", "charts/return_last20"
            "td_loss", "losses/td_loss"
            "q_values", "losses/q_values"
            "grad_norm", "losses/grad_norm"
            "epsilon", "charts/epsilon"
            "sps", "charts/SPS"
        ]

    /// The values of a row in `metricColumns` order.
    let metricValues (m: DqnMetrics) =
        [|
            float m.Step
            m.EpisodicReturn
            m.EpisodicLength
            float m.Episodes
            m.ReturnLast20
            m.TdLoss
            m.QMean
            m.GradNorm
            m.Epsilon
            m.Sps
        |]

    /// The first environment step at which the mean of `window` consecutive finished episodes
    /// (ending at that episode) reaches `threshold`, or None. The bar of the issue: window 20, 475.
    let firstStepReaching (window: int) (threshold: float) (episodes: Episode seq) : int64 option =
        let eps = Seq.toArray episodes

        seq { window - 1 .. eps.Length - 1 }
        |> Seq.tryFind (fun i -> (Array.averageBy (fun e -> e.Return) eps[i - window + 1 .. i]) >= threshold)
        |> Option.map (fun i -> eps[i].EndStep)

    /// Mean return of the last `n` episodes (NaN when fewer than `n`).
    let lastMean (n: int) (episodes: ResizeArray<Episode>) =
        if episodes.Count < n then
            nan
        else
            Seq.averageBy (fun e -> e.Return) (Seq.skip (episodes.Count - n) episodes)

/// One log window's accumulators, on the device so that nothing is read back per step: the
/// episode ends, returns and lengths of every env step [window; S * N], and per seed [S] the
/// sums of the learning statistics over the window's gradient steps.
type internal Window(window: int, S: int, N: int, device: torch.Device) =
    let steps () =
        torch.zeros ([| int64 window; int64 (S * N) |], device = device)

    let perSeed () =
        torch.zeros ([| int64 S |], dtype = torch.float64, device = device)

    let isDone, ret, len = steps (), steps (), steps ()
    let sumLoss, sumQ, sumGrad = perSeed (), perSeed (), perSeed ()

    /// Env steps recorded in this window.
    member val Steps = 0 with get, set
    /// True when the window holds its `window` env steps.
    member w.IsFull = w.Steps = window
    /// Gradient steps taken in this window.
    member val Learns = 0 with get, set

    /// Records one env step's episode ends, returns and lengths.
    member w.Record(r: BatchStep) =
        // copy_ converts the flags and lengths to float32.
        isDone[w.Steps].copy_(r.Terminated.logical_or r.Truncated) |> ignore
        ret[w.Steps].copy_ r.EpisodeReturn |> ignore
        len[w.Steps].copy_ r.EpisodeLength |> ignore
        w.Steps <- w.Steps + 1

    /// Adds one gradient step's statistics.
    member w.AddLearn(stats: LearnStats) =
        let f64 (x: Tensor) = x.to_type torch.float64
        sumLoss.add_ (f64 stats.Loss) |> ignore
        sumQ.add_ (f64 stats.QMean) |> ignore
        sumGrad.add_ (f64 stats.GradNorm) |> ignore
        w.Learns <- w.Learns + 1

    /// Phase 3, log: reads the window back once, appends its finished episodes to
    /// `progress.Episodes`, returns one row per seed (`step` is the step at the window's end) and
    /// starts a new window.
    member w.Close(seeds: int64[], progress: Progress, step: int64, epsilon: float, sps: float) : DqnMetrics[] =
        let t = w.Steps
        let d = toArray (isDone.narrow (0L, 0L, int64 t))
        let rets = toArray (ret.narrow (0L, 0L, int64 t))
        let lens = toArray (len.narrow (0L, 0L, int64 t))
        let stepAtStart = step - int64 (t * N)
        let winEps = Array.init S (fun _ -> ResizeArray<Episode>())

        for i in 0 .. t - 1 do
            for k in 0 .. S - 1 do
                for j in 0 .. N - 1 do
                    let c = (i * S * N) + k * N + j

                    if d[c] <> 0.0 then
                        let e =
                            {
                                EndStep = stepAtStart + int64 ((i + 1) * N)
                                Return = rets[c]
                                Length = int lens[c]
                            }

                        winEps[k].Add e
                        progress.Episodes[k].Add e

        let loss, q, grad = toArray sumLoss, toArray sumQ, toArray sumGrad
        let learns = w.Learns

        let per (x: float[]) k =
            if learns > 0 then x[k] / float learns else nan

        let meanOf (f: Episode -> float) (eps: ResizeArray<Episode>) =
            if eps.Count > 0 then eps |> Seq.averageBy f else nan

        for x in [ sumLoss; sumQ; sumGrad ] do
            x.zero_ () |> ignore

        w.Learns <- 0
        w.Steps <- 0
        isDone.zero_ () |> ignore

        [|
            for k in 0 .. S - 1 ->
                {
                    Seed = seeds[k]
                    Step = step
                    EpisodicReturn = meanOf (fun e -> e.Return) winEps[k]
                    EpisodicLength = meanOf (fun e -> float e.Length) winEps[k]
                    Episodes = winEps[k].Count
                    ReturnLast20 = Diagnostics.lastMean 20 progress.Episodes[k]
                    TdLoss = per loss k
                    QMean = per q k
                    GradNorm = per grad k
                    Epsilon = epsilon
                    Sps = sps
                }
        |]

    interface IDisposable with
        member _.Dispose() =
            for x in [ isDone; ret; len; sumLoss; sumQ; sumGrad ] do
                x.Dispose()
