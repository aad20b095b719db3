/// Tests of PPO at scale: the shared-trunk network and total loss, optimizer diagnostics
/// (Adam moment norms, gradient cosine similarity), seed independence, a CartPole learning check.
module Rl.Tests.ScaleTests

open System
open Expecto
open TorchSharp
open TorchSharp.Modules
open Rl
open Rl.Nn
open Rl.Tests.TestPaths

let private maxAbs (a: torch.Tensor) (b: torch.Tensor) = Tensor.item ((a - b).abs().max())

/// The CartPole config with a short budget and a higher learning rate, so it learns in seconds.
let private cartpole () =
    let c =
        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (config "ppo-cartpole.yaml")

    { c with
        TotalTimesteps = 16_384L
        Lr = 2e-3
        ShareTrunk = true // these tests are about seed 001's shared trunk
        Run.Threads = 1
    }

/// Checks that the mean training return of the last four updates is more than twice the first
/// update's and returns it.
let private expectReturnsGrow (r: Ppo.TrainResult) =
    let returns =
        r.Metrics |> List.map (fun m -> m.EpisodicReturn) |> List.filter Double.IsFinite

    let first = List.head returns
    let last = returns |> List.rev |> List.take 4 |> List.average
    Expect.isGreaterThan last (2.0 * first) $"returns grow: first {first:F0}, last four {last:F0}"
    last

