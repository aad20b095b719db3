/// The DQN agent (Mnih et al. 2015, Algorithm 1): the online Q-network, its target, Adam and the
/// replay buffer (every weight and the buffer with a leading seed axis); acting epsilon-greedily,
/// one TD gradient step, the greedy evaluation, and the progress a checkpoint restores with the
/// agent (steps and finished episodes).
namespace Rl.Dqn

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn

/// The networks, optimizer and replay buffer of a DQN agent for S seeds.
type Agent =
    {
        QNet: QNetwork
        Target: QNetwork
        /// Adam over the online network's parameters in one flat buffer.
        Opt: Optim.FlatOptimizer
        Buffer: Buffers.ReplayBuffer
        Device: torch.Device
        Seeds: int64[]
    }

    interface IDisposable with
        member a.Dispose() =
            (a.Opt :> IDisposable).Dispose()
            a.QNet.Dispose()
            a.Target.Dispose()
            a.Buffer.Dispose()

/// Diagnostics of one gradient step, per seed [S] (no gradient).
type LearnStats =
    {
        /// The TD loss.
        Loss: Tensor
        /// Mean Q_online(s, a) over the minibatch.
        QMean: Tensor
        /// Gradient norm before clipping.
        GradNorm: Tensor
    }

/// One finished training episode.
type Episode =
    {
        /// Environment step (of its seed) at which it ended.
        EndStep: int64
        Return: float
        Length: int
    }

/// State a checkpoint must restore besides the networks, optimizer and buffer.
type Progress =
    {
        mutable GlobalStep: int64
        /// Per seed, every finished training episode in order.
        Episodes: ResizeArray<Episode>[]
        /// The running state of the environments, the current observations and the exploration
        /// and replay-sampling generators, as JSON text (see `Snapshot`), to continue from exactly:
        /// `trainWith` restores it in place of fresh episodes when it is not null (a checkpoint's
        /// `streams`), then clears it.
        mutable Streams: string
        /// Captures `Streams` at the current log boundary; set by `trainWith` (null when the
        /// environments cannot save their state, see `IEnvSnapshot`, or outside training).
        mutable CaptureStreams: Func<string>
    }

