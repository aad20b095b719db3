/// The GRPO loop: epochs of shuffled batches, one group update per batch, metrics rows every
/// `log_every` updates, the test accuracy after every epoch; with the rows' columns and the
/// hooks a caller logs and checkpoints through.
namespace Rl.Grpo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// One metrics row for one seed: averages over the updates since the previous row.
type Row =
    {
        Seed: int64
        /// Fractional epoch reached (1.0 = end of the first epoch).
        Epoch: float
        /// Training images processed by this seed so far.
        Step: int64
        /// Mean reward of the sampled guesses (the sampling policy's training accuracy).
        RewardMean: float
        /// Greedy accuracy on the test images, fraction in [0, 1]; NaN except at epoch ends.
        TestAccuracy: float
        /// Exact KL(pi || pi_ref) over the 10 digits, at the sampling policy, averaged over images
        /// (the loss's penalty uses the k3 estimate, which is unbiased but heavy-tailed).
        KlRef: float
        /// k3 KL between old and new policy within updates (PPO's approx_kl).
        ApproxKl: float
        ClipFraction: float
        Entropy: float
        PolicyLoss: float
        /// Gradient norm before clipping.
        GradNorm: float
        /// Fraction of groups whose G rewards were all equal (zero advantage: no signal).
        ZeroAdvFraction: float
        /// Training images per second over all seeds, since the previous row.
        ImagesPerSecond: float
        /// Seconds the epoch took (training only, not the test); NaN except at epoch ends.
        EpochSeconds: float
    }

/// Hooks through which a caller watches and checkpoints a run.
type Hooks =
    {
        /// Called with one row per seed whenever a metrics row is complete.
        OnRows: Agent -> Row[] -> unit
        /// Called after each epoch (1-based) with its test accuracy per seed.
        OnEpoch: Agent -> int -> float[] -> unit
    }

/// What `train` returns.
type TrainResult =
    {
        Agent: Agent
        /// All metrics rows, in order (one per seed per row).
        Metrics: Row list
        /// Test accuracy after each epoch: EpochAccuracy[e][k] for epoch e+1 and seed k.
        EpochAccuracy: float[][]
        /// Training seconds of each epoch (all seeds together).
        EpochSeconds: float[]
        WallSeconds: float
    }

