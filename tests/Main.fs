module Rl.Tests.Main

open System
open System.IO
open Expecto
open Expecto.Impl

/// Runs every `[<Tests>]` value in this assembly. When RL_TEST_SUMMARY names a file, the
/// counts "passed failed ignored" are written there (build.fsx prints them as the final
/// "N passed, N failed" line).
[<EntryPoint>]
let main argv =
    Rl.Native.init ()
    let summaryFile = Environment.GetEnvironmentVariable "RL_TEST_SUMMARY"
    let printer = defaultConfig.printer

    let withCounts =
        { printer with
            summary =
                fun cfg s ->
                    async {
                        do! printer.summary cfg s

                        if not (String.IsNullOrEmpty summaryFile) then
                            let failed = s.failed.Length + s.errored.Length
                            File.WriteAllText(summaryFile, $"{s.passed.Length} {failed} {s.ignored.Length}")
                    }
        }

    Tests.runTestsInAssemblyWithCLIArgs [ CLIArguments.Printer withCounts ] argv
