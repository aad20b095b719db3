/// DQN's configuration (Mnih et al. 2015, keys as CleanRL's `dqn.py` arguments): the `DqnConfig`
/// record, CleanRL's defaults, the config keys with their documentation and allowed values, the
/// cross-field checks, and the environments a config describes.
namespace Rl.Dqn

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// DQN hyperparameters. Config keys (snake_case) are listed in `fields`.
type DqnConfig =
    {
        /// Environment id (discrete actions), e.g. "CartPole-v1".
        EnvId: string
        /// Parallel environments per seed (CleanRL: 1).
        NumEnvs: int
        /// Environment steps per seed over the run.
        TotalTimesteps: int64
        /// Adam learning rate.
        LearningRate: float
        /// Replay capacity per seed (transitions).
        BufferSize: int
        /// Discount factor.
        Gamma: float
        /// Target update rate: 1 copies the online network (hard sync), < 1 is Polyak averaging.
        Tau: float
        /// Environment steps between target updates.
        TargetNetworkFrequency: int
        /// Minibatch size per seed.
        BatchSize: int
        /// Epsilon at the start of the schedule.
        StartE: float
        /// Epsilon at the end of the schedule and after it.
        EndE: float
        /// Fraction of TotalTimesteps over which epsilon falls linearly from StartE to EndE.
        ExplorationFraction: float
        /// Environment steps before learning begins (the buffer fills with exploratory data).
        LearningStarts: int64
        /// Environment steps between gradient steps.
        TrainFrequency: int
        /// Hidden layer sizes of the Q-network.
        Hidden: int list
        /// Hidden activation.
        Activation: Activation
        /// TD loss: mse or huber.
        Loss: Losses.TdLossKind
        /// Per-seed global gradient-norm clip; 0 disables it.
        MaxGradNorm: float
        /// Weight initialisation: "default" (PyTorch nn.Linear, as CleanRL's QNetwork) or "orthogonal".
        Init: string
        /// Seed(s), device, threads and the optimizer's beta_1, beta_2, adam_eps (`RunSettings`).
        Run: RunSettings
        /// Environment steps per metrics row.
        LogEvery: int
        /// Greedy evaluation episodes at the end of training.
        EvalEpisodes: int
        /// Seed of the evaluation environments.
        EvalSeed: int64
        /// Periodic evaluation interval in environment steps per seed (0: only the final evaluation; `PeriodicEval`).
        /// `capture_video`: record each seed's first evaluation episode as a video after training.
        CaptureVideo: bool
        EvalEvery: int64
        /// How the copies are stepped: "vector" (tensor-batched form) or "sync"
        /// (`SyncVectorEnv`); see `Envs.makeVec`.
        VectorizationMode: string
    }

    /// The seed values trained: `Run.Seeds`.
    member c.Seeds = c.Run.Seeds

