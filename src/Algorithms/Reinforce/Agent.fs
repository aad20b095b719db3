/// The REINFORCE agent (Williams 1992; Sutton & Barto 2018, sec. 13.3): a categorical policy and a
/// value network with their optimizers (every weight with a leading seed axis); complete episodes
/// played with the current policy, the policy loss with or without the baseline, the variance of
/// the policy-gradient estimate (seed 004 module 4.3), and the deterministic evaluation.
namespace Rl.Reinforce

open System
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// Policy, value network and their optimizers for S seeds.
type Agent =
    {
        Actor: Actor
        Critic: Critic
        /// Adam over the policy's parameters in one flat buffer.
        ActorOpt: Optim.FlatOptimizer
        /// Adam over the critic's parameters in one flat buffer.
        CriticOpt: Optim.FlatOptimizer
        Device: torch.Device
        Seeds: int64[]
    }

    interface IDisposable with
        member a.Dispose() =
            (a.ActorOpt :> IDisposable).Dispose()
            (a.CriticOpt :> IDisposable).Dispose()
            a.Actor.Dispose()
            a.Critic.Dispose()

/// A batch of complete episodes: E per seed, padded to the longest (T steps). Tensors are
/// [S; T * E] (step-major within a seed: index t * E + e), on the agent's device.
type EpisodeBatch =
    {
        /// [S; T*E; obsDim] observations.
        Obs: Tensor
        /// [S; T*E] int64 actions.
        Actions: Tensor
        /// [S; T*E] discounted returns G_t of each step (0 on padding).
        Returns: Tensor
        /// [S; T*E] 1 for real steps, 0 for padding after the episode ended.
        Mask: Tensor
        /// Per seed, the undiscounted return of each of its E episodes.
        EpisodeReturns: float[][]
        /// Per seed, the number of real steps.
        Steps: int64[]
    }

/// Variance of the policy-gradient estimate, per seed.
type GradVariance =
    {
        /// Total variance (sum over parameters of the variance across batches) of the estimate
        /// with b = 0, [S].
        NoBaseline: float[]
        /// The same with b = V(s), on the same batches, [S].
        WithBaseline: float[]
        /// Squared norm of the mean gradient over the batches (b = 0), [S]: the signal.
        MeanGradSqNorm: float[]
    }

