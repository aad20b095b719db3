module Rl.Tests.Main

open Expecto
open TorchSharp

let smoke =
    test "torch loads and computes" {
        Rl.Native.init ()
        let t = torch.ones(3L)
        Expect.equal (t.sum().item<float32>()) 3.0f "sum"
    }

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv smoke
