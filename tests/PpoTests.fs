module Rl.Tests.PpoTests

open System
open System.IO
open Expecto
open TorchSharp
open Rl
open Rl.Tests.TestPaths

let private close (a: torch.Tensor) (b: torch.Tensor) tol = Tensor.item ((a - b).abs().max()) < tol

/// A small, fast PPO config on Pendulum-v1 for tests.
let small =
    { Ppo.PpoConfig.seedDefaults with
        NumEnvs = 4
        NumSteps = 256
        TotalTimesteps = 2048L
        MinibatchSize = 256
        UpdateEpochs = 2
        Gamma = 0.9
        ActorLr = 2e-3
        CriticLr = 2e-3
        Sigma = "logstd"
        NormObs = true
        NormReward = true
        Run.Threads = 1
        EvalEpisodes = 4
    }

let private expectConfigError (args: string list) (mentions: string list) =
    let runs = tempDir "rl-runs"

    try
        let e =
            Expect.throwsC
                (fun () ->
                    Ppo.Runner.run (args @ [ $"runs={runs}"; "config=" + config "ppo-pendulum-seed.yaml" ])
                    |> ignore)
                id

        match e with
        | ConfigError _ ->
            for m in mentions do
                Expect.stringContains e.Message m $"the message names '{m}'"
        | _ -> failtest $"expected a ConfigError, got {e.GetType().Name}: {e.Message}"

        Expect.isEmpty (Directory.GetFileSystemEntries runs) "nothing is written for a bad config"
    finally
        Directory.Delete(runs, true)

/// An environment wrapper whose rewards become NaN after `after` steps.
type NanRewardEnv(inner: IBatchedEnv, after: int) =
    let mutable steps = 0

    interface IBatchedEnv with
        member _.Id = inner.Id
        member _.NumEnvs = inner.NumEnvs
        member _.ObservationSpace = inner.ObservationSpace
        member _.ActionSpace = inner.ActionSpace
        member _.MaxEpisodeSteps = inner.MaxEpisodeSteps
        member _.Device = inner.Device
        member _.Reset seed = inner.Reset seed

        member _.Step action =
            steps <- steps + 1
            let r = inner.Step action

            if steps > after then
                { r with
                    Reward = torch.full_like (r.Reward, nan)
                }
            else
                r

        member _.Dispose() = inner.Dispose()

/// Mean return of uniformly random actions over `episodes` episodes from the start states PPO's
/// evaluation uses for training seed `seed`.
let private randomPolicyReturn (cfg: Ppo.PpoConfig) (seed: int64) (episodes: int) =
    use env = Envs.makeBatched cfg.EnvId episodes torch.CPU
    let g = Seed.generator torch.CPU 123L
    env.Reset(cfg.EvalSeed + seed) |> ignore
    let returns = Array.create episodes nan

    for _ in 1 .. env.MaxEpisodeSteps do
        use _scope = torch.NewDisposeScope()
        let r = env.Step(env.ActionSpace.SampleBatch(episodes, g, torch.CPU))
        let finished = Tensor.toArray (r.Terminated.logical_or r.Truncated)
        let ret = Tensor.toArray r.EpisodeReturn

        for i in 0 .. episodes - 1 do
            if finished[i] <> 0.0 && Double.IsNaN returns[i] then
                returns[i] <- ret[i]

    Array.average returns

