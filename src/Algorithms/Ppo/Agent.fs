/// The PPO agent and what a checkpoint restores with it: the networks and their optimizers
/// (separate actor and critic, or one shared actor-critic; every weight with a leading seed
/// axis), the progress carried across updates, the gradient history behind the cosine
/// diagnostics, and the observation and return normalisers.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// The networks and optimizers of a PPO agent for S seeds. With separate networks `Actor`,
/// `Critic`, `ActorOpt` and `CriticOpt` are set and `Shared` is None; with a shared network
/// `Shared` holds it, `ActorOpt` is its one optimizer, and `Actor`, `Critic`, `CriticOpt` are
/// null (use the members `Dist`, `Value`, `Modules`, `Optimizers`, which work for both).
type Agent =
    {
        Actor: Actor
        Critic: Critic
        /// The policy's (or the shared network's) optimizer over one flat parameter buffer.
        ActorOpt: Optim.FlatOptimizer
        /// The critic's optimizer over one flat parameter buffer (null with a shared network).
        CriticOpt: Optim.FlatOptimizer
        Device: torch.Device
        Seeds: int64[]
        /// The shared-trunk actor-critic when `SharedNetwork`.
        Shared: ActorCritic option
    }

    /// The policy's action distribution for observations [S; B; obsDim].
    member a.Dist(obs: Tensor) : Dist =
        match a.Shared with
        | Some net -> net.Dist obs
        | None -> a.Actor.Dist obs

    /// The action distribution and the policy trunk's last hidden features [S; B; F] (what
    /// gSDE's noise reads) for observations [S; B; obsDim].
    member a.DistFeatures(obs: Tensor) : Dist * Tensor =
        match a.Shared with
        | Some net -> net.DistFeatures obs
        | None -> a.Actor.DistFeatures obs

    /// gSDE's log sigma matrix [S; F; actDim] when the config's sigma is "sde", else None.
    member a.SdeLogSigma: Tensor option =
        match a.Shared with
        | Some net -> net.SdeLogSigma
        | None -> a.Actor.SdeLogSigma

    /// State values [S; B] for observations [S; B; obsDim].
    member a.Value(obs: Tensor) : Tensor =
        match a.Shared with
        | Some net -> net.Value obs
        | None -> a.Critic.forward obs

    /// The modules by checkpoint name: "actor", "critic" (separate) or "actor_critic" (shared).
    member a.Modules: (string * torch.nn.Module) list =
        match a.Shared with
        | Some net -> [ "actor_critic", net :> torch.nn.Module ]
        | None -> [ "actor", a.Actor :> torch.nn.Module; "critic", a.Critic :> torch.nn.Module ]

    /// The flat-buffer optimizers by checkpoint name: "actor_opt", "critic_opt" (separate) or
    /// "opt" (shared).
    member a.FlatOptimizers: (string * Optim.FlatOptimizer) list =
        match a.Shared with
        | Some _ -> [ "opt", a.ActorOpt ]
        | None -> [ "actor_opt", a.ActorOpt; "critic_opt", a.CriticOpt ]

    /// The TorchSharp optimizers (what checkpoints save) by checkpoint name, as `FlatOptimizers`.
    member a.Optimizers: (string * torch.optim.Optimizer) list =
        a.FlatOptimizers |> List.map (fun (name, o) -> name, o.Optimizer)

    interface IDisposable with
        member a.Dispose() =
            for _, o in a.FlatOptimizers do
                (o :> IDisposable).Dispose()

            for _, m in a.Modules do
                m.Dispose()

