namespace Rl.CSharp

open System
open System.IO
open System.Runtime.InteropServices
open Rl

/// A trained deterministic policy loaded from a run folder, for use inside an application with
/// the library: `Policy.Load(runDir)`, then `Act(observation)` per step. It computes exactly the
/// action the run's own evaluation takes (observation normalisation with the saved statistics,
/// the mean action clipped into the action box, or the most likely action / largest Q-value).
/// Without the library (no TorchSharp), export the run to ONNX (`ExportOnnx`, `scripts/export.fsx`)
/// and run it with Microsoft.ML.OnnxRuntime (samples/csharp-onnx). Dispose it to free the networks.
[<Sealed>]
type Policy private (loaded: PolicyExport.LoadedPolicy, index: int, runDir: string) =
    let mutable disposed = false

    let check () =
        if disposed then
            raise (ObjectDisposedException "Policy")

    /// Loads the policy saved in a PPO or DQN run folder (or its `checkpoint/`, `best/` or
    /// `best/seed_<s>/` folder). `seed` picks a seed of a batched run (default: the first, or the
    /// seed of a `best/seed_<s>` folder). Raises `FileNotFoundException` without `config.yaml`,
    /// `Rl.CheckpointError` for a missing or damaged checkpoint, `ArgumentException` for a seed the
    /// run does not have or an algorithm without a policy (GRPO, REINFORCE).
    static member Load(runDir: string, [<Optional>] seed: Nullable<int64>) : Policy =
        if String.IsNullOrWhiteSpace runDir then
            nullArg "runDir"

        let full = Export.fullPath runDir

        try
            let loaded = Export.load full

            try
                let k = Export.seedIndices loaded full (Option.ofNullable seed) |> List.head
                new Policy(loaded, k, Train.runDirOf full)
            with _ ->
                loaded.Release()
                reraise ()
        with ConfigError(_, key, _, allowed, problem) ->
            raise (ArgumentException($"{problem}; allowed: {allowed}", key))

    /// The training seed of this policy.
    member _.Seed = loaded.Seeds[index]
    /// The environment id the policy was trained on, e.g. `Pendulum-v1`.
    member _.EnvId = loaded.EnvId
    /// `ppo` or `dqn`.
    member _.Algorithm = loaded.Algo
    /// Values per observation (`Env.Reset` returns arrays of this length).
    member _.ObservationSize = loaded.ObsDim
    /// Whether actions are indices (`Env.Step(int)`) rather than values (`Env.Step(double[])`).
    member _.IsDiscrete = loaded.ActionSpace.IsDiscrete

    /// Values per action: the action box's size, or 1 (the index) for a discrete policy.
    member _.ActionSize = loaded.ActionSpace.FlatSize

    member private _.Run(observations: float32[][]) : float[][] =
        check ()

        if isNull observations then
            nullArg "observations"

        for o in observations do
            if isNull o || o.Length <> loaded.ObsDim then
                let got = if isNull o then "null" else $"{o.Length} values"
                invalidArg "observation" $"an observation of {loaded.EnvId} has {loaded.ObsDim} values, got {got}"

        let action = loaded.ActFor(index, Array.concat observations)
        let n = action.Length / observations.Length
        Array.init observations.Length (fun i -> action[i * n .. i * n + n - 1])

    /// The deterministic action for one observation: the action's values (continuous), or a
    /// one-element array holding the index (discrete). Raises `ArgumentException` for an
    /// observation of the wrong length.
    member this.Act(observation: float32[]) : float[] = (this.Run [| observation |])[0]

    /// The action index for one observation of a discrete policy (raises
    /// `InvalidOperationException` for a continuous one).
    member this.ActIndex(observation: float32[]) : int =
        if not this.IsDiscrete then
            raise (InvalidOperationException $"{loaded.EnvId} has continuous actions: use Act")

        let action = this.Act observation
        int action[0]

    /// `Act` for many observations at once (one batched forward pass).
    member this.ActBatch(observations: float32[][]) : float[][] = this.Run observations

    /// Writes this policy as ONNX (see README, "Take the policy out") into `folder` (default:
    /// the run's `export/`); returns the file written.
    member this.ExportOnnx([<Optional>] folder: string) : string =
        check ()

        let folder =
            if String.IsNullOrWhiteSpace folder then
                Path.Combine(runDir, Export.DefaultFolder)
            else
                folder

        (Export.write loaded [ index ] "onnx" folder).Head

    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                loaded.Release()
