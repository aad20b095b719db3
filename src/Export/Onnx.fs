/// ONNX graphs of deterministic policies (`export.fsx format=onnx`), built with OnnxSharp's
/// protobuf types (ONNX's own `onnx.proto`, IR version 8, operator set 17).
///
/// The graph of one seed: input `obs` float32 [batch; obsDim] (raw observations, as the
/// environment returns them); output `action`: float32 [batch; actDim] for a continuous policy
/// (the mean action, `scale * tanh` where the policy has it, clipped into the action box), int64
/// [batch] for a discrete one (the index of the most likely action, or of the largest Q-value);
/// a discrete policy also outputs what the index was read from, `log_probs` (PPO) or `q_values`
/// (DQN), float32 [batch; n]. Observation normalisation runs in float64 as in training
/// (`RunningMeanStd.Normalize`). The same facts are in the model's metadata (`Metadata`).
module Rl.Onnx

open System
open System.IO
open Google.Protobuf
open Onnx
open Rl.PolicyExport

/// The operator set the graphs use (ONNX's default domain).
[<Literal>]
let Opset = 17L

/// ONNX IR version of the models (IR 8 goes with operator set 17).
[<Literal>]
let IrVersion = 8L

/// The input's name.
[<Literal>]
let ObsName = "obs"

/// The action output's name.
[<Literal>]
let ActionName = "action"

let private floatType = int TensorProto.Types.DataType.Float
let private doubleType = int TensorProto.Types.DataType.Double
let private int64Type = int TensorProto.Types.DataType.Int64

/// A graph under construction: nodes and initializers in order, fresh names.
type private Builder() =
    let nodes = Collections.Generic.List<NodeProto>()
    let inits = Collections.Generic.List<TensorProto>()
    let mutable counter = 0

    member _.Nodes = nodes
    member _.Inits = inits

    member _.Fresh(prefix: string) =
        counter <- counter + 1
        $"{prefix}_{counter}"

    /// An initializer `name` of element type `dataType` and `dims`, its values set by `fill`.
    member b.Init(name: string, dataType: int, dims: int64[], fill: TensorProto -> unit) =
        let t = TensorProto(Name = name, DataType = dataType)
        t.Dims.AddRange dims
        fill t
        inits.Add t
        name

    /// A float32 initializer of `dims`.
    member b.Floats(name: string, dims: int64[], values: float32[]) =
        b.Init(name, floatType, dims, (fun t -> t.FloatData.AddRange values))

    /// A float64 initializer of `dims`.
    member b.Doubles(name: string, dims: int64[], values: float[]) =
        b.Init(name, doubleType, dims, (fun t -> t.DoubleData.AddRange values))

    /// A node `op(inputs) -> one fresh output` with attributes; returns the output's name.
    member b.Op(op: string, inputs: string list, ?attrs: AttributeProto list, ?output: string) =
        let out = defaultArg output (b.Fresh(op.ToLowerInvariant()))
        let n = NodeProto(OpType = op, Name = b.Fresh("node_" + op.ToLowerInvariant()))
        n.Input.AddRange inputs
        n.Output.Add out
        n.Attribute.AddRange(defaultArg attrs [])
        nodes.Add n
        out

let private intAttr (name: string) (v: int64) =
    AttributeProto(Name = name, Type = AttributeProto.Types.AttributeType.Int, I = v)

let private valueInfo (name: string) (elemType: int) (dims: Choice<string, int64> list) =
    let shape = TensorShapeProto()

    for d in dims do
        match d with
        | Choice1Of2 param -> shape.Dim.Add(TensorShapeProto.Types.Dimension(DimParam = param))
        | Choice2Of2 value -> shape.Dim.Add(TensorShapeProto.Types.Dimension(DimValue = value))

    let tensor = TypeProto.Types.Tensor(ElemType = elemType, Shape = shape)
    ValueInfoProto(Name = name, Type = TypeProto(TensorType = tensor))

/// The number of outputs of a network's action: actDim (continuous) or 1 index (discrete).
let private actionDim (net: PolicyNetwork) =
    match net.Output with
    | Continuous(_, low, _) -> low.Length
    | Discrete _ -> 1

/// The metadata written into every model (key, value): how to call it and where it came from.
let metadata (policy: LoadedPolicy) (net: PolicyNetwork) : (string * string) list =
    let action =
        match net.Output with
        | Continuous(scale, low, high) ->
            let scaled =
                match scale with
                | Some s -> $"{s} * tanh(network output)"
                | None -> "the network output"

            let show (xs: float[]) = "[" + String.Join(", ", xs) + "]"
            $"float32 [batch; {low.Length}]: {scaled}, clipped into the action box from {show low} to {show high}"
        | Discrete _ ->
            $"int64 [batch]: the index of the largest {policy.ScoresName} (0 .. {net.Out.Out - 1}), as the environment's step takes it"

    [
        "rl.algo", policy.Algo
        "rl.env_id", policy.EnvId
        "rl.seed", string net.Seed
        "rl.input", $"{ObsName}: float32 [batch; {net.ObsDim}], raw observations as {policy.EnvId} returns them"
        "rl.output", $"{ActionName}: {action}"
        "rl.obs_normalization",
        (match net.ObsNorm with
         | Some n ->
             $"(obs - mean) / sqrt(var + {n.Epsilon}) clipped to +-{n.Clip}, in float64, with the run's saved statistics"
         | None -> "none")
        "rl.deterministic", "true: the mean action or the most likely action, no sampling"
    ]
    @ (match net.Output with
       | Discrete _ -> [ "rl.scores", $"{policy.ScoresName}: float32 [batch; {net.Out.Out}]" ]
       | Continuous _ -> [])

