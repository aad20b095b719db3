// The CartPole bench (`bench.fsx ppo-cartpole`, CPU): PPO on CartPole-v1 with PureJaxRL's
// default config for 1 and 16 seeds batched: wall time, steps/s, the learning phase's share of
// the flop-limited rate and the final eval, beside CleanRL ppo.py (side by side when
// RL_CLEANRL_DIR is set, else its peers.md anchor), and whether the two speed goals are met.
module BenchPpoCartPole

open System
open Rl
open BenchCommon

/// Runs `cfg0` for `steps` per seed with 1 and 16 seeds batched, printing a row per run (steps/s
/// against CleanRL's `cleanRlSps`, the learn flop share at `gflops`); returns (seeds, wall s,
/// steps/s) per run.
let private runSeeds (cfg0: Ppo.PpoConfig) (steps: int64) (cleanRlSps: float) (gflops: float) =
    printfn
        "%-10s %8s %12s %10s %12s %s"
        "seeds"
        "wall s"
        "steps/s"
        "vs CleanRL"
        "learn flop%"
        "final eval return (per seed)"

    [
        for s in [ 1; 16 ] ->
            let cfg =
                { cfg0 with
                    Run.NumSeeds = s
                    TotalTimesteps = steps
                    Run.Threads = threads
                }

            let wall, sps, (_, _, learn), _, evals = ppoRun cfg
            let ev = String.Join(" ", evals |> Array.map (fun e -> e.ToString "F0"))

            printfn
                "%-10d %8.1f %12.0f %9.2fx %11.1f%% %s (mean %.1f)"
                s
                wall
                sps
                (sps / cleanRlSps)
                (flopShare (ppoLearnFlops cfg 4 2) gflops learn)
                ev
                (Array.average evals)

            s, wall, sps
    ]

/// Prints CleanRL's figures (from `source`) and the two goals, judged on `results` of runs of
/// `steps` per seed.
let private printGoals (results: (int * float * float) list) (steps: int64) (cleanRlSps: float) (source: string) =
    let cleanRlWall = 500_000.0 / cleanRlSps
    let _, _, sps1 = results |> List.find (fun (s, _, _) -> s = 1)
    let _, wall16, _ = results |> List.find (fun (s, _, _) -> s = 16)
    let scale = 500_000.0 / float steps
    printfn "CleanRL ppo.py: %.0f steps/s, %.1f s per 500k-step seed (%s)" cleanRlSps cleanRlWall source

    printfn
        "goal 1: S=1 >= 2x CleanRL steps/s: %.2fx -> %s"
        (sps1 / cleanRlSps)
        (if sps1 >= 2.0 * cleanRlSps then "met" else "not met")

    printfn
        "goal 2: 16 seeds (scaled to 500k steps each: %.1f s) < 4 CleanRL runs (%.1f s): %s"
        (wall16 * scale)
        (4.0 * cleanRlWall)
        (if wall16 * scale < 4.0 * cleanRlWall then
             "met"
         else
             "not met")

/// PPO on CartPole-v1 with CleanRL's and PureJaxRL's default config key for key (4 envs x 128 steps, 5e5 steps
/// per seed, two 64-64 tanh MLPs in one network with one Adam and one clip, as CleanRL's agent:
/// scripts/configs/ppo-cartpole.yaml) for S = 1 and 16 seeds batched, beside CleanRL `ppo.py` run
/// side by side (RL_CLEANRL_DIR), else its anchor (5637 steps/s, 1 seed, docs/peers.md).
/// RL_BENCH_CARTPOLE_STEPS shortens the per-seed budget (default 500000).
let benchPpoCartPole () =
    let cfg0 =
        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (IO.Path.Combine(configsDir, "ppo-cartpole.yaml"))

    let steps =
        match Environment.GetEnvironmentVariable "RL_BENCH_CARTPOLE_STEPS" with
        | null
        | "" -> cfg0.TotalTimesteps
        | s -> int64 s

    printfn
        "## ppo-cartpole: PPO on CartPole-v1, the peers' default config (CleanRL = PureJaxRL), %d steps per seed (CPU, %d thread(s))"
        steps
        threads

    if IO.File.Exists "/proc/loadavg" then
        printfn "(load average at start: %s)" ((IO.File.ReadAllText "/proc/loadavg").Trim())

    // Side by side when RL_CLEANRL_DIR names a folder from scripts/peers/cleanrl/setup.sh; else the
    // anchor from peers.md, measured on another machine of this kind (machines of one kind differ
    // by ~2.5x: 5637 there, 2091 on a 2026-12-02 machine, so the anchor's ratios are only a rough guide).
    let cleanRlSps, source =
        cleanRlOrAnchor "ppo.py" $"--total-timesteps {steps} --seed 1" 5637.0

    Native.setThreads threads
    let gflops = matmulGflops ()
    let results = runSeeds cfg0 steps cleanRlSps gflops
    printGoals results steps cleanRlSps source
