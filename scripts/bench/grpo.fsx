// The GRPO bench (`bench.fsx grpo`): wall time and images/s of one GRPO epoch on MNIST (the
// default config, one seed and three batched seeds) on the CPU, and on CUDA when available.
module BenchGrpo

open System
open Rl
open BenchCommon

/// One GRPO epoch on MNIST (60,000 images, the default config, one seed and three batched
/// seeds) on the CPU, and on CUDA when available. RL_BENCH_GRPO_IMAGES shrinks the epoch.
let benchGrpo () =
    let images = defaultArg (envInt "RL_BENCH_GRPO_IMAGES") 0

    let cfg =
        Config.load Grpo.GrpoConfig.fields Grpo.GrpoConfig.defaults (IO.Path.Combine(configsDir, "grpo-mnist.yaml"))

    printfn
        "## grpo: one epoch of GRPO on MNIST (batch %d, G = %d, %d inner epochs, torch threads %d)"
        cfg.BatchSize
        cfg.GroupSize
        cfg.UpdateEpochs
        threads

    printfn "%-6s %6s %10s %12s %14s %10s" "device" "seeds" "images" "epoch s" "images/s" "accuracy"

    let devices =
        [
            yield "cpu"
            if Native.cudaAvailable () then
                yield "cuda"
        ]

    for device in devices do
        for seeds in [ 1; 3 ] do
            let c =
                { cfg with
                    Epochs = 1
                    Run.NumSeeds = seeds
                    Run.Device = device
                    Run.Threads = threads
                    TrainSize = images
                    TestSize = 10000
                }

            use data = Grpo.Agent.loadData c
            let r = Grpo.Loop.train data c Grpo.Loop.noHooks
            use _a = r.Agent
            let n = float (data.Train.Count / c.BatchSize * c.BatchSize * seeds)

            printfn
                "%-6s %6d %10.0f %12.2f %14.0f %10.4f"
                device
                seeds
                n
                r.EpochSeconds[0]
                (n / r.EpochSeconds[0])
                (Array.average r.EpochAccuracy[0])
