/// Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", section 4.1, Algorithm 1)
/// on MNIST as a one-step "classification as RL" problem (seed 004, module 7): the state is an
/// image, the action a guessed digit, the reward 1 when the guess is right and 0 otherwise.
///
/// GRPO is PPO without a critic: for each input it samples a group of G actions from the old
/// policy and uses the group's mean reward as the baseline (`Advantage.groupRelative`), then
/// optimises PPO's clipped surrogate (`Losses.ppoClip`) for a few inner epochs, optionally with
/// a k3 KL penalty to a frozen reference policy (`Losses.klToReference`). S seeds train as one
/// batched computation (every parameter has a leading seed axis; see `Nn`).
///
/// One update reads top to bottom like the paper's Algorithm 1: take a batch of B images per
/// seed, sample G guesses per image from the old policy, score them, compute group-relative
/// advantages, take `UpdateEpochs` gradient steps on the batch, discard.
module Rl.Grpo

open System
open System.Diagnostics
open TorchSharp
open Rl.Tensor
open Rl.Nn

/// GRPO hyperparameters. Config keys (snake_case) are listed in `fields`.
type GrpoConfig =
    {
        /// Training images used per epoch (the first N of MNIST's 60,000); 0 = all.
        TrainSize: int
        /// Test images for the per-epoch accuracy (the first N of 10,000); 0 = all.
        TestSize: int
        /// Passes over the training images.
        Epochs: int
        /// Images per update per seed (each gets a group of G sampled guesses).
        BatchSize: int
        /// Group size G: guesses sampled per image (>= 2).
        GroupSize: int
        /// Gradient steps on each batch (DeepSeekMath's mu, "GRPO iterations").
        UpdateEpochs: int
        /// PPO clip range epsilon.
        ClipEps: float
        /// Adam learning rate.
        Lr: float
        /// Coefficient of the KL penalty to the reference policy (0 disables it; DeepSeekMath 0.04).
        Beta: float
        /// Refresh the reference policy to the current one every this many epochs (DeepSeekMath's
        /// iterative GRPO); 0 keeps the initial policy as the reference throughout.
        RefUpdateEpochs: int
        /// Divide the group-relative advantage by the group's std + eps (DeepSeekMath); false keeps
        /// reward - group mean (seed 004).
        ScaleByStd: bool
        /// Entropy bonus coefficient.
        EntCoef: float
        /// Global gradient-norm clip per seed; 0 disables clipping.
        MaxGradNorm: float
        /// Hidden layer sizes (seed 004: 128, 128).
        Hidden: int list
        /// Hidden activation.
        Activation: Activation
        /// Weight initialisation: "default" (PyTorch nn.Linear) or "orthogonal" (CleanRL; output
        /// gain 0.01, so the first policy is near uniform).
        Init: string
        /// Seed(s), device, threads and the optimizer's beta_1, beta_2, adam_eps (`RunSettings`).
        Run: RunSettings
        /// Updates per metrics row (a row also closes every epoch).
        LogEvery: int
    }

    /// The seed values trained: `Run.Seeds`.
    member c.Seeds = c.Run.Seeds

/// Seed 004's setting: a 784-128-128-10 actor, 10 epochs over the 60,000 training images. The
/// rest (batch 128 images, G = 8, 2 inner epochs, clip 0.2, Adam 1e-3, std-scaled advantages,
/// no KL penalty) is this library's choice; see `scripts/configs/grpo-mnist.yaml` for why.
let defaults =
    {
        TrainSize = 0
        TestSize = 0
        Epochs = 10
        BatchSize = 128
        GroupSize = 8
        UpdateEpochs = 2
        ClipEps = 0.2
        Lr = 1e-3
        Beta = 0.0
        RefUpdateEpochs = 0
        ScaleByStd = true
        EntCoef = 0.0
        MaxGradNorm = 0.0
        Hidden = [ 128; 128 ]
        Activation = Relu
        Init = "default"
        Run = RunSettings.Defaults
        LogEvery = 50
    }

/// Number of pixels of an MNIST image, the observation size.
[<Literal>]
let ObsDim = 784

/// Number of actions (digits).
[<Literal>]
let NumActions = 10