/// The ONNX model of seed network `net` of `policy` (see the module's comment for inputs and
/// outputs). Raises `ArgumentException` when the network's layers do not chain (an input width
/// that differs from the previous output width).
let model (policy: LoadedPolicy) (net: PolicyNetwork) : ModelProto =
    let b = Builder()

    // normalisation: float64 as RunningMeanStd.Normalize, then float32
    let x =
        match net.ObsNorm with
        | None -> ObsName
        | Some n ->
            let d = int64 n.Mean.Length
            let x64 = b.Op("Cast", [ ObsName ], [ intAttr "to" (int64 doubleType) ])
            let mean = b.Doubles("obs_mean", [| d |], n.Mean)

            let std =
                b.Doubles("obs_std", [| d |], n.Var |> Array.map (fun v -> Math.Sqrt(v + n.Epsilon)))

            let lo = b.Doubles("obs_clip_low", [||], [| -n.Clip |])
            let hi = b.Doubles("obs_clip_high", [||], [| n.Clip |])
            let z = b.Op("Div", [ b.Op("Sub", [ x64; mean ]); std ])
            let z = b.Op("Clip", [ z; lo; hi ])
            b.Op("Cast", [ z ], [ intAttr "to" (int64 floatType) ])

    let linear (name: string) (x: string) (d: Dense) =
        let w = b.Floats($"{name}.weight", [| int64 d.In; int64 d.Out |], d.Weight)
        let bias = b.Floats($"{name}.bias", [| int64 d.Out |], d.Bias)
        b.Op("Add", [ b.Op("MatMul", [ x; w ]); bias ])

    // the layers must chain: each takes the previous one's outputs
    let mutable width = net.ObsDim

    for d in net.Hidden @ [ net.Out ] do
        if d.In <> width then
            invalidArg "net" $"Onnx.model: a layer takes {d.In} inputs after a layer of {width} outputs"

        width <- d.Out

    let h =
        net.Hidden
        |> List.indexed
        |> List.fold
            (fun x (i, d) ->
                let y = linear $"hidden{i}" x d

                match net.Activation with
                | Nn.Relu -> b.Op("Relu", [ y ])
                | Nn.Tanh -> b.Op("Tanh", [ y ]))
            x

    let y = linear "out" h net.Out

    let outputs =
        match net.Output with
        | Continuous(scale, low, high) ->
            let m =
                match scale with
                | Some s -> b.Op("Mul", [ b.Op("Tanh", [ y ]); b.Floats("mean_scale", [||], [| float32 s |]) ])
                | None -> y

            let n = int64 low.Length
            let lo = b.Floats("action_low", [| n |], low |> Array.map float32)
            let hi = b.Floats("action_high", [| n |], high |> Array.map float32)
            b.Op("Min", [ b.Op("Max", [ m; lo ]); hi ], output = ActionName) |> ignore
            [ valueInfo ActionName floatType [ Choice1Of2 "batch"; Choice2Of2 n ] ]
        | Discrete logSoftmax ->
            let scores =
                if logSoftmax then
                    b.Op("LogSoftmax", [ y ], [ intAttr "axis" -1L ], output = policy.ScoresName)
                else
                    b.Op("Identity", [ y ], output = policy.ScoresName)

            b.Op("ArgMax", [ scores ], [ intAttr "axis" -1L; intAttr "keepdims" 0L ], output = ActionName)
            |> ignore

            [
                valueInfo ActionName int64Type [ Choice1Of2 "batch" ]
                valueInfo policy.ScoresName floatType [ Choice1Of2 "batch"; Choice2Of2(int64 net.Out.Out) ]
            ]

    let graph =
        GraphProto(Name = $"{policy.Algo}_{policy.EnvId}_seed_{net.Seed}".Replace('-', '_'))

    graph.Node.AddRange b.Nodes
    graph.Initializer.AddRange b.Inits
    graph.Input.Add(valueInfo ObsName floatType [ Choice1Of2 "batch"; Choice2Of2(int64 net.ObsDim) ])
    graph.Output.AddRange outputs

    let m =
        ModelProto(
            IrVersion = IrVersion,
            ProducerName = "Rl",
            ProducerVersion = (typeof<Builder>.Assembly.GetName().Version.ToString()),
            Graph = graph,
            DocString =
                $"Deterministic {policy.Algo} policy for {policy.EnvId}, seed {net.Seed}: {ObsName} -> {ActionName}"
        )

    m.OpsetImport.Add(OperatorSetIdProto(Domain = "", Version = Opset))

    for k, v in metadata policy net do
        m.MetadataProps.Add(StringStringEntryProto(Key = k, Value = v))

    m

/// The model's bytes (protobuf wire format, what `.onnx` files hold).
let toBytes (m: ModelProto) : byte[] = m.ToByteArray()
