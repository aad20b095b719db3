module Rl.Tests.NativeTests

open System.IO
open Expecto
open TorchSharp
open Rl

[<Tests>]
let tests =
    testList
        "Native"
        [
            test "libtorch loads and computes on the CPU" {
                Native.init ()
                use t = torch.arange (4L, dtype = torch.float32)
                Expect.equal (t.sum().item<float32>()) 6.0f "0+1+2+3"
            }

            test "elfHash matches the System V reference values" {
                // Reference: the vna_hash glibc stores for these names (readelf -V on libstdc++ users).
                Expect.equal (Native.elfHash "GLIBCXX_3.4") 0x08922974u "GLIBCXX_3.4"
                Expect.equal (Native.elfHash "GLIBC_2.2.5") 0x09691a75u "GLIBC_2.2.5"
            }

            test "unknown device names are refused with the allowed list" {
                Expect.throwsC (fun () -> Native.device "tpu" |> ignore) (fun e ->
                    Expect.isTrue (e :? System.ArgumentException) "ArgumentException"
                    Expect.stringContains e.Message "tpu" "names the device"
                    Expect.stringContains e.Message "cpu, cuda" "lists the allowed names")
            }

            test "asking for CUDA without it explains how to enable it" {
                if not (Native.cudaAvailable ()) then
                    try
                        Native.device "cuda" |> ignore
                        failtest "expected an error"
                    with :? System.InvalidOperationException as e ->
                        Expect.stringContains e.Message Native.LibTorchEnvVar "names the variable"
            }

            test "renameVersionNeed refuses a file that is not ELF" {
                let p = Path.GetTempFileName()
                File.WriteAllText(p, "not an elf file at all, but long enough to have a header.........")

                Expect.throwsT<InvalidDataException>
                    (fun () -> Native.renameVersionNeed p "GLIBCXX_3.4.32" "GLIBCXX_3.4.30" |> ignore)
                    "not an ELF file"

                File.Delete p
            }
        ]
