// Benchmarks, one section per argument:
//
//   dotnet fsi scripts/bench.fsx envs      env steps/s, single and batched forms (CPU)
//   dotnet fsi scripts/bench.fsx ppo       PPO on Pendulum-v1: wall time, steps/s, time split,
//                                          RSS over the run, thread counts, peers' figures
//   dotnet fsi scripts/bench.fsx grpo      wall time of one GRPO epoch on MNIST (CPU; CUDA if present)
//   dotnet fsi scripts/bench.fsx dqn       DQN on CartPole-v1, 100k steps: wall time and steps/s
//   dotnet fsi scripts/bench.fsx ppo-cartpole  PPO on CartPole-v1 (PureJaxRL default config), 1 and
//                                          16 seeds batched, beside CleanRL ppo.py (run side by side
//                                          when RL_CLEANRL_DIR is set, else peers.md's 5637 steps/s)
//   dotnet fsi scripts/bench.fsx ppo-cartpole-gpu  the same on CUDA for 1, 16 and 256 seeds, beside
//                                          PureJaxRL's H100 figures (needs RL_LIBTORCH)
//   dotnet fsi scripts/bench.fsx profile   where the time goes: seconds, calls and tensors created per
//                                          section of PPO (Pendulum, CartPole) and DQN, beside the flops
//   dotnet fsi scripts/bench.fsx floor     the eager-call floor: one libtorch call on tiny tensors, and
//                                          an MLP's gradients by autograd, by hand, and as one custom
//                                          autograd function; the clip loss eager vs TorchScript
//   dotnet fsi scripts/bench.fsx learning  every shipped main config over untuned seeds (1000..):
//                                          success rate against the seed's bar, mean final eval with
//                                          a 95 % bootstrap CI, median steps to the bar, wall time,
//                                          a report with learning curves (RL_LEARNING_QUICK=1: smoke test)
//   dotnet fsi scripts/bench.fsx solve     wall time to a solved policy, ours beside CleanRL's on
//                                          Pendulum-v1 and CartPole-v1, one seed per process (RL_CLEANRL_DIR)
//   dotnet fsi scripts/bench.fsx all       every section
//
// Each section lives in its own file under scripts/bench/, named after it (envs.fsx, ppo.fsx,
// ppo-cartpole.fsx, ppo-cartpole-gpu.fsx, dqn.fsx, grpo.fsx, profile.fsx, floor.fsx, learning.fsx, solve.fsx; modules
// BenchEnvs, BenchPpo and so on), on the helpers of scripts/bench/common.fsx (the settings, the
// steps/s clock, flops, one PPO run, the CleanRL peer runner). Add a section by writing
// scripts/bench/<name>.fsx (a module that only defines functions, the section a `unit -> unit`
// one), `#load`ing it below and listing it in `sections`.
// Environment variables: RL_BENCH_SECONDS (seconds per case, default 2), RL_THREADS (torch
// intra-op threads, default 1 so that figures are per core).
// Build first: dotnet build src/Rl.fsproj -c Release
#load "prepare.fsx"
#load "load.fsx"
#load "bench/common.fsx"
#load "bench/envs.fsx"
#load "bench/ppo.fsx"
#load "bench/ppo-cartpole.fsx"
#load "bench/ppo-cartpole-gpu.fsx"
#load "bench/dqn.fsx"
#load "bench/grpo.fsx"
#load "bench/profile.fsx"
#load "bench/floor.fsx"
#load "bench/learning.fsx"
#load "bench/solve.fsx"

open System

let sections =
    [
        ("envs", BenchEnvs.benchEnvs)
        ("ppo", BenchPpo.benchPpo)
        ("ppo-cartpole", BenchPpoCartPole.benchPpoCartPole)
        ("ppo-cartpole-gpu", BenchPpoCartPoleGpu.benchPpoCartPoleGpu)
        ("dqn", BenchDqn.benchDqn)
        ("grpo", BenchGrpo.benchGrpo)
        ("profile", BenchProfile.benchProfile)
        ("floor", BenchFloor.benchFloor)
        ("learning", BenchLearning.benchLearning)
        ("solve", BenchSolve.benchSolve)
    ]

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
