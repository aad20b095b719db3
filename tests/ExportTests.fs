/// Tests of `export.fsx format=onnx` (`Rl.Export`, `Rl.Onnx`, `Rl.PolicyExport`): every head the
/// library trains is exported, run in ONNX Runtime (Microsoft.ML.OnnxRuntime) and compared with
/// the library's own deterministic action on observations from real episodes and random points
/// of the observation box; the ONNX policy's greedy episodes score what the library's evaluation
/// of the run scores; bad input is refused with nothing written.
module Rl.Tests.ExportTests

open System
open System.IO
open Expecto
open Microsoft.ML.OnnxRuntime
open Microsoft.ML.OnnxRuntime.Tensors
open TorchSharp
open Rl
open Rl.Tests.TestPaths

/// A short PPO Pendulum run (the default config: log-std, 2 tanh, observation normalisation).
let private pendulum = ResumeTests.smallPendulum

let private cartPole =
    [
        "config=" + config "ppo-cartpole.yaml"
        "num_envs=2"
        "num_steps=64"
        "num_minibatches=2"
        "update_epochs=1"
        "total_timesteps=512"
        "eval_episodes=2"
        "threads=1"
    ]

let private dqn =
    [
        "total_timesteps=1500"
        "learning_starts=500"
        "log_every=500"
        "eval_episodes=2"
        "threads=1"
    ]

/// The outputs of an exported model for observations [B; obsDim]: name -> (floats, shape).
let private runOnnx (file: string) (obs: float32[]) (batch: int) (obsDim: int) =
    use session = new InferenceSession(file)

    let input =
        DenseTensor<float32>(Memory<float32>(obs), ReadOnlySpan<int>([| batch; obsDim |]))

    use results = session.Run [| NamedOnnxValue.CreateFromTensor(Onnx.ObsName, input) |]

    [
        for r in results ->
            let values =
                match r.Value with
                | :? Tensor<float32> as t -> t |> Seq.map float |> Array.ofSeq
                | :? Tensor<int64> as t -> t |> Seq.map float |> Array.ofSeq
                | v -> failtest $"unexpected output type {v.GetType()}"

            r.Name, values
    ]
    |> Map.ofList

/// Observations to compare on, [B; obsDim] flat: `episodes` x 250 steps of real episodes (the
/// library's own deterministic policy, seed index 0) and as many random points of the
/// observation box (uniform within finite bounds, N(0, 2) along infinite ones).
let private observations (policy: PolicyExport.LoadedPolicy) =
    let n = 4
    use env = Envs.makeBatched policy.EnvId n torch.CPU
    let d = policy.ObsDim
    let real = ResizeArray<float32>()
    use scope = torch.NewDisposeScope()
    let mutable obs = env.Reset 123L

    for _ in 1..250 do
        real.AddRange(Tensor.toArray32 obs)
        obs <- (env.Step(policy.ActOn(0, obs))).Obs

    let rng = Random 7

    let low, high =
        match policy.ObservationSpace with
        | Space.Box(l, h, _) -> l, h
        | other -> failtest $"unexpected observation space {other}"

    let random =
        Array.init (real.Count / d) (fun _ ->
            Array.init d (fun i ->
                if Double.IsFinite low[i] && Double.IsFinite high[i] then
                    float32 (low[i] + rng.NextDouble() * (high[i] - low[i]))
                else
                    float32 (
                        2.0
                        * Math.Sqrt(-2.0 * Math.Log(1.0 - rng.NextDouble()))
                        * Math.Cos(2.0 * Math.PI * rng.NextDouble())
                    )))
        |> Array.concat

    Array.append (real.ToArray()) random

