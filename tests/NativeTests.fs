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

            test "sizes, sameShape and hasShape agree with TorchSharp's shape" {
                use _scope = torch.NewDisposeScope()

                for shape in [ [||]; [| 3L |]; [| 2L; 1L; 4L |]; [| 0L; 5L |] ] do
                    let t = torch.zeros shape
                    Expect.equal (Tensor.sizes t) t.shape $"sizes of %A{shape}"
                    Expect.isTrue (Tensor.hasShape shape t) $"hasShape %A{shape}"
                    Expect.isTrue (Tensor.sameShape t (torch.ones shape)) $"sameShape %A{shape}"

                let a = torch.zeros (2L, 3L)
                Expect.isFalse (Tensor.sameShape a (torch.zeros (3L, 2L))) "transposed sizes differ"
                Expect.isFalse (Tensor.sameShape a (torch.zeros (2L, 3L, 1L))) "an extra axis differs"
                Expect.isFalse (Tensor.hasShape [| 2L |] a) "fewer axes"
                Expect.isFalse (Tensor.hasShape [| 2L; 4L |] a) "another size"
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

            test "missing repair tools: installed when root with apt-get, else one line naming the command" {
                Expect.equal (Native.repairToolsPlan false false []) Native.Ready "nothing missing"
                Expect.equal (Native.repairToolsPlan true true []) Native.Ready "nothing missing, root"

                Expect.equal
                    (Native.repairToolsPlan true true [ "g++"; "patchelf" ])
                    (Native.Install [ "g++"; "patchelf" ])
                    "root with apt-get installs"

                for isRoot, hasApt in [ false, true; false, false; true, false ] do
                    match Native.repairToolsPlan isRoot hasApt [ "patchelf" ] with
                    | Native.Missing message ->
                        Expect.stringContains message "GLIBCXX_3.4.32" "says why"
                        Expect.stringContains message "`sudo apt-get install -y patchelf`" "names the one command"
                        Expect.isFalse (message.Contains "g++") "names only what is missing"
                        Expect.isFalse (message.Contains "\n") "one line"
                    | other -> failtest $"root={isRoot} apt-get={hasApt}: expected Missing, got {other}"
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
