module Rl.Tests.AdvantageTests

open System
open Expecto
open FsCheck
open TorchSharp
open Rl

let private t2 (rows: float list list) =
    let T = rows.Length
    let B = rows.Head.Length
    torch.tensor(rows |> List.concat |> List.map float32 |> Array.ofList).reshape(int64 T, int64 B)

let private col (t: torch.Tensor) = Tensor.toArray t

/// The slow per-step definition: A_t = sum_l (gamma lambda)^l delta_{t+l}, summing until the
/// first step at or after t whose episode ended (inclusive) or the end of the rollout.
let private slowGae gamma lambda (r: float[]) (v: float[]) (nv: float[]) (term: bool[]) (trunc: bool[]) =
    let T = r.Length

    Array.init T (fun t ->
        let mutable acc = 0.0
        let mutable w = 1.0
        let mutable l = t
        let mutable stop = false

        while not stop && l < T do
            let delta = r[l] + gamma * (if term[l] then 0.0 else nv[l]) - v[l]
            acc <- acc + w * delta
            w <- w * gamma * lambda
            stop <- term[l] || trunc[l]
            l <- l + 1

        acc)

[<Tests>]
let tests =
    testList
        "Advantage"
        [
            test "GAE hand-worked case without episode ends" {
                let r = t2 [ [ 1.0 ]; [ 2.0 ]; [ 3.0 ] ]
                let v = t2 [ [ 0.5 ]; [ 1.0 ]; [ 1.5 ] ]
                let nv = t2 [ [ 1.0 ]; [ 1.5 ]; [ 2.0 ] ]
                let z = t2 [ [ 0.0 ]; [ 0.0 ]; [ 0.0 ] ]
                let adv, ret = Advantage.gae 0.9 0.8 r v nv z z
                // delta = 1.4, 2.35, 3.3; A2 = 3.3, A1 = 2.35 + 0.72*3.3, A0 = 1.4 + 0.72*A1
                let expected = [| 4.80272; 4.726; 3.3 |]

                Expect.sequenceEqual
                    (col adv |> Array.map (fun x -> Math.Round(x, 4)))
                    (expected |> Array.map (fun x -> Math.Round(x, 4)))
                    "advantages"

                Expect.sequenceEqual
                    (col ret |> Array.map (fun x -> Math.Round(x, 4)))
                    [| 5.3027; 5.726; 4.8 |]
                    "returns = adv + values"
            }

            test "GAE: termination stops bootstrap and propagation; truncation only propagation" {
                let r = t2 [ [ 1.0 ]; [ 2.0 ]; [ 3.0 ] ]
                let v = t2 [ [ 0.5 ]; [ 1.0 ]; [ 1.5 ] ]
                let nv = t2 [ [ 1.0 ]; [ 1.5 ]; [ 2.0 ] ]
                let z = t2 [ [ 0.0 ]; [ 0.0 ]; [ 0.0 ] ]
                let mid = t2 [ [ 0.0 ]; [ 1.0 ]; [ 0.0 ] ]
                let advTerm, _ = Advantage.gae 0.9 0.8 r v nv mid z
                let advTrunc, _ = Advantage.gae 0.9 0.8 r v nv z mid

                let round (xs: float[]) =
                    xs |> Array.map (fun x -> Math.Round(x, 4))

                Expect.sequenceEqual (round (col advTerm)) [| 2.12; 1.0; 3.3 |] "terminated at t=1: delta_1 = r - V"

                Expect.sequenceEqual
                    (round (col advTrunc))
                    [| 3.092; 2.35; 3.3 |]
                    "truncated at t=1: bootstraps from V(final obs)"
            }

            testProperty "GAE equals the slow per-step definition"
            <| fun (seed: int) (len: PositiveInt) (gammaI: byte) (lambdaI: byte) ->
                let T = min 40 len.Get
                let rng = Random(seed)
                let gamma = float gammaI / 255.0
                let lambda = float lambdaI / 255.0
                let r = Array.init T (fun _ -> rng.NextDouble() * 2.0 - 1.0)
                let v = Array.init T (fun _ -> rng.NextDouble())
                let nv = Array.init T (fun _ -> rng.NextDouble())
                let term = Array.init T (fun _ -> rng.NextDouble() < 0.15)
                let trunc = Array.init T (fun _ -> rng.NextDouble() < 0.15)
                let tt (xs: float[]) = t2 [ for x in xs -> [ x ] ]

                let tb (xs: bool[]) =
                    tt (xs |> Array.map (fun b -> if b then 1.0 else 0.0))

                let adv, _ = Advantage.gae gamma lambda (tt r) (tt v) (tt nv) (tb term) (tb trunc)
                // inputs were rounded to float32: use the same values in the reference
                let f32 (xs: float[]) = xs |> Array.map (float32 >> float)
                let expected = slowGae gamma lambda (f32 r) (f32 v) (f32 nv) term trunc
                Array.forall2 (fun (a: float) (e: float) -> abs (a - e) < 1e-4) (col adv) expected

            testProperty "GAE with lambda = 1 gives Monte-Carlo returns minus values"
            <| fun (seed: int) (len: PositiveInt) ->
                let T = min 30 len.Get
                let B = 3
                let rng = Random(seed)
                let gamma = 0.97
                let r = Array2D.init T B (fun _ _ -> rng.NextDouble())
                let v = Array2D.init T B (fun _ _ -> rng.NextDouble())
                let term = Array2D.init T B (fun _ _ -> rng.NextDouble() < 0.1)
                let trunc = Array2D.init T B (fun _ _ -> rng.NextDouble() < 0.1)
                // consistent critic: V(s'_t) = V(s_{t+1}) whenever the episode goes on
                let nv =
                    Array2D.init T B (fun t b ->
                        if t < T - 1 && not term[t, b] && not trunc[t, b] then
                            v[t + 1, b]
                        else
                            rng.NextDouble())

                let tt (a: float[,]) =
                    t2 [ for t in 0 .. T - 1 -> [ for b in 0 .. B - 1 -> a[t, b] ] ]

                let tb (a: bool[,]) =
                    tt (Array2D.map (fun x -> if x then 1.0 else 0.0) a)

                let adv, ret = Advantage.gae gamma 1.0 (tt r) (tt v) (tt nv) (tb term) (tb trunc)
                let mc = Advantage.discountedReturns gamma (tt r) (tb term) (tb trunc) (tt nv)

                Array.forall2 (fun (a: float) (e: float) -> abs (a - e) < 1e-4) (col ret) (col mc)
                && Array.forall2 (fun (a: float) (e: float) -> abs (a - e) < 1e-4) (col adv) (col (mc - tt v))

            test "GAE rejects mismatched shapes and out-of-range gamma" {
                let a = torch.zeros (3L, 2L)
                let b = torch.zeros (3L, 1L)
                Expect.throwsT<ArgumentException> (fun () -> Advantage.gae 0.9 0.9 a a b a a |> ignore) "shape"
                Expect.throwsT<ArgumentException> (fun () -> Advantage.gae 1.5 0.9 a a a a a |> ignore) "gamma"
            }

            test "normalize gives mean 0 and std 1 per seed row" {
                let x =
                    torch.tensor([| 1.0f; 2.0f; 3.0f; 4.0f; 10.0f; 20.0f; 30.0f; 40.0f |]).reshape(2L, 4L)

                let n = Advantage.normalize x
                let m = Tensor.toArray (n.mean ([| 1L |]))
                let s = Tensor.toArray (n.std (1L))

                for k in 0..1 do
                    Expect.floatClose Accuracy.medium m[k] 0.0 "mean 0"
                    Expect.floatClose Accuracy.low s[k] 1.0 "std 1"
            }
        ]
