module Rl.Tests.Main

open System
open System.IO
open Expecto
open Expecto.Impl

/// Whether `e` (or an exception inside it) is libtorch's check on a freed Scalar: TorchSharp 0.107
/// frees the Scalars it creates implicitly (a `Tensor + Tensor`'s alpha, `x + 1e-8`) from their
/// finalizers, and a garbage collection started by another thread while a native call still
/// reads one makes that call fail with "Unknown scalar type" or "Expected false to be true" from
/// `c10/core/Scalar.h` (dotnet/TorchSharp PR 1434, "Dispose Scalars implicitly created in Tensor
/// operators", open). Seen in about one full run in three, in whichever test is unlucky (most
/// often the Slurm test, whose in-process sweep trains while Slurm's tasks load both cores).
let rec private isScalarRace (e: exn) =
    match e with
    | null -> false
    | :? Runtime.InteropServices.ExternalException as x when x.Message.Contains "c10/core/Scalar.h" -> true
    | _ -> isScalarRace e.InnerException

/// Runs a synchronous test again, once, when it failed with `isScalarRace` (every test is
/// seeded, so the rerun checks the same behaviour); any other failure, or a second race, fails
/// the test as usual. Says on stderr which test was rerun.
let private retryScalarRace (name: string) (code: TestCode) : Test =
    let once (run: unit -> unit) () =
        try
            run ()
        with e when isScalarRace e ->
            let first = e.Message.Split('\n')[0]
            eprintfn "RETRY %s: TorchSharp scalar race (%s); running it once more" name first
            GC.Collect()
            GC.WaitForPendingFinalizers()
            run ()

    let code =
        match code with
        | Sync f -> Sync(once f)
        | SyncWithCancel f -> SyncWithCancel(fun ct -> once (fun () -> f ct) ())
        | other -> other

    TestLabel(name, TestCase(code, Normal), Normal)

/// Runs every `[<Tests>]` value in this assembly (each rerun once after a `isScalarRace`
/// failure, see `retryScalarRace`). When RL_TEST_SUMMARY names a file, the
/// counts "passed failed ignored" are written there (build.fsx prints them as the final
/// "N passed, N failed" line).
/// `--train <args>`: instead of the tests, one training run as `scripts/train.fsx <args>` does it
/// (`Cli.main`), exiting with its code: the child process that tests/FaultTests.fs kills (it
/// starts in about a second, where `dotnet fsi` takes several).
[<EntryPoint>]
let main argv =
    Rl.Native.init ()

    if argv.Length > 0 && argv[0] = "--train" then
        exit (Rl.Cli.main (List.ofArray argv[1..]))

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

    match testFromThisAssembly () with
    | Some tests ->
        tests
        |> Test.replaceTestCode retryScalarRace
        |> Tests.runTestsWithCLIArgs [ CLIArguments.Printer withCounts ] argv
    | None ->
        eprintfn "no tests found in this assembly"
        1
