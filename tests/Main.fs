module Rl.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    Rl.Native.init ()
    Tests.runTestsInAssemblyWithCLIArgs [] argv
