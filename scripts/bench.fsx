// Benchmarks, one section per argument:
//
//   dotnet fsi scripts/bench.fsx envs      env steps/s, single and batched forms (CPU)
//   dotnet fsi scripts/bench.fsx dqn       DQN on CartPole-v1, 100k steps: wall time and steps/s
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

/// DQN (CleanRL defaults, scripts/configs/dqn-cartpole.yaml) for 100k steps, one seed and five
/// seeds batched; CleanRL dqn.py does 500k steps in 183-247 s (2045-2766 steps/s) on this machine
/// kind (../shared/reference/peers.md).
let benchDqn () =
    let cfg = Config.load Dqn.fields Dqn.defaults (IO.Path.Combine("scripts", "configs", "dqn-cartpole.yaml"))
    printfn "## dqn: CartPole-v1, 100k steps per seed (torch threads %d)" threads
    printfn "%-6s %10s %16s %22s %14s" "seeds" "wall s" "env steps/s" "seed-steps/s (all)" "vs CleanRL"

    for seeds in [ 1; 5 ] do
        let c = { cfg with TotalTimesteps = 100_000L; NumSeeds = seeds; Threads = threads }
        let r = Dqn.train c Dqn.noHooks None
        (r.Agent :> IDisposable).Dispose()
        let sps = 100_000.0 / r.WallSeconds
        printfn "%-6d %10.1f %16.0f %22.0f %13.2fx" seeds r.WallSeconds sps (sps * float seeds) (sps * float seeds / 2400.0)

    printfn "(vs CleanRL: all-seed steps/s over CleanRL's ~2400 env steps/s for one seed)"

let sections = [ ("envs", benchEnvs); ("dqn", benchDqn) ]

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
