/// PPO's configuration (Schulman et al. 2017, with the seed documents' and CleanRL's keys):
/// the `PpoConfig` record, seed 002's defaults, the config keys with their documentation and
/// allowed values, the cross-field checks, and the environments a config describes.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// PPO hyperparameters. Config keys (snake_case) are listed in `fields`.
type PpoConfig =
    {
        /// Environment id, e.g. "Pendulum-v1".
        EnvId: string
        /// Parallel environments per seed.
        NumEnvs: int
        /// Rollout length per environment per update (the rollout holds NumEnvs * NumSteps steps).
        NumSteps: int
        /// Environment steps per seed over the whole run.
        TotalTimesteps: int64
        /// Passes over each rollout.
        UpdateEpochs: int
        /// Samples per minibatch (per seed); used when `NumMinibatches` is 0.
        MinibatchSize: int
        /// Minibatches per epoch (CleanRL's and PureJaxRL's `num_minibatches`); when > 0 it must
        /// divide BatchSize and sets the minibatch to BatchSize / NumMinibatches samples, so that
        /// a sweep over `num_envs` or `num_steps` keeps the number of gradient steps per update;
        /// 0 uses `MinibatchSize` instead.
        NumMinibatches: int
        /// Discount factor.
        Gamma: float
        /// GAE lambda.
        GaeLambda: float
        /// PPO clip range epsilon.
        ClipEps: float
        /// Actor (policy) learning rate.
        ActorLr: float
        /// Critic (value) learning rate.
        CriticLr: float
        /// Anneal both learning rates linearly to 0 over the run.
        AnnealLr: bool
        /// Entropy bonus coefficient.
        EntCoef: float
        /// Global gradient-norm clip per network and seed; 0 disables clipping.
        MaxGradNorm: float
        /// Normalise advantages per minibatch.
        NormAdv: bool
        /// Clip the value loss with this range (CleanRL `clip_vloss`); 0 disables it.
        ClipVloss: float
        /// Hidden layer sizes of actor and critic.
        Hidden: int list
        /// Hidden activation.
        Activation: Activation
        /// Gaussian standard deviation parameterisation (seed 003's three kinds and gSDE): "softplus"
        /// (state-conditioned, seed 002), "logstd" (a state-independent learned parameter),
        /// "fixed" (the constant `FixedSigma`, not learned) or "sde" (generalized state-dependent
        /// exploration, Raffin, Kober and Stulp 2021: noise h W from the policy's last hidden
        /// features h and a learned-variance matrix W redrawn every `SdeSampleFreq` steps; see
        /// `Nn.Sigma.StateDependent`).
        Sigma: string
        /// The standard deviation when Sigma = "fixed" (action units, > 0).
        FixedSigma: float
        /// Initial log standard deviation for Sigma = "logstd" (and of every entry of gSDE's sigma
        /// matrix for Sigma = "sde").
        InitLogStd: float
        /// With Sigma = "sde": draw new exploration matrices every this many rollout steps
        /// (SB3 `sde_sample_freq`); -1 draws them once per rollout.
        SdeSampleFreq: int
        /// Squash the Gaussian mean with high * tanh(.) (seed 002) instead of leaving it linear.
        MeanTanh: bool
        /// Weight initialisation: "orthogonal" (CleanRL) or "default" (PyTorch nn.Linear).
        Init: string
        /// Normalise observations with running mean/variance.
        NormObs: bool
        /// Scale rewards by a running estimate of the discounted return's std.
        NormReward: bool
        /// Seed(s), device, threads and the optimizer's beta_1, beta_2, adam_eps (`RunSettings`).
        Run: RunSettings
        /// Evaluation episodes (deterministic policy) at the end of training.
        EvalEpisodes: int
        /// Base seed of the evaluation environments: training seed s evaluates on starts drawn
        /// from EvalSeed + s (kept apart from the training streams).
        EvalSeed: int64
        /// Periodic evaluation interval in environment steps per seed (0: only the final evaluation; `PeriodicEval`).
        /// `capture_video`: record each seed's first evaluation episode as a video after training.
        CaptureVideo: bool
        EvalEvery: int64
        /// One network with a shared trunk and policy/value heads (seed 001), trained with the
        /// total loss surrogate + VfCoef * value loss - EntCoef * entropy by one optimizer at
        /// learning rate `Lr`; false: separate actor and critic (seed 002).
        SharedNetwork: bool
        /// With `SharedNetwork`: whether policy and value share the trunk (seed 001); false gives
        /// two MLPs in one network trained by one optimizer on the total loss with one gradient
        /// clip, which is CleanRL's and PureJaxRL's CartPole agent.
        ShareTrunk: bool
        /// Value-loss coefficient of the total loss (shared network only).
        VfCoef: float
        /// Learning rate of the single optimizer of the shared network.
        Lr: float
        /// Optimizer: "adam", "rmsprop" (alpha = Beta2) or "sgd"; applies to both paths.
        Optimizer: string
        /// Normalise advantages once over the whole rollout per seed (seed 001) instead of per
        /// minibatch; takes precedence over `NormAdv`.
        NormAdvBatch: bool
        /// How the N copies of the environment are stepped (Gymnasium's `make_vec` names):
        /// "vector" is the tensor-batched form (`BatchedClassicEnv`, on the device, the only
        /// choice for CUDA); "sync" is `SyncVectorEnv`, the single forms stepped one after
        /// another on the host (faster on the CPU for few copies, bit-exact with Gymnasium).
        /// The two draw different reset streams, so a run's episodes depend on this choice.
        VectorizationMode: string
        /// The policy loss: "clip" (the clipped surrogate, PPO paper eq. 7) or "kl_penalty" (the
        /// surrogate minus beta * KL(old || new) with an adaptive beta, section 4; seed 003's PPO1).
        Loss: string
        /// Initial KL coefficient beta for Loss = "kl_penalty" (per seed, adapted after every update).
        KlBeta: float
        /// Target KL d_targ for Loss = "kl_penalty": beta halves when the update's KL < d_targ / 1.5
        /// and doubles when > 1.5 d_targ.
        KlTarget: float
    }

    /// Rollout size per seed: NumEnvs * NumSteps.
    member c.BatchSize = c.NumEnvs * c.NumSteps
    /// Number of updates: TotalTimesteps / BatchSize (at least 1).
    member c.NumUpdates = max 1 (int (c.TotalTimesteps / int64 c.BatchSize))

    /// Samples per minibatch actually used: BatchSize / NumMinibatches when NumMinibatches > 0,
    /// else MinibatchSize.
    member c.MinibatchLength =
        if c.NumMinibatches > 0 then
            c.BatchSize / c.NumMinibatches
        else
            c.MinibatchSize

    /// Minibatches per epoch: NumMinibatches when set, else BatchSize / MinibatchSize (samples
    /// left over are skipped in that epoch).
    member c.MinibatchesPerEpoch =
        if c.NumMinibatches > 0 then
            c.NumMinibatches
        else
            c.BatchSize / c.MinibatchSize

    /// The seed values trained: `Run.Seeds`.
    member c.Seeds = c.Run.Seeds

    /// True for Loss = "kl_penalty" (the KL-penalised surrogate), false for "clip".
    member c.KlPenalty = c.Loss = "kl_penalty"