/// ONNX against the library for seed index `k` on `obs`: the largest |difference| of the actions
/// (continuous) or of the scores (discrete), the number of discrete actions that differ, and how
/// many of those differ where the library's two best scores are more than 1e-5 apart (a real
/// disagreement rather than a near-tie).
let private compareOn (policy: PolicyExport.LoadedPolicy) (k: int) (file: string) (obs: float32[]) =
    let d = policy.ObsDim
    let B = obs.Length / d
    let onnx = runOnnx file obs B d
    let libAction = policy.ActFor(k, obs)

    let maxDiff (a: float[]) (b: float[]) =
        Array.map2 (fun x y -> abs (x - y)) a b |> Array.max

    match policy.ActionSpace with
    | Space.Box _ -> maxDiff onnx[Onnx.ActionName] libAction, 0, 0
    | _ ->
        let scores = policy.OutputsFor(k, obs)
        let n = scores.Length / B
        let differ = Array.map2 (<>) onnx[Onnx.ActionName] libAction

        let clear i =
            let row = scores[i * n .. i * n + n - 1] |> Array.sortDescending
            row[0] - row[1] > 1e-5

        let real =
            differ
            |> Array.indexed
            |> Array.filter (fun (i, x) -> x && clear i)
            |> Array.length

        maxDiff onnx[policy.ScoresName] scores, (differ |> Array.filter id |> Array.length), real

/// The episode returns of `episodes` deterministic episodes driven by an exported policy, on the
/// batched environment `env` reset with `resetSeed` (the same procedure as the library's
/// evaluation: every copy's first episode).
let private onnxEpisodes (file: string) (env: IBatchedEnv) (resetSeed: int64) =
    use session = new InferenceSession(file)
    let n = env.NumEnvs
    let d = env.ObservationSpace.FlatSize
    use scope = torch.NewDisposeScope()
    let mutable obs = env.Reset resetSeed
    let returns = Array.create n nan
    let mutable left = env.MaxEpisodeSteps + 1

    while Array.exists Double.IsNaN returns && left > 0 do
        let x = Tensor.toArray32 obs
        let input = DenseTensor<float32>(Memory<float32>(x), ReadOnlySpan<int>([| n; d |]))
        use results = session.Run [| NamedOnnxValue.CreateFromTensor(Onnx.ObsName, input) |]
        let out = results |> Seq.find (fun r -> r.Name = Onnx.ActionName)

        let action =
            match out.Value with
            | :? Tensor<int64> as a -> torch.tensor (Array.ofSeq a: int64[])
            | :? Tensor<float32> as a -> torch.tensor(Array.ofSeq a: float32[]).reshape(int64 n, -1L)
            | v -> failtest $"unexpected action type {v.GetType()}"

        let r = env.Step action
        let finished = Tensor.toArray (r.Terminated.logical_or r.Truncated)
        let ret = Tensor.toArray r.EpisodeReturn

        for i in 0 .. n - 1 do
            if finished[i] <> 0.0 && Double.IsNaN returns[i] then
                returns[i] <- ret[i]

        obs <- r.Obs
        left <- left - 1

    returns

/// Whether the run in `dir` acts on CartPole (discrete actions), from its config's env id.
let private policyIsDiscrete (dir: string) =
    File.ReadAllLines(Path.Combine(dir, Run.ConfigFile))
    |> Array.exists (fun l -> l.StartsWith "env_id: CartPole")

/// Trains `args` with `run` into a fresh folder, exports it, and checks every exported seed
/// against the library on the observations of `observations` (at least 1000); returns the run
/// folder, the exported files and the largest difference. Deletes nothing (the caller's folder).
let private exportAndCompare (runs: string) (name: string) (run: string list -> string) (args: string list) =
    let dir = run ("runs=" + runs :: args)
    let files = Export.export dir "onnx" None None
    use policy = Export.load dir
    Expect.equal files.Length policy.Seeds.Length "one file per seed"
    let obs = observations policy
    Expect.isGreaterThanOrEqual (obs.Length / policy.ObsDim) 1000 "observations compared"

    let worst =
        [
            for k, file in List.indexed files do
                let diff, differ, real = compareOn policy k file obs

                printfn
                    "export %s, seed %d: %d observations, max |diff| %.3g, discrete actions that differ %d (beyond near-ties %d)"
                    name
                    policy.Seeds[k]
                    (obs.Length / policy.ObsDim)
                    diff
                    differ
                    real

                Expect.isLessThanOrEqual diff 1e-5 $"{name}, seed {policy.Seeds[k]}: ONNX against the library"
                Expect.equal real 0 $"{name}: discrete actions disagree beyond near-ties"
                diff
        ]
        |> List.max

    dir, files, worst

