module Rl.Tests.QLearningTests

open System
open Expecto
open Rl

[<Tests>]
let tests =
    testList
        "QLearning"
        [
            test "TD target, error and update equal seed 004's formulas on hand cases" {
                // R + gamma * max_a' Q(S', a') = 1 + 0.9 * 2
                Expect.floatClose Accuracy.veryHigh (QLearning.tdTarget 0.9 1.0 false [| 0.5; 2.0; -1.0 |]) 2.8 "target"

                Expect.floatClose
                    Accuracy.veryHigh
                    (QLearning.tdTarget 0.9 1.0 true [| 0.5; 2.0 |])
                    1.0
                    "no bootstrap at a terminal"

                Expect.floatClose Accuracy.veryHigh (QLearning.tdError 2.8 1.0) 1.8 "error = target - Q"
                Expect.floatClose Accuracy.veryHigh (QLearning.updated 0.1 1.0 1.8) 1.18 "Q + alpha * error"
            }

            test "learn changes exactly Q(s, a) by alpha times the TD error" {
                let q = Array2D.init 3 2 (fun s a -> float (s * 2 + a))
                let before = Array2D.copy q
                let err = QLearning.learn 0.5 0.9 q 0 1 1.0 2 false
                // target = 1 + 0.9 * max(4, 5) = 5.5; error = 5.5 - 1 = 4.5; Q = 1 + 0.5 * 4.5
                Expect.floatClose Accuracy.veryHigh err 4.5 "TD error"
                Expect.floatClose Accuracy.veryHigh q[0, 1] 3.25 "updated entry"

                for s in 0..2 do
                    for a in 0..1 do
                        if (s, a) <> (0, 1) then
                            Expect.equal q[s, a] before[s, a] $"entry ({s}, {a}) untouched"
            }

            test "finds the optimal policy on deterministic FrozenLake 4x4" {
                let r = QLearning.train QLearning.deterministicDefaults
                let policy = QLearning.greedyPolicy r.Q

                let mc =
                    QLearning.successRate (QLearning.makeEnv QLearning.deterministicDefaults) policy 100 7L

                Expect.equal mc 1.0 "greedy success over 100 episodes"

                let exact =
                    QLearning.successProbability r.Env.P (FrozenLake.initialDistribution r.Env.Desc) 100 policy

                Expect.floatClose Accuracy.veryHigh exact 1.0 "exact success probability"
            }

            test "value iteration on the slippery map gives the known optimum 0.7402" {
                let env = FrozenLake.Env(isSlippery = true)
                let qStar = QLearning.valueIteration 0.99 1e-10 env.P

                let p =
                    QLearning.successProbability
                        env.P
                        (FrozenLake.initialDistribution env.Desc)
                        100
                        (QLearning.greedyPolicy qStar)
                // docs/peers.md: greedy policy of VI with gamma 0.99 reaches 0.7402.
                Expect.floatClose { absolute = 5e-5; relative = 0.0 } p 0.7402 "optimum"
            }

            test "Q-learning on the slippery map comes within 0.05 of the optimum" {
                let r = QLearning.train QLearning.slipperyDefaults
                let init = FrozenLake.initialDistribution r.Env.Desc
                let got = QLearning.successProbability r.Env.P init 100 (QLearning.greedyPolicy r.Q)

                let opt =
                    QLearning.successProbability
                        r.Env.P
                        init
                        100
                        (QLearning.greedyPolicy (QLearning.valueIteration 0.99 1e-10 r.Env.P))

                Expect.isGreaterThanOrEqual got (opt - 0.05) $"greedy success {got} vs optimum {opt}"
            }

            test "bad hyperparameters are refused with the allowed range" {
                let e =
                    Expect.throwsC
                        (fun () ->
                            QLearning.train
                                { QLearning.deterministicDefaults with
                                    Alpha = 0.0
                                }
                            |> ignore)
                        id

                Expect.stringContains e.Message "alpha must be in (0, 1]" "message"
            }
        ]