/// The policy, the frozen reference policy and the optimizer for S seeds.
type Agent =
    {
        Actor: Actor
        /// pi_ref: no gradient; a copy of the actor (initial, or refreshed every RefUpdateEpochs).
        Reference: Actor
        /// Adam over the policy's parameters in one flat buffer.
        Optimizer: Optim.FlatOptimizer
        Device: torch.Device
        Seeds: int64[]
    }

    interface IDisposable with
        member a.Dispose() =
            (a.Optimizer :> IDisposable).Dispose()
            a.Actor.Dispose()
            a.Reference.Dispose()

/// Copies the actor's parameters into the reference policy (pi_ref <- pi_theta).
let syncReference (agent: Agent) =
    use _ng = torch.no_grad ()

    for p, r in Seq.zip (agent.Actor.parameters ()) (agent.Reference.parameters ()) do
        r.copy_ p |> ignore

/// Builds the actor (784 -> hidden -> 10, Categorical), its reference copy and Adam for `cfg` on
/// `device`, initialised per seed (seed k's network is the same alone or in a batch). Raises
/// `ArgumentException` for an unknown init.
let makeAgent (cfg: GrpoConfig) (device: torch.Device) : Agent =
    let seeds = cfg.Seeds
    let S = seeds.Length

    let make name =
        new Actor(name, S, ObsDim, cfg.Hidden, cfg.Activation, CategoricalHead NumActions)

    let actor = make "actor"
    let reference = make "actor"

    match cfg.Init.ToLowerInvariant() with
    | "orthogonal" -> actor.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, seeds)
    | "default" -> actor.Initialise(TorchDefault, TorchDefault, seeds)
    | s -> invalidArg "init" $"unknown init '{s}'; allowed: orthogonal, default"

    actor.``to`` device |> ignore
    reference.``to`` device |> ignore

    for p in reference.parameters () do
        p.requires_grad <- false

    let agent =
        {
            Actor = actor
            Reference = reference
            Optimizer =
                Optim.makeFlat
                    (Optim.Adam(cfg.Run.Beta1, cfg.Run.Beta2, cfg.Run.AdamEps))
                    cfg.Lr
                    seeds.Length
                    (actor.parameters ())
            Device = device
            Seeds = seeds
        }

    syncReference agent
    agent

/// Training and test images.
type Data =
    {
        Train: Mnist.Dataset
        Test: Mnist.Dataset
    }

    interface IDisposable with
        member d.Dispose() =
            (d.Train :> IDisposable).Dispose()
            (d.Test :> IDisposable).Dispose()

/// MNIST for `cfg` (its TrainSize and TestSize) from `Mnist.dataDir ()` on the config's device.
/// Raises `FileNotFoundException` (saying how to fetch it) when the data is absent.
let loadData (cfg: GrpoConfig) : Data =
    let device = Native.device cfg.Run.Device

    {
        Train = Mnist.load Mnist.Train cfg.TrainSize device
        Test = Mnist.load Mnist.Test cfg.TestSize device
    }

/// The probabilities of each seed's policy for images [N; 784]: [S; N; 10] (no gradient).
let probabilities (actor: Actor) (images: Tensor) : Tensor =
    use _ng = torch.no_grad ()
    let S = actor.Seeds

    match actor.Dist(images.unsqueeze(0).expand(int64 S, -1L, -1L)) with
    | Categorical lp -> lp.exp ()
    | Normal _ -> invalidOp "probabilities: the GRPO actor has a Categorical head"

/// Accuracy of the greedy action (argmax of the policy, `Dist.mode`) on `data`, per seed: a
/// fraction in [0, 1], float[S]. Runs in chunks of 2,500 images.
let accuracy (actor: Actor) (data: Mnist.Dataset) : float[] =
    use _ng = torch.no_grad ()
    let S = actor.Seeds
    let N = data.Count
    let correct = Array.zeroCreate<float> S
    let chunk = 2500

    for start in 0..chunk .. N - 1 do
        use _scope = torch.NewDisposeScope()
        let n = min chunk (N - start)
        let x = data.Images.narrow (0L, int64 start, int64 n)
        let y = data.Labels.narrow (0L, int64 start, int64 n)
        let guess = Dist.mode (actor.Dist(x.unsqueeze(0).expand(int64 S, -1L, -1L))) // [S; n]
        let hits = toArray (guess.eq(y.unsqueeze 0).sum(1L))

        for k in 0 .. S - 1 do
            correct[k] <- correct[k] + hits[k]

    correct |> Array.map (fun c -> c / float N)

