module Rl.Tests.EnvTests

open System
open System.IO
open Expecto
open TorchSharp
open Rl

/// The repository's reference folder (`tests/data/gymnasium`).
let referenceFolder =
    lazy (Path.Combine(TestPaths.repoRoot.Value, Conformance.ReferenceFolder))

let referenceFile (envId: string) =
    lazy (Conformance.load (Path.Combine(referenceFolder.Value, envId + ".json")))

let private describe (d: Conformance.Deviation) =
    $"obs {d.MaxObs:E2} reward {d.MaxReward:E2} state {d.MaxState:E2} flags {d.FlagMismatches} inexact {d.Inexact} first {d.First}"

/// Tests replaying every trajectory of one env's reference file in every mode.
let conformanceTests (envId: string) =
    let file = referenceFile envId

    testList
        "conformance"
        [
            test "spaces and time limit match the file" {
                for r in Conformance.checkSpaces file.Value do
                    Expect.isTrue r.Passed $"{r.Trajectory}: {r.Deviation.First}"
            }

            test "single form, re-synced step by step, is bit-exact on every trajectory" {
                for traj in file.Value.Trajectories do
                    let d = Conformance.replaySingleResync envId traj
                    Expect.equal d.Steps (traj.Steps.Length) "all steps compared"
                    Expect.isTrue (Conformance.passes "single/resync" d) $"{traj.Id}: {describe d}"
            }

            test "single form, open-loop rollout, is bit-exact on every trajectory" {
                for traj in file.Value.Trajectories do
                    let d = Conformance.replaySingleRollout envId traj
                    Expect.equal d.Steps (traj.Steps.Length) "all steps compared"
                    Expect.isTrue (Conformance.passes "single/rollout" d) $"{traj.Id}: {describe d}"
            }

            test "batched float32 form, single step, within 1e-5 relative" {
                for traj in file.Value.Trajectories do
                    if traj.List <> "post_done_trajectories" then
                        let d = Conformance.replayBatched envId torch.float32 torch.CPU traj
                        Expect.isTrue (Conformance.passes "batched-float32/resync" d) $"{traj.Id}: {describe d}"
            }

            test "batched float64 form, single step, within 1e-12" {
                for traj in file.Value.Trajectories do
                    if traj.List <> "post_done_trajectories" then
                        let d = Conformance.replayBatched envId torch.float64 torch.CPU traj
                        Expect.isTrue (Conformance.passes "batched-float64/resync" d) $"{traj.Id}: {describe d}"
            }

            test "batched float64 form with ExactMath, single step, is bit-exact" {
                for traj in file.Value.Trajectories do
                    if traj.List <> "post_done_trajectories" then
                        let d = Conformance.replayBatchedWith envId torch.float64 true torch.CPU traj
                        Expect.isTrue (Conformance.passes "batched-float64-exact/resync" d) $"{traj.Id}: {describe d}"
            }
        ]