let private heads =
    [
        "PPO Pendulum, log-std, 2 tanh, normalised observations", Ppo.Runner.run, pendulum
        "PPO Pendulum, softplus", Ppo.Runner.run, pendulum @ [ "sigma=softplus" ]
        "PPO Pendulum, fixed sigma", Ppo.Runner.run, pendulum @ [ "sigma=fixed"; "fixed_sigma=0.5" ]
        "PPO Pendulum, gSDE", Ppo.Runner.run, pendulum @ [ "sigma=sde" ]
        "PPO Pendulum, linear mean clipped into the box",
        Ppo.Runner.run,
        pendulum @ [ "mean_tanh=false"; "norm_obs=false" ]
        "PPO Pendulum, two seeds batched", Ppo.Runner.run, pendulum @ [ "num_seeds=2"; "seed=5" ]
        "PPO CartPole, categorical, CleanRL's actor-critic", Ppo.Runner.run, cartPole
        "PPO CartPole, categorical, shared trunk", Ppo.Runner.run, cartPole @ [ "share_trunk=true" ]
        "DQN CartPole, Q-network", Dqn.Runner.run, dqn
    ]

[<Tests>]
let tests =
    testList
        "Export"
        [
            for name, run, args in heads do
                test $"ONNX equals the library's deterministic action: {name}" {
                    let runs = tempDir "rl-export"

                    try
                        exportAndCompare runs name run args |> ignore
                    finally
                        Directory.Delete(runs, true)
                }

            test "the ONNX policy's greedy episodes score the library's evaluation of the run" {
                let runs = tempDir "rl-export"

                try
                    for name, run, args in [ heads[0]; heads[6]; heads[8] ] do
                        let dir, files, _ = exportAndCompare runs name run args
                        let library = Cli.evaluate dir None (Some 10)

                        let onnx =
                            match Cli.resolve None (Some dir) with
                            | "ppo" ->
                                let cfg =
                                    Config.load
                                        Ppo.Runner.algorithm.Fields
                                        Ppo.Runner.algorithm.Defaults
                                        (Path.Combine(dir, Run.ConfigFile))

                                use env = Ppo.PpoConfig.makeEnv cfg 10
                                onnxEpisodes files.Head env (cfg.EvalSeed + cfg.Run.Seed)
                            | _ ->
                                let cfg =
                                    Config.load
                                        Dqn.Runner.algorithm.Fields
                                        Dqn.Runner.algorithm.Defaults
                                        (Path.Combine(dir, Run.ConfigFile))

                                use env = Dqn.DqnConfig.makeEnv cfg 10
                                onnxEpisodes files.Head env cfg.EvalSeed

                        let diff = Array.map2 (fun a b -> abs (a - b)) onnx library[0] |> Array.max

                        printfn
                            "export %s: 10 episodes, library %.4f, ONNX %.4f, max |diff| per episode %.3g"
                            name
                            (Array.average library[0])
                            (Array.average onnx)
                            diff
                        // actions agree to 1e-6 (above), but float32 products rounded in another
                        // order drift apart over a long chaotic episode (a spinning Pendulum):
                        // the means must agree to 0.1 %, discrete policies' returns exactly
                        let libMean = Array.average library[0]

                        if policyIsDiscrete dir then
                            Expect.equal onnx library[0] $"{name}: episode returns"
                        else
                            Expect.isLessThanOrEqual
                                (abs (Array.average onnx - libMean))
                                (1e-3 * abs libMean)
                                $"{name}: mean return"
                finally
                    Directory.Delete(runs, true)
            }

            test "PyTorch export loads into the equivalent torch.nn MLP in Python and acts as the library" {
                let python = "/usr/bin/python3"

                let hasTorch =
                    File.Exists python
                    && (use p =
                            Diagnostics.Process.Start(
                                Diagnostics.ProcessStartInfo(
                                    python,
                                    "-c \"import torch, numpy\"",
                                    RedirectStandardError = true
                                )
                            )

                        p.WaitForExit()
                        p.ExitCode = 0)

                if not hasTorch then
                    skiptest "python3 with torch not found (build.fsx Setup installs python3-torch when root)"

                let checker =
                    Path.Combine(repoRoot.Value, "tests", "python", "check_pytorch_export.py")

                let runs = tempDir "rl-export"

                try
                    for name, run, args in [ heads[0]; heads[5]; heads[7]; heads[8] ] do
                        let dir = run ("runs=" + runs :: args)
                        let files = Export.export dir "pytorch" None None
                        use policy = Export.load dir
                        Expect.equal files.Length (3 * policy.Seeds.Length) "three files per seed"
                        let obs = observations policy
                        let d = policy.ObsDim
                        let B = obs.Length / d

                        for k in 0 .. policy.Seeds.Length - 1 do
                            let act = policy.ActFor(k, obs)
                            let n = act.Length / B

                            let cases =
                                Text.Json.JsonSerializer.Serialize(
                                    {|
                                        obs = Array.init B (fun i -> obs[i * d .. i * d + d - 1])
                                        actions = Array.init B (fun i -> act[i * n .. i * n + n - 1])
                                    |}
                                )

                            let casesFile = Path.Combine(runs, "cases.json")
                            File.WriteAllText(casesFile, cases)
                            let stem = Path.ChangeExtension(files[3 * k], null)

                            let psi =
                                Diagnostics.ProcessStartInfo(
                                    python,
                                    RedirectStandardOutput = true,
                                    RedirectStandardError = true
                                )

                            for a in [ checker; stem + ".json"; stem + ".pt"; stem + ".safetensors"; casesFile ] do
                                psi.ArgumentList.Add a

                            use p = Diagnostics.Process.Start psi
                            let err = p.StandardError.ReadToEndAsync()
                            let out = p.StandardOutput.ReadToEnd()
                            p.WaitForExit()
                            printfn "export %s, seed %d: %s" name policy.Seeds[k] (out.Trim())
                            Expect.equal p.ExitCode 0 $"{name}: the Python check failed: {out} {err.Result}"
                finally
                    Directory.Delete(runs, true)
            }

            test "export refuses bad input with one message and writes nothing" {
                let runs = tempDir "rl-export"

                try
                    let dir = Ppo.Runner.run ("runs=" + runs :: pendulum)
                    let out = Path.Combine(runs, "out")

                    let refused (args: string list) (words: string) =
                        match Export.tryRun args with
                        | Ok files -> failtest $"{args} exported {files}"
                        | Error line ->
                            Expect.stringContains line words $"message for {args}"
                            Expect.isFalse (line.Contains "\n") $"one line for {args}: {line}"
                            Expect.isFalse (line.Contains "   at ") $"no stack trace for {args}"

                        Expect.isFalse
                            (Directory.Exists out && not (Seq.isEmpty (Directory.EnumerateFiles out)))
                            "nothing written"

                    refused [ "run=" + dir; "format=tflite"; "out=" + out ] "allowed: onnx, pytorch"
                    refused [ "run=" + dir; "seed=7"; "out=" + out ] "one of the run's seeds: 0"
                    refused [ "run=" + dir; "colour=red"; "out=" + out ] "unknown argument"
                    refused [ "format=onnx" ] "run= is required"
                    refused [ "run=" + Path.Combine(runs, "nothing-here"); "out=" + out ] "not a folder"

                    // a run folder whose checkpoint is gone, or damaged
                    let copy = Path.Combine(runs, "copy")
                    Directory.CreateDirectory copy |> ignore
                    File.Copy(Path.Combine(dir, Run.ConfigFile), Path.Combine(copy, Run.ConfigFile))
                    refused [ "run=" + copy; "out=" + out ] "checkpoint"

                    let ckpt = Path.Combine(dir, Run.CheckpointDir)
                    let part = Path.Combine(ckpt, "module.actor.dat")
                    let bytes = File.ReadAllBytes part
                    bytes[bytes.Length / 2] <- bytes[bytes.Length / 2] ^^^ 0xFFuy
                    File.WriteAllBytes(part, bytes)
                    refused [ "run=" + dir; "out=" + out ] "checkpoint"

                    // algorithms without an exportable policy
                    let reinforce =
                        Reinforce.Runner.run [ "runs=" + runs; "iterations=1"; "eval_episodes=1"; "threads=1" ]

                    refused [ "run=" + reinforce; "out=" + out ] "keep no policy"
                finally
                    Directory.Delete(runs, true)
            }
        ]
