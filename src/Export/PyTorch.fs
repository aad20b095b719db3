/// Deterministic policies as PyTorch weights (`export.fsx format=pytorch`), written with
/// TorchSharp.PyBridge: a state dict in PyTorch's own file format (`.pt`, what `torch.load`
/// reads) and the same tensors as safetensors (`.safetensors`), beside a JSON description
/// (`.json`) of how to rebuild and call the network in Python.
///
/// The state dict is that of `torch.nn.Sequential(Linear, act, Linear, act, ..., Linear)`: keys
/// `"0.weight"` [out; in] and `"0.bias"` [out] for the first layer, `"2.weight"` for the second
/// and so on (the activations at the odd indices hold no weights), float32; with observation
/// normalisation also `"obs_mean"` and `"obs_var"` [obsDim], float64 (not parameters of the
/// Sequential: load with `strict=False`, or pop them first). The JSON names the activation, the
/// normalisation's epsilon and clip, and the output rule (see `PolicyExport.Output`).
module Rl.PyTorchExport

open System
open System.Collections.Generic
open System.IO
open System.Text.Json
open TorchSharp
open TorchSharp.PyBridge
open Rl.PolicyExport

/// The state-dict key prefix of layer `i` of the Sequential (layers at even indices).
let layerKey (i: int) = string (2 * i)

/// The tensors of one seed's network by state-dict key (see the module's comment). The caller
/// disposes them.
let stateDict (net: PolicyNetwork) : (string * torch.Tensor) list =
    [
        for i, d in List.indexed (net.Hidden @ [ net.Out ]) do
            // ours is x W with W [in; out]; torch.nn.Linear holds W^T [out; in]
            let w = torch.tensor(d.Weight).reshape(int64 d.In, int64 d.Out).t().contiguous()
            yield $"{layerKey i}.weight", w
            yield $"{layerKey i}.bias", torch.tensor d.Bias
        match net.ObsNorm with
        | Some n ->
            yield "obs_mean", torch.tensor n.Mean
            yield "obs_var", torch.tensor n.Var
        | None -> ()
    ]

/// The JSON description of one seed's network: algorithm, environment, seed, input, the layers
/// (state-dict keys and shapes), activation, normalisation and output rule.
let description (policy: LoadedPolicy) (net: PolicyNetwork) : string =
    let layers = net.Hidden @ [ net.Out ]

    let output: obj =
        match net.Output with
        | Continuous(scale, low, high) ->
            box
                {|
                    kind = "continuous"
                    mean_scale = Option.toNullable scale
                    low = low
                    high = high
                    rule = "action = clip(mean_scale * tanh(y) if mean_scale else y, low, high)"
                |}
        | Discrete logSoftmax ->
            box
                {|
                    kind = "discrete"
                    log_softmax = logSoftmax
                    scores = policy.ScoresName
                    rule = "action = argmax(log_softmax(y) if log_softmax else y)"
                |}

    let norm: obj =
        match net.ObsNorm with
        | Some n ->
            box
                {|
                    mean_key = "obs_mean"
                    var_key = "obs_var"
                    epsilon = n.Epsilon
                    clip = n.Clip
                    rule = "z = clip((obs - mean) / sqrt(var + epsilon), -clip, clip) in float64, then float32"
                |}
        | None -> null

    JsonSerializer.Serialize(
        {|
            format = "state dict of torch.nn.Sequential(Linear, activation, ..., Linear)"
            algo = policy.Algo
            env_id = policy.EnvId
            seed = net.Seed
            input =
                {|
                    name = "obs"
                    dtype = "float32"
                    dim = net.ObsDim
                |}
            obs_normalization = norm
            layers =
                [|
                    for i, d in List.indexed layers ->
                        {|
                            weight = $"{layerKey i}.weight"
                            bias = $"{layerKey i}.bias"
                            ``in`` = d.In
                            out = d.Out
                        |}
                |]
            activation =
                (match net.Activation with
                 | Nn.Relu -> "relu"
                 | Nn.Tanh -> "tanh")
            activation_after = "every layer but the last"
            output = output
        |},
        JsonSerializerOptions(WriteIndented = true)
    )

/// The three files of one seed under `folder` with name `stem` (`<stem>.pt`, `.safetensors`,
/// `.json`), each written atomically; returns their paths.
let write (folder: string) (stem: string) (policy: LoadedPolicy) (net: PolicyNetwork) : string list =
    let tensors = stateDict net

    try
        let dict = Dictionary<string, torch.Tensor>()

        for k, t in tensors do
            dict[k] <- t

        let bytesOf (save: MemoryStream -> unit) =
            use ms = new MemoryStream()
            save ms
            ms.ToArray()

        let pt = bytesOf (fun ms -> PyTorchPickler.PickleStateDict(ms, dict, true))
        let st = bytesOf (fun ms -> Safetensors.SaveStateDict(ms, dict, true))

        let files =
            [
                Path.Combine(folder, stem + ".pt"), pt
                Path.Combine(folder, stem + ".safetensors"), st
                Path.Combine(folder, stem + ".json"), Text.Encoding.UTF8.GetBytes(description policy net)
            ]

        for path, bytes in files do
            Rl.Files.writeBytesAtomic path bytes

        files |> List.map fst
    finally
        for _, t in tensors do
            t.Dispose()
