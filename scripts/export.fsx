// Take a trained policy out of its run folder:
//   dotnet fsi scripts/export.fsx run=<run dir or checkpoint dir> [format=onnx|pytorch] [seed=<s>] [out=<folder>]
// Writes <run dir>/export/policy.onnx (one seed) or policy_seed_<s>.onnx per seed of a batched
// run (seed= picks one): the deterministic policy obs -> action with the run's observation
// normalisation and action rule inside (README "Take the policy out"). format=pytorch writes
// policy.pt (a torch.nn.Sequential state dict), policy.safetensors and policy.json (how to call it). Works for PPO and DQN runs,
// and for their best/ folders. Exit code 2, after one line, for a bad argument, a folder that is
// not a run, a missing or damaged checkpoint, or an algorithm without a policy to export.
#load "prepare.fsx"
#load "load.fsx"

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray
exit (Rl.Export.main args)
