// Benchmarks, one section per argument:
//
//   dotnet fsi scripts/bench.fsx envs      env steps/s, single and batched forms (CPU)
//   dotnet fsi scripts/bench.fsx grpo      wall time of one GRPO epoch on MNIST (CPU; CUDA if present)
//   dotnet fsi scripts/bench.fsx all       every section
//
// Add a section by writing a `unit -> unit` function and listing it in `sections` below.
// Environment variables: RL_BENCH_SECONDS (seconds per case, default 2), RL_THREADS (torch
// intra-op threads, default 1 so that figures are per core).
// Build first: dotnet build src/Rl.fsproj -c Release
#load "load.fsx"

open System
open System.Diagnostics
open TorchSharp
open Rl

let secondsPerCase =
    match Environment.GetEnvironmentVariable "RL_BENCH_SECONDS" with
    | null
    | "" -> 2.0
    | s -> float s

let threads =
    match Environment.GetEnvironmentVariable "RL_THREADS" with
    | null
    | "" -> 1
    | s -> int s

/// Runs `step` (which returns the env steps it did) repeatedly for about `seconds` after a short
/// warm-up; returns env steps per second.
let measure (seconds: float) (step: unit -> int) =
    let warm = Stopwatch.StartNew()

    while warm.Elapsed.TotalSeconds < 0.2 * seconds do
        step () |> ignore

    let sw = Stopwatch.StartNew()
    let mutable steps = 0L

    while sw.Elapsed.TotalSeconds < seconds do
        steps <- steps + int64 (step ())

    float steps / sw.Elapsed.TotalSeconds

/// Random agent on the single form, resetting at the end of each episode.
let singleRate (id: string) =
    let env = Envs.make id
    let rng = Random 0
    env.Reset(Some 0L) |> ignore

    let action () =
        match env.ActionSpace with
        | Space.Discrete(n, start) -> Action.Discrete(start + rng.Next n)
        | Space.Box(low, high, _) ->
            Action.Continuous(Array.init low.Length (fun i -> low[i] + (high[i] - low[i]) * rng.NextDouble()))

    measure secondsPerCase (fun () ->
        let r = env.Step(action ())

        if r.Terminated || r.Truncated then
            env.Reset None |> ignore

        1)

/// Random agent on the batched form with N copies (actions drawn from a pool of 32 pre-sampled
/// tensors, so the figure is the env's own cost).
let batchedRate (id: string) (n: int) =
    use env = Envs.makeBatched id n torch.CPU
    env.Reset 0L |> ignore
    let g = torch.Generator(0UL)

    let pool =
        Array.init 32 (fun _ -> env.ActionSpace.SampleBatch(n, g, torch.CPU).DetachFromDisposeScope())

    let mutable k = 0

    measure secondsPerCase (fun () ->
        use scope = torch.NewDisposeScope()
        env.Step pool[k % pool.Length] |> ignore
        k <- k + 1
        n)

let benchEnvs () =
    Native.setThreads threads

    printfn
        "## envs: env steps/s with random actions (CPU, torch threads %d, %.1f s per case)"
        (torch.get_num_threads ())
        secondsPerCase

    if IO.File.Exists "/proc/loadavg" then
        printfn
            "(load average at start: %s; figures from a busy machine are low and noisy)"
            ((IO.File.ReadAllText "/proc/loadavg").Trim())

    printfn "%-14s %-10s %8s %14s %12s" "env" "form" "N" "steps/s" "vs single"

    for id in [ CartPole.Id; Pendulum.Id ] do
        let single = singleRate id
        printfn "%-14s %-10s %8d %14.0f %12s" id "single" 1 single ""

        for n in [ 1; 64; 1024; 16384 ] do
            let rate = batchedRate id n
            printfn "%-14s %-10s %8d %14.0f %11.2fx" id "batched" n rate (rate / single)

    printfn "(goal: batched N=1024 >= 20x the single form per core; 'vs single' is that ratio at %d thread(s))" threads

/// One GRPO epoch on MNIST (60,000 images, the default config, one seed and three batched
/// seeds) on the CPU, and on CUDA when available. RL_BENCH_GRPO_IMAGES shrinks the epoch.
let benchGrpo () =
    let images =
        match Environment.GetEnvironmentVariable "RL_BENCH_GRPO_IMAGES" with
        | null
        | "" -> 0
        | s -> int s

    let cfg =
        Config.load Grpo.fields Grpo.defaults (IO.Path.Combine(__SOURCE_DIRECTORY__, "configs", "grpo-mnist.yaml"))

    printfn "## grpo: one epoch of GRPO on MNIST (batch %d, G = %d, %d inner epochs, torch threads %d)" cfg.BatchSize cfg.GroupSize cfg.UpdateEpochs threads
    printfn "%-6s %6s %10s %12s %14s %10s" "device" "seeds" "images" "epoch s" "images/s" "accuracy"

    let devices = [ yield "cpu"; if Native.cudaAvailable () then yield "cuda" ]

    for device in devices do
        for seeds in [ 1; 3 ] do
            let c =
                { cfg with
                    Epochs = 1
                    NumSeeds = seeds
                    Device = device
                    Threads = threads
                    TrainSize = images
                    TestSize = 10000 }

            use data = Grpo.loadData c
            let r = Grpo.train data c Grpo.noHooks
            use _a = r.Agent
            let n = float (data.Train.Count / c.BatchSize * c.BatchSize * seeds)
            printfn "%-6s %6d %10.0f %12.2f %14.0f %10.4f" device seeds n r.EpochSeconds[0] (n / r.EpochSeconds[0]) (Array.average r.EpochAccuracy[0])

let sections = [ ("envs", benchEnvs); ("grpo", benchGrpo) ]

match fsi.CommandLineArgs |> Array.tail with
| [| "all" |] ->
    for _, f in sections do
        f ()
| [| name |] when sections |> List.exists (fun (n, _) -> n = name) ->
    (sections |> List.find (fun (n, _) -> n = name) |> snd) ()
| _ ->
    let names = String.Join(", ", sections |> List.map fst)
    eprintfn "usage: dotnet fsi scripts/bench.fsx <section | all>; sections: %s" names
    exit 2
