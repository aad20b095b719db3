/// GRPO on MNIST as one-step "classification as RL" (seed 004, module 7): the policy, its frozen
/// reference and Adam (every weight with a leading seed axis), the data, and the greedy accuracy.
namespace Rl.Grpo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

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

/// Building the agent, loading the data, and the policy's probabilities and accuracy.
module Agent =
    /// Number of pixels of an MNIST image, the observation size.
    [<Literal>]
    let ObsDim = 784

    /// Number of actions (digits).
    [<Literal>]
    let NumActions = 10

    /// Copies the actor's parameters into the reference policy (pi_ref <- pi_theta).
    let syncReference (agent: Agent) =
        use _ng = torch.no_grad ()

        for p, r in Seq.zip (agent.Actor.parameters ()) (agent.Reference.parameters ()) do
            r.copy_ p |> ignore

    /// Builds the actor (784 -> hidden -> 10, Categorical), its reference copy and Adam for `cfg` on
    /// `device`, initialised per seed (seed k's network is the same alone or in a batch). Raises
    /// `ArgumentException` for an unknown init.
    let make (cfg: GrpoConfig) (device: torch.Device) : Agent =
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

    /// The log-probabilities [S; B; 10] of a GRPO policy (always categorical) for images [S; B; 784].
    let internal logProbsOf (actor: Actor) (x: Tensor) =
        match actor.Dist x with
        | Categorical lp -> lp
        | Normal _ -> invalidOp "GRPO's actor is Categorical"