/// Loss terms of one GRPO step, per seed [S].
type LossParts =
    {
        /// The whole loss: Policy + beta * Kl - entCoef * Entropy.
        Loss: Tensor
        /// PPO clipped surrogate over the group advantages (`Losses.ppoClip`).
        Policy: Tensor
        /// k3 KL to the reference policy (`Losses.klToReference`).
        Kl: Tensor
        /// Mean entropy of the policy over the batch's images.
        Entropy: Tensor
        /// PPO diagnostics (approx KL to the old policy, clip fraction).
        Stats: Losses.PpoStats
    }

/// The GRPO objective (DeepSeekMath eq. 3, outcome supervision, one-token outputs), negated for
/// minimisation, for a batch: `logProbs` [S; B; 10] of the current policy, `actions` [S; B; G]
/// sampled from the old policy, `logProbOld`, `logProbRef`, `advantages` [S; B; G]. It is PPO's
/// clipped surrogate over the B * G samples with the group advantages, plus `beta` times the k3
/// KL to the reference, minus `entCoef` times the entropy.
let loss
    (clipEps: float)
    (beta: float)
    (entCoef: float)
    (logProbs: Tensor)
    (actions: Tensor)
    (logProbOld: Tensor)
    (logProbRef: Tensor)
    (advantages: Tensor)
    : LossParts =
    let S, B, G = actions.shape[0], actions.shape[1], actions.shape[2]
    let flat (x: Tensor) = x.reshape (S, B * G)
    let grouped = Categorical(logProbs.unsqueeze(2).expand(-1L, -1L, G, -1L))
    let logProbNew = flat (Dist.logProb grouped actions)

    let policy, stats =
        Losses.ppoClip clipEps logProbNew (flat logProbOld) (flat advantages)

    let kl = Losses.klToReference logProbNew (flat logProbRef)
    let entropy = (Dist.entropy (Categorical logProbs)).mean([| 1L |])

    {
        Loss = policy + beta * kl - entCoef * entropy
        Policy = policy
        Kl = kl
        Entropy = entropy
        Stats = stats
    }

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

/// Hooks through which a caller watches and checkpoints a run.
type Hooks =
    {
        /// Called with one row per seed whenever a metrics row is complete.
        OnRows: Agent -> Row[] -> unit
        /// Called after each epoch (1-based) with its test accuracy per seed.
        OnEpoch: Agent -> int -> float[] -> unit
    }