/// Checks of an env's single form beyond the reference data: reset distribution bounds, seeding,
/// the done guard, bad actions.
let pendulumTests =
    testList
        "Pendulum-v1"
        [
            conformanceTests Pendulum.Id

            test "reset draws theta in [-pi, pi) and theta_dot in [-1, 1), reproducibly by seed" {
                let env = Pendulum.Env()

                for seed in 0L .. 49L do
                    env.Reset(Some seed) |> ignore
                    let s = env.State
                    Expect.isTrue (s[0] >= -Math.PI && s[0] < Math.PI) $"theta {s[0]}"
                    Expect.isTrue (s[1] >= -1.0 && s[1] < 1.0) $"theta_dot {s[1]}"

                let a = Pendulum.Env()
                let b = Pendulum.Env()
                Expect.equal (a.Reset(Some 7L)) (b.Reset(Some 7L)) "same seed, same first observation"
                Expect.notEqual (a.Reset(Some 7L)) (a.Reset(Some 8L)) "different seeds differ"
            }

            test "angle_normalize uses floored modulo: pi maps to -pi, -pi stays, 3pi/2 to -pi/2" {
                Expect.equal (Pendulum.angleNormalize Math.PI) -Math.PI "pi"
                Expect.equal (Pendulum.angleNormalize -Math.PI) -Math.PI "-pi"
                Expect.floatClose Accuracy.veryHigh (Pendulum.angleNormalize (1.5 * Math.PI)) (-0.5 * Math.PI) "3pi/2"
                Expect.floatClose Accuracy.veryHigh (Pendulum.angleNormalize (-7.0)) (-7.0 + 2.0 * Math.PI) "-7"
            }

            test "truncates at 200 steps and then refuses to step without reset" {
                let env = Envs.make Pendulum.Id
                env.Reset(Some 1L) |> ignore

                for t in 1..199 do
                    let r = env.Step(Action.Continuous [| 0.0 |])
                    Expect.isFalse (r.Terminated || r.Truncated) $"step {t}"

                let r = env.Step(Action.Continuous [| 0.0 |])
                Expect.isTrue r.Truncated "truncated at 200"
                Expect.isFalse r.Terminated "never terminated"

                Expect.throwsT<InvalidOperationException>
                    (fun () -> env.Step(Action.Continuous [| 0.0 |]) |> ignore)
                    "stepping after the end needs a reset"

                env.Reset None |> ignore
                env.Step(Action.Continuous [| 0.0 |]) |> ignore
            }

            test "step before reset raises InvalidOperationException" {
                let env = Envs.make Pendulum.Id

                Expect.throwsT<InvalidOperationException>
                    (fun () -> env.Step(Action.Continuous [| 0.0 |]) |> ignore)
                    "OrderEnforcing"
            }

            test "bad actions raise ArgumentException naming env, action and range; out-of-box torques are clipped" {
                let env = Pendulum.Env()
                env.Reset(Some 3L) |> ignore

                for bad in
                    [
                        Action.Continuous [| nan |]
                        Action.Continuous [| 1.0; 1.0 |]
                        Action.Discrete 1
                    ] do
                    try
                        env.Step bad |> ignore
                        failtest $"expected ArgumentException for {bad}"
                    with :? ArgumentException as e ->
                        Expect.stringContains e.Message "Pendulum-v1" "names the env"
                        Expect.stringContains e.Message "-2" "names the range"

                let s0 = env.State
                let r1 = env.Step(Action.Continuous [| 7.3 |])
                env.State <- s0
                env.ElapsedSteps <- 0
                let r2 = env.Step(Action.Continuous [| 2.0 |])
                Expect.equal r1 r2 "7.3 acts as 2.0"
            }

            test "batched: same seed gives the same observations; auto-reset at 200 with episode stats" {
                use a = Envs.makeBatched Pendulum.Id 8 torch.CPU
                use b = Envs.makeBatched Pendulum.Id 8 torch.CPU
                use oa = a.Reset 5L
                use ob = b.Reset 5L
                Expect.isTrue (oa.eq(ob).all().item<bool>()) "same seed"
                Expect.equal oa.shape [| 8L; 3L |] "[N; 3]"
                let act = torch.zeros ([| 8L; 1L |])
                let mutable last = Unchecked.defaultof<BatchStep>

                for t in 1..200 do
                    last <- a.Step act
                    let trunc = last.Truncated.any().item<bool>()
                    Expect.equal trunc (t = 200) $"truncation at step {t}"

                Expect.isTrue (last.Truncated.all().item<bool>()) "all truncated"
                Expect.isFalse (last.Terminated.any().item<bool>()) "never terminated"
                Expect.isTrue (last.EpisodeLength.eq((200L).ToScalar()).all().item<bool>()) "length 200"
                Expect.isTrue (last.EpisodeReturn.lt((0.0f).ToScalar()).all().item<bool>()) "negative returns"
                Expect.isFalse (last.Obs.eq(last.FinalObs).all().item<bool>()) "obs is the reset observation"
                // the step after an auto-reset starts a fresh episode
                let next = a.Step act
                Expect.isFalse (next.Truncated.any().item<bool>()) "fresh episodes"
            }

            test "batched: episode return equals the sum of rewards of the episode" {
                use env =
                    Envs.makeBatchedWith Pendulum.Id 4 torch.CPU [ "max_episode_steps", box 10 ]

                env.Reset 1L |> ignore
                let gen = new torch.Generator(3UL)
                let mutable sum = torch.zeros ([| 4L |], dtype = torch.float64)

                for t in 1..10 do
                    let act = torch.rand ([| 4L; 1L |], generator = gen) * 4.0f - 2.0f
                    let r = env.Step act
                    sum <- sum + r.Reward.``to`` torch.float64

                    if t = 10 then
                        Expect.isTrue (r.Truncated.all().item<bool>()) "truncated at the custom limit"
                        let ret = r.EpisodeReturn.``to`` torch.float64
                        Expect.isTrue (ret.allclose (sum, rtol = 1e-6, atol = 1e-4)) "return = sum of rewards"
            }

            test "batched: bad actions raise ArgumentException" {
                use env = Envs.makeBatched Pendulum.Id 4 torch.CPU
                env.Reset 0L |> ignore

                for bad in
                    [
                        torch.zeros ([| 4L |])
                        torch.zeros ([| 3L; 1L |])
                        torch.full ([| 4L; 1L |], nan.ToScalar())
                        torch.zeros ([| 4L; 1L |], dtype = torch.int64)
                    ] do
                    Expect.throwsT<ArgumentException>
                        (fun () -> env.Step bad |> ignore)
                        $"shape {bad.shape} {bad.dtype}"
            }
        ]

