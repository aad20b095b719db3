// The PPO bench on Pendulum-v1 (`bench.fsx ppo`, CPU): wall time, steps/s, the rollout/GAE/learn
// split, the learning phase's share of the flop-limited rate, RSS over the run and the final eval,
// for the default config, the seed's table and CleanRL's agent and config, beside the Python
// peers' steps/s (CleanRL side by side when RL_CLEANRL_DIR is set; SB3 from docs/peers.md).
module BenchPpo

open System
open Rl
open BenchCommon

/// Prints the table's title (with the matmul rate `gflops`), the load average and its header.
let private printHeader (gflops: float) =
    printfn "## ppo: PPO on Pendulum-v1 (CPU; float32 512x512 matmul on 1 thread: %.1f GFLOP/s)" gflops

    if IO.File.Exists "/proc/loadavg" then
        printfn "(load average at start: %s)" ((IO.File.ReadAllText "/proc/loadavg").Trim())

    printfn
        "%-34s %7s %8s %9s %22s %11s %24s %s"
        "case"
        "threads"
        "wall s"
        "steps/s"
        "rollout/gae/learn s"
        "learn flop%"
        "RSS MiB 25/50/100%"
        "eval (per seed)"

/// Runs `cfg` and prints its row named `name`; returns its wall seconds and steps/s.
let private show (gflops: float) (name: string) (cfg: Ppo.PpoConfig) =
    let wall, sps, (ro, g, l), rss, evals = ppoRun cfg
    let ev = String.Join(" ", evals |> Array.map (fun e -> e.ToString "F0"))

    printfn
        "%-34s %7d %8.1f %9.0f %22s %10.1f%% %24s %s"
        name
        cfg.Run.Threads
        wall
        sps
        $"{ro:F1}/{g:F2}/{l:F1}"
        (flopShare (ppoLearnFlops cfg 3 1) gflops l)
        $"{rss[0]:F0}/{rss[1]:F0}/{rss[2]:F0}"
        ev

    wall, sps

/// Prints the peers' steps/s and our ratios to them: the seed's table (`spsSeed`, `wSeed` s), the
/// run at equal work (`spsClean`), the default config at 100k steps (`sps100`, `w100` s) and in
/// full (`wFull` s).
let private printPeers (sps100: float, w100: float) (wFull: float) (wSeed: float, spsSeed: float) (spsClean: float) =
    // Python peers on this machine kind (docs/peers.md, 1 torch thread):
    // CleanRL ppo_continuous_action.py 98,304 steps in 75.1 s (mean of 3); SB3 100,352 in 59.1 s.
    // CleanRL runs side by side when RL_CLEANRL_DIR is set (see cleanRl); SB3 is always the anchor.
    let cleanRlSps, source =
        cleanRlOrAnchor
            "ppo_continuous_action.py"
            "--env-id Pendulum-v1 --total-timesteps 100000 --seed 1"
            (98_304.0 / 75.1)

    let sb3Sps = 100_352.0 / 59.1

    printfn
        "peers (seed's table): CleanRL %.0f steps/s, SB3 %.0f steps/s (%s; SB3 from peers.md)"
        cleanRlSps
        sb3Sps
        source

    printfn "ratio, seed's table: %.2fx CleanRL, %.2fx SB3 (steps/s)" (spsSeed / cleanRlSps) (spsSeed / sb3Sps)

    printfn "ratio at equal work (CleanRL's agent and config): %.2fx CleanRL's steps/s" (spsClean / cleanRlSps)

    printfn
        "ratio, default config: %.2fx CleanRL's steps/s; 100k steps in %.1f s (goal < 60 s)"
        (sps100 / cleanRlSps)
        w100

    printfn "full default run: %.1f s; seed's table: %.1f s" wFull wSeed

/// The `ppo` section: seven runs on one and two threads (scripts/configs/ppo-pendulum*.yaml),
/// then the peers' figures and the ratios.
let benchPpo () =
    let load name =
        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (IO.Path.Combine(configsDir, name))

    let defaults = load "ppo-pendulum.yaml"
    let seedCfg = load "ppo-pendulum-seed.yaml"
    Native.setThreads 1
    let gflops = matmulGflops ()
    printHeader gflops
    let show = show gflops

    let w100, sps100 =
        show
            "default config, 100k steps"
            { defaults with
                TotalTimesteps = 100_000L
                Run.Threads = 1
            }

    show
        "default config, 100k steps"
        { defaults with
            TotalTimesteps = 100_000L
            Run.Threads = 2
        }
    |> ignore

    // The same run with the envs stepped on the host (Gymnasium's SyncVectorEnv): other reset
    // draws, so the eval differs; the rollout column shows the env's share.
    show
        "default config, 100k, sync envs"
        { defaults with
            TotalTimesteps = 100_000L
            Run.Threads = 1
            VectorizationMode = "sync"
        }
    |> ignore

    let wFull, _ =
        show $"default config, {defaults.TotalTimesteps / 1000L}k steps" { defaults with Run.Threads = 1 }

    let wSeed, spsSeed =
        show "seed 002 table, 100k steps" { seedCfg with Run.Threads = 1 }

    // Equal work with CleanRL: its agent and defaults key for key (ppo-pendulum-cleanrl.yaml).
    let _, spsClean =
        show
            "CleanRL's agent and config, 100k"
            { load "ppo-pendulum-cleanrl.yaml" with
                Run.Threads = 1
            }

    show
        "default config, 100k, 5 seeds batched"
        { defaults with
            TotalTimesteps = 100_000L
            Run.NumSeeds = 5
            Run.Threads = 1
        }
    |> ignore

    printPeers (sps100, w100) wFull (wSeed, spsSeed) spsClean
