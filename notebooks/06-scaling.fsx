(**
---
title: 06 Scaling: memory, data and model parallelism
category: Notebooks
categoryindex: 1
index: 6
---
*)
(*** hide ***)
#load "../scripts/prepare.fsx"
#load "../scripts/load.fsx"

open System
open System.Diagnostics
open TorchSharp
open Plotly.NET
open Rl

/// Quick mode (RL_QUICK=1): the test suite runs this notebook with a tiny budget.
let quick = Environment.GetEnvironmentVariable "RL_QUICK" = "1"
(*** hide ***)
Charts.plotlyScript ()
(*** include-it-raw ***)

(**
# Scaling: why an 8B model does not fit on one chip

Seed 004's module 6 asks why we cannot train an 8-billion-parameter model (Llama 3.1 8B) on a
single GPU or TPU core. The answer is memory (HBM), and the arithmetic needs no GPU at all.

## The memory bottleneck

Training keeps three things per parameter:

* the **weights** themselves;
* one **gradient** per weight (what backpropagation produces);
* the **optimizer state**: Adam (Kingma & Ba 2015) keeps two moments, m and v, per weight.

`Memory.estimate` does this arithmetic for any parameter count and dtype, every value stored in
that dtype as in the seed (bf16: 2 bytes):
*)

let adam = Optim.Adam(0.9, 0.999, 1e-8)
let bf16 = torch.ScalarType.BFloat16
let fp32 = torch.ScalarType.Float32

let bottleneck =
    Memory.table
        [ "8B, bf16 (seed 004)", Memory.estimate adam bf16 8_000_000_000L
          "8B, fp32", Memory.estimate adam fp32 8_000_000_000L
          "70B, bf16", Memory.estimate adam bf16 70_000_000_000L
          "8B, bf16, SGD (no state)", Memory.estimate (Optim.Sgd 0.0) bf16 8_000_000_000L ]

(*** include-value: bottleneck ***)

(**
16 GB of weights + 16 GB of gradients + 32 GB of Adam moments = **64 GB**, before a single
activation is stored. That does not fit a 32 GB chip at all, and leaves too little of an 80 GB one
for activations. (Mixed-precision training usually keeps fp32 master weights and moments as
well, which makes it worse: the fp32 row.) The same function on this workspace's own networks,
live modules counted with `Memory.ofModules`:
*)

let mnistActor = new Nn.Actor("actor", 1, 784, [ 128; 128 ], Nn.Relu, Nn.CategoricalHead 10)
let mnistCritic = new Nn.Critic("critic", 1, 784, [ 128; 128 ], Nn.Relu)
let pendulumActor = new Nn.Actor("actor", 1, 3, [ 64; 64 ], Nn.Relu, Nn.GaussianHead(1, Some 2.0, Nn.LogStd 0.0))
let pendulumCritic = new Nn.Critic("critic", 1, 3, [ 64; 64 ], Nn.Relu)

let ours =
    Memory.table
        [ "GRPO MNIST actor (nb 07)", Memory.ofModules adam fp32 [ mnistActor ]
          "PPO MNIST actor + critic", Memory.ofModules adam fp32 [ mnistActor :> torch.nn.Module; mnistCritic ]
          "PPO Pendulum actor + critic", Memory.ofModules adam fp32 [ pendulumActor :> torch.nn.Module; pendulumCritic ] ]

(*** include-value: ours ***)