[<Tests>]
let tests =
    testList
        "Ppo"
        [
            test "unknown config key is refused, naming it and listing valid keys" {
                expectConfigError [ "gama=0.9" ] [ "gama"; "gamma" ]
            }

            test "invalid values are refused with key, value and what is allowed" {
                expectConfigError [ "actor_lr=0" ] [ "actor_lr"; "0"; "> 0" ]
                expectConfigError [ "gamma=1.5" ] [ "gamma"; "1.5"; "(0, 1]" ]
                expectConfigError [ "minibatch_size=4096" ] [ "minibatch_size"; "4096"; "2048" ]
                expectConfigError [ "num_minibatches=3" ] [ "num_minibatches"; "3"; "divisor"; "2048" ]
                expectConfigError [ "num_minibatches=-1" ] [ "num_minibatches"; "-1"; ">= 0" ]
                expectConfigError [ "device=tpu" ] [ "device"; "tpu"; "cpu" ]
                expectConfigError [ "env_id=Pendulum-v9" ] [ "env_id"; "Pendulum-v9"; "Pendulum-v1" ]
                expectConfigError [ "loss=trpo" ] [ "loss"; "trpo"; "clip"; "kl_penalty" ]
                expectConfigError [ "kl_target=0" ] [ "kl_target"; "0"; "> 0" ]
                expectConfigError [ "sigma=learned" ] [ "sigma"; "learned"; "fixed" ]
                expectConfigError [ "sigma=fixed"; "fixed_sigma=-1" ] [ "fixed_sigma"; "-1"; "> 0" ]
            }

            test "asking for CUDA without it is one config error before a run folder exists" {
                if Native.cudaAvailable () then
                    skiptest "CUDA is available here"

                let runs = tempDir "rl-runs"

                try
                    let args =
                        [ "device=cuda"; $"runs={runs}"; "config=" + config "ppo-pendulum-seed.yaml" ]

                    Expect.throwsC (fun () -> Ppo.Runner.run args |> ignore) (function
                        | ConfigError(_, key, value, _, problem) ->
                            Expect.equal (key, value) ("device", "cuda") "the key and value named"
                            Expect.stringContains problem "CUDA is not available" "the reason"
                        | e -> failtest $"expected a ConfigError, got {e.GetType().Name}: {e.Message}")

                    // the command line: exit code 2 (a config error), like every other refusal
                    Expect.equal (Cli.main args) 2 "train.fsx exit code"
                    Expect.isEmpty (Directory.GetFileSystemEntries runs) "nothing written"
                finally
                    Directory.Delete(runs, true)
            }

            test "a NaN loss stops training with the update number and quantity" {
                let cfg = small
                let mutable rowsSeen = 0

                let hooks =
                    { Ppo.Loop.noHooks with
                        OnUpdate = fun _ _ _ rows -> rowsSeen <- rowsSeen + rows.Length
                    }

                let make n =
                    new NanRewardEnv(Envs.makeBatched cfg.EnvId n torch.CPU, 300) :> IBatchedEnv

                let e =
                    Expect.throwsC (fun () -> Ppo.Loop.trainWith make cfg hooks None |> ignore) id

                match e with
                | Train.TrainingDivergedException(update, quantity, _) ->
                    Expect.equal update 2 "the second update sees NaN rewards (steps 257..)"

                    Expect.equal
                        quantity
                        "actor_loss"
                        "NaN rewards make the advantages NaN; the actor loss is checked first"

                    Expect.equal rowsSeen 1 "the first update's metrics were delivered"
                | _ -> failtest $"expected TrainingDivergedException, got {e}"
            }

            test "checkpoint round trip restores networks, optimizers and statistics" {
                let runs = tempDir "rl-runs"

                try
                    let dir =
                        Ppo.Runner.run
                            [
                                $"runs={runs}"
                                "config=" + config "ppo-pendulum-seed.yaml"
                                "num_envs=2"
                                "num_steps=128"
                                "minibatch_size=128"
                                "update_epochs=1"
                                "total_timesteps=512"
                                "norm_obs=true"
                                "eval_episodes=2"
                                "threads=1"
                            ]

                    for f in
                        [
                            "config.yaml"
                            "metrics.csv"
                            "summary.json"
                            "report.html"
                            "checkpoint/manifest.json"
                        ] do
                        Expect.isTrue (File.Exists(Path.Combine(dir, f))) $"{f} written"

                    let cfg =
                        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (Path.Combine(dir, "config.yaml"))

                    let a1, p1, n1 = Ppo.Runner.load cfg dir
                    let a2, p2, n2 = Ppo.Runner.load cfg dir
                    Expect.equal p1.Update 2 "two updates of 256 steps"
                    Expect.equal p1.GlobalStep 512L "steps"
                    Expect.equal (n1.Obs.Value.Save()) (n2.Obs.Value.Save()) "obs statistics"
                    let e1 = Ppo.Evaluate.evaluate (Ppo.PpoConfig.makeEnv cfg) a1 n1.Obs 3 7L
                    let e2 = Ppo.Evaluate.evaluate (Ppo.PpoConfig.makeEnv cfg) a2 n2.Obs 3 7L
                    Expect.equal e1 e2 "same checkpoint, same evaluation"
                    let summary = File.ReadAllText(Path.Combine(dir, "summary.json"))

                    for key in
                        [
                            "eval_return_mean"
                            "eval_return_std"
                            "wall_seconds"
                            "total_timesteps"
                            "steps_per_second"
                            "seed"
                            "device"
                        ] do
                        Expect.stringContains summary $"\"{key}\"" $"summary has {key}"
                    // a damaged checkpoint is refused
                    let actorFile =
                        Directory.GetFiles(Path.Combine(dir, "checkpoint"))
                        |> Array.find (fun f -> Path.GetFileName(f).Contains "actor")

                    File.WriteAllBytes(actorFile, Array.append (File.ReadAllBytes actorFile) [| 0uy |])

                    Expect.throwsC (fun () -> Ppo.Runner.load cfg dir |> ignore) (fun e ->
                        Expect.stringContains e.Message "actor" "names the file")
                finally
                    Directory.Delete(runs, true)
            }

            test "a short seeded run (2 seeds x 20k steps) beats a random policy on Pendulum" {
                let defaults =
                    Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (config "ppo-pendulum.yaml")

                let cfg =
                    { defaults with
                        TotalTimesteps = 20_480L
                        NumSteps = 256
                        Run.NumSeeds = 2
                        AnnealLr = false
                        Run.Threads = 1
                    }

                let r = Ppo.Loop.train cfg Ppo.Loop.noHooks None

                for m in r.Metrics do
                    Expect.isTrue (Double.IsFinite m.ActorLoss && Double.IsFinite m.CriticLoss) "finite losses"

                let evals =
                    Ppo.Evaluate.evaluate (Ppo.PpoConfig.makeEnv cfg) r.Agent r.Normalizers.Obs 10 cfg.EvalSeed

                for k in 0 .. cfg.Run.NumSeeds - 1 do
                    let trained = Array.average evals[k]
                    let random = randomPolicyReturn cfg cfg.Seeds[k] 10
                    // measured here: seed 0 -318 vs -1374, seed 1 -211 vs -1225
                    Expect.isGreaterThan
                        trained
                        (random + 500.0)
                        $"seed {cfg.Seeds[k]}: trained {trained:F0} vs random {random:F0}"
            }

            test "training resumes from a run folder and continues its metrics" {
                let runs = tempDir "rl-runs"

                try
                    let common =
                        [
                            "num_envs=2"
                            "num_steps=128"
                            "minibatch_size=128"
                            "update_epochs=1"
                            "eval_episodes=2"
                            "threads=1"
                        ]

                    let dir =
                        Ppo.Runner.run (
                            [
                                $"runs={runs}"
                                "config=" + config "ppo-pendulum-seed.yaml"
                                "total_timesteps=512"
                            ]
                            @ common
                        )

                    let dir2 = Ppo.Runner.run [ $"resume={dir}"; "total_timesteps=1024" ]
                    Expect.equal dir2 dir "same run folder"
                    let table = Metrics.readCsv (Path.Combine(dir, "metrics.csv"))

                    Expect.sequenceEqual
                        (Metrics.column "update" table)
                        [| 1.0; 2.0; 3.0; 4.0 |]
                        "updates 1-2, then 3-4 after resuming"

                    Expect.sequenceEqual
                        (Metrics.column "global_step" table)
                        [| 256.0; 512.0; 768.0; 1024.0 |]
                        "steps continue"

                    let cosPrev = Metrics.column "grad_cos_prev" table
                    let cosEma = Metrics.column "grad_cos_ema" table
                    Expect.isTrue (Double.IsNaN cosPrev[0] && Double.IsNaN cosEma[0]) "no history at update 1"
                    // the gradient history is part of the checkpoint: the first update after the
                    // resume still has a previous gradient to compare with
                    Expect.isTrue
                        (Array.forall Double.IsFinite cosPrev[1..]
                         && Array.forall Double.IsFinite cosEma[1..])
                        $"cosines finite from update 2 on, also right after resuming: {cosPrev} {cosEma}"

                    let extra = Checkpoint.readExtra (Path.Combine(dir, "checkpoint"))
                    Expect.equal extra["update"] "4" "checkpoint at the last update"

                    let cfg =
                        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (config "ppo-pendulum-seed.yaml")

                    let agent = Ppo.Agent.makeFor cfg 3 Pendulum.actionSpace torch.CPU
                    let p = agent.Actor.parameters () |> Seq.sumBy (fun t -> t.numel ())
                    (agent :> IDisposable).Dispose()
                    Expect.equal extra["grad_history"] $"1,{p}" "gradient history [S; P] (P = actor parameters) saved"

                    Expect.stringContains
                        (File.ReadAllText(Path.Combine(dir, "config.yaml")))
                        "total_timesteps: 1024"
                        "resolved config updated"
                finally
                    Directory.Delete(runs, true)
            }

            test "a multi-seed run writes one metrics row per update and seed, and per-seed evaluations" {
                let runs = tempDir "rl-runs"

                try
                    let dir =
                        Ppo.Runner.run
                            [
                                $"runs={runs}"
                                "config=" + config "ppo-pendulum-seed.yaml"
                                "num_seeds=2"
                                "seed=5"
                                "num_envs=2"
                                "num_steps=128"
                                "minibatch_size=128"
                                "update_epochs=1"
                                "total_timesteps=512"
                                "eval_episodes=2"
                                "threads=1"
                            ]

                    let table = Metrics.readCsv (Path.Combine(dir, "metrics.csv"))

                    Expect.sequenceEqual
                        (Metrics.column "seed" table)
                        [| 5.0; 6.0; 5.0; 6.0 |]
                        "seeds 5 and 6, two updates"

                    let summary = File.ReadAllText(Path.Combine(dir, "summary.json"))
                    Expect.stringContains summary "eval_return_mean_seed_6" "per-seed evaluation"
                finally
                    Directory.Delete(runs, true)
            }

            test "resuming a folder without a checkpoint fails clearly" {
                let runs = tempDir "rl-runs"

                try
                    File.WriteAllText(Path.Combine(runs, "config.yaml"), "env_id: Pendulum-v1\n")

                    Expect.throwsC (fun () -> Ppo.Runner.run [ $"resume={runs}" ] |> ignore) (fun e ->
                        Expect.stringContains e.Message "checkpoint" "names the checkpoint")
                finally
                    Directory.Delete(runs, true)
            }

            test "num_minibatches n trains exactly as minibatch_size batch / n, and follows num_envs" {
                let byCount =
                    { small with
                        NumMinibatches = 4
                        MinibatchSize = 7
                    }

                Expect.equal (byCount.MinibatchLength, byCount.MinibatchesPerEpoch) (256, 4) "1024 / 4"

                let wider = { byCount with NumEnvs = 8 }
                Expect.equal (wider.MinibatchLength, wider.MinibatchesPerEpoch) (512, 4) "2048 / 4"

                let bySize = { small with MinibatchSize = 256 }
                Expect.equal (bySize.MinibatchLength, bySize.MinibatchesPerEpoch) (256, 4) "1024 / 256"

                let metrics cfg =
                    (Ppo.Loop.train { cfg with TotalTimesteps = 1024L } Ppo.Loop.noHooks None).Metrics
                    |> List.map (fun m -> m.ActorLoss, m.CriticLoss, m.GradNorm)

                Expect.equal (metrics byCount) (metrics bySize) "same minibatches, same run"
            }

            test
                "loss kl_penalty: beta starts at kl_beta and follows the PPO paper's rule, update by update and seed by seed" {
                let cfg =
                    { small with
                        Loss = "kl_penalty"
                        KlBeta = 0.5
                        KlTarget = 0.002
                        Run.NumSeeds = 2
                        TotalTimesteps = 4096L
                    }

                let rows = (Ppo.Loop.train cfg Ppo.Loop.noHooks None).Metrics

                for seed in cfg.Seeds do
                    let mine = rows |> List.filter (fun m -> m.Seed = seed) |> Array.ofList
                    Expect.equal mine.Length 4 "four updates"
                    Expect.equal mine[0].KlBeta 0.5 "the first update uses kl_beta"

                    for u in 1 .. mine.Length - 1 do
                        Expect.isTrue (mine[u - 1].Kl >= 0.0) "KL(old || new) >= 0"

                        Expect.equal
                            mine[u].KlBeta
                            (Losses.adaptKlBeta cfg.KlTarget mine[u - 1].Kl mine[u - 1].KlBeta)
                            $"seed {seed}, update {u + 1}: beta from the previous update's KL {mine[u - 1].Kl}"

                    Expect.isTrue
                        (mine |> Array.exists (fun m -> m.KlBeta <> 0.5))
                        $"beta moved: {mine |> Array.map (fun m -> m.KlBeta, m.Kl)}"
            }

            test "loss clip reports KL(old || new) too, and no beta" {
                let rows =
                    (Ppo.Loop.train { small with TotalTimesteps = 1024L } Ppo.Loop.noHooks None).Metrics

                for m in rows do
                    Expect.isTrue (Double.IsFinite m.Kl && m.Kl >= 0.0) $"kl {m.Kl}"
                    Expect.isTrue (Double.IsNaN m.KlBeta) "kl_beta is NaN for clip"
            }

            test "sigma fixed: the policy's std is the constant fixed_sigma throughout training" {
                let cfg =
                    { small with
                        Sigma = "fixed"
                        FixedSigma = 0.3
                        TotalTimesteps = 2048L
                    }

                let r = Ppo.Loop.train cfg Ppo.Loop.noHooks None

                for m in r.Metrics do
                    Expect.floatClose Accuracy.medium m.SigmaMean 0.3 "sigma_mean"

                let logStd =
                    r.Agent.Actor.named_parameters ()
                    |> Seq.filter (fun struct (n, _) -> n.Contains "log_std")

                Expect.isEmpty logStd "no learned std parameter"
            }

            test
                "sigma sde: actions are mean + h W with W redrawn every sde_sample_freq steps from the policy generator" {
                let cfg =
                    { small with
                        Sigma = "sde"
                        InitLogStd = -1.0
                        SdeSampleFreq = 4
                        NumEnvs = 2
                        NumSteps = 8
                        NormObs = false
                        NormReward = false
                    }

                let cpu = torch.CPU
                use envs = new Ppo.SeedEnvs(Ppo.PpoConfig.makeEnv cfg, 1, cfg.NumEnvs, cpu)
                use agent = Ppo.Agent.make cfg envs.ObservationSpace.FlatSize envs.ActionSpace cpu
                let normalizers = Ppo.Normalizers.create cfg envs.ObservationSpace.FlatSize cpu

                use state: Ppo.RolloutState =
                    {
                        Obs = envs.Reset(5L, fun n -> 5L + int64 n)
                        Discounted = torch.zeros ([| 1L; 2L |], dtype = torch.float64)
                    }

                let r =
                    Ppo.Rollout.collect cfg agent normalizers envs [| Seed.generator cpu 7L |] state

                let logSigma = agent.SdeLogSigma.Value
                Expect.sequenceEqual (Tensor.sizes logSigma) [| 1L; 64L; 1L |] "sigma matrix [S; F; actDim]"
                // The same generator, replayed: the rollout draws from it only for the matrices.
                let replay = [| Seed.generator cpu 7L |]
                let w0 = Nn.Sde.sampleMatrices replay logSigma 2
                let w4 = Nn.Sde.sampleMatrices replay logSigma 2
                use _ng = torch.no_grad ()

                let predicted (t: int64) (w: torch.Tensor) =
                    let dist, h =
                        agent.DistFeatures(r.Obs[torch.TensorIndex.Colon, torch.TensorIndex.Single t].contiguous())

                    match dist with
                    | Nn.Normal(mean, _) -> mean + Nn.Sde.noise h w
                    | Nn.Categorical _ -> failwith "Gaussian expected"

                let taken (t: int64) =
                    r.Action[torch.TensorIndex.Colon, torch.TensorIndex.Single t]

                for t in 0L .. 7L do
                    let w = if t < 4L then w0 else w4
                    Expect.isTrue (close (predicted t w) (taken t) 1e-6) $"step {t}: mean + h W"

                for t in 4L .. 7L do
                    Expect.isFalse (close (predicted t w0) (taken t) 1e-3) $"step {t}: the matrix was redrawn"
            }

            test "sigma sde: a short run learns its sigma matrix and reports the std gSDE gives" {
                let cfg =
                    { small with
                        Sigma = "sde"
                        InitLogStd = -1.0
                        SdeSampleFreq = 4
                    }

                let r = Ppo.Loop.train cfg Ppo.Loop.noHooks None
                let logSigma = r.Agent.SdeLogSigma.Value

                Expect.isFalse
                    (close logSigma (torch.full_like (logSigma, (-1.0).ToScalar())) 1e-6)
                    "sigma matrix trained"

                for m in r.Metrics do
                    Expect.isTrue (Double.IsFinite m.SigmaMean && m.SigmaMean > 0.0) $"sigma_mean {m.SigmaMean}"
            }

            test "a resumed kl_penalty run continues with the checkpointed beta" {
                let runs = tempDir "rl-runs"

                try
                    let common =
                        [
                            $"runs={runs}"
                            "config=" + config "ppo-pendulum-seed.yaml"
                            "num_envs=2"
                            "num_steps=128"
                            "minibatch_size=128"
                            "update_epochs=2"
                            "eval_episodes=1"
                            "loss=kl_penalty"
                            "kl_target=0.0005"
                        ]

                    let dir = Ppo.Runner.run (common @ [ "total_timesteps=512" ])
                    Ppo.Runner.run [ $"resume={dir}"; "total_timesteps=1024" ] |> ignore
                    let table = Metrics.readCsv (Path.Combine(dir, "metrics.csv"))
                    let beta = Metrics.column "kl_beta" table
                    let kl = Metrics.column "kl" table
                    Expect.equal beta.Length 4 "two updates, then two more after resuming"

                    for u in 1..3 do
                        Expect.floatClose
                            Accuracy.veryHigh
                            beta[u]
                            (Losses.adaptKlBeta 0.0005 kl[u - 1] beta[u - 1])
                            $"update {u + 1} (3 is the first after the resume): {beta} {kl}"
                finally
                    Directory.Delete(runs, true)
            }

            test "same seed and config give identical metrics" {
                let run () =
                    let r = Ppo.Loop.train { small with TotalTimesteps = 1024L } Ppo.Loop.noHooks None

                    r.Metrics
                    |> List.map (fun m -> m.ActorLoss, m.CriticLoss, m.EpisodicReturn, m.ApproxKl)

                Expect.equal (run ()) (run ()) "bit-identical on the CPU"
            }
        ]
