// The profile bench (`bench.fsx profile`): where the time goes in short runs of PPO on
// Pendulum-v1 and CartPole-v1 and DQN on CartPole-v1, with `Rl.Profile` sections on: seconds,
// calls and tensors created per section, the time outside every section, beside the flops of the
// learning phase.
module BenchProfile

open System
open Rl
open BenchCommon

/// Prints the `Profile` sections of one run: seconds, share of the run's wall time, calls, mean
/// time and tensors created per call; then the flops of the learning phase and how far the
/// learning time is from the flop-limited time at `gflops`.
let printProfile (title: string) (wall: float) (learnFlops: float) (gflops: float) =
    printfn "### %s: %.2f s wall" title wall
    printfn "%-18s %9s %7s %9s %10s %12s" "section" "seconds" "% wall" "calls" "us/call" "tensors/call"

    for s in Profile.report () do
        printfn
            "%-18s %9.3f %6.1f%% %9d %10.1f %12.1f"
            s.Name
            s.Seconds
            (100.0 * s.Seconds / wall)
            s.Calls
            (1e6 * s.Seconds / float s.Calls)
            (float s.Tensors / float s.Calls)

    // learn.forward/backward/clip/step run inside learn.minibatch; every other section is top-level.
    let nested = set [ "learn.forward"; "learn.backward"; "learn.clip"; "learn.step" ]

    let inSections =
        Profile.report ()
        |> List.filter (fun s -> not (nested.Contains s.Name))
        |> List.sumBy (fun s -> s.Seconds)

    printfn
        "%-18s %9.3f %6.1f%%  (the loop's own work: scopes, reshapes, rollout storage, logging)"
        "outside sections"
        (wall - inSections)
        (100.0 * (wall - inSections) / wall)

    let learn =
        Profile.report ()
        |> List.tryFind (fun s -> s.Name = "learn.minibatch" || s.Name = "dqn.learn")

    match learn with
    | Some l ->
        let flopSeconds = learnFlops / (gflops * 1e9)

        printfn
            "learning: %.3g flop in %.2f s; flop-limited at %.1f GFLOP/s: %.3f s, so %.2f %% of the flop-limited rate is reached"
            learnFlops
            l.Seconds
            gflops
            flopSeconds
            (flopShare learnFlops gflops l.Seconds)
    | None -> ()

/// Runs `f` with `Profile` sections recorded from zero (and off again afterwards).
let profiled (f: unit -> 'R) : 'R =
    Profile.reset ()
    Profile.enabled <- true

    try
        f ()
    finally
        Profile.enabled <- false

/// Where the time goes, counted (issue 16, step 1): PPO on Pendulum-v1 (default config), PPO on
/// CartPole-v1 (the peers' config) and DQN on CartPole-v1, each a short run with `Rl.Profile`
/// sections on: time and tensors created (a lower bound of native calls) per env step
/// (`rollout.policy`, `rollout.env_step`, `dqn.act`, `dqn.env_step`, `dqn.store`) and per minibatch
/// step (`learn.gather` (rows and advantage normalisation), `learn.minibatch` = `learn.forward` +
/// `learn.backward` + `learn.clip` + `learn.step`, and `learn.sums`, or `dqn.learn`), the time
/// outside every section, beside the flops of the learning phase. RL_BENCH_PROFILE_UPDATES sets the PPO
/// updates (default 5).
let benchProfile () =
    let load name =
        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (IO.Path.Combine(configsDir, name))

    let updates =
        match Environment.GetEnvironmentVariable "RL_BENCH_PROFILE_UPDATES" with
        | null
        | "" -> 5
        | s -> int s

    Native.setThreads threads
    let gflops = matmulGflops ()
    printfn "## profile (CPU, %d thread(s); float32 512x512 matmul: %.1f GFLOP/s)" threads gflops

    let ppo (title: string) (cfg: Ppo.PpoConfig) (obsDim: int) (actDim: int) =
        let cfg =
            { cfg with
                TotalTimesteps = int64 (updates * cfg.BatchSize)
                Run.Threads = threads
            }

        let r = profiled (fun () -> Ppo.Loop.train cfg Ppo.Loop.noHooks None)
        (r.Agent :> IDisposable).Dispose()
        printProfile title r.WallSeconds (ppoLearnFlops cfg obsDim actDim) gflops

    ppo "PPO Pendulum-v1, default config" (load "ppo-pendulum.yaml") 3 1
    ppo "PPO CartPole-v1, the peers' config" (load "ppo-cartpole.yaml") 4 2

    let dqnCfg =
        { Config.load Dqn.DqnConfig.fields Dqn.DqnConfig.defaults (IO.Path.Combine(configsDir, "dqn-cartpole.yaml")) with
            TotalTimesteps = 30_000L
            LearningStarts = 10_000L
            Run.Threads = threads
        }

    let r = profiled (fun () -> Dqn.Loop.train dqnCfg Dqn.Loop.noHooks None)
    (r.Agent :> IDisposable).Dispose()

    printProfile
        "DQN CartPole-v1, CleanRL's config (30k steps, learning from 10k)"
        r.WallSeconds
        (dqnLearnFlops dqnCfg)
        gflops