/// The defaults, keys and checks of `DqnConfig`.
module DqnConfig =
    /// CleanRL `dqn.py` defaults (the peer measured in `docs/peers.md`): 500k steps,
    /// Adam 2.5e-4, buffer 10k, gamma 0.99, hard target copy every 500 steps, batch 128, epsilon
    /// 1 -> 0.05 over the first half, learning starts at 10k, a gradient step every 10 steps, a
    /// 120-84 ReLU network (seed 004's three-layer MLP), MSE loss, no gradient clipping.
    let defaults =
        {
            EnvId = "CartPole-v1"
            NumEnvs = 1
            TotalTimesteps = 500_000L
            LearningRate = 2.5e-4
            BufferSize = 10_000
            Gamma = 0.99
            Tau = 1.0
            TargetNetworkFrequency = 500
            BatchSize = 128
            StartE = 1.0
            EndE = 0.05
            ExplorationFraction = 0.5
            LearningStarts = 10_000L
            TrainFrequency = 10
            Hidden = [ 120; 84 ]
            Activation = Relu
            Loss = Losses.Mse
            MaxGradNorm = 0.0
            Init = "default"
            Run = RunSettings.Defaults
            LogEvery = 5000
            EvalEpisodes = 10
            EvalSeed = 1_000_000L
            EvalEvery = 0L
            CaptureVideo = false
            VectorizationMode = "vector"
        }

    /// Keys of the environment, the replay buffer, the TD target and the target network.
    let private learningFields: Field<DqnConfig> list =
        [
            Field.envId "Environment id (discrete actions)." (fun c -> c.EnvId) (fun c v -> { c with EnvId = v })
            Field.int "num_envs" "Parallel environments per seed." (Allow.ge 1) (fun c -> c.NumEnvs) (fun c v ->
                { c with NumEnvs = v })
            Field.int64
                "total_timesteps"
                "Environment steps per seed over the run."
                (Allow.ge 1L)
                (fun c -> c.TotalTimesteps)
                (fun c v -> { c with TotalTimesteps = v })
            Field.float "learning_rate" "Adam learning rate." (Allow.gt 0.0) (fun c -> c.LearningRate) (fun c v ->
                { c with LearningRate = v })
            Field.int
                "buffer_size"
                "Replay capacity per seed (transitions)."
                (Allow.ge 1)
                (fun c -> c.BufferSize)
                (fun c v -> { c with BufferSize = v })
            Field.float "gamma" "Discount factor." (Allow.between 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
                { c with Gamma = v })
            Field.float
                "tau"
                "Target update rate: 1 = hard copy, < 1 = Polyak averaging."
                (Allow.openClosed 0.0 1.0)
                (fun c -> c.Tau)
                (fun c v -> { c with Tau = v })
            Field.int
                "target_network_frequency"
                "Environment steps between target updates."
                (Allow.ge 1)
                (fun c -> c.TargetNetworkFrequency)
                (fun c v -> { c with TargetNetworkFrequency = v })
        ]

    /// Keys of epsilon-greedy exploration, the gradient steps and the Q-network.
    let private explorationFields: Field<DqnConfig> list =
        [
            Field.int "batch_size" "Minibatch size per seed." (Allow.ge 1) (fun c -> c.BatchSize) (fun c v ->
                { c with BatchSize = v })
            Field.float "start_e" "Initial epsilon." (Allow.between 0.0 1.0) (fun c -> c.StartE) (fun c v ->
                { c with StartE = v })
            Field.float "end_e" "Final epsilon." (Allow.between 0.0 1.0) (fun c -> c.EndE) (fun c v ->
                { c with EndE = v })
            Field.float
                "exploration_fraction"
                "Fraction of total_timesteps over which epsilon falls linearly."
                (Allow.between 0.0 1.0)
                (fun c -> c.ExplorationFraction)
                (fun c v -> { c with ExplorationFraction = v })
            Field.int64
                "learning_starts"
                "Environment steps before learning begins."
                (Allow.ge 0L)
                (fun c -> c.LearningStarts)
                (fun c v -> { c with LearningStarts = v })
            Field.int
                "train_frequency"
                "Environment steps between gradient steps."
                (Allow.ge 1)
                (fun c -> c.TrainFrequency)
                (fun c v -> { c with TrainFrequency = v })
            Field.intList "hidden" "Hidden layer sizes of the Q-network." (Allow.ge 1) (fun c -> c.Hidden) (fun c v ->
                { c with Hidden = v })
            Field.activation (fun c -> c.Activation) (fun c v -> { c with Activation = v })
            Field.choice
                "loss"
                "TD loss: mse or huber."
                [ "mse"; "huber" ]
                (fun c ->
                    (match c.Loss with
                     | Losses.Mse -> "mse"
                     | Losses.Huber -> "huber"))
                (fun c v ->
                    { c with
                        Loss = Losses.TdLossKind.Parse v
                    })
            Field.float
                "max_grad_norm"
                "Per-seed global gradient-norm clip; 0 disables it."
                (Allow.ge 0.0)
                (fun c -> c.MaxGradNorm)
                (fun c v -> { c with MaxGradNorm = v })
            Field.choice
                "init"
                "Weight initialisation: default (PyTorch nn.Linear) or orthogonal."
                [ "default"; "orthogonal" ]
                (fun c -> c.Init)
                (fun c v -> { c with Init = v })
        ]

    /// Keys of the run (seeds, device, checkpoints, logging) and of the final evaluation.
    let private runFields: Field<DqnConfig> list =
        [
            yield! Field.runSettings (fun c -> c.Run) (fun c v -> { c with Run = v })
            Field.int "log_every" "Environment steps per metrics row." (Allow.ge 1) (fun c -> c.LogEvery) (fun c v ->
                { c with LogEvery = v })
            Field.int
                "eval_episodes"
                "Greedy evaluation episodes at the end."
                (Allow.ge 1)
                (fun c -> c.EvalEpisodes)
                (fun c v -> { c with EvalEpisodes = v })
            Field.int64
                "eval_seed"
                "Seed of the evaluation environments."
                (Allow.ge 0L)
                (fun c -> c.EvalSeed)
                (fun c v -> { c with EvalSeed = v })
            Field.evalEvery "environment steps per seed" (fun c -> c.EvalEvery) (fun c v -> { c with EvalEvery = v })
            Field.captureVideo (fun c -> c.CaptureVideo) (fun c v -> { c with CaptureVideo = v })
            Field.vectorizationMode (fun c -> c.VectorizationMode) (fun c v -> { c with VectorizationMode = v })
        ]

    /// The config keys of `DqnConfig` (snake_case, as CleanRL's `dqn.py` arguments).
    let fields: Field<DqnConfig> list = learningFields @ explorationFields @ runFields

    /// Cross-field checks of a DQN config; raises `ConfigError`.
    let validate (c: DqnConfig) =
        Config.checkVectorization c.VectorizationMode c.Run.Device
        Config.check (c.BatchSize <= c.BufferSize) "batch_size" (string c.BatchSize) $"<= buffer_size = {c.BufferSize}"
        Config.check (c.NumEnvs <= c.BufferSize) "num_envs" (string c.NumEnvs) $"<= buffer_size = {c.BufferSize}"
        Config.check (c.EndE <= c.StartE) "end_e" (string c.EndE) $"<= start_e = {c.StartE}"
        Config.checkDiscreteEnv c.EnvId

    /// Batched environments for `cfg` from the registry, on the config's device, stepped as
    /// `vectorization_mode` says (`Envs.makeVec`).
    let makeEnv (cfg: DqnConfig) : int -> IBatchedEnv =
        let device = Native.device cfg.Run.Device
        fun n -> Envs.makeVec cfg.VectorizationMode cfg.EnvId n device