(**
Dropping the critic, as GRPO does, halves the bill here; for an LLM, where the critic is a second
copy of the model, it saves the full 64 GB of the table above.

## Two ways to split the work

Say we have 8 chips. Seed 004 names two strategies (and JAX/MaxText's `Mesh` combines them):

* **Data parallelism** ("copy"): every chip holds the whole model and a slice of the batch. It
  is fast (no communication inside a step, one gradient all-reduce per step) but **does not
  reduce memory per chip**.
* **Model (tensor) parallelism** ("split"): every chip holds a slice of every weight matrix.
  Memory per chip falls by the split factor; every layer now needs communication between chips.

A mesh of shape (data, model) does both: the model axis splits the weights, the data axis splits
the batch. Per-chip training memory for the 8B bf16 model on 8 chips:
*)

let total = (Memory.estimate adam bf16 8_000_000_000L).TotalBytes

let meshes =
    [ for data, model in [ 8, 1; 4, 2; 2, 4; 1, 8 ] ->
          $"mesh (data = {data}, model = {model}): {Memory.formatBytes (total / int64 model)} per chip, batch split {data} ways" ]

(*** include-value: meshes ***)

(**
This workspace uses the same idea at toy scale. Every network has a leading **seed axis**: S
independent agents are one batched computation. That is data parallelism's memory pattern,
one full copy per replica, on one device:
*)

let seedCopies =
    [ for s in [ 1; 3; 16 ] ->
          use a = new Nn.Actor("actor", s, 784, [ 128; 128 ], Nn.Relu, Nn.CategoricalHead 10)
          $"S = {s,2} seeds: {Memory.formatBytes (Memory.ofModules adam fp32 [ a ]).TotalBytes}" ]

(*** include-value: seedCopies ***)

(**
## A measurement that fits this machine

Weights, gradients and optimizer state do not depend on the batch; activations and time do.
Below, one GRPO-style training step of the MNIST actor (forward, clipped surrogate, backward,
Adam) for growing batch sizes, with the activation memory it implies (inputs and every layer's
output, kept for the backward pass: B × (784 + 128 + 128 + 10) float32 values per seed). On the
CPU the time grows with the batch; on a GPU (run this notebook with `RL_LIBTORCH` set, see the
README) it stays flat until the chip is busy: per-call overhead dominates small networks.
*)

let stepTime (device: torch.Device) (seeds: int) (batch: int) =
    use actor = new Nn.Actor("actor", seeds, 784, [ 128; 128 ], Nn.Relu, Nn.CategoricalHead 10)
    actor.Initialise(Nn.TorchDefault, Nn.TorchDefault, Array.init seeds int64)
    actor.``to`` device |> ignore
    use opt = Optim.make adam 1e-3 (actor.parameters ())
    let g = Seed.generator device 0L
    use x = torch.rand ([| int64 seeds; int64 batch; 784L |], generator = g, device = device)
    use a = torch.randint (0L, 10L, [| int64 seeds; int64 batch |], generator = g, device = device)
    use adv = torch.randn ([| int64 seeds; int64 batch |], generator = g, device = device)

    let step () =
        use _scope = torch.NewDisposeScope()
        let lp = Nn.Dist.logProb (actor.Dist x) a
        let loss, _ = Losses.ppoClip 0.2 lp (lp.detach ()) adv
        opt.zero_grad ()
        loss.sum().backward ()
        opt.step () |> ignore
        if device.``type`` = DeviceType.CUDA then torch.cuda.synchronize ()

    for _ in 1..3 do
        step ()

    let reps = if quick then 3 else 20
    let sw = Stopwatch.StartNew()

    for _ in 1..reps do
        step ()

    sw.Elapsed.TotalMilliseconds / float reps

Native.setThreads 1

let devices =
    [ yield "cpu", torch.CPU
      if Native.cudaAvailable () then
          yield "cuda", torch.CUDA ]

let batches = if quick then [ 64; 1024 ] else [ 64; 256; 1024; 4096; 16384 ]

let timings =
    [ for name, d in devices -> name, [| for b in batches -> stepTime d 1 b |] ]

let activationBytes (seeds: int) (batch: int) = int64 seeds * int64 batch * (784L + 128L + 128L + 10L) * 4L

let measured =
    [ for name, ms in timings do
          for i in 0 .. batches.Length - 1 ->
              $"{name}: batch {batches[i],6}: {ms[i],8:F2} ms per step, {float batches[i] / ms[i] * 1000.0,10:F0} images/s, activations {Memory.formatBytes (activationBytes 1 batches[i])}" ]

(*** include-value: measured ***)

Charts.lines
    "Time per training step of the MNIST actor"
    "batch size"
    "ms per step"
    [ for name, ms in timings -> name, (batches |> List.map float |> Array.ofList), ms ]
|> Chart.withXAxis (LayoutObjects.LinearAxis.init (AxisType = StyleParam.AxisType.Log, Title = Title.init "batch size"))
|> Charts.toHtml
(*** include-it-raw ***)

(**
And the seed axis as "data parallelism in one process": S seeds of batch 256 each in one
batched step, against S separate steps. The batched form pays the per-call overhead once.
*)

let seedCounts = if quick then [ 1; 4 ] else [ 1; 3; 8; 16 ]

let seedTimings =
    [ for s in seedCounts ->
          let batched = stepTime torch.CPU s 256
          let single = stepTime torch.CPU 1 256
          $"S = {s,2}: one batched step {batched:F2} ms vs {s} separate steps {float s * single:F2} ms; weights+grads+Adam {Memory.formatBytes (Memory.estimate adam fp32 (int64 s * 118_282L)).TotalBytes}, activations {Memory.formatBytes (activationBytes s 256)}" ]

(*** include-value: seedTimings ***)

(**
## What carries over

* Training memory = weights + gradients + optimizer state (+ activations): Adam triples the
  weights' bill. `Memory.estimate` gives it for any size and dtype.
* Data parallelism copies all of it to every chip and splits the batch; model parallelism
  splits the weights and pays in communication; a 2-D mesh trades the two.
* GRPO's case for dropping the critic is this table: on an LLM the critic is another 64 GB.
*)