/// Building the agent, playing episodes, the loss, the gradient variance and the evaluation.
module Agent =
    /// Builds the categorical policy and the value network (PyTorch default initialisation) with
    /// Adam. Raises `ArgumentException` for a non-discrete action space.
    let make (cfg: ReinforceConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
        let n =
            match actionSpace with
            | Space.Discrete(n, _) -> n
            | other ->
                invalidArg
                    "actionSpace"
                    $"REINFORCE here needs a discrete action space, got {other}; allowed: CartPole-v1, Acrobot-v1, MountainCar-v0, FrozenLake-v1"

        let seeds = cfg.Seeds
        let S = seeds.Length

        let actor =
            new Actor("pi", S, obsDim, cfg.Hidden, cfg.Activation, CategoricalHead n)

        let critic = new Critic("v", S, obsDim, cfg.Hidden, cfg.Activation)
        actor.Initialise(TorchDefault, TorchDefault, seeds)
        critic.Initialise(TorchDefault, TorchDefault, seeds)
        actor.``to`` device |> ignore
        critic.``to`` device |> ignore
        let adam = Optim.Adam(cfg.Run.Beta1, cfg.Run.Beta2, cfg.Run.AdamEps)

        {
            Actor = actor
            Critic = critic
            ActorOpt = Optim.makeFlat adam cfg.Lr S (actor.parameters ())
            CriticOpt = Optim.makeFlat adam cfg.CriticLr S (critic.parameters ())
            Device = device
            Seeds = seeds
        }

    /// Plays one complete episode in each of the `S * E` copies of `env` (copy k*E + e belongs to
    /// seed k) with actions sampled from the policy (generator `gen`), stops once every copy has
    /// finished its first episode, and computes the Monte-Carlo returns with
    /// `Advantage.discountedReturns` (no bootstrap: a time-limit cut counts as the end of the
    /// return, G_T = 0). Raises `ArgumentException` when the env does not have S * E copies.
    let collect
        (gamma: float)
        (agent: Agent)
        (env: IBatchedEnv)
        (episodes: int)
        (reset: int64)
        (gen: torch.Generator)
        : EpisodeBatch =
        let S = agent.Seeds.Length
        let E = episodes

        if env.NumEnvs <> S * E then
            invalidArg
                "env"
                $"Reinforce.collect: the environment has {env.NumEnvs} copies; need seeds x episodes = {S * E}"

        let obsDim = env.ObservationSpace.FlatSize
        use _ng = torch.no_grad ()
        let mutable obs = env.Reset reset

        let obsL, actL, rewL, termL, truncL, maskL =
            ResizeArray(), ResizeArray(), ResizeArray(), ResizeArray(), ResizeArray(), ResizeArray()

        let mutable alive = torch.ones ([| int64 (S * E) |], device = agent.Device)
        let epRet = torch.zeros ([| int64 (S * E) |], device = agent.Device)
        let mutable running = true

        while running do
            let x = obs.reshape (int64 S, int64 E, int64 obsDim)
            let action = Dist.sample [| gen |] (agent.Actor.Dist x) // [S; E]
            let r = env.Step(action.reshape (int64 (S * E)))
            obsL.Add x
            actL.Add action
            rewL.Add r.Reward
            termL.Add(r.Terminated.to_type torch.float32)
            truncL.Add(r.Truncated.to_type torch.float32)
            maskL.Add alive
            let isDone = r.Terminated.logical_or(r.Truncated).to_type torch.float32
            epRet.add_ (r.EpisodeReturn * isDone * alive) |> ignore
            alive <- alive * (1.0 - isDone)
            obs <- r.Obs
            running <- item (alive.sum ()) > 0.0

        let T = int64 obsL.Count
        // Time-major [T; S*E] for the return recursion.
        let stackTm (xs: ResizeArray<Tensor>) = torch.stack (xs, 0L)
        let rewards = stackTm rewL

        let returns =
            Advantage.discountedReturns gamma rewards (stackTm termL) (stackTm truncL) (torch.zeros_like rewards)

        let mask = stackTm maskL
        // [T; S*E] -> [S; T*E] (t-major within the seed)
        let toSeed (x: Tensor) =
            x.reshape(T, int64 S, int64 E).permute(1L, 0L, 2L).reshape(int64 S, T * int64 E)

        let obsAll = torch.stack(obsL, 1L).reshape(int64 S, T * int64 E, int64 obsDim) // [S; T; E; D] -> [S; T*E; D]
        let actAll = torch.stack(actL, 1L).reshape(int64 S, T * int64 E)
        let rets = toArray epRet
        let maskS = toSeed mask

        {
            Obs = obsAll
            Actions = actAll
            Returns = toSeed returns * maskS
            Mask = maskS
            EpisodeReturns = Array.init S (fun k -> rets[k * E .. k * E + E - 1])
            Steps = toArray (maskS.sum ([| 1L |])) |> Array.map int64
        }

    /// The policy loss of a batch per seed [S]: `Losses.reinforce` with b = V(s) when `baseline`,
    /// else b = 0.
    let policyLoss (agent: Agent) (baseline: bool) (batch: EpisodeBatch) (episodes: int) : Tensor =
        let logp = Dist.logProb (agent.Actor.Dist batch.Obs) batch.Actions

        let b =
            if baseline then
                use _ng = torch.no_grad ()
                agent.Critic.forward batch.Obs
            else
                torch.zeros_like batch.Returns

        Losses.reinforce episodes logp batch.Returns b batch.Mask

    /// Collects `batches` independent batches of `episodes` episodes with the current policy and
    /// computes both gradient estimates (b = 0 and b = V(s)) on each; returns their variances across
    /// batches (unbiased, summed over all policy parameters). The policy is not changed.
    let gradientVariance
        (cfg: ReinforceConfig)
        (agent: Agent)
        (env: IBatchedEnv)
        (batches: int)
        (episodes: int)
        (seed: int64)
        : GradVariance =
        if batches < 2 then
            invalidArg "batches" $"gradientVariance: need at least 2 batches, got {batches}"

        let S = agent.Seeds.Length
        let gen = Seed.generator agent.Device (Seed.derive seed "reinforce-variance")
        use scope = torch.NewDisposeScope()

        let grads baseline batch =
            agent.ActorOpt.ZeroGrad()
            (policyLoss agent baseline batch episodes).sum().backward()
            agent.ActorOpt.GradPerSeed()

        let g0, g1 =
            [
                for b in 0 .. batches - 1 do
                    use s = torch.NewDisposeScope()

                    let batch =
                        collect cfg.Gamma agent env episodes (Seed.derive seed $"variance-env/{b}") gen

                    yield (grads false batch).MoveToOuterDisposeScope(), (grads true batch).MoveToOuterDisposeScope()
            ]
            |> List.unzip

        let g0: Tensor list = g0
        let g1: Tensor list = g1

        agent.ActorOpt.ZeroGrad()

        let var (gs: Tensor list) =
            toArray (torch.stack(gs, 0L).var(0L, unbiased = true).sum([| 1L |]))

        let mean0 = torch.stack(g0, 0L).mean([| 0L |])

        {
            NoBaseline = var g0
            WithBaseline = var g1
            MeanGradSqNorm = toArray (mean0.square().sum([| 1L |]))
        }

    /// The deterministic policy's (most likely action's) episode returns per seed over `episodes`
    /// episodes, training seed s on starts drawn from `evalSeed + s` (`Ppo.Evaluate.evaluatePolicy`).
    let evaluate (cfg: ReinforceConfig) (agent: Agent) (episodes: int) (evalSeed: int64) : float[][] =
        let device = Native.device cfg.Run.Device

        Ppo.Evaluate.evaluatePolicy
            true
            (fun n -> Envs.makeBatched cfg.EnvId n device)
            agent.Seeds
            agent.Device
            agent.Actor.Dist
            episodes
            evalSeed
