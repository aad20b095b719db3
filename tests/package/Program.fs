// The F# consumer of the Rl NuGet package: `dotnet fsi build.fsx Test` (and `Pack`) copies this
// file into a fresh console project outside the repository that references only the package,
// then runs it. PPO on CartPole-v1 for a few updates, then the deterministic policy's return.
open Rl

let cfg =
    { Ppo.PpoConfig.seedDefaults with
        EnvId = "CartPole-v1"
        NumEnvs = 4
        NumSteps = 128
        TotalTimesteps = 4L * 4L * 128L // four updates
        UpdateEpochs = 4
        NumMinibatches = 4
        VectorizationMode = "sync"
        EvalEpisodes = 3
    }

let result = Ppo.Loop.train cfg Ppo.Loop.noHooks None

let returns =
    Ppo.Evaluate.evaluate (Ppo.PpoConfig.makeEnv cfg) result.Agent result.Normalizers.Obs cfg.EvalEpisodes cfg.EvalSeed

let last = result.Metrics |> List.last
printfn "updates: %d, last training episodic return %.1f" result.Metrics.Length last.EpisodicReturn
printfn "CartPole-v1 eval return: %.1f over %d episodes (F#)" (Array.average returns[0]) cfg.EvalEpisodes