/// Metrics rows and training GRPO.
module Loop =
    /// Metric names in CSV column order, with TensorBoard tags ("" = CSV only).
    let metricColumns =
        [
            "epoch", ""
            "global_step", ""
            "reward_mean", "charts/reward_mean"
            "test_accuracy", "charts/test_accuracy"
            "kl_ref", "losses/kl_ref"
            "approx_kl", "losses/approx_kl"
            "clip_fraction", "losses/clipfrac"
            "entropy", "losses/entropy"
            "policy_loss", "losses/policy_loss"
            "grad_norm", "losses/grad_norm"
            "zero_adv_fraction", "charts/zero_adv_fraction"
            "images_per_second", "charts/SPS"
            "epoch_seconds", "time/epoch_s"
        ]

    /// The values of a row, in `metricColumns` order.
    let metricValues (r: Row) =
        [|
            r.Epoch
            float r.Step
            r.RewardMean
            r.TestAccuracy
            r.KlRef
            r.ApproxKl
            r.ClipFraction
            r.Entropy
            r.PolicyLoss
            r.GradNorm
            r.ZeroAdvFraction
            r.ImagesPerSecond
            r.EpochSeconds
        |]

    /// Hooks that do nothing.
    let noHooks =
        {
            OnRows = fun _ _ -> ()
            OnEpoch = fun _ _ _ -> ()
        }

    /// Phase 5, log: one `Row` per seed from the running sums `v` (host copies of the 8 sums: reward,
    /// kl_ref, approx_kl, clip fraction, entropy, policy loss, grad norm, zero-advantage fraction)
    /// over `n` updates. Raises `Ppo.TrainingDivergedException` (update, quantity) for a NaN or
    /// infinite loss, KL or entropy.
    let internal rowsOf
        (seeds: int64[])
        (update: int)
        (epoch: float)
        (step: int64)
        (testAcc: float[] option)
        (imagesPerSecond: float)
        (epochSeconds: float)
        (v: float[][])
        (n: float)
        : Row[] =
        let rows =
            [|
                for k in 0 .. seeds.Length - 1 ->
                    {
                        Seed = seeds[k]
                        Epoch = epoch
                        Step = step
                        RewardMean = v[0][k] / n
                        TestAccuracy =
                            (match testAcc with
                             | Some a -> a[k]
                             | None -> nan)
                        KlRef = v[1][k] / n
                        ApproxKl = v[2][k] / n
                        ClipFraction = v[3][k] / n
                        Entropy = v[4][k] / n
                        PolicyLoss = v[5][k] / n
                        GradNorm = v[6][k] / n
                        ZeroAdvFraction = v[7][k] / n
                        ImagesPerSecond = imagesPerSecond
                        EpochSeconds = epochSeconds
                    }
            |]

        for r in rows do
            for name, x in [ "policy_loss", r.PolicyLoss; "kl_ref", r.KlRef; "entropy", r.Entropy ] do
                if Double.IsNaN x || Double.IsInfinity x then
                    raise (Train.TrainingDivergedException(update, name, x))

        rows

    /// Trains GRPO (DeepSeekMath, Algorithm 1) on MNIST for `cfg.Epochs` epochs of shuffled batches
    /// of `cfg.BatchSize` images per seed: per batch, `sampleGroup` (G guesses from the old policy,
    /// rewarded), `Advantage.groupRelative` (no critic), `learnGroup`; a metrics row every
    /// `cfg.LogEvery` batches and after each epoch (with the greedy test accuracy), then
    /// `hooks.OnEpoch`. Raises `Ppo.TrainingDivergedException` (update index, quantity, value) when
    /// a loss becomes NaN or infinite, and `ConfigError` when a batch is larger than the training set.
    let train (data: Data) (cfg: GrpoConfig) (hooks: Hooks) : TrainResult =
        let device = Native.device cfg.Run.Device

        if cfg.Run.Threads > 0 then
            Native.setThreads cfg.Run.Threads

        let N = data.Train.Count
        Config.check (cfg.BatchSize <= N) "batch_size" (string cfg.BatchSize) $"<= the training images ({N})"
        let seeds = cfg.Seeds
        let S = seeds.Length
        let B = cfg.BatchSize
        let batches = N / B
        let agent = Agent.make cfg device

        let shuffleGens =
            seeds
            |> Array.map (fun s -> Seed.generator torch.CPU (Seed.derive s "grpo-shuffle"))

        let sampleGens =
            seeds
            |> Array.map (fun s -> Seed.generator device (Seed.derive s "grpo-sample"))

        let metrics = Collections.Generic.List<Row>()
        let epochAcc = Collections.Generic.List<float[]>()
        let epochSecs = Collections.Generic.List<float>()
        let total = Stopwatch.StartNew()
        let mutable update = 0
        // Running sums since the last row: reward, kl_ref, approx_kl, clip, entropy, policy, grad, zero-adv.
        let sums =
            Array.init 8 (fun _ -> torch.zeros ([| int64 S |], dtype = torch.float64, device = device))

        let mutable updatesInRow = 0
        let rowClock = Stopwatch.StartNew()

        let flushRow (epoch: float) (step: int64) (testAcc: float[] option) (epochSeconds: float) =
            let ips = float (updatesInRow * B * S) / rowClock.Elapsed.TotalSeconds

            let rows =
                rowsOf
                    seeds
                    update
                    epoch
                    step
                    testAcc
                    ips
                    epochSeconds
                    (sums |> Array.map toArray)
                    (float (max 1 updatesInRow))

            for s in sums do
                s.zero_ () |> ignore

            updatesInRow <- 0
            rowClock.Restart()
            metrics.AddRange rows
            hooks.OnRows agent rows

        for epoch in 1 .. cfg.Epochs do
            let epochClock = Stopwatch.StartNew()

            if cfg.RefUpdateEpochs > 0 && epoch > 1 && (epoch - 1) % cfg.RefUpdateEpochs = 0 then
                Agent.syncReference agent

            use perm =
                torch.stack([| for g in shuffleGens -> torch.randperm (int64 N, generator = g) |], 0L).``to`` device

            for j in 0 .. batches - 1 do
                use _scope = torch.NewDisposeScope()
                update <- update + 1
                // Phase 1: a batch of B images per seed.
                let idx = perm.narrow(1L, int64 (j * B), int64 B).reshape(-1L)

                let x =
                    data.Train.Images.index_select(0L, idx).reshape(int64 S, int64 B, int64 Agent.ObsDim)

                let y = data.Train.Labels.index_select(0L, idx).reshape(int64 S, int64 B)
                Learn.update cfg agent sampleGens sums x y
                updatesInRow <- updatesInRow + 1
                let step = int64 ((epoch - 1) * batches + j + 1) * int64 B

                if j < batches - 1 && (j + 1) % cfg.LogEvery = 0 then
                    flushRow (float (epoch - 1) + float (j + 1) / float batches) step None nan

            let seconds = epochClock.Elapsed.TotalSeconds
            let testAcc = Agent.accuracy agent.Actor data.Test
            flushRow (float epoch) (int64 (epoch * batches) * int64 B) (Some testAcc) seconds
            epochAcc.Add testAcc
            epochSecs.Add seconds
            hooks.OnEpoch agent epoch testAcc

        for s in sums do
            s.Dispose()

        {
            Agent = agent
            Metrics = List.ofSeq metrics
            EpochAccuracy = epochAcc.ToArray()
            EpochSeconds = epochSecs.ToArray()
            WallSeconds = total.Elapsed.TotalSeconds
        }