[<Tests>]
let tests =
    testList
        "Ppo.scale"
        [
            test "shared trunk: policy and value heads read the same trunk features (hand weights)" {
                use net = new ActorCritic("ac", 1, 2, [ 2 ], Relu, CategoricalHead 2)
                use _ng = torch.no_grad ()
                let ps = net.named_parameters () |> Seq.map (fun struct (n, p) -> n, p) |> Map.ofSeq

                let set (suffix: string) (values: float32[]) =
                    let _, p = ps |> Map.toSeq |> Seq.find (fun (n, _) -> n.EndsWith suffix)
                    p.copy_ (torch.tensor(values).reshape p.shape) |> ignore
                // trunk: h = relu(x W + b), W = [[1, 0]; [0, -1]] ([in; out]), b = 0
                set "layers.0.weight" [| 1.0f; 0.0f; 0.0f; -1.0f |]
                set "layers.0.bias" [| 0.0f; 0.0f |]
                // policy logits = h [[1, 0]; [0, 1]]; value = h . (2, 3) + 1
                set "policy.outLayer.weight" [| 1.0f; 0.0f; 0.0f; 1.0f |]
                set "policy.outLayer.bias" [| 0.0f; 0.0f |]
                set "valueLayer.weight" [| 2.0f; 3.0f |]
                set "valueLayer.bias" [| 1.0f |]
                let x = torch.tensor([| 1.0f; -2.0f |]).reshape(1L, 1L, 2L) // h = (1, 2)
                let dist, v = net.DistValue x
                Expect.floatClose Accuracy.high (Tensor.item v) (1.0 + 2.0 + 6.0) "value = 2*1 + 3*2 + 1"

                match dist with
                | Categorical lp ->
                    let p = Tensor.toArray (lp.exp ())
                    Expect.floatClose Accuracy.medium p[1] (exp 2.0 / (exp 1.0 + exp 2.0)) "softmax of logits (1, 2)"
                | _ -> failtest "categorical"
            }

            test "shared total loss = surrogate + vf_coef * value loss - ent_coef * entropy (hand case)" {
                // ratio 1 everywhere (new = old): surrogate = -mean(A); value loss 0.5 mean((V-R)^2)
                let lp = torch.tensor([| -0.5f; -1.0f |]).reshape(1L, 2L)
                let adv = torch.tensor([| 1.0f; 3.0f |]).reshape(1L, 2L)
                let pg, _ = Losses.ppoClip 0.2 lp lp adv
                let v = torch.tensor([| 1.0f; 2.0f |]).reshape(1L, 2L)
                let r = torch.tensor([| 2.0f; 4.0f |]).reshape(1L, 2L)
                let vl = Losses.valueLoss None v v r
                let ent = torch.tensor ([| 0.7f |])
                let total = pg + 0.5 * vl - 0.01 * ent
                // -2 + 0.5 * 0.5 * (1 + 4) / 2 - 0.007
                Expect.floatClose Accuracy.medium (Tensor.item total) (-2.0 + 0.625 - 0.007) "total"
            }

            test "optimizer names: adam, rmsprop, sgd; another name is refused" {
                Expect.equal (Optim.kindOf "adam" 0.8 0.99 1e-5) (Optim.Adam(0.8, 0.99, 1e-5)) "adam"
                Expect.equal (Optim.kindOf "RMSprop" 0.8 0.99 1e-5) (Optim.RmsProp(0.99, 1e-5)) "rmsprop alpha = beta2"
                Expect.equal (Optim.kindOf "sgd" 0.8 0.99 1e-5) (Optim.Sgd 0.0) "sgd"

                Expect.throwsC (fun () -> Optim.kindOf "adagrad" 0.9 0.999 1e-8 |> ignore) (fun e ->
                    Expect.stringContains e.Message "adagrad" "names it")
            }

            test "cosine similarity per seed on hand vectors" {
                let a = torch.tensor([| 1.0; 0.0; 1.0; 1.0; 0.0; 0.0 |]).reshape(3L, 2L)
                let b = torch.tensor([| 0.0; 2.0; 2.0; 2.0; 1.0; 1.0 |]).reshape(3L, 2L)
                let c = Tensor.toArray (Optim.cosineSimilarityPerSeed a b)
                Expect.floatClose Accuracy.high c[0] 0.0 "orthogonal"
                Expect.floatClose Accuracy.high c[1] 1.0 "parallel"
                Expect.isTrue (Double.IsNaN c[2]) "zero vector: NaN"
                let d = Tensor.toArray (Optim.cosineSimilarityPerSeed a (-a))
                Expect.floatClose Accuracy.high d[0] -1.0 "opposite"
            }

            test "Adam moment norms match a direct computation from the gradients" {
                let p1 = new Parameter(torch.zeros (2L, 2L))
                let p2 = new Parameter(torch.zeros (2L, 1L))
                let b1, b2 = 0.9, 0.99
                let opt = Optim.make (Optim.Adam(b1, b2, 1e-8)) 1e-3 [ p1; p2 ]
                // two steps with hand gradients; seed rows: p1 [2 values], p2 [1 value]
                let g1 = [| [| 1.0; -2.0; 0.5; 0.0 |]; [| 3.0; 1.0 |] |]
                let g2 = [| [| 0.0; 1.0; -1.0; 2.0 |]; [| -1.0; 4.0 |] |]

                for g in [ g1; g2 ] do
                    opt.zero_grad ()
                    p1.grad <- torch.tensor(g[0] |> Array.map float32).reshape(2L, 2L)
                    p2.grad <- torch.tensor(g[1] |> Array.map float32).reshape(2L, 1L)
                    opt.step () |> ignore

                let m, v = Optim.adamMomentNorms 2 opt
                let m, v = Tensor.toArray m, Tensor.toArray v
                // seed k's gradient entries per step
                let entries (g: float[][]) k =
                    [| g[0][2 * k]; g[0][2 * k + 1]; g[1][k] |]

                for k in 0..1 do
                    let a, b = entries g1 k, entries g2 k
                    let mk = Array.map2 (fun x y -> b1 * (1.0 - b1) * x + (1.0 - b1) * y) a b
                    let vk = Array.map2 (fun x y -> b2 * (1.0 - b2) * x * x + (1.0 - b2) * y * y) a b
                    let norm xs = sqrt (Array.sumBy (fun x -> x * x) xs)
                    Expect.floatClose Accuracy.medium m[k] (norm mk) $"seed {k} first moment"
                    Expect.floatClose Accuracy.medium v[k] (norm vk) $"seed {k} second moment"

                let sgd = Optim.make (Optim.Sgd 0.0) 1e-3 [ p1 ]
                let sgdM = Tensor.toArray (fst (Optim.adamMomentNorms 2 sgd))
                Expect.isTrue (Double.IsNaN sgdM[0]) "NaN for SGD"
            }

            test "perturbing seed j's data leaves seed k's gradients exactly unchanged" {
                let grads (obs: torch.Tensor) =
                    use net = new ActorCritic("ac", 3, 4, [ 16; 16 ], Tanh, CategoricalHead 2)
                    net.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, Orthogonal 1.0, [| 0L; 1L; 2L |])
                    let dist, v = net.DistValue obs
                    let act = torch.zeros ([| 3L; 8L |], dtype = torch.int64)
                    let lp = Dist.logProb dist act
                    let adv = torch.linspace(-1.0, 1.0, 8L).expand(3L, -1L)
                    let pg, _ = Losses.ppoClip 0.2 lp (lp.detach () - 0.1) adv

                    let loss =
                        pg + 0.5 * Losses.valueLoss None v v (torch.ones (3L, 8L))
                        - 0.01 * (Dist.entropy dist).mean([| 1L |])

                    loss.sum().backward()
                    [ for p in net.parameters () -> p.grad.clone () ]

                let g = new torch.Generator(5UL)
                let obs = torch.randn ([| 3L; 8L; 4L |], generator = g)
                let perturbed = obs.clone ()
                perturbed[1].add_(torch.randn ([| 8L; 4L |], generator = g) * 3.0) |> ignore
                let a, b = grads obs, grads perturbed

                for pa, pb in List.zip a b do
                    Expect.equal (maxAbs pa[0] pb[0]) 0.0 "seed 0 unchanged"
                    Expect.equal (maxAbs pa[2] pb[2]) 0.0 "seed 2 unchanged"

                Expect.isGreaterThan
                    (List.map2 (fun (pa: torch.Tensor) (pb: torch.Tensor) -> maxAbs pa[1] pb[1]) a b
                     |> List.max)
                    0.0
                    "seed 1 changed"
            }

            testList
                "seeds 0..3 in one batch learn to the bit what each learns alone (CPU)"
                [
                    // Every metrics.csv column but the timings, as bits (NaN-safe), and every parameter.
                    let compared =
                        Ppo.Diagnostics.metricColumns
                        |> List.map fst
                        |> List.indexed
                        |> List.filter (fun (_, name) -> not (Metrics.isTimingColumn name))

                    let fields (m: Ppo.UpdateMetrics) =
                        let values = Ppo.Diagnostics.metricValues m

                        compared
                        |> List.map (fun (i, name) -> name, BitConverter.DoubleToInt64Bits values[i])

                    let parameters (a: Ppo.Agent) =
                        [
                            for _, m in a.Modules do
                                for p in m.parameters () -> p.detach ()
                        ]

                    let peers =
                        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (config "ppo-cartpole.yaml")

                    let pendulum =
                        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults (config "ppo-pendulum.yaml")

                    for name, cfg in
                        [
                            "CartPole, the peers' config, sync envs", { peers with TotalTimesteps = 1536L }
                            "CartPole, the peers' config, vector envs",
                            { peers with
                                TotalTimesteps = 1536L
                                VectorizationMode = "vector"
                            }
                            "Pendulum, the default config (one action: one-column heads)",
                            { pendulum with
                                TotalTimesteps = 8192L
                                UpdateEpochs = 2
                            }
                        ] ->
                        test name {
                            let batch = Ppo.Loop.train { cfg with Run.NumSeeds = 4 } Ppo.Loop.noHooks None
                            let batchParams = parameters batch.Agent

                            for k in 0..3 do
                                let alone =
                                    Ppo.Loop.train
                                        { cfg with
                                            Run.Seed = cfg.Run.Seed + int64 k
                                            Run.NumSeeds = 1
                                        }
                                        Ppo.Loop.noHooks
                                        None

                                let rowsB = batch.Metrics |> List.filter (fun m -> m.Seed = cfg.Run.Seed + int64 k)
                                Expect.equal rowsB.Length alone.Metrics.Length $"seed {k}: same updates"

                                for mb, ma in List.zip rowsB alone.Metrics do
                                    Expect.sequenceEqual (fields mb) (fields ma) $"seed {k} update {ma.Update}: metrics"

                                for pb, pa in List.zip batchParams (parameters alone.Agent) do
                                    Expect.equal (maxAbs pb[k] pa[0]) 0.0 $"seed {k}: parameters"

                                (alone.Agent :> IDisposable).Dispose()

                            (batch.Agent :> IDisposable).Dispose()
                        }
                ]

            test "fused seeds with the sync-free auto-reset of CUDA (forced here on the CPU) train and reset episodes" {
                let cfg =
                    { cartpole () with
                        TotalTimesteps = 1536L
                        Run.NumSeeds = 2
                        VectorizationMode = "vector"
                    }

                let made = ResizeArray<BatchedClassicEnv>()

                let makeEnv n =
                    let e = Envs.makeBatched cfg.EnvId n torch.CPU :?> BatchedClassicEnv
                    e.SyncFreeAutoReset <- true
                    made.Add e
                    e :> IBatchedEnv

                let r = Ppo.Loop.trainWith makeEnv cfg Ppo.Loop.noHooks None
                Expect.equal made[0].NumEnvs (2 * cfg.NumEnvs) "one fused env of S * N copies"
                Expect.equal r.Metrics.Length 6 "three updates x two seeds"

                for m in r.Metrics do
                    Expect.isGreaterThan m.Episodes 0 $"seed {m.Seed} update {m.Update}: episodes ended and were reset"
                    // CartPole episodes of a fresh policy last about 8 to 100 steps
                    Expect.isTrue
                        (m.EpisodicReturn >= 8.0 && m.EpisodicReturn <= 500.0)
                        $"seed {m.Seed} update {m.Update}: plausible return {m.EpisodicReturn}"

                (r.Agent :> IDisposable).Dispose()
            }

            test "the shared network runs continuous actions (Pendulum) on the same path, with rmsprop and sgd too" {
                let pendulum =
                    { Ppo.PpoConfig.seedDefaults with
                        SharedNetwork = true
                        Sigma = "logstd"
                        NumEnvs = 2
                        NumSteps = 128
                        MinibatchSize = 128
                        UpdateEpochs = 1
                        TotalTimesteps = 512L
                        Run.NumSeeds = 2
                        NormAdvBatch = true
                        Lr = 1e-3
                        Run.Threads = 1
                    }

                for opt in [ "adam"; "rmsprop"; "sgd" ] do
                    let r = Ppo.Loop.train { pendulum with Optimizer = opt } Ppo.Loop.noHooks None
                    Expect.equal r.Metrics.Length 4 $"{opt}: two updates x two seeds"

                    for m in r.Metrics do
                        Expect.isTrue
                            (Double.IsFinite m.ActorLoss
                             && Double.IsFinite m.CriticLoss
                             && Double.IsFinite m.SigmaMean)
                            $"{opt}: finite losses and sigma"

                        Expect.equal (Double.IsNaN m.AdamMNorm) (opt <> "adam") $"{opt}: Adam moments only for Adam"

                    (r.Agent :> IDisposable).Dispose()
            }

            test "a short seeded CartPole run with the shared network learns" {
                let cfg = cartpole ()
                let r = Ppo.Loop.train cfg Ppo.Loop.noHooks None
                let last = expectReturnsGrow r
                // measured here: first update 23, last four 59 (random play: about 22)
                Expect.isGreaterThan last 45.0 $"last four updates average {last:F0}"

                for m in r.Metrics |> List.skip 1 do
                    Expect.isTrue
                        (Double.IsFinite m.GradCosPrev && Double.IsFinite m.GradCosEma)
                        "cosines defined after update 1"

                    Expect.isTrue (m.AdamMNorm > 0.0 && m.AdamVNorm > 0.0) "moments"

                Expect.isTrue (Double.IsNaN (List.head r.Metrics).GradCosPrev) "no previous gradient at update 1"
                (r.Agent :> IDisposable).Dispose()
            }

            test
                "share_trunk false: two MLPs in one network, the value reads only its own trunk; the peers' config learns" {
                use net =
                    new ActorCritic("ac", 1, 4, [ 8; 8 ], Tanh, CategoricalHead 2, shareTrunk = false)

                net.Initialise(Orthogonal(sqrt 2.0), Orthogonal 0.01, Orthogonal 1.0, [| 0L |])
                Expect.isFalse net.SharesTrunk "two trunks"
                use shared = new ActorCritic("ac", 1, 4, [ 8; 8 ], Tanh, CategoricalHead 2)

                let count (m: torch.nn.Module) =
                    m.parameters () |> Seq.sumBy (fun p -> p.numel ())
                // a second trunk: 4*8 + 8 + 8*8 + 8 more parameters
                Expect.equal (count net) (count shared + 4L * 8L + 8L + 8L * 8L + 8L) "the value trunk is registered"
                let obs = torch.randn (1L, 5L, 4L)
                let _, v = net.DistValue obs
                v.sum().backward()

                for struct (name, p) in net.named_parameters () do
                    let touched = not (isNull p.grad) && Tensor.item (p.grad.abs().sum()) > 0.0

                    if name.StartsWith "trunk" || name.StartsWith "policy" then
                        Expect.isFalse touched $"{name}: the value does not depend on the policy's parameters"
                    elif name.StartsWith "value_trunk" then
                        Expect.isTrue touched $"{name}: the value trains its own trunk"

                Expect.sequenceEqual (Tensor.toArray (net.Value obs)) (Tensor.toArray v) "Value = DistValue's value"

                let r = Ppo.Loop.train { cartpole () with ShareTrunk = false } Ppo.Loop.noHooks None
                expectReturnsGrow r |> ignore
                (r.Agent :> IDisposable).Dispose()
            }
        ]

[<Tests>]
let registration =
    testList
        "Ppo.scale.registration"
        [
            test "hidden layers are registered parameters of Trunk, Actor, Critic and ActorCritic" {
                use t = new Trunk("t", 2, [ 3; 4; 5 ], Relu)
                Expect.equal (Seq.length (t.parameters ())) 4 "two layers, weight and bias each"
                use a = new Actor("a", 2, 3, [ 4; 5 ], Relu, CategoricalHead 2)
                Expect.equal (Seq.length (a.parameters ())) 6 "trunk 4 + output 2"
                use c = new Critic("c", 2, 3, [ 4; 5 ], Relu)
                Expect.equal (Seq.length (c.parameters ())) 6 "trunk 4 + output 2"
                use ac = new ActorCritic("ac", 2, 3, [ 4; 5 ], Relu, CategoricalHead 2)
                Expect.equal (Seq.length (ac.parameters ())) 8 "trunk 4 + policy 2 + value 2"
            }
        ]
