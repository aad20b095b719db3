// The DQN bench (`bench.fsx dqn`): DQN on CartPole-v1 (CleanRL's config), 100k steps per seed,
// wall time and steps/s for one seed (tensor-batched and SyncVectorEnv envs) and five seeds
// batched, beside CleanRL dqn.py and the learning phase's share of the flop-limited rate.
module BenchDqn

open System
open Rl
open BenchCommon

/// DQN (CleanRL defaults, scripts/configs/dqn-cartpole.yaml) for 100k steps, one seed and five
/// seeds batched; CleanRL dqn.py does 500k steps in 183-247 s (2045-2766 steps/s) on this machine
/// kind (docs/peers.md), or runs 100k steps side by side when RL_CLEANRL_DIR is set.
let benchDqn () =
    let cfg =
        Config.load Dqn.DqnConfig.fields Dqn.DqnConfig.defaults (IO.Path.Combine(configsDir, "dqn-cartpole.yaml"))

    printfn "## dqn: CartPole-v1, 100k steps per seed (torch threads %d)" threads

    let cleanRlSps, source =
        cleanRlOrAnchor "dqn.py" "--total-timesteps 100000 --seed 1" 2400.0

    Native.setThreads threads
    let gflops = matmulGflops ()

    printfn
        "%-6s %-7s %10s %16s %22s %14s %18s"
        "seeds"
        "envs"
        "wall s"
        "env steps/s"
        "seed-steps/s (all)"
        "vs CleanRL"
        "learn flop%/wall"

    for seeds, mode in [ 1, "vector"; 1, "sync"; 5, "sync" ] do
        let c =
            { cfg with
                TotalTimesteps = 100_000L
                Run.NumSeeds = seeds
                Run.Threads = threads
                VectorizationMode = mode
            }

        let r = Dqn.Loop.train c Dqn.Loop.noHooks None
        (r.Agent :> IDisposable).Dispose()
        let sps = 100_000.0 / r.WallSeconds

        printfn
            "%-6d %-7s %10.1f %16.0f %22.0f %13.2fx %17.1f%%"
            seeds
            mode
            r.WallSeconds
            sps
            (sps * float seeds)
            (sps * float seeds / cleanRlSps)
            (flopShare (dqnLearnFlops c) gflops r.WallSeconds)

    printfn "(vs CleanRL: all-seed steps/s over CleanRL's %.0f env steps/s for one seed, %s)" cleanRlSps source

    printfn
        "(learn flop%%/wall: the learning phase's flops at %.1f GFLOP/s, the float32 512x512 matmul rate, over the whole run's wall time)"
        gflops
