// A trained policy inside any .NET program, with ONNX Runtime alone (no Rl, no TorchSharp):
//
//   dotnet fsi scripts/train.fsx                              # PPO on Pendulum-v1 -> runs/ppo-Pendulum-v1-<time>/
//   dotnet fsi scripts/export.fsx run=runs/ppo-Pendulum-v1-<time>   # -> .../export/policy.onnx
//   dotnet run -c Release --project samples/csharp-onnx -- runs/ppo-Pendulum-v1-<time>/export/policy.onnx
//
// The exported graph takes raw observations ("obs", float32 [batch; obsDim]) and gives the action
// the environment receives ("action": float32 [batch; actDim], or int64 [batch] indices for a
// discrete policy); observation normalisation and the action rule are inside it. Its metadata
// says the same in words. Without observations on the command line, Pendulum-v1 policies are shown
// five states (upright, horizontal, hanging down, ...); give others as "x1,x2,..." arguments.
using System;
using System.Globalization;
using System.Linq;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: dotnet run --project samples/csharp-onnx -- <policy.onnx> [obs as x1,x2,... ...]");
    return 2;
}

using var session = new InferenceSession(args[0]);
var meta = session.ModelMetadata.CustomMetadataMap;
Console.WriteLine($"{meta["rl.algo"]} policy for {meta["rl.env_id"]}, seed {meta["rl.seed"]}");
Console.WriteLine($"  input:  {meta["rl.input"]}");
Console.WriteLine($"  output: {meta["rl.output"]}");

int obsDim = session.InputMetadata["obs"].Dimensions[1];

float[][] observations = args.Length > 1
    ? args.Skip(1).Select(a => a.Split(',').Select(x => float.Parse(x, CultureInfo.InvariantCulture)).ToArray()).ToArray()
    : meta["rl.env_id"] == "Pendulum-v1"
        // [cos theta, sin theta, theta dot], theta = 0 upright: upright at rest, horizontal, hanging
        // down at rest, near the bottom and swinging, past horizontal and falling fast
        ? new[] { 0.0, Math.PI / 2, Math.PI, Math.PI - 0.3, 2.5 }
            .Zip(new[] { 0f, 0f, 0f, 1.5f, -4f }, (th, thDot) => new[] { (float)Math.Cos(th), (float)Math.Sin(th), thDot })
            .ToArray()
        : new[] { new float[obsDim] };

foreach (var o in observations)
    if (o.Length != obsDim)
    {
        Console.Error.WriteLine($"an observation needs {obsDim} values, got {o.Length}: {string.Join(",", o)}");
        return 2;
    }

// one batched call for all observations
var input = new DenseTensor<float>(observations.SelectMany(o => o).ToArray(), new[] { observations.Length, obsDim });
using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("obs", input) });
var action = results.First(r => r.Name == "action");

for (int i = 0; i < observations.Length; i++)
{
    string values = action.Value switch
    {
        Tensor<float> a => string.Join(",", Enumerable.Range(0, a.Dimensions[1]).Select(j => a[i, j].ToString("R", CultureInfo.InvariantCulture))),
        Tensor<long> a => a[i].ToString(CultureInfo.InvariantCulture),
        var other => throw new InvalidOperationException($"unexpected action type {other?.GetType()}"),
    };
    var obs = string.Join(",", observations[i].Select(x => x.ToString("R", CultureInfo.InvariantCulture)));
    Console.WriteLine($"obs {obs} -> action {values}");
}
return 0;
