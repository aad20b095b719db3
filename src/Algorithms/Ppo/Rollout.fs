/// Phase 1 of a PPO update: the rollout (Schulman et al. 2017, Algorithm 1, "run policy pi_old in
/// the environment for T timesteps"), with Gymnasium's reward scaling.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// What carries over from one rollout to the next: the current observations [S; N; obsDim]
/// (detached from every dispose scope) and, for reward scaling, the running discounted return of
/// every env [S; N] float64 (Gymnasium `NormalizeReward`).
type RolloutState =
    {
        mutable Obs: Tensor
        Discounted: Tensor
    }

    interface IDisposable with
        member s.Dispose() =
            s.Obs.Dispose()
            s.Discounted.Dispose()

/// One rollout of T steps of N envs for each of S seeds, stored [S; T; N; ...] (CleanRL's
/// storage tensors with a seed axis in front).
type Rollout =
    {
        /// Observations the policy acted on, before preprocessing, [S; T; N; obsDim].
        Obs: Tensor
        /// Actions taken, [S; T; N] (discrete) or [S; T; N; actDim].
        Action: Tensor
        /// Rewards, scaled when `NormReward`, [S; T; N] float32.
        Reward: Tensor
        /// Terminated and truncated flags as 0/1, [S; T; N] float32.
        Terminated: Tensor
        Truncated: Tensor
        /// The observation each step ended in (before auto-reset), [S; T; N; obsDim]; GAE
        /// bootstraps truncated steps from its value.
        FinalObs: Tensor
        /// Per seed, float64 [S]: episodes that ended in this rollout, and the sums of their
        /// returns and lengths.
        EpisodeCount: Tensor
        EpisodeReturnSum: Tensor
        EpisodeLengthSum: Tensor
        /// Per seed, float64 [S]: the sum over steps of the mean Gaussian std (zeros for discrete
        /// actions); divide by T for `sigma_mean`.
        SigmaSum: Tensor
    }

