/// GRPO's configuration (Shao et al. 2024, DeepSeekMath; seed 004's MNIST setting): the
/// `GrpoConfig` record, its defaults, the config keys with their documentation and allowed
/// values, and the cross-field checks.
namespace Rl.Grpo

open System
open System.Diagnostics
open TorchSharp
open Rl
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

/// The defaults, keys and checks of `GrpoConfig`.
module GrpoConfig =
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
            Field.intList "hidden" "Hidden layer sizes." (Allow.ge 1) (fun c -> c.Hidden) (fun c v ->
                { c with Hidden = v })
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
