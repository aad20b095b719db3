/// Locations the tests need, found by walking up from the test assembly's folder, so the suite
/// runs from any working directory.
module Rl.Tests.TestPaths

open System
open System.IO

/// The repository root (the folder holding `build.fsx` and `scripts/configs`).
let repoRoot =
    lazy
        (let rec up (d: DirectoryInfo) =
            if isNull d then
                failwith $"repository root (with build.fsx) not found above {AppContext.BaseDirectory}"
            elif
                File.Exists(Path.Combine(d.FullName, "build.fsx"))
                && Directory.Exists(Path.Combine(d.FullName, "scripts"))
            then
                d.FullName
            else
                up d.Parent

         up (DirectoryInfo AppContext.BaseDirectory))

/// A config file under `scripts/configs`.
let config (name: string) =
    Path.Combine(repoRoot.Value, "scripts", "configs", name)

/// A fresh empty temporary folder; delete it with `Directory.Delete(path, true)`.
let tempDir (prefix: string) =
    let d = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}")
    Directory.CreateDirectory d |> ignore
    d
