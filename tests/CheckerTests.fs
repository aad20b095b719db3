/// Tests of the environment checker (`EnvChecker`) and of registering custom environments.
module Rl.Tests.CheckerTests

open System
open Expecto
open Rl

/// A raw `IEnv` (no base class) that steps on after its episode ended and ignores its seed for
/// its observations when `seeded` is false.
type private Raw(seeded: bool) =
    let mutable rng = Random 0
    let mutable t = 0

    interface IEnv with
        member _.Id = "Raw-v0"
        member _.ObservationSpace = Space.Box([| 0.0 |], [| 1.0 |], [| 1 |])
        member _.ActionSpace = Space.Discrete(2, 0)
        member _.MaxEpisodeSteps = 5

        member _.Reset seed =
            t <- 0

            match seed with
            | Some s when seeded -> rng <- Random(int s)
            | _ -> rng <- Random()

            [| float32 (rng.NextDouble()) |]

        member _.Step _ =
            t <- t + 1

            {
                Obs = [| float32 (rng.NextDouble()) |]
                Reward = 0.0
                Terminated = false
                Truncated = t >= 5
            }

[<Tests>]
let tests =
    testList
        "EnvChecker"
        [
            test "every built-in environment passes the checker" {
                for id in Envs.ids do
                    Expect.isEmpty (EnvChecker.problems (Envs.make id)) $"{id} passes"
            }

            test "the checker finds a missing order check and unseeded randomness" {
                let ps = EnvChecker.problems (Raw true)
                Expect.exists ps (fun p -> p.StartsWith "step after done") $"step after done: {ps}"
                Expect.isFalse (ps |> List.exists (fun p -> p.StartsWith "seeding")) "seeded: reproducible"
                let unseeded = EnvChecker.problems (Raw false)
                Expect.exists unseeded (fun p -> p.StartsWith "seeding") $"seeding: {unseeded}"

                let e = Expect.throwsC (fun () -> EnvChecker.check (Raw false)) id
                Expect.stringContains e.Message "Raw-v0 fails the environment check" "names the env"
            }

            test "a registered id is accepted by make, makeBatched, makeVec and the config keys" {
                Envs.registerWith true "Raw-v0" (fun () -> Raw true :> IEnv)

                try
                    Expect.isTrue (Envs.isKnown "Raw-v0") "known"
                    Expect.equal (Envs.make "Raw-v0").Id "Raw-v0" "single form"
                    use b = Envs.makeBatched "Raw-v0" 3 TorchSharp.torch.CPU
                    Expect.equal b.NumEnvs 3 "batched through SyncVectorEnv"

                    let cfg =
                        Config.withOverrides Ppo.PpoConfig.fields [ "env_id=Raw-v0" ] Ppo.PpoConfig.seedDefaults

                    Expect.equal cfg.EnvId "Raw-v0" "env_id accepts it"

                    Expect.throwsC (fun () -> Envs.register "Raw-v0" (fun () -> Raw true :> IEnv)) (fun e ->
                        Expect.stringContains e.Message "registered already" "twice refused")
                finally
                    Envs.unregister "Raw-v0" |> ignore

                Expect.isFalse (Envs.isKnown "Raw-v0") "unregistered"

                Expect.throwsC
                    (fun () ->
                        Config.withOverrides Ppo.PpoConfig.fields [ "env_id=Raw-v0" ] Ppo.PpoConfig.seedDefaults
                        |> ignore)
                    (fun e -> Expect.stringContains e.Message "not a registered environment" "refused again")
            }
        ]
