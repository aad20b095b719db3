/// Evaluation of a policy with a seed axis on fresh environments (deterministic or sampled),
/// used by PPO and REINFORCE.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// Evaluating a trained policy per seed.
module Evaluate =
    /// Evaluates a policy with a seed axis, deterministic (mean action / most likely action) or
    /// sampled, for `episodes` episodes per seed on fresh environments: `dist obs` maps observations
    /// [S; E; obsDim] (already preprocessed as the policy expects) to the action distribution of
    /// every seed; training seed `seeds[k]` evaluates on starts drawn from `evalSeed + seeds[k]`
    /// (kept apart from training streams); samples come from generators derived from those seeds
    /// on `device`. `makeEnv n` builds a batched environment of n copies (one per seed, stepped in
    /// lockstep, so every step is one batched forward pass of all seeds). Returns per seed the
    /// episode returns. Used by PPO and REINFORCE.
    let evaluatePolicy
        (deterministic: bool)
        (makeEnv: int -> IBatchedEnv)
        (seeds: int64[])
        (device: torch.Device)
        (dist: Tensor -> Dist)
        (episodes: int)
        (evalSeed: int64)
        : float[][] =
        let S = seeds.Length
        let envs = Array.init S (fun _ -> makeEnv episodes)

        try
            use _ng = torch.no_grad ()
            use scope = torch.NewDisposeScope()
            let envSeeds = seeds |> Array.map (fun s -> evalSeed + s)

            let mutable obs =
                torch.stack ([| for k in 0 .. S - 1 -> envs[k].Reset envSeeds[k] |], 0L) // [S; E; obsDim]

            let gens =
                envSeeds
                |> Array.map (fun s -> Seed.generator device (Seed.derive s "eval-policy"))

            let returns = Array.init S (fun _ -> Array.create episodes nan)
            let mutable stepsLeft = envs[0].MaxEpisodeSteps + 1

            while returns |> Array.exists (Array.exists Double.IsNaN) && stepsLeft > 0 do
                use stepScope = torch.NewDisposeScope()
                let d = dist obs
                let action = if deterministic then Dist.mode d else Dist.sample gens d
                let steps = [| for k in 0 .. S - 1 -> envs[k].Step action[k] |]

                for k in 0 .. S - 1 do
                    let finished = toArray (steps[k].Terminated.logical_or steps[k].Truncated)
                    let epRet = toArray steps[k].EpisodeReturn
                    let seedReturns = returns[k]

                    for i in 0 .. episodes - 1 do
                        if finished[i] <> 0.0 && Double.IsNaN seedReturns[i] then
                            seedReturns[i] <- epRet[i]

                obs <- (torch.stack ([| for st in steps -> st.Obs |], 0L)).MoveToOuterDisposeScope()
                stepsLeft <- stepsLeft - 1

            returns
        finally
            for e in envs do
                e.Dispose()

    /// Evaluates the PPO agent of every seed (`evaluatePolicy` with its policy, observations
    /// normalised by `obsStats` when given), deterministic or sampled.
    let evaluateWith
        (deterministic: bool)
        (makeEnv: int -> IBatchedEnv)
        (agent: Agent)
        (obsStats: RunningMeanStd option)
        (episodes: int)
        (evalSeed: int64)
        : float[][] =
        evaluatePolicy
            deterministic
            makeEnv
            agent.Seeds
            agent.Device
            (fun obs -> agent.Dist(Normalizers.preprocess obsStats obs))
            episodes
            evalSeed

    /// `evaluateWith true`: the deterministic policy's episode returns per seed.
    let evaluate makeEnv agent obsStats episodes evalSeed =
        evaluateWith true makeEnv agent obsStats episodes evalSeed
