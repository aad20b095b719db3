// Checks that libtorch loads here and says how: `dotnet fsi scripts/doctor.fsx`.
// Setup runs it; on hosts whose libstdc++ lacks GLIBCXX_3.4.32 the first load makes the
// repaired copy of TorchSharp's native library (see src/Core/Native.fs).
#load "prepare.fsx"
#load "load.fsx"

open TorchSharp
open Rl

let repaired = Native.needsRepair ()

printfn
    "libtorch %s via TorchSharp %s; threads %d"
    Native.LibTorchVersion
    Native.TorchSharpVersion
    (torch.get_num_threads ())

if repaired then
    printfn "host libstdc++ lacks GLIBCXX_3.4.32: using the repaired copy in %s" (Native.repairedDir ())

match Native.userLibTorch () with
| Some d -> printfn "%s=%s; CUDA available: %b" Native.LibTorchEnvVar d (Native.cudaAvailable ())
| None -> printfn "CPU libtorch from the TorchSharp-cpu packages (set %s to use a CUDA libtorch)" Native.LibTorchEnvVar

let x = torch.ones (2L, 2L)
printfn "check: sum of ones(2,2) = %g" (x.sum().item<float32>())
