/// Memory accounting for training: the bytes of parameters, gradients and optimizer state, from a
/// parameter count or from live modules. This is seed 004's module 6 arithmetic ("why an 8B model
/// does not fit on one chip"): 8e9 parameters in bf16 need 16 GB of weights, 16 GB of gradients
/// and 32 GB of Adam moments, 64 GB before a single activation is stored.
module Rl.Memory

open System
open TorchSharp

/// Bytes per element of a floating-point dtype (float64 8, float32 4, bfloat16 and float16 2).
/// Raises `ArgumentException` for another dtype.
let bytesPerElement (dtype: torch.ScalarType) : int64 =
    match dtype with
    | torch.ScalarType.Float64 -> 8L
    | torch.ScalarType.Float32 -> 4L
    | torch.ScalarType.BFloat16
    | torch.ScalarType.Float16 -> 2L
    | d ->
        invalidArg "dtype" $"bytesPerElement: {d} is not a training dtype; allowed: Float64, Float32, BFloat16, Float16"

/// Parses a dtype name: float64/fp64, float32/fp32, bfloat16/bf16, float16/fp16 (case-insensitive).
/// Raises `ArgumentException` naming the allowed values.
let parseDtype (name: string) : torch.ScalarType =
    match name.Trim().ToLowerInvariant() with
    | "float64"
    | "fp64"
    | "double" -> torch.ScalarType.Float64
    | "float32"
    | "fp32"
    | "float" -> torch.ScalarType.Float32
    | "bfloat16"
    | "bf16" -> torch.ScalarType.BFloat16
    | "float16"
    | "fp16"
    | "half" -> torch.ScalarType.Float16
    | _ ->
        invalidArg
            "dtype"
            $"unknown dtype '{name}'; allowed: float64, float32, bfloat16, float16 (or fp64, fp32, bf16, fp16)"

/// Optimizer state values kept per parameter: Adam 2 (first and second moments m, v; Kingma &
/// Ba 2015, Algorithm 1), RMSprop 1 (running mean of squared gradients), SGD with momentum 1
/// (velocity), plain SGD 0.
let stateValuesPerParameter (kind: Optim.OptimizerKind) : int =
    match kind with
    | Optim.Adam _ -> 2
    | Optim.RmsProp _ -> 1
    | Optim.Sgd m -> if m > 0.0 then 1 else 0

/// The training memory of a set of parameters, in bytes (no activations, no framework overhead).
type Footprint =
    {
        /// Number of parameters.
        Parameters: int64
        /// Bytes of the weights.
        ParameterBytes: int64
        /// Bytes of one gradient per parameter.
        GradientBytes: int64
        /// Bytes of the optimizer state (e.g. Adam's two moments per parameter).
        OptimizerBytes: int64
    }

    /// Weights + gradients + optimizer state, in bytes.
    member f.TotalBytes = f.ParameterBytes + f.GradientBytes + f.OptimizerBytes

/// The footprint of `parameters` parameters trained with `kind`, every value (weights,
/// gradients, optimizer state) stored in `dtype`, as in seed 004's arithmetic. Raises
/// `ArgumentException` for a negative count or a non-float dtype.
let estimate (kind: Optim.OptimizerKind) (dtype: torch.ScalarType) (parameters: int64) : Footprint =
    if parameters < 0L then
        invalidArg "parameters" $"estimate: parameter count must be >= 0, got {parameters}"

    let b = bytesPerElement dtype

    {
        Parameters = parameters
        ParameterBytes = parameters * b
        GradientBytes = parameters * b
        OptimizerBytes = parameters * b * int64 (stateValuesPerParameter kind)
    }

/// The number of parameters (elements) of live modules, counting every registered parameter.
let parameterCount (modules: torch.nn.Module seq) : int64 =
    modules
    |> Seq.sumBy (fun m -> m.parameters () |> Seq.sumBy (fun p -> p.numel ()))

/// The footprint of live modules (their parameter count, see `parameterCount`) trained with
/// `kind` in `dtype` (see `estimate`). For modules with a seed axis this counts all S seeds.
let ofModules (kind: Optim.OptimizerKind) (dtype: torch.ScalarType) (modules: torch.nn.Module seq) : Footprint =
    estimate kind dtype (parameterCount modules)

/// Bytes as decimal gigabytes (1 GB = 1e9 bytes, as the seed's "16 GB").
let gigabytes (bytes: int64) = float bytes / 1e9

/// Bytes in a readable decimal unit: `512 B`, `473.1 kB`, `1.89 MB`, `64.0 GB`.
let formatBytes (bytes: int64) : string =
    let b = float bytes
    let inv = Globalization.CultureInfo.InvariantCulture

    if b < 1e3 then String.Format(inv, "{0} B", bytes)
    elif b < 1e6 then String.Format(inv, "{0:0.0} kB", b / 1e3)
    elif b < 1e9 then String.Format(inv, "{0:0.00} MB", b / 1e6)
    elif b < 1e12 then String.Format(inv, "{0:0.0} GB", b / 1e9)
    else String.Format(inv, "{0:0.00} TB", b / 1e12)

/// A text table of footprints, one row per `(name, footprint)`: parameters, weights, gradients,
/// optimizer state and total, in readable units (see `formatBytes`).
let table (rows: (string * Footprint) list) : string =
    let header =
        [| "model"; "parameters"; "weights"; "gradients"; "optimizer"; "total" |]

    let cells =
        [
            for name, f in rows ->
                [|
                    name
                    f.Parameters.ToString("N0", Globalization.CultureInfo.InvariantCulture)
                    formatBytes f.ParameterBytes
                    formatBytes f.GradientBytes
                    formatBytes f.OptimizerBytes
                    formatBytes f.TotalBytes
                |]
        ]

    let all = header :: cells

    let widths =
        Array.init header.Length (fun j -> all |> List.map (fun r -> r[j].Length) |> List.max)

    let line (r: string[]) =
        String.Join(
            " | ",
            r
            |> Array.mapi (fun j c -> if j = 0 then c.PadRight widths[j] else c.PadLeft widths[j])
        )

    let rule = String.Join("-|-", widths |> Array.map (fun w -> String('-', w)))
    String.Join("\n", [ line header; rule ] @ (cells |> List.map line)) + "\n"