/// The defaults, keys and checks of `PpoConfig`.
module PpoConfig =
    /// Seed 002's table (Pendulum-v1): 100,000 steps, one environment, rollout 2048, 10 epochs,
    /// minibatch 64, gamma 0.99, lambda 0.95, clip 0.2, actor lr 3e-4, critic lr 1e-3,
    /// mu = 2 tanh, sigma = softplus + 1e-5, 64-64 ReLU networks.
    let seedDefaults =
        {
            EnvId = "Pendulum-v1"
            NumEnvs = 1
            NumSteps = 2048
            TotalTimesteps = 100_000L
            UpdateEpochs = 10
            MinibatchSize = 64
            NumMinibatches = 0
            Gamma = 0.99
            GaeLambda = 0.95
            ClipEps = 0.2
            ActorLr = 3e-4
            CriticLr = 1e-3
            AnnealLr = false
            EntCoef = 0.0
            MaxGradNorm = 0.0
            NormAdv = true
            ClipVloss = 0.0
            Hidden = [ 64; 64 ]
            Activation = Relu
            Sigma = "softplus"
            InitLogStd = 0.0
            SdeSampleFreq = -1
            MeanTanh = true
            Init = "default"
            NormObs = false
            NormReward = false
            Run = RunSettings.Defaults
            EvalEpisodes = 10
            EvalSeed = 1_000_000L
            EvalEvery = 0L
            CaptureVideo = false
            SharedNetwork = false
            ShareTrunk = true
            VfCoef = 0.5
            Lr = 3e-4
            Optimizer = "adam"
            NormAdvBatch = false
            VectorizationMode = "vector"
            Loss = "clip"
            KlBeta = 1.0
            KlTarget = 0.01
            FixedSigma = 0.5
        }

    /// Keys of the environment, the rollout and the minibatches.
    let private budgetFields: Field<PpoConfig> list =
        [
            Field.envId "Environment id." (fun c -> c.EnvId) (fun c v -> { c with EnvId = v })
            Field.int "num_envs" "Parallel environments per seed." (Allow.ge 1) (fun c -> c.NumEnvs) (fun c v ->
                { c with NumEnvs = v })
            Field.int
                "num_steps"
                "Rollout length per environment per update."
                (Allow.ge 1)
                (fun c -> c.NumSteps)
                (fun c v -> { c with NumSteps = v })
            Field.int64
                "total_timesteps"
                "Environment steps per seed over the run."
                (Allow.ge 1L)
                (fun c -> c.TotalTimesteps)
                (fun c v -> { c with TotalTimesteps = v })
            Field.int "update_epochs" "Passes over each rollout." (Allow.ge 1) (fun c -> c.UpdateEpochs) (fun c v ->
                { c with UpdateEpochs = v })
            Field.int
                "minibatch_size"
                "Samples per minibatch (per seed); at most num_envs * num_steps."
                (Allow.ge 1)
                (fun c -> c.MinibatchSize)
                (fun c v -> { c with MinibatchSize = v })
            Field.int
                "num_minibatches"
                "Minibatches per epoch (CleanRL, PureJaxRL); > 0 must divide num_envs * num_steps and replaces minibatch_size by their quotient; 0 uses minibatch_size."
                (Allow.ge 0)
                (fun c -> c.NumMinibatches)
                (fun c v -> { c with NumMinibatches = v })
        ]

    /// Keys of the returns, the clipped objective and its optimisation (PPO paper eq. 7, 9, 11).
    let private objectiveFields: Field<PpoConfig> list =
        [
            Field.float "gamma" "Discount factor." (Allow.openClosed 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
                { c with Gamma = v })
            Field.float
                "gae_lambda"
                "GAE lambda (0: one-step TD, 1: Monte Carlo)."
                (Allow.between 0.0 1.0)
                (fun c -> c.GaeLambda)
                (fun c v -> { c with GaeLambda = v })
            Field.float "clip_eps" "PPO clip range epsilon." (Allow.gt 0.0) (fun c -> c.ClipEps) (fun c v ->
                { c with ClipEps = v })
            Field.float "actor_lr" "Actor learning rate." (Allow.gt 0.0) (fun c -> c.ActorLr) (fun c v ->
                { c with ActorLr = v })
            Field.float "critic_lr" "Critic learning rate." (Allow.gt 0.0) (fun c -> c.CriticLr) (fun c v ->
                { c with CriticLr = v })
            Field.bool "anneal_lr" "Anneal both learning rates linearly towards 0." (fun c -> c.AnnealLr) (fun c v ->
                { c with AnnealLr = v })
            Field.float "ent_coef" "Entropy bonus coefficient." (Allow.ge 0.0) (fun c -> c.EntCoef) (fun c v ->
                { c with EntCoef = v })
            Field.float
                "max_grad_norm"
                "Global gradient-norm clip per network and seed; 0 disables it."
                (Allow.ge 0.0)
                (fun c -> c.MaxGradNorm)
                (fun c v -> { c with MaxGradNorm = v })
            Field.bool "norm_adv" "Normalise advantages per minibatch." (fun c -> c.NormAdv) (fun c v ->
                { c with NormAdv = v })
            Field.float
                "clip_vloss"
                "Clip range of the value loss (CleanRL clip_vloss); 0 disables it."
                (Allow.ge 0.0)
                (fun c -> c.ClipVloss)
                (fun c v -> { c with ClipVloss = v })
        ]

    /// Keys of the networks and of observation and reward normalisation.
    let private networkFields: Field<PpoConfig> list =
        [
            Field.intList
                "hidden"
                "Hidden layer sizes of actor and critic."
                (Allow.ge 1)
                (fun c -> c.Hidden)
                (fun c v -> { c with Hidden = v })
            Field.activation (fun c -> c.Activation) (fun c v -> { c with Activation = v })
            Field.choice
                "sigma"
                "Gaussian std: softplus (state-conditioned, seed 002), logstd (state-independent learned parameter), fixed (the constant fixed_sigma, seed 003) or sde (generalized state-dependent exploration, Raffin et al. 2021, SB3 use_sde)."
                [ "softplus"; "logstd"; "fixed"; "sde" ]
                (fun c -> c.Sigma)
                (fun c v -> { c with Sigma = v })
            Field.float
                "init_log_std"
                "Initial log std when sigma = logstd; with sigma = sde, of every entry of the exploration matrix's std."
                Allow.any
                (fun c -> c.InitLogStd)
                (fun c v -> { c with InitLogStd = v })
            Field.int
                "sde_sample_freq"
                "With sigma = sde: draw new exploration matrices every n rollout steps (SB3 sde_sample_freq); -1: once per rollout."
                ("-1 or >= 1", (fun v -> v = -1 || v >= 1))
                (fun c -> c.SdeSampleFreq)
                (fun c v -> { c with SdeSampleFreq = v })
            Field.bool
                "mean_tanh"
                "Squash the Gaussian mean to the action bound with high * tanh (seed 002)."
                (fun c -> c.MeanTanh)
                (fun c v -> { c with MeanTanh = v })
            Field.choice
                "init"
                "Weight initialisation: orthogonal (CleanRL) or default (PyTorch nn.Linear)."
                [ "orthogonal"; "default" ]
                (fun c -> c.Init)
                (fun c v -> { c with Init = v })
            Field.bool
                "norm_obs"
                "Normalise observations with running mean and variance."
                (fun c -> c.NormObs)
                (fun c v -> { c with NormObs = v })
            Field.bool
                "norm_reward"
                "Scale rewards by the running std of the discounted return (Gymnasium NormalizeReward)."
                (fun c -> c.NormReward)
                (fun c v -> { c with NormReward = v })
        ]

    /// Keys of the run (seeds, device, checkpoints, logging) and of the final evaluation.
    let private runFields: Field<PpoConfig> list =
        [
            yield! Field.runSettings (fun c -> c.Run) (fun c v -> { c with Run = v })
            Field.int
                "eval_episodes"
                "Episodes of the deterministic policy evaluated at the end."
                (Allow.ge 1)
                (fun c -> c.EvalEpisodes)
                (fun c v -> { c with EvalEpisodes = v })
            Field.int64
                "eval_seed"
                "Base seed of the evaluation environments; training seed s uses eval_seed + s."
                (Allow.ge 0L)
                (fun c -> c.EvalSeed)
                (fun c v -> { c with EvalSeed = v })
            Field.evalEvery "environment steps per seed" (fun c -> c.EvalEvery) (fun c v -> { c with EvalEvery = v })
            Field.captureVideo (fun c -> c.CaptureVideo) (fun c v -> { c with CaptureVideo = v })
        ]

    /// Keys of the variants: one shared network, the optimizer, the KL-penalty loss (PPO paper section 4).
    let private variantFields: Field<PpoConfig> list =
        [
            Field.bool
                "shared_network"
                "One network with policy and value heads trained by one optimizer on the total loss (seed 001; CleanRL, PureJaxRL with share_trunk: false); false: separate actor and critic with their own optimizers (seed 002)."
                (fun c -> c.SharedNetwork)
                (fun c v -> { c with SharedNetwork = v })
            Field.bool
                "share_trunk"
                "With shared_network: policy and value read one trunk (seed 001); false: two MLPs in the one network (CleanRL ppo.py, PureJaxRL ppo.py)."
                (fun c -> c.ShareTrunk)
                (fun c v -> { c with ShareTrunk = v })
            Field.float
                "vf_coef"
                "Value-loss coefficient of the total loss (shared_network only)."
                (Allow.ge 0.0)
                (fun c -> c.VfCoef)
                (fun c v -> { c with VfCoef = v })
            Field.float
                "lr"
                "Learning rate of the shared network's optimizer (shared_network only)."
                (Allow.gt 0.0)
                (fun c -> c.Lr)
                (fun c v -> { c with Lr = v })
            Field.choice
                "optimizer"
                "Optimizer of both paths: adam (beta_1, beta_2, adam_eps), rmsprop (alpha = beta_2, adam_eps) or sgd."
                Optim.optimizerNames
                (fun c -> c.Optimizer)
                (fun c v -> { c with Optimizer = v })
            Field.bool
                "norm_adv_batch"
                "Normalise advantages once over the whole rollout per seed (seed 001) instead of per minibatch."
                (fun c -> c.NormAdvBatch)
                (fun c v -> { c with NormAdvBatch = v })
            Field.vectorizationMode (fun c -> c.VectorizationMode) (fun c v -> { c with VectorizationMode = v })
            Field.float
                "fixed_sigma"
                "Gaussian std when sigma = fixed (action units)."
                (Allow.gt 0.0)
                (fun c -> c.FixedSigma)
                (fun c v -> { c with FixedSigma = v })
            Field.choice
                "loss"
                "Policy loss: clip (clipped surrogate, PPO paper eq. 7) or kl_penalty (surrogate - kl_beta * KL(old || new), adaptive kl_beta, section 4; seed 003's PPO1)."
                [ "clip"; "kl_penalty" ]
                (fun c -> c.Loss)
                (fun c v -> { c with Loss = v })
            Field.float
                "kl_beta"
                "Initial KL coefficient for loss = kl_penalty (per seed; halved when the update's KL < kl_target / 1.5, doubled when > 1.5 kl_target)."
                (Allow.gt 0.0)
                (fun c -> c.KlBeta)
                (fun c v -> { c with KlBeta = v })
            Field.float
                "kl_target"
                "Target KL(old || new) per update for loss = kl_penalty (the PPO paper's d_targ)."
                (Allow.gt 0.0)
                (fun c -> c.KlTarget)
                (fun c v -> { c with KlTarget = v })
        ]

    /// The config keys of `PpoConfig` (snake_case, as in the YAML files), with documentation and
    /// allowed values.
    let fields: Field<PpoConfig> list =
        budgetFields @ objectiveFields @ networkFields @ runFields @ variantFields

    /// Cross-field checks of a PPO config; raises `ConfigError`.
    let validate (c: PpoConfig) =
        Config.checkVectorization c.VectorizationMode c.Run.Device

        // the batch (num_envs * num_steps) must be an int: every size below is one
        Config.check
            (int64 c.NumEnvs * int64 c.NumSteps <= int64 Int32.MaxValue)
            "num_steps"
            (string c.NumSteps)
            $"num_envs * num_steps <= {Int32.MaxValue} (num_envs = {c.NumEnvs})"

        if c.NumMinibatches > 0 then
            Config.check
                (c.BatchSize % c.NumMinibatches = 0)
                "num_minibatches"
                (string c.NumMinibatches)
                $"a divisor of num_envs * num_steps = {c.BatchSize}, or 0 to use minibatch_size"
        else
            Config.check
                (c.MinibatchSize <= c.BatchSize)
                "minibatch_size"
                (string c.MinibatchSize)
                $"<= num_envs * num_steps = {c.BatchSize}"

        Config.check
            (c.TotalTimesteps >= int64 (c.NumEnvs * c.NumSteps))
            "total_timesteps"
            (string c.TotalTimesteps)
            $">= num_envs * num_steps = {c.NumEnvs * c.NumSteps} (one update)"

    /// Batched environments for `cfg` from the registry, on the config's device: the tensor-batched
    /// form, or `SyncVectorEnv` for `vectorization_mode: sync`.
    let makeEnv (cfg: PpoConfig) : int -> IBatchedEnv =
        let device = Native.device cfg.Run.Device
        fun n -> Envs.makeVec cfg.VectorizationMode cfg.EnvId n device