/// Collecting a rollout.
module Rollout =
    let internal rewardClip = 10.0

    /// Reward scaling (Gymnasium `NormalizeReward`): updates the running discounted return
    /// `discounted` [S; N] and its variance `stats`, and returns reward / sqrt(var + 1e-8), clipped
    /// to +-10, float32 [S; N]; returns of envs that just ended are restarted.
    let internal scaleReward (gamma: float) (stats: RunningMeanStd) (discounted: Tensor) (step: BatchStep) =
        let reward = step.Reward
        let isDone = step.Terminated.logical_or(step.Truncated).to_type torch.float64

        discounted.mul_(gamma.ToScalar()).add_(reward.to_type torch.float64) |> ignore

        stats.Update(discounted.unsqueeze (-1L))

        let r =
            (reward.to_type torch.float64
             / torch.sqrt (stats.Var.squeeze(-1).unsqueeze 1 + 1e-8))
                .clamp((-rewardClip).ToScalar(), rewardClip.ToScalar())
                .to_type
                torch.float32

        discounted.mul_ (1.0 - isDone) |> ignore
        r

    /// Phase 1, collect (Schulman et al. 2017, Algorithm 1, "run policy pi_old in the environment
    /// for T timesteps"): `cfg.NumSteps` steps of every env with actions sampled from the current
    /// policy (`sampleGens[k]` drives seed k), under no_grad. Updates the observation statistics
    /// before each step (when `NormObs`) and the return statistics (when `NormReward`), and moves
    /// `state.Obs` on. The rollout's tensors belong to the caller's dispose scope.
    let collect
        (cfg: PpoConfig)
        (agent: Agent)
        (normalizers: Normalizers)
        (envs: SeedEnvs)
        (sampleGens: torch.Generator[])
        (state: RolloutState)
        : Rollout =
        let T = cfg.NumSteps
        let S = agent.Seeds.Length
        // Each step's tensors are kept (moved out of the step's scope) and stacked once after the
        // rollout: [S; T; N; ...] storage with no per-step copies.
        let keep (x: Tensor) = x.MoveToOuterDisposeScope()
        let steps () = ResizeArray<Tensor>(T)
        let obsSteps, actSteps, rewSteps, termSteps = steps (), steps (), steps (), steps ()
        let truncSteps, finalObsSteps, epReturnSteps = steps (), steps (), steps ()
        let epLengthSteps, sigmaSteps = steps (), steps ()
        // gSDE: one exploration matrix per env, drawn at the rollout's start and every
        // `SdeSampleFreq` steps (SB3 `collect_rollouts`), held outside the step scopes.
        let mutable sdeMatrices: Tensor = null

        for t in 0 .. T - 1 do
            use _ng = torch.no_grad ()
            use stepScope = torch.NewDisposeScope()

            let dist, action =
                Profile.section "rollout.policy" (fun () ->
                    normalizers.Obs |> Option.iter (fun s -> s.Update state.Obs)
                    let x = Normalizers.preprocess normalizers.Obs state.Obs

                    match agent.SdeLogSigma with
                    | None ->
                        let dist = agent.Dist x
                        dist, Dist.sample sampleGens dist
                    | Some logSigma ->
                        let dist, h = agent.DistFeatures x

                        if t = 0 || (cfg.SdeSampleFreq > 0 && t % cfg.SdeSampleFreq = 0) then
                            if not (isNull sdeMatrices) then
                                sdeMatrices.Dispose()

                            sdeMatrices <-
                                (Sde.sampleMatrices sampleGens logSigma cfg.NumEnvs)
                                    .MoveToOuterDisposeScope()
                                    .DetachFromDisposeScope()

                        let mean =
                            match dist with
                            | Normal(mean, _) -> mean
                            | Categorical _ -> invalidOp "gSDE needs a Gaussian policy"

                        dist, mean + Sde.noise h sdeMatrices)

            match dist with
            | Normal(_, std) -> sigmaSteps.Add(keep (std.mean [| 1L; 2L |]))
            | Categorical _ -> ()

            let step = Profile.section "rollout.env_step" (fun () -> envs.Step action)

            let reward =
                match normalizers.Return with
                | None -> step.Reward
                | Some rs -> Profile.section "rollout.reward" (fun () -> scaleReward cfg.Gamma rs state.Discounted step)

            // `state.Obs` is detached from every scope; it is disposed after the stacking below.
            obsSteps.Add state.Obs
            actSteps.Add(keep action)
            rewSteps.Add(keep reward)
            termSteps.Add(keep step.Terminated)
            truncSteps.Add(keep step.Truncated)
            finalObsSteps.Add(keep step.FinalObs)
            epReturnSteps.Add(keep step.EpisodeReturn)
            epLengthSteps.Add(keep step.EpisodeLength)
            state.Obs <- step.Obs.MoveToOuterDisposeScope().DetachFromDisposeScope()

        if not (isNull sdeMatrices) then
            sdeMatrices.Dispose()

        let stack (xs: ResizeArray<Tensor>) = torch.stack (xs, 1L)
        let obs = stack obsSteps

        for o in obsSteps do
            o.Dispose()

        let terminated = (stack termSteps).to_type torch.float32
        let truncated = (stack truncSteps).to_type torch.float32

        let perSeedSum (xs: ResizeArray<Tensor>) =
            (stack xs).to_type(torch.float64).sum([| 1L; 2L |])

        {
            Obs = obs
            Action = stack actSteps
            Reward = stack rewSteps
            Terminated = terminated
            Truncated = truncated
            FinalObs = stack finalObsSteps
            // Episodes that ended in this rollout (EpisodeReturn/Length are 0 elsewhere).
            EpisodeCount = (terminated + truncated).clamp_max(1.0).to_type(torch.float64).sum([| 1L; 2L |])
            EpisodeReturnSum = perSeedSum epReturnSteps
            EpisodeLengthSum = perSeedSum epLengthSteps
            SigmaSum =
                (if sigmaSteps.Count = 0 then
                     torch.zeros ([| int64 S |], dtype = torch.float64, device = agent.Device)
                 else
                     (torch.stack (sigmaSteps, 1L)).to_type(torch.float64).sum(1L))
        }
