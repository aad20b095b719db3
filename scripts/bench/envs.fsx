// The env bench (`bench.fsx envs`): env steps/s with random actions on the CPU, the single form
// beside the tensor-batched form and SyncVectorEnv at several sizes N.
module BenchEnvs

open System
open TorchSharp
open Rl
open BenchCommon

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

/// Random agent on N copies stepped as `mode` says ("vector": the tensor-batched form, "sync":
/// SyncVectorEnv), actions drawn from a pool of 32 pre-sampled tensors, so the figure is the
/// env's own cost including the tensors it hands back.
let batchedRate (mode: string) (id: string) (n: int) =
    use env = Envs.makeVec mode id n torch.CPU
    env.Reset 0L |> ignore
    use g = new torch.Generator(0UL)

    let pool =
        Array.init 32 (fun _ -> env.ActionSpace.SampleBatch(n, g, torch.CPU).DetachFromDisposeScope())

    let mutable k = 0

    measure secondsPerCase (fun () ->
        use scope = torch.NewDisposeScope()
        env.Step pool[k % pool.Length] |> ignore
        k <- k + 1
        n)

/// The `envs` section: CartPole-v1 and Pendulum-v1, the single form, then the tensor-batched form
/// (N = 1 to 16384) and SyncVectorEnv (N = 1 to 1024), each against the single form.
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

        for mode, sizes in [ "vector", [ 1; 4; 64; 1024; 16384 ]; "sync", [ 1; 4; 64; 1024 ] ] do
            for n in sizes do
                let rate = batchedRate mode id n
                printfn "%-14s %-10s %8d %14.0f %11.2fx" id mode n rate (rate / single)

    printfn "(goal: batched N=1024 >= 20x the single form per core; 'vs single' is that ratio at %d thread(s))" threads
    printfn "(vector: the tensor-batched form; sync: SyncVectorEnv, the single forms stepped on the host)"
