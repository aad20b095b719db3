/// Behaviour of the environments beyond the recorded trajectories: reset distributions, the done
/// guard, bad actions, auto-reset of the batched forms, FrozenLake's table and custom maps.
module Rl.Tests.EnvBehaviourTests

open System
open System.IO
open Expecto
open TorchSharp
open Rl

let private argError (f: unit -> unit) (parts: string list) =
    try
        f ()
        failtest $"expected ArgumentException containing {parts}"
    with :? ArgumentException as e ->
        for p in parts do
            Expect.stringContains e.Message p "the message names it"

let private invalidOpError (f: unit -> unit) =
    Expect.throwsT<InvalidOperationException> f "InvalidOperationException"

/// Runs a batched env with a fixed action until every copy has ended at least once; returns the
/// steps where copies ended with the BatchStep.
let private runUntilAllEnded (env: IBatchedEnv) (action: torch.Tensor) (maxSteps: int) =
    let n = env.NumEnvs
    let ended = Array.zeroCreate<bool> n
    let events = ResizeArray()
    let mutable t = 0

    while not (Array.forall id ended) && t < maxSteps do
        t <- t + 1
        let r = env.Step action
        let done' = r.Terminated.logical_or(r.Truncated).data<bool>().ToArray()

        if Array.exists id done' then
            events.Add(t, r)

        for i in 0 .. n - 1 do
            if done'[i] then
                ended[i] <- true

    events

let private value (t: torch.Tensor) (i: int) (j: int) =
    float (t[int64 i, int64 j].item<float32>())