/// Hooks that do nothing.
let noHooks =
    {
        OnRows = fun _ _ -> ()
        OnEpoch = fun _ _ _ -> ()
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

/// The log-probabilities [S; B; 10] of a GRPO policy (always categorical) for images [S; B; 784].
let private logProbsOf (actor: Actor) (x: Tensor) =
    match actor.Dist x with
    | Categorical lp -> lp
    | Normal _ -> invalidOp "GRPO's actor is Categorical"

/// One batch's group, sampled from the old policy (no gradient).
type private Group =
    {
        /// G guesses per image, [S; B; G].
        Actions: Tensor
        /// log pi_old and log pi_ref of each guess, [S; B; G].
        LogProbOld: Tensor
        LogProbRef: Tensor
        /// 1 for a right guess, else 0, [S; B; G].
        Rewards: Tensor
        /// Exact KL(pi_old || pi_ref) over the 10 digits, mean per seed [S] (for the log; the
        /// penalty uses the k3 estimate).
        KlRef: Tensor
    }

/// Phase 2: G guesses per image from the old policy (`sampleGens[k]` drives seed k), scored
/// against the labels `y` [S; B] (DeepSeekMath, Algorithm 1, "sample G outputs ... compute
/// rewards"). No gradient.
let private sampleGroup (agent: Agent) (sampleGens: torch.Generator[]) (G: int) (x: Tensor) (y: Tensor) : Group =
    use _ng = torch.no_grad ()
    let lpOld = logProbsOf agent.Actor x

    let grouped (lp: Tensor) =
        Categorical(lp.unsqueeze(2).expand(-1L, -1L, int64 G, -1L))

    let actions = Dist.sample sampleGens (grouped lpOld) // [S; B; G]
    let rewards = actions.eq(y.unsqueeze 2).to_type torch.float32 // [S; B; G]
    let lpRef = logProbsOf agent.Reference x

    {
        Actions = actions
        LogProbOld = Dist.logProb (grouped lpOld) actions
        LogProbRef = Dist.logProb (grouped lpRef) actions
        Rewards = rewards
        KlRef = (lpOld.exp () * (lpOld - lpRef)).sum(-1L).mean([| 1L |])
    }

/// Phase 4: `cfg.UpdateEpochs` gradient steps of the GRPO loss on one batch (DeepSeekMath,
/// Algorithm 1, "for GRPO iteration = 1, ..., mu"), each clipped per seed to `cfg.MaxGradNorm`.
/// Adds the steps' mean approx KL, clip fraction, entropy, policy loss and gradient norm, per
/// seed, to `sums[2..6]`.
let private learnGroup
    (cfg: GrpoConfig)
    (agent: Agent)
    (sums: Tensor[])
    (x: Tensor)
    (group: Group)
    (advantages: Tensor)
    =
    for _ in 1 .. cfg.UpdateEpochs do
        use _inner = torch.NewDisposeScope()
        let lp = logProbsOf agent.Actor x

        let parts =
            loss cfg.ClipEps cfg.Beta cfg.EntCoef lp group.Actions group.LogProbOld group.LogProbRef advantages

        agent.Optimizer.ZeroGrad()
        parts.Loss.sum().backward()

        let gradNorm =
            if cfg.MaxGradNorm > 0.0 then
                agent.Optimizer.ClipGradNormPerSeed cfg.MaxGradNorm
            else
                agent.Optimizer.GradNormPerSeed()

        agent.Optimizer.Step()
        use _ng = torch.no_grad ()
        let w = 1.0 / float cfg.UpdateEpochs

        let add (i: int) (t: Tensor) =
            sums[i].add_(t.detach().to_type(torch.float64) * w) |> ignore

        add 2 parts.Stats.ApproxKl
        add 3 parts.Stats.ClipFraction
        add 4 parts.Entropy
        add 5 parts.Policy
        add 6 gradNorm

/// Phase 5, log: one `Row` per seed from the running sums `v` (host copies of the 8 sums: reward,
/// kl_ref, approx_kl, clip fraction, entropy, policy loss, grad norm, zero-advantage fraction)
/// over `n` updates. Raises `Ppo.TrainingDivergedException` (update, quantity) for a NaN or
/// infinite loss, KL or entropy.
let private rowsOf
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
                raise (Ppo.TrainingDivergedException(update, name, x))

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
    let agent = makeAgent cfg device

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
            syncReference agent

        use perm =
            torch.stack([| for g in shuffleGens -> torch.randperm (int64 N, generator = g) |], 0L).``to`` device

        for j in 0 .. batches - 1 do
            use _scope = torch.NewDisposeScope()
            update <- update + 1
            // Phase 1: a batch of B images per seed.
            let idx = perm.narrow(1L, int64 (j * B), int64 B).reshape(-1L)

            let x =
                data.Train.Images.index_select(0L, idx).reshape(int64 S, int64 B, int64 ObsDim)

            let y = data.Train.Labels.index_select(0L, idx).reshape(int64 S, int64 B)
            let group = sampleGroup agent sampleGens cfg.GroupSize x y
            sums[1].add_(group.KlRef.to_type torch.float64) |> ignore
            // Phase 3: group-relative advantages (no critic).
            let advantages = Advantage.groupRelative cfg.ScaleByStd group.Rewards
            learnGroup cfg agent sums x group advantages
            use _ng = torch.no_grad ()
            sums[0].add_(group.Rewards.mean([| 1L; 2L |]).to_type torch.float64) |> ignore
            let flat = group.Rewards.amax ([| 2L |]) - group.Rewards.amin ([| 2L |]) // [S; B]

            sums[7].add_(flat.eq(0.0f.ToScalar()).to_type(torch.float64).mean([| 1L |]))
            |> ignore

            updatesInRow <- updatesInRow + 1
            let step = int64 ((epoch - 1) * batches + j + 1) * int64 B

            if j < batches - 1 && (j + 1) % cfg.LogEvery = 0 then
                flushRow (float (epoch - 1) + float (j + 1) / float batches) step None nan

        let seconds = epochClock.Elapsed.TotalSeconds
        let testAcc = accuracy agent.Actor data.Test
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

// ---------------------------------------------------------------------------------------
// Config keys
// ---------------------------------------------------------------------------------------

/// The config keys of `GrpoConfig` (snake_case, as in the YAML files), with documentation and
/// allowed values.
let fields: Field<GrpoConfig> list =
    [
        Field.int
            "train_size"
            "Training images per epoch (first N of 60,000); 0 = all."
            (Allow.ge 0)
            (fun c -> c.TrainSize)
            (fun c v -> { c with TrainSize = v })
        Field.int
            "test_size"
            "Test images for the per-epoch accuracy (first N of 10,000); 0 = all."
            (Allow.ge 0)
            (fun c -> c.TestSize)
            (fun c v -> { c with TestSize = v })
        Field.int "epochs" "Passes over the training images." (Allow.ge 1) (fun c -> c.Epochs) (fun c v ->
            { c with Epochs = v })
        Field.int "batch_size" "Images per update per seed." (Allow.ge 1) (fun c -> c.BatchSize) (fun c v ->
            { c with BatchSize = v })
        Field.int
            "group_size"
            "Group size G: guesses sampled per image."
            (Allow.ge 2)
            (fun c -> c.GroupSize)
            (fun c v -> { c with GroupSize = v })
        Field.int
            "update_epochs"
            "Gradient steps on each batch (DeepSeekMath's mu)."
            (Allow.ge 1)
            (fun c -> c.UpdateEpochs)
            (fun c v -> { c with UpdateEpochs = v })
        Field.float "clip_eps" "PPO clip range epsilon." (Allow.gt 0.0) (fun c -> c.ClipEps) (fun c v ->
            { c with ClipEps = v })
        Field.float "lr" "Adam learning rate." (Allow.gt 0.0) (fun c -> c.Lr) (fun c v -> { c with Lr = v })
        Field.float
            "beta"
            "KL penalty coefficient to the reference policy; 0 disables it (DeepSeekMath: 0.04)."
            (Allow.ge 0.0)
            (fun c -> c.Beta)
            (fun c v -> { c with Beta = v })
        Field.int
            "ref_update_epochs"
            "Refresh the reference policy every this many epochs; 0 keeps the initial policy."
            (Allow.ge 0)
            (fun c -> c.RefUpdateEpochs)
            (fun c v -> { c with RefUpdateEpochs = v })
        Field.bool
            "scale_by_std"
            "Divide group advantages by the group std + eps (DeepSeekMath); false: reward - group mean."
            (fun c -> c.ScaleByStd)
            (fun c v -> { c with ScaleByStd = v })
        Field.float "ent_coef" "Entropy bonus coefficient." (Allow.ge 0.0) (fun c -> c.EntCoef) (fun c v ->
            { c with EntCoef = v })
        Field.float
            "max_grad_norm"
            "Global gradient-norm clip per seed; 0 disables it."
            (Allow.ge 0.0)
            (fun c -> c.MaxGradNorm)
            (fun c v -> { c with MaxGradNorm = v })
        Field.intList "hidden" "Hidden layer sizes." (Allow.ge 1) (fun c -> c.Hidden) (fun c v -> { c with Hidden = v })
        Field.choice
            "activation"
            "Hidden activation."
            [ "relu"; "tanh" ]
            (fun c ->
                (match c.Activation with
                 | Relu -> "relu"
                 | Tanh -> "tanh"))
            (fun c v ->
                { c with
                    Activation = Activation.Parse v
                })
        Field.choice
            "init"
            "Weight initialisation: default (PyTorch nn.Linear) or orthogonal (output gain 0.01)."
            [ "default"; "orthogonal" ]
            (fun c -> c.Init)
            (fun c v -> { c with Init = v })
        yield! Field.runSettings (fun c -> c.Run) (fun c v -> { c with Run = v })
        Field.int
            "log_every"
            "Updates per metrics row (every epoch also ends a row)."
            (Allow.ge 1)
            (fun c -> c.LogEvery)
            (fun c v -> { c with LogEvery = v })
    ]

/// Cross-field checks of a GRPO config; raises `ConfigError`.
let validate (c: GrpoConfig) =
    let n = if c.TrainSize > 0 then min c.TrainSize 60000 else 60000
    Config.check (c.BatchSize <= n) "batch_size" (string c.BatchSize) $"<= train_size ({n})"
