/// Small file-system helpers shared by the experiment modules: atomic text writes (temp file in
/// the same folder, flushed to disk, then renamed over the target), SHA-256 of a file, and a
/// forced flush of a file's data to the disk.
module Rl.Files

open System
open System.IO
open System.Security.Cryptography
open System.Text

/// UTF-8 without a byte-order mark: what every text file of this library is written in.
let utf8 = UTF8Encoding(false)

/// Forces the data of the file at `path` to the disk (`fsync`), so a rename that follows cannot
/// expose an empty or partial file after a power loss. Raises the usual IO exceptions when the
/// file cannot be opened.
let fsync (path: string) =
    use fs =
        new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite)

    fs.Flush(true)

/// A write that failed (a full disk, a file-size limit, a read-only or failing device): names the
/// file and the cause, so that the command line can say it in one line.
type WriteFailedException(path: string, cause: exn) =
    inherit IOException($"could not write {path}: {cause.Message}", cause)
    /// The file (or folder) being written.
    member _.Path = path

/// Runs `write`, a write to `path`, turning its failure into `WriteFailedException` naming `path`
/// (.NET reports a file-size limit, EFBIG, as an `ArgumentOutOfRangeException` without the
/// path). An inner `WriteFailedException` passes through unchanged.
let writing (path: string) (write: unit -> 'T) : 'T =
    try
        write ()
    with
    | :? WriteFailedException -> reraise ()
    | :? IOException
    | :? UnauthorizedAccessException
    | :? ArgumentOutOfRangeException as e -> raise (WriteFailedException(path, e))

/// Writes `bytes` to `path` atomically: into a temporary file beside it (`<name>.tmp-<guid>`),
/// flushed to the disk, then renamed over `path` (rename is atomic within one file system on
/// Linux and macOS, and replaces an existing file). Readers see either the old or the new file,
/// never a partial one. Creates the parent folder if needed. On failure the temporary file is
/// removed and `WriteFailedException` names `path` and the cause.
let writeBytesAtomic (path: string) (bytes: byte[]) =
    writing path (fun () ->
        let full = Path.GetFullPath path
        let dir = Path.GetDirectoryName full
        Directory.CreateDirectory dir |> ignore

        let tmp =
            Path.Combine(dir, sprintf ".%s.tmp-%s" (Path.GetFileName full) (Guid.NewGuid().ToString "N"))

        try
            do
                use fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None)
                fs.Write(bytes, 0, bytes.Length)
                fs.Flush(true)

            File.Move(tmp, full, true)
        with _ ->
            (try
                File.Delete tmp
             with _ ->
                 ())

            reraise ())

/// Writes `text` as UTF-8 (no byte-order mark) to `path` atomically; see `writeBytesAtomic`.
let writeTextAtomic (path: string) (text: string) =
    writeBytesAtomic path (utf8.GetBytes text)

/// Lower-case hexadecimal SHA-256 of the file at `path` (64 characters), read in a stream.
let sha256 (path: string) : string =
    use fs = File.OpenRead path
    use h = SHA256.Create()
    Convert.ToHexString(h.ComputeHash fs).ToLowerInvariant()

/// The checksum file of `path`: `<path>.sha256`, holding the file's SHA-256 in hex.
let checksumPath (path: string) = path + ".sha256"

/// Writes the SHA-256 of the file at `path` into `checksumPath path` (atomically), so that
/// `checksumProblem` can tell a damaged file from a good one.
let writeChecksum (path: string) =
    writeTextAtomic (checksumPath path) (sha256 path + "\n")

/// Checks the file at `path` against its checksum file: None when they match or when there is no
/// checksum file (files written before checksums existed), else the problem in words, naming
/// both files.
let checksumProblem (path: string) : string option =
    let sidecar = checksumPath path

    if not (File.Exists sidecar) then
        None
    elif File.ReadAllText(sidecar).Trim() = sha256 path then
        None
    else
        Some
            $"{Path.GetFileName path} does not match its checksum in {Path.GetFileName sidecar}: one of them is damaged (or a write was interrupted; if the file is as it should be, delete {Path.GetFileName sidecar} to accept it)"