[<Tests>]
let tests =
    testList
        "Envs.Behaviour"
        [
            test "batched classic-control forms refuse a state dtype other than float32/float64" {
                for id in
                    [
                        CartPole.Id
                        Pendulum.Id
                        MountainCar.Id
                        MountainCarContinuous.Id
                        Acrobot.Id
                    ] do
                    Expect.throwsC
                        (fun () -> Envs.makeBatchedWith id 2 torch.CPU [ "dtype", box torch.int32 ] |> ignore)
                        (fun e ->
                            Expect.stringContains
                                e.Message
                                $"{id}: dtype must be float32 or float64"
                                "names env and allowed dtypes")
            }

            testList
                "SyncVectorEnv"
                [
                    test
                        "copy i is the single form reset with seed + i, with SAME_STEP auto-reset from its own generator" {
                        for id in Envs.ids do
                            let n = 3
                            use vec = Envs.makeSync id n torch.CPU :?> SyncVectorEnv
                            let singles = Array.init n (fun _ -> Envs.make id)
                            let obs0 = vec.Reset 7L
                            let rng = Random 1

                            let rows (t: torch.Tensor) =
                                t.``to``(torch.float32).contiguous().data<float32>().ToArray()

                            let o0 = rows obs0
                            let d = vec.Envs[0].ObservationSpace.FlatSize

                            for i in 0 .. n - 1 do
                                Expect.equal
                                    o0[i * d .. i * d + d - 1]
                                    (singles[i].Reset(Some(7L + int64 i)))
                                    $"{id}: reset copy {i}"

                            let mutable ends = 0
                            let epRet = Array.zeroCreate<float> n
                            let epLen = Array.zeroCreate<int> n

                            for t in 1..300 do
                                let acts = Array.init n (fun _ -> singles[0].ActionSpace.Sample rng)

                                let action =
                                    match singles[0].ActionSpace with
                                    | Space.Discrete _ -> torch.tensor (acts |> Array.map (fun a -> int64 a[0]))
                                    | _ -> torch.tensor(Array.concat acts |> Array.map float32).reshape(int64 n, -1L)

                                let r = vec.Step action
                                let obs, finalObs = rows r.Obs, rows r.FinalObs
                                let reward, epR = rows r.Reward, rows r.EpisodeReturn
                                let term = r.Terminated.data<bool>().ToArray()
                                let trunc = r.Truncated.data<bool>().ToArray()
                                let epL = r.EpisodeLength.data<int64>().ToArray()

                                for i in 0 .. n - 1 do
                                    let a =
                                        match singles[i].ActionSpace with
                                        | Space.Discrete _ -> Action.Discrete(int (Array.head acts[i]))
                                        | _ -> Action.Continuous(acts[i] |> Array.map (float32 >> float))

                                    let s = singles[i].Step a
                                    epRet[i] <- epRet[i] + s.Reward
                                    epLen[i] <- epLen[i] + 1
                                    let here = $"{id} step {t} copy {i}"
                                    Expect.equal finalObs[i * d .. i * d + d - 1] s.Obs $"{here}: final obs"
                                    Expect.equal reward[i] (float32 s.Reward) $"{here}: reward"
                                    Expect.equal (term[i], trunc[i]) (s.Terminated, s.Truncated) $"{here}: flags"

                                    if s.Terminated || s.Truncated then
                                        ends <- ends + 1
                                        Expect.equal epR[i] (float32 epRet[i]) $"{here}: episode return"
                                        Expect.equal epL[i] (int64 epLen[i]) $"{here}: episode length"
                                        let fresh = singles[i].Reset None
                                        Expect.equal obs[i * d .. i * d + d - 1] fresh $"{here}: auto-reset obs"
                                        epRet[i] <- 0.0
                                        epLen[i] <- 0
                                    else
                                        Expect.equal (epR[i], epL[i]) (0.0f, 0L) $"{here}: no episode ended"
                                        Expect.equal obs[i * d .. i * d + d - 1] s.Obs $"{here}: obs"

                            if id = CartPole.Id || id = Pendulum.Id then
                                Expect.isGreaterThan ends 0 $"{id}: episodes ended and were auto-reset"
                    }

                    test "bad actions and calls are refused with messages naming the env and the allowed values" {
                        use cart = Envs.makeSync CartPole.Id 2 torch.CPU :?> SyncVectorEnv
                        invalidOpError (fun () -> cart.Step(torch.zeros ([| 2L |], dtype = torch.int64)) |> ignore)
                        cart.Reset 0L |> ignore

                        argError
                            (fun () -> cart.Step(torch.zeros ([| 3L |], dtype = torch.int64)) |> ignore)
                            [ "CartPole-v1"; "shape [2]"; "0..1" ]

                        argError
                            (fun () -> cart.Step(torch.tensor [| 0L; 2L |]) |> ignore)
                            [ "action 2 of copy 1"; "0..1" ]

                        argError (fun () -> cart.Step(torch.zeros [| 2L |]) |> ignore) [ "integer action tensor" ]
                        argError (fun () -> cart.ResetEach [| 1L |] |> ignore) [ "one seed per copy (2)" ]
                        use pend = Envs.makeSync Pendulum.Id 2 torch.CPU :?> SyncVectorEnv
                        pend.Reset 0L |> ignore

                        argError
                            (fun () -> pend.Step(torch.tensor([| 0.0f; nanf |]).reshape(2L, 1L)) |> ignore)
                            [ "Pendulum-v1"; "copy 1 contains NaN" ]

                        argError (fun () -> pend.Step(torch.zeros [| 2L |]) |> ignore) [ "shape [2; 1]" ]
                        argError (fun () -> Envs.makeSync CartPole.Id 0 torch.CPU |> ignore) [ "at least 1" ]

                        argError
                            (fun () -> Envs.makeVec "async" CartPole.Id 2 torch.CPU |> ignore)
                            [ "unknown vectorization mode 'async'"; "vector, sync" ]

                        use v = Envs.makeVec "sync" CartPole.Id 2 torch.CPU
                        Expect.isTrue (v :? SyncVectorEnv) "sync mode makes a SyncVectorEnv"
                    }
                ]

            testList
                "CartPole-v1"
                [
                    test "reset draws every component in [-0.05, 0.05)" {
                        let env = CartPole.Env()

                        for seed in 0L .. 99L do
                            let obs = env.Reset(Some seed)
                            Expect.isTrue (env.State |> Array.forall (fun x -> x >= -0.05 && x < 0.05)) $"seed {seed}"
                            Expect.equal obs (Array.map float32 env.State) "obs is float32(state)"
                    }

                    test "pushing right terminates by angle, then Step needs Reset and StepUnchecked pays 0" {
                        let env = CartPole.Env()
                        env.Reset(Some 0L) |> ignore
                        let mutable r = env.Step(Action.Discrete 1)
                        let mutable t = 1

                        while not r.Terminated do
                            r <- env.Step(Action.Discrete 1)
                            t <- t + 1

                        Expect.equal r.Reward 1.0 "the terminating step pays 1"
                        Expect.isLessThan t 100 "falls quickly"
                        Expect.isGreaterThan (abs env.State[2]) CartPole.thetaThresholdRadians "angle beyond 12 degrees"
                        invalidOpError (fun () -> env.Step(Action.Discrete 1) |> ignore)
                        let r2 = env.StepUnchecked(Action.Discrete 1)
                        Expect.isTrue r2.Terminated "still terminal"
                        Expect.equal r2.Reward 0.0 "0 after termination"
                        env.Reset None |> ignore
                        Expect.equal env.StepsBeyondTerminated None "reset clears steps_beyond_terminated"
                        Expect.equal (env.Step(Action.Discrete 0)).Reward 1.0 "fresh episode pays 1"
                    }

                    test "actions outside {0, 1} raise ArgumentException naming env, action and range" {
                        let env = Envs.make CartPole.Id
                        env.Reset(Some 1L) |> ignore
                        argError (fun () -> env.Step(Action.Discrete 2) |> ignore) [ "CartPole-v1"; "2"; "0..1" ]
                        argError (fun () -> env.Step(Action.Discrete -1) |> ignore) [ "CartPole-v1"; "-1"; "0..1" ]
                        argError (fun () -> env.Step(Action.Continuous [| 1.0 |]) |> ignore) [ "CartPole-v1"; "0..1" ]
                    }

                    test
                        "batched: terminated copies restart within [-0.05, 0.05] with their final obs and length reported" {
                        use env = Envs.makeBatched CartPole.Id 16 torch.CPU
                        env.Reset 3L |> ignore
                        let action = torch.ones ([| 16L |], dtype = torch.int64)
                        let events = runUntilAllEnded env action 200
                        Expect.isNonEmpty events "copies ended"

                        for t, r in events do
                            let term = r.Terminated.data<bool>().ToArray()
                            let lengths = r.EpisodeLength.data<int64>().ToArray()
                            let returns = r.EpisodeReturn.data<float32>().ToArray()

                            for i in 0..15 do
                                if term[i] then
                                    Expect.equal lengths[i] (int64 t) "length = steps since reset"
                                    Expect.equal returns[i] (float32 t) "return = steps (reward 1)"

                                    Expect.isGreaterThan
                                        (abs (value r.FinalObs i 2))
                                        0.2094
                                        "final obs beyond the angle"

                                    for j in 0..3 do
                                        Expect.isLessThanOrEqual (abs (value r.Obs i j)) 0.05 "fresh obs"
                                else
                                    Expect.equal lengths[i] 0L "0 where the episode goes on"
                    }

                    test "batched: the sync-free auto-reset path gives the same episode lengths" {
                        let lengths (syncFree: bool) =
                            use env = new CartPole.BatchedEnv(8, torch.CPU)
                            env.SyncFreeAutoReset <- syncFree
                            env.Reset 11L |> ignore
                            let action = torch.ones ([| 8L |], dtype = torch.int64)

                            runUntilAllEnded env action 200
                            |> Seq.head
                            |> fun (t, r) -> t, r.Terminated.data<bool>().ToArray()

                        Expect.equal (lengths true) (lengths false) "same first terminations"
                    }

                    test "batched: bad actions raise ArgumentException" {
                        use env = Envs.makeBatched CartPole.Id 4 torch.CPU
                        env.Reset 0L |> ignore

                        argError
                            (fun () -> env.Step(torch.tensor ([| 0L; 1L; 2L; 0L |])) |> ignore)
                            [ "CartPole-v1"; "2"; "0..1" ]

                        argError
                            (fun () -> env.Step(torch.zeros ([| 4L; 1L |], dtype = torch.int64)) |> ignore)
                            [ "shape" ]

                        argError (fun () -> env.Step(torch.zeros ([| 4L |])) |> ignore) [ "int" ]
                    }
                ]

            testList
                "MountainCar"
                [
                    test "MountainCar-v0 reset: position in [-0.6, -0.4), velocity 0; actions 0..2" {
                        let env = MountainCar.Env()

                        for seed in 0L .. 99L do
                            env.Reset(Some seed) |> ignore
                            let s = env.State
                            Expect.isTrue (s[0] >= -0.6 && s[0] < -0.4) $"position {s[0]}"
                            Expect.equal s[1] 0.0 "velocity"

                        argError (fun () -> env.Step(Action.Discrete 3) |> ignore) [ "MountainCar-v0"; "3"; "0..2" ]
                    }

                    test "MountainCarContinuous: the reward uses the unclipped action, the dynamics the clipped one" {
                        let env = MountainCarContinuous.Env()
                        env.Reset(Some 0L) |> ignore
                        let s0 = env.State
                        let r3 = env.Step(Action.Continuous [| 3.0 |])
                        let s3 = env.State
                        env.State <- s0
                        env.ElapsedSteps <- 0
                        let r1 = env.Step(Action.Continuous [| 1.0 |])
                        Expect.equal env.State s3 "3.0 acts like 1.0"
                        Expect.floatClose Accuracy.veryHigh r3.Reward -0.9 "3.0 costs 0.9"
                        Expect.floatClose Accuracy.veryHigh r1.Reward -0.1 "1.0 costs 0.1"
                        // ClipAction makes the cost that of the clipped action
                        let wrapped = Wrappers.ClipAction(env) :> IEnv
                        env.State <- s0
                        env.ElapsedSteps <- 0
                        let rw = wrapped.Step(Action.Continuous [| 3.0 |])
                        Expect.floatClose Accuracy.veryHigh rw.Reward -0.1 "clipped before the env"
                    }

                    test "MountainCarContinuous: the state is float32 after a step; the time limit is 999" {
                        let env = Envs.make MountainCarContinuous.Id
                        Expect.equal env.MaxEpisodeSteps 999 "999"
                        let e = env :?> MountainCarContinuous.Env
                        env.Reset(Some 5L) |> ignore
                        env.Step(Action.Continuous [| 0.3 |]) |> ignore
                        Expect.isTrue (e.State |> Array.forall (fun x -> float (float32 x) = x)) "float32-exact"
                    }
                ]

            testList
                "Acrobot-v1"
                [
                    test "reset draws float32-exact values in [-0.1, 0.1]" {
                        let env = Acrobot.Env()

                        for seed in 0L .. 99L do
                            env.Reset(Some seed) |> ignore

                            for x in env.State do
                                Expect.isTrue (abs x <= 0.1) $"{x}"
                                Expect.equal (float (float32 x)) x "float32-exact"
                    }

                    test "wrap repeats +-2pi like the source's loop; bound clamps" {
                        Expect.equal (Acrobot.wrap 4.0 -Math.PI Math.PI) (4.0 - 2.0 * Math.PI) "one wrap"

                        Expect.equal
                            (Acrobot.wrap -10.0 -Math.PI Math.PI)
                            (-10.0 + 2.0 * Math.PI + 2.0 * Math.PI)
                            "two wraps"

                        Expect.equal (Acrobot.wrap Math.PI -Math.PI Math.PI) Math.PI "pi stays"
                        Expect.equal (Acrobot.bound 50.0 -Acrobot.maxVel2 Acrobot.maxVel2) Acrobot.maxVel2 "clamped"
                    }

                    test "batched wrap matches the scalar wrap for angles several turns out" {
                        use env = new Acrobot.BatchedEnv(5, torch.CPU, dtype = torch.float64)
                        env.Reset 0L |> ignore
                        // large velocities make one RK4 step travel far; compare with the single form
                        let states =
                            Array2D.init 5 4 (fun i j -> if j = 3 then 25.0 + float i else 3.0 - float i)

                        env.State <- torch.tensor (states, dtype = torch.float64)
                        let action = torch.tensor ([| 0L; 1L; 2L; 0L; 2L |])
                        let ns, _, _ = env.Dynamics(env.State, action)

                        for i in 0..4 do
                            let actions = [| 0; 1; 2; 0; 2 |]
                            let s, _ = Acrobot.transition (Array.init 4 (fun j -> states[i, j])) actions[i]

                            for j in 0..3 do
                                Expect.floatClose
                                    Accuracy.high
                                    (ns[int64 i, int64 j].item<float>())
                                    s[j]
                                    $"copy {i} component {j}"
                    }
                ]

            testList
                "FrozenLake-v1"
                [
                    test "the transition tables equal Gymnasium's, entry for entry and bit for bit" {
                        let file =
                            Conformance.load (Path.Combine(EnvTests.referenceFolder.Value, "FrozenLake-v1.json"))

                        for name, slippery in [ "slippery", true; "deterministic", false ] do
                            let expected = file.TransitionTables |> List.find (fun (n, _) -> n = name) |> snd
                            let actual = FrozenLake.Env(isSlippery = slippery).P
                            Expect.equal actual.Length expected.Length "states"

                            for s in 0 .. expected.Length - 1 do
                                for a in 0..3 do
                                    let e = expected[s][a]
                                    let p = actual[s][a]
                                    Expect.equal p.Length e.Length $"{name} P[{s}][{a}] length"

                                    for i in 0 .. e.Length - 1 do
                                        Expect.equal
                                            (BitConverter.DoubleToInt64Bits p[i].Prob)
                                            (BitConverter.DoubleToInt64Bits e[i].Prob)
                                            $"{name} P[{s}][{a}][{i}].prob"

                                        Expect.equal
                                            (p[i].NextState, p[i].Reward, p[i].Terminated)
                                            (e[i].NextState, e[i].Reward, e[i].Terminated)
                                            $"{name} P[{s}][{a}][{i}]"
                    }

                    test "value iteration on P reaches the goal within 100 steps with probability 0.7402 (peers.md)" {
                        let env = FrozenLake.Env()
                        let p = env.P
                        let nS = p.Length

                        let q (v: float[]) s a =
                            p[s][a]
                            |> Array.sumBy (fun t ->
                                t.Prob * (t.Reward + 0.99 * (if t.Terminated then 0.0 else v[t.NextState])))

                        let mutable v = Array.zeroCreate nS

                        for _ in 1..2000 do
                            v <- Array.init nS (fun s -> [ 0..3 ] |> List.map (q v s) |> List.max)

                        let policy = Array.init nS (fun s -> [ 0..3 ] |> List.maxBy (fun a -> q v s a))
                        // probability of entering G within k steps under the policy
                        let mutable reach = Array.zeroCreate nS

                        for _ in 1..100 do
                            reach <-
                                Array.init nS (fun s ->
                                    p[s][policy[s]]
                                    |> Array.sumBy (fun t ->
                                        t.Prob * (t.Reward + (if t.Terminated then 0.0 else reach[t.NextState]))))

                        Expect.floatClose { absolute = 5e-5; relative = 0.0 } reach[0] 0.7402 "P(goal within 100 steps)"
                    }

                    test "deterministic moves, walls, holes and the goal; typed int API" {
                        let env = FrozenLake.Env(isSlippery = false)
                        Expect.equal (env.ResetIndex(Some 0L)) 0 "starts at S"
                        let r = env.StepIndex FrozenLake.LEFT

                        Expect.equal
                            (r.State, r.Reward, r.Terminated, r.Prob)
                            (0, 0.0, false, 1.0)
                            "wall keeps the position"

                        let path =
                            [
                                FrozenLake.DOWN
                                FrozenLake.DOWN
                                FrozenLake.RIGHT
                                FrozenLake.RIGHT
                                FrozenLake.DOWN
                            ]

                        let states = path |> List.map (fun a -> env.StepIndex a)
                        Expect.equal (states |> List.map (fun s -> s.State)) [ 4; 8; 9; 10; 14 ] "path"
                        let last = env.StepIndex FrozenLake.RIGHT
                        Expect.equal (last.State, last.Reward, last.Terminated) (15, 1.0, true) "goal pays 1 and ends"
                        invalidOpError (fun () -> env.StepIndex FrozenLake.RIGHT |> ignore)
                        let again = env.StepUnchecked(Action.Discrete 0)
                        Expect.equal (again.Obs, again.Reward, again.Terminated) ([| 15.0f |], 0.0, true) "absorbing, 0"
                        env.ResetIndex None |> ignore
                        Expect.equal (env.StepIndex FrozenLake.RIGHT).State 1 "fresh episode"
                        env.S <- 5
                        env.EpisodeEnded <- false
                        let hole = env.StepIndex FrozenLake.DOWN
                        Expect.equal (hole.State, hole.Reward, hole.Terminated) (5, 0.0, true) "a hole is absorbing"
                    }

                    test "custom maps: given as string arrays, validated, with their own spaces" {
                        let env =
                            Envs.makeWith FrozenLake.Id [ "desc", box [| "SFG"; "HFF" |]; "is_slippery", box false ]

                        Expect.equal env.ObservationSpace (Space.Discrete(6, 0)) "6 states"
                        Expect.equal (env.Reset(Some 1L)) [| 0.0f |] "S"
                        env.Step(Action.Discrete FrozenLake.RIGHT) |> ignore
                        let r = env.Step(Action.Discrete FrozenLake.RIGHT)
                        Expect.equal (r.Obs, r.Reward, r.Terminated) ([| 2.0f |], 1.0, true) "goal"
                        argError (fun () -> FrozenLake.Env(desc = [| "SFX" |]) |> ignore) [ "X"; "S, F, H, G" ]
                        argError (fun () -> FrozenLake.Env(desc = [| "SF"; "F" |]) |> ignore) [ "row 1" ]
                        argError (fun () -> FrozenLake.Env(desc = [| "FFG" |]) |> ignore) [ "start" ]
                        argError (fun () -> FrozenLake.Env(mapName = "5x5") |> ignore) [ "5x5"; "8x8" ]

                        Expect.equal
                            (FrozenLake.Env(mapName = "8x8") :> IEnv).ObservationSpace
                            (Space.Discrete(64, 0))
                            "8x8"
                    }

                    test "slippery: an injected uniform picks the entry by cumulative probability" {
                        let env = FrozenLake.Env()
                        env.ResetIndex(Some 0L) |> ignore
                        // P[0][RIGHT] = [DOWN->4; RIGHT->1; UP->0] with cumulative 1/3, 2/3, 1
                        env.S <- 0
                        env.UniformSource <- Some(fun () -> 0.1)
                        let a = env.StepIndex FrozenLake.RIGHT
                        Expect.equal (a.State, env.LastTransitionIndex) (4, 0) "u < 1/3: first entry (DOWN)"
                        env.S <- 0
                        env.UniformSource <- Some(fun () -> 0.5)
                        let b = env.StepIndex FrozenLake.RIGHT
                        Expect.equal (b.State, env.LastTransitionIndex) (1, 1) "middle entry (RIGHT)"
                        env.S <- 0
                        env.UniformSource <- Some(fun () -> 0.9)
                        let c = env.StepIndex FrozenLake.RIGHT
                        Expect.equal (c.State, env.LastTransitionIndex) (0, 2) "last entry (UP)"
                    }

                    test "slippery: a uniform source given to the constructor replays the recorded episodes" {
                        let file =
                            Conformance.load (Path.Combine(EnvTests.referenceFolder.Value, "FrozenLake-v1.json"))

                        for traj in file.Trajectories |> List.filter (fun t -> t.List = "slippery_trajectories") do
                            // reset consumes one draw (any value gives S), then one per step
                            let draws = Collections.Generic.Queue(0.5 :: [ for s in traj.Steps -> s.U.Value ])

                            let env =
                                FrozenLake.Env(isSlippery = true, uniformSource = (fun () -> draws.Dequeue()))

                            Expect.equal (env.ResetIndex(Some traj.ResetSeed)) 0 "S"

                            for s in traj.Steps do
                                let a =
                                    match s.Action with
                                    | Action.Discrete a -> a
                                    | _ -> failwith "discrete"

                                let r = env.StepIndex a

                                Expect.equal
                                    (float r.State, r.Reward, r.Terminated, r.Truncated)
                                    (s.Obs[0], s.Reward, s.Terminated, s.Truncated)
                                    $"{traj.Id} step {s.T}"

                                Expect.equal (Some r.Prob) s.Prob "prob"
                    }

                    test "batched slippery: next-state frequencies are 1/3 each" {
                        use env = new FrozenLake.BatchedEnv(30000, torch.CPU)
                        env.Reset 1L |> ignore
                        let r = env.Step(torch.full ([| 30000L |], 2L.ToScalar(), dtype = torch.int64))
                        let obs = r.FinalObs.data<float32>().ToArray()

                        for s in [ 0.0f; 1.0f; 4.0f ] do
                            let f = float (obs |> Array.filter ((=) s) |> Array.length) / 30000.0
                            Expect.floatClose { absolute = 0.015; relative = 0.0 } f (1.0 / 3.0) $"state {s}"
                    }

                    test "batched deterministic: goal reached in 6 steps, auto-reset to S with return 1" {
                        use env =
                            Envs.makeBatchedWith FrozenLake.Id 3 torch.CPU [ "is_slippery", box false ]

                        env.Reset 0L |> ignore
                        let mutable last = Unchecked.defaultof<BatchStep>

                        for a in [ 1L; 1L; 2L; 2L; 1L; 2L ] do
                            last <- env.Step(torch.full ([| 3L |], a.ToScalar(), dtype = torch.int64))

                        Expect.equal (last.FinalObs.data<float32>().ToArray()) [| 15.0f; 15.0f; 15.0f |] "at G"
                        Expect.equal (last.Obs.data<float32>().ToArray()) [| 0.0f; 0.0f; 0.0f |] "reset to S"
                        Expect.equal (last.EpisodeReturn.data<float32>().ToArray()) [| 1.0f; 1.0f; 1.0f |] "return 1"
                        Expect.equal (last.EpisodeLength.data<int64>().ToArray()) [| 6L; 6L; 6L |] "length 6"
                    }
                ]

            test "batched: stepping inside a caller's dispose scope leaks no tensors and keeps the env alive" {
                for id in Envs.ids do
                    use env = Envs.makeBatched id 32 torch.CPU
                    let g = new torch.Generator(5UL)
                    env.Reset 1L |> ignore
                    let stats = DisposeScopeManager.Statistics
                    // warm up, then count live tensors over 300 steps in per-step scopes
                    for _ in 1..5 do
                        use scope = torch.NewDisposeScope()
                        env.Step(env.ActionSpace.SampleBatch(32, g, torch.CPU)) |> ignore

                    let before = stats.ThreadTotalLiveCount

                    for _ in 1..300 do
                        use scope = torch.NewDisposeScope()
                        let r = env.Step(env.ActionSpace.SampleBatch(32, g, torch.CPU))
                        Expect.equal r.Obs.shape[0] 32L "obs rows"

                    Expect.equal stats.ThreadTotalLiveCount before $"{id}: live tensors stay flat"
            }

            testList
                "Spaces"
                [
                    test "Discrete contains integers in range only; samples are seeded and in range" {
                        let s = Space.Discrete(3, 1)
                        Expect.isTrue (s.Contains [| 1.0 |] && s.Contains [| 3.0 |]) "1 and 3"
                        Expect.isFalse (s.Contains [| 0.0 |] || s.Contains [| 4.0 |] || s.Contains [| 1.5 |]) "out"
                        Expect.isFalse (s.Contains [| 1.0; 2.0 |]) "length"
                        let xs = Array.init 300 (fun _ -> 0) |> Array.mapi (fun i _ -> s.Sample(Random(i)))
                        Expect.isTrue (xs |> Array.forall s.Contains) "in range"

                        Expect.equal
                            (xs |> Array.map (fun x -> x[0]) |> Array.distinct |> Array.sort)
                            [| 1.0; 2.0; 3.0 |]
                            "all values"

                        Expect.equal (s.Sample(Random 5)) (s.Sample(Random 5)) "seeded"
                    }

                    test "Box contains within bounds; samples from bounded and unbounded boxes are contained" {
                        for env in Envs.ids |> List.map Envs.make do
                            for space in [ env.ObservationSpace; env.ActionSpace ] do
                                let rng = Random 3

                                for _ in 1..200 do
                                    let x = space.Sample rng
                                    Expect.isTrue (space.Contains x) $"{env.Id} {space} {x}"

                        let b = Pendulum.actionSpace
                        Expect.isFalse (b.Contains [| 2.5 |]) "above"
                        Expect.isFalse (b.Contains [| nan |]) "NaN"
                        Expect.isTrue (b.Contains [| -2.0 |]) "bound"
                    }

                    test "SampleBatch: shapes, dtypes, range and seeding" {
                        let g () = new torch.Generator(9UL)
                        let d = CartPole.actionSpace.SampleBatch(500, g (), torch.CPU)
                        Expect.equal (d.shape, d.dtype) ([| 500L |], torch.int64) "discrete"
                        Expect.isTrue (d.ge(0L.ToScalar()).logical_and(d.le (1L.ToScalar())).all().item<bool>()) "0..1"
                        let b = Pendulum.actionSpace.SampleBatch(500, g (), torch.CPU)
                        Expect.equal (b.shape, b.dtype) ([| 500L; 1L |], torch.float32) "box"
                        Expect.isTrue (b.abs().le(2.0.ToScalar()).all().item<bool>()) "in [-2, 2]"
                        let b2 = Pendulum.actionSpace.SampleBatch(500, g (), torch.CPU)
                        Expect.isTrue (b.eq(b2).all().item<bool>()) "seeded"
                    }
                ]
        ]