/// A missing or damaged reference file is refused with its path and what was expected.
let referenceFileTests =
    let withFile (text: string) (check: string -> unit) =
        let dir = TestPaths.tempDir "rl-ref"

        try
            let path = Path.Combine(dir, "CartPole-v1.json")
            File.WriteAllText(path, text)
            check path
            Expect.equal (File.ReadAllText path) text "the file is left as it was"
        finally
            Directory.Delete(dir, true)

    let refused (path: string) (what: string) =
        Expect.throwsC (fun () -> Conformance.load path |> ignore) (fun e ->
            Expect.isTrue (e :? InvalidDataException) $"InvalidDataException, got {e.GetType().Name}"
            Expect.stringContains e.Message path "names the file"
            Expect.stringContains e.Message what "says what is wrong"
            Expect.stringContains e.Message "schema_version 1" "says what was expected")

    let good =
        lazy (File.ReadAllText(Path.Combine(referenceFolder.Value, "CartPole-v1.json")))

    [
        test "every environment has its reference file in the repository" {
            for id in Envs.ids do
                let path = Path.Combine(referenceFolder.Value, id + ".json")
                Expect.isTrue (File.Exists path) $"{path} exists"
                Expect.equal (Conformance.load path).EnvId id "env_id inside the file"
        }

        test "a missing file is named, with what was expected" {
            let path = Path.Combine(referenceFolder.Value, "NoSuchEnv-v0.json")

            Expect.throwsC (fun () -> Conformance.load path |> ignore) (fun e ->
                Expect.isTrue (e :? FileNotFoundException) "FileNotFoundException"
                Expect.stringContains e.Message path "names the file"
                Expect.stringContains e.Message "schema_version 1" "says what was expected")
        }

        test "a truncated file is refused as not valid JSON" {
            withFile (good.Value.Substring(0, 5000)) (fun path -> refused path "not valid JSON")
        }

        test "another schema version is refused" {
            withFile (good.Value.Replace("\"schema_version\": 1", "\"schema_version\": 7")) (fun path ->
                refused path "schema_version is 7")
        }

        test "a missing field is refused" {
            withFile (good.Value.Replace("\"max_episode_steps\"", "\"max_steps\"")) (fun path ->
                refused path "a field is missing")
        }

        test "a field of the wrong kind is refused" {
            withFile (good.Value.Replace("\"env_id\": \"CartPole-v1\"", "\"env_id\": 3")) (fun path ->
                refused path "wrong kind")
        }
    ]

[<Tests>]
let tests =
    testList
        "Envs"
        [
            pendulumTests
            testList
                "Conformance"
                [
                    for id in Envs.ids |> List.filter ((<>) Pendulum.Id) -> testList id [ conformanceTests id ]
                ]

            testList "reference files" referenceFileTests

            test "unknown ids raise an error listing the valid ids" {
                try
                    Envs.make "Pendulum-v0" |> ignore
                    failtest "expected an error"
                with :? ArgumentException as e ->
                    Expect.stringContains e.Message "Pendulum-v1" "lists the valid ids"
            }

            test "unknown options raise an error listing the allowed ones" {
                try
                    Envs.makeWith Pendulum.Id [ "gravity", box 9.8 ] |> ignore
                    failtest "expected an error"
                with :? ArgumentException as e ->
                    Expect.stringContains e.Message "max_episode_steps" "lists the allowed options"
            }
        ]
