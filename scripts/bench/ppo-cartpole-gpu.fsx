// The GPU CartPole bench (`bench.fsx ppo-cartpole-gpu`): PPO on CartPole-v1 with PureJaxRL's
// default config on CUDA for 1, 16 and 256 seeds batched: wall time, steps/s of all seeds and the
// final eval beside PureJaxRL's H100 figures. Needs a CUDA libtorch (RL_LIBTORCH).
module BenchPpoCartPoleGpu

open System
open Rl
open BenchCommon

/// The same CartPole-v1 PPO run on CUDA (tensor-batched envs on the GPU, no per-step host
/// transfers) for S = 1, 16 and 256 seeds, beside PureJaxRL's H100 figures
/// (docs/peers.md). Skipped, saying how to enable it, without a CUDA libtorch.
let benchPpoCartPoleGpu () =
    printfn "## ppo-cartpole-gpu: PPO on CartPole-v1, PureJaxRL default config, 500k steps per seed on CUDA"

    if not (Native.cudaAvailable ()) then
        printfn "(no CUDA libtorch here: set RL_LIBTORCH to a CUDA libtorch or PyTorch's torch/lib; see README)"
    else
        let cfg0 =
            Config.load
                Ppo.PpoConfig.fields
                Ppo.PpoConfig.seedDefaults
                (IO.Path.Combine(configsDir, "ppo-cartpole.yaml"))

        // PureJaxRL ppo.py on an H100: (seeds, train s, env steps/s all seeds, final return)
        let peers =
            [
                1, 5.72, 87_367.0, 430.5
                16, 5.95, 1_343_815.0, 491.7
                256, 8.57, 14_930_508.0, 488.4
            ]

        printfn
            "%-6s %8s %14s %14s %18s %s"
            "seeds"
            "wall s"
            "steps/s (all)"
            "PureJaxRL"
            "final eval (mean)"
            "PureJaxRL final"

        for s, _, peerSps, peerReturn in peers do
            let cfg =
                { cfg0 with
                    Run.NumSeeds = s
                    Run.Device = "cuda"
                    VectorizationMode = "vector"
                    EvalEpisodes = (if s > 16 then 2 else cfg0.EvalEpisodes)
                }

            let wall, sps, _, _, evals = ppoRun cfg
            printfn "%-6d %8.1f %14.0f %14.0f %18.1f %.1f" s wall sps peerSps (Array.average evals) peerReturn