/// Building the agent, acting, learning and evaluating.
module Agent =
    /// Builds the Q-network, its target (an exact copy), Adam and an empty replay buffer on `device`.
    /// Raises `ArgumentException` for a non-discrete action space or an unknown `Init`.
    let make (cfg: DqnConfig) (obsDim: int) (actionSpace: Space) (device: torch.Device) : Agent =
        let nActions =
            match actionSpace with
            | Space.Discrete(n, _) -> n
            | other ->
                invalidArg
                    "actionSpace"
                    $"DQN needs a discrete action space, got {other}; allowed: Discrete environments such as CartPole-v1"

        let seeds = cfg.Seeds
        let S = seeds.Length
        let q = new QNetwork("q", S, obsDim, cfg.Hidden, cfg.Activation, nActions)
        let target = new QNetwork("q", S, obsDim, cfg.Hidden, cfg.Activation, nActions)

        match cfg.Init.ToLowerInvariant() with
        | "default" -> q.Initialise(TorchDefault, TorchDefault, seeds)
        | "orthogonal" -> q.Initialise(Orthogonal(sqrt 2.0), Orthogonal 1.0, seeds)
        | s -> invalidArg "init" $"unknown init '{s}'; allowed: default, orthogonal"

        q.``to`` device |> ignore
        target.``to`` device |> ignore
        syncParameters 1.0 q target

        for p in target.parameters () do
            p.requires_grad <- false

        {
            QNet = q
            Target = target
            Opt =
                Optim.makeFlat
                    (Optim.Adam(cfg.Run.Beta1, cfg.Run.Beta2, cfg.Run.AdamEps))
                    cfg.LearningRate
                    S
                    (q.parameters ())
            Buffer = new Buffers.ReplayBuffer(S, cfg.BufferSize, obsDim, device)
            Device = device
            Seeds = seeds
        }

    /// The linear epsilon schedule of CleanRL `dqn.py` (`linear_schedule`): epsilon at environment
    /// step `step` falls from `startE` to `endE` over `duration` steps, then stays at `endE`.
    let epsilonAt (startE: float) (endE: float) (duration: float) (step: int64) : float =
        if duration <= 0.0 then
            endE
        else
            max endE (startE + (endE - startE) * float step / duration)

    /// Phase 1, act (Mnih et al. 2015, Algorithm 1: "with probability epsilon select a random
    /// action, otherwise argmax_a Q(s, a)"): actions [S; N] for observations [S; N; obsDim], the
    /// random draws from `exploreGen`. No gradient.
    let internal actEpsilonGreedy (agent: Agent) (exploreGen: torch.Generator) (epsilon: float) (obs: Tensor) =
        use _ng = torch.no_grad ()
        let S, N = obs.size 0, obs.size 1
        let greedy = agent.QNet.forward(obs).argmax(-1L) // [S; N]

        let random =
            torch.randint (
                int64 agent.QNet.NumActions,
                [| S; N |],
                generator = exploreGen,
                dtype = torch.int64,
                device = agent.Device
            )

        let u = torch.rand ([| S; N |], generator = exploreGen, device = agent.Device)
        torch.where (u.lt (epsilon.ToScalar()), random, greedy)

    /// One DQN gradient step on `batch`: targets from the target network (`Losses.dqnTargets`),
    /// the TD loss (`Losses.tdLoss`), backward, per-seed clipping when `maxGradNorm > 0`, Adam step.
    let learnStep (cfg: DqnConfig) (agent: Agent) (batch: Buffers.ReplayBatch) : LearnStats =
        let targets =
            use _ng = torch.no_grad ()
            Losses.dqnTargets cfg.Gamma batch.Rewards batch.Terminated (agent.Target.forward batch.NextObs)

        let qTaken =
            agent.QNet.forward(batch.Obs).gather(-1L, batch.Actions.unsqueeze -1L).squeeze(-1L)

        let loss = Losses.tdLoss cfg.Loss qTaken targets
        agent.Opt.ZeroGrad()
        loss.sum().backward()

        let gradNorm =
            if cfg.MaxGradNorm > 0.0 then
                agent.Opt.ClipGradNormPerSeed cfg.MaxGradNorm
            else
                agent.Opt.GradNormPerSeed()

        agent.Opt.Step()
        use _ng = torch.no_grad ()

        {
            Loss = loss.detach ()
            QMean = qTaken.detach().mean([| -1L |])
            GradNorm = gradNorm
        }

    /// Greedy evaluation: for each seed, `episodes` episodes of argmax_a Q(s, a) on fresh
    /// environments reset with `evalSeed` (the same start states for every seed). Returns per seed
    /// the undiscounted episode returns.
    let evaluate (makeEnv: int -> IBatchedEnv) (agent: Agent) (episodes: int) (evalSeed: int64) : float[][] =
        let S = agent.Seeds.Length
        use env = makeEnv (S * episodes)
        use _ng = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let obsDim = env.ObservationSpace.FlatSize
        // Every seed sees the same start states: copy j of each seed's block starts alike.
        let mutable obs = env.Reset evalSeed
        let returns = Array.init S (fun _ -> Array.create episodes nan)
        let mutable stepsLeft = env.MaxEpisodeSteps + 1

        while returns |> Array.exists (Array.exists Double.IsNaN) && stepsLeft > 0 do
            use stepScope = torch.NewDisposeScope()
            let q = agent.QNet.forward (obs.reshape (int64 S, int64 episodes, int64 obsDim))
            let r = env.Step(q.argmax(-1L).reshape(int64 (S * episodes)))
            let finished = toArray (r.Terminated.logical_or r.Truncated)
            let epRet = toArray r.EpisodeReturn

            for k in 0 .. S - 1 do
                for j in 0 .. episodes - 1 do
                    let c = k * episodes + j

                    if finished[c] <> 0.0 && Double.IsNaN(returns[k][j]) then
                        returns[k][j] <- epRet[c]

            obs <- r.Obs.MoveToOuterDisposeScope()
            stepsLeft <- stepsLeft - 1

        returns
