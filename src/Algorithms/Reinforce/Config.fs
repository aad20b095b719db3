/// REINFORCE's configuration (Williams 1992; seed 004 module 4): the `ReinforceConfig` record,
/// its CartPole defaults, the config keys with their documentation and allowed values, and the
/// cross-field checks.
namespace Rl.Reinforce

open System
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// REINFORCE hyperparameters.
type ReinforceConfig =
    {
        /// Environment id (discrete actions), e.g. "CartPole-v1".
        EnvId: string
        /// Policy updates.
        Iterations: int
        /// Complete episodes per seed per update.
        EpisodesPerBatch: int
        /// Discount factor.
        Gamma: float
        /// Policy (Adam) learning rate.
        Lr: float
        /// Value-network (Adam) learning rate.
        CriticLr: float
        /// Full-batch gradient steps of the value network per update.
        CriticEpochs: int
        /// Subtract the learned V(s) from the return (REINFORCE with baseline); the critic is
        /// trained either way, so `gradientVariance` can compare both estimators.
        Baseline: bool
        /// Hidden layer sizes of the policy and the value network.
        Hidden: int list
        /// Hidden activation.
        Activation: Activation
        /// Seed(s), device, threads and the optimizer's beta_1, beta_2, adam_eps (`RunSettings`).
        Run: RunSettings
        /// Evaluation episodes of the deterministic (most likely action) policy after training.
        EvalEpisodes: int
        /// Base seed of the evaluation environments: training seed s evaluates on starts drawn
        /// from EvalSeed + s.
        EvalSeed: int64
        /// Periodic evaluation interval in iterations (updates) (0: only the final evaluation; `PeriodicEval`).
        EvalEvery: int64
    }

    /// The seed values trained: `Run.Seeds`.
    member c.Seeds = c.Run.Seeds

/// The defaults, keys and checks of `ReinforceConfig`.
module ReinforceConfig =
    /// Defaults for CartPole-v1: 8 episodes per update, gamma 0.99, Adam 1e-2 (policy) and 1e-2
    /// (value, 10 full-batch steps per update), 64-64 tanh networks, with the baseline.
    let defaults =
        {
            EnvId = "CartPole-v1"
            Iterations = 100
            EpisodesPerBatch = 8
            Gamma = 0.99
            Lr = 1e-2
            CriticLr = 1e-2
            CriticEpochs = 10
            Baseline = true
            Hidden = [ 64; 64 ]
            Activation = Tanh
            Run = RunSettings.Defaults
            EvalEpisodes = 10
            EvalSeed = 1_000_000L
            EvalEvery = 0L
        }

    /// The config keys of `ReinforceConfig` (snake_case, as in the YAML files).
    let fields: Field<ReinforceConfig> list =
        [
            Field.envId "Environment id (discrete actions)." (fun c -> c.EnvId) (fun c v -> { c with EnvId = v })
            Field.int "iterations" "Policy updates." (Allow.ge 1) (fun c -> c.Iterations) (fun c v ->
                { c with Iterations = v })
            Field.int
                "episodes_per_batch"
                "Complete episodes per seed per update."
                (Allow.ge 1)
                (fun c -> c.EpisodesPerBatch)
                (fun c v -> { c with EpisodesPerBatch = v })
            Field.float "gamma" "Discount factor." (Allow.openClosed 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
                { c with Gamma = v })
            Field.float "lr" "Policy (Adam) learning rate." (Allow.gt 0.0) (fun c -> c.Lr) (fun c v ->
                { c with Lr = v })
            Field.float
                "critic_lr"
                "Value-network (Adam) learning rate."
                (Allow.gt 0.0)
                (fun c -> c.CriticLr)
                (fun c v -> { c with CriticLr = v })
            Field.int
                "critic_epochs"
                "Full-batch value-network steps per update."
                (Allow.ge 1)
                (fun c -> c.CriticEpochs)
                (fun c v -> { c with CriticEpochs = v })
            Field.bool
                "baseline"
                "Subtract the learned V(s) from the return (REINFORCE with baseline, Sutton & Barto 13.4)."
                (fun c -> c.Baseline)
                (fun c v -> { c with Baseline = v })
            Field.intList
                "hidden"
                "Hidden layer sizes of policy and value network."
                (Allow.ge 1)
                (fun c -> c.Hidden)
                (fun c v -> { c with Hidden = v })
            Field.activation (fun c -> c.Activation) (fun c v -> { c with Activation = v })
            yield! Field.runSettings (fun c -> c.Run) (fun c v -> { c with Run = v })
            Field.int
                "eval_episodes"
                "Deterministic evaluation episodes per seed at the end."
                (Allow.ge 1)
                (fun c -> c.EvalEpisodes)
                (fun c v -> { c with EvalEpisodes = v })
            Field.int64
                "eval_seed"
                "Base seed of the evaluation environments."
                (Allow.ge 0L)
                (fun c -> c.EvalSeed)
                (fun c v -> { c with EvalSeed = v })
            Field.evalEvery "iterations (updates)" (fun c -> c.EvalEvery) (fun c v -> { c with EvalEvery = v })
        ]

    /// Cross-field checks of a REINFORCE config (discrete actions); raises `ConfigError`.
    let validate (c: ReinforceConfig) = Config.checkDiscreteEnv c.EnvId