/// Building the agent of a config.
module Agent =
    /// The policy head for an action space and config.
    let head (cfg: PpoConfig) (actionSpace: Space) =
        match actionSpace with
        | Space.Discrete(n, _) -> CategoricalHead n
        | Space.Box(low, high, shape) ->
            let actDim = Array.fold (*) 1 shape
            let scale = Array.max (Array.map2 (fun l h -> max (abs l) (abs h)) low high)

            let sigma = Sigma.Parse(cfg.Sigma, cfg.InitLogStd, cfg.FixedSigma)

            GaussianHead(actDim, (if cfg.MeanTanh then Some scale else None), sigma)

    /// Builds the actor, critic and their Adam optimizers for `cfg` on `device`, initialised per
    /// seed so that seed k's networks are the same alone or in a batch.
    let make (cfg: PpoConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
        let seeds = cfg.Seeds
        let S = seeds.Length

        let actor =
            new Actor("actor", S, obsDim, cfg.Hidden, cfg.Activation, head cfg actionSpace)

        let critic = new Critic("critic", S, obsDim, cfg.Hidden, cfg.Activation)

        match cfg.Init.ToLowerInvariant() with
        | "orthogonal" ->
            actor.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, seeds)
            critic.Initialise(Orthogonal(sqrt 2.0), Orthogonal 1.0, seeds)
        | "default" ->
            actor.Initialise(TorchDefault, TorchDefault, seeds)
            critic.Initialise(TorchDefault, TorchDefault, seeds)
        | s -> invalidArg "init" $"unknown init '{s}'; allowed: orthogonal, default"

        actor.``to`` device |> ignore
        critic.``to`` device |> ignore
        let kind = Optim.kindOf cfg.Optimizer cfg.Run.Beta1 cfg.Run.Beta2 cfg.Run.AdamEps

        {
            Actor = actor
            Critic = critic
            ActorOpt = Optim.makeFlat kind cfg.ActorLr seeds.Length (actor.parameters ())
            CriticOpt = Optim.makeFlat kind cfg.CriticLr seeds.Length (critic.parameters ())
            Device = device
            Seeds = seeds
            Shared = None
        }

    /// Builds the shared-trunk actor-critic and its one optimizer (learning rate `cfg.Lr`) for `cfg`
    /// on `device`, initialised per seed (CleanRL's orthogonal gains sqrt 2 / 0.01 / 1.0 for
    /// "orthogonal"). `Actor`, `Critic` and `CriticOpt` of the result are null.
    let makeShared (cfg: PpoConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
        let seeds = cfg.Seeds

        let net =
            new ActorCritic(
                "actor_critic",
                seeds.Length,
                obsDim,
                cfg.Hidden,
                cfg.Activation,
                head cfg actionSpace,
                shareTrunk = cfg.ShareTrunk
            )

        match cfg.Init.ToLowerInvariant() with
        | "orthogonal" -> net.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, Orthogonal 1.0, seeds)
        | "default" -> net.Initialise(TorchDefault, TorchDefault, TorchDefault, seeds)
        | s -> invalidArg "init" $"unknown init '{s}'; allowed: orthogonal, default"

        net.``to`` device |> ignore
        let kind = Optim.kindOf cfg.Optimizer cfg.Run.Beta1 cfg.Run.Beta2 cfg.Run.AdamEps

        {
            Actor = Unchecked.defaultof<Actor>
            Critic = Unchecked.defaultof<Critic>
            ActorOpt = Optim.makeFlat kind cfg.Lr seeds.Length (net.parameters ())
            CriticOpt = Unchecked.defaultof<Optim.FlatOptimizer>
            Device = device
            Seeds = seeds
            Shared = Some net
        }

    /// `makeSharedAgent` when `cfg.SharedNetwork`, else `makeAgent`.
    let makeFor (cfg: PpoConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
        if cfg.SharedNetwork then
            makeShared cfg obsDim actionSpace device
        else
            make cfg obsDim actionSpace device

/// State carried across updates that a checkpoint must restore.
type Progress =
    {
        /// Updates done so far.
        mutable Update: int
        /// Environment steps done so far per seed.
        mutable GlobalStep: int64
        /// The previous update's mean policy gradient per seed, [S; P] (P = policy parameters),
        /// behind `grad_cos_prev`; null before the first update. Owned by the run (detached).
        mutable PrevGrad: Tensor
        /// Exponential moving average (decay 0.99) of past mean policy gradients, [S; P], behind
        /// `grad_cos_ema`; null before the first update.
        mutable EmaGrad: Tensor
        /// The KL coefficient beta per seed for Loss = "kl_penalty" (adapted after each update);
        /// null until the first update sets it from the config.
        mutable KlBeta: float[]
        /// The running state of the environments, the current observations, the reward
        /// normaliser's discounted returns and the policy-sampling and minibatch generators, as
        /// JSON text (see `Snapshot`), to continue from exactly: `trainWith` restores it in place of
        /// fresh episodes when it is not null (a checkpoint's `streams`), then clears it.
        mutable Streams: string
        /// Captures `Streams` at the current update boundary; set by `trainWith` (null when the
        /// environments cannot save their state, see `IEnvSnapshot`, or outside training).
        mutable CaptureStreams: Func<string>
    }

    /// Nothing done yet.
    static member Start =
        {
            Update = 0
            GlobalStep = 0L
            PrevGrad = null
            EmaGrad = null
            KlBeta = null
            Streams = null
            CaptureStreams = null
        }

/// The gradient history of `Progress` (buffers `prev` and `ema`, [S; P]) as a module, so that a
/// checkpoint stores it beside the networks and a resumed run's cosine diagnostics go on.
type GradHistory(prev: Tensor, ema: Tensor) as this =
    inherit torch.nn.Module("grad_history")

    do
        this.register_buffer ("prev", prev)
        this.register_buffer ("ema", ema)

    member _.Prev = prev
    member _.Ema = ema

/// Running statistics that preprocess observations and rewards (None when disabled); part of
/// a checkpoint, since the trained policy only works on observations normalised the same way.
type Normalizers =
    {
        /// Observation mean/variance per seed ([S; obsDim]), when `NormObs`.
        Obs: RunningMeanStd option
        /// Variance of the discounted return per seed ([S; 1]), when `NormReward`.
        Return: RunningMeanStd option
    }

/// Fresh normalisers and the observation preprocessing they define.
module Normalizers =
    let internal obsClip = 10.0

    /// Fresh (empty) normalisation statistics for `cfg`.
    let create (cfg: PpoConfig) (obsDim: int) (device: torch.Device) =
        {
            Obs =
                (if cfg.NormObs then
                     Some(RunningMeanStd(cfg.Run.NumSeeds, obsDim, device))
                 else
                     None)
            Return =
                (if cfg.NormReward then
                     Some(RunningMeanStd(cfg.Run.NumSeeds, 1, device))
                 else
                     None)
        }

    /// Observation preprocessing shared by training, evaluation and charts: identity, or running
    /// normalisation when `obsStats` is given.
    let preprocess (obsStats: RunningMeanStd option) (obs: Tensor) =
        match obsStats with
        | Some s -> s.Normalize(obs, obsClip)
        | None -> obs
