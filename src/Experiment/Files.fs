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

/// Writes `bytes` to `path` atomically: into a temporary file beside it (`<name>.tmp-<guid>`),
/// flushed to the disk, then renamed over `path` (rename is atomic within one file system on
/// Linux and macOS, and replaces an existing file). Readers see either the old or the new file,
/// never a partial one. Creates the parent folder if needed. On failure the temporary file is
/// removed and the exception is re-raised.
let writeBytesAtomic (path: string) (bytes: byte[]) =
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

        reraise ()

/// Writes `text` as UTF-8 (no byte-order mark) to `path` atomically; see `writeBytesAtomic`.
let writeTextAtomic (path: string) (text: string) =
    writeBytesAtomic path (utf8.GetBytes text)

/// Lower-case hexadecimal SHA-256 of the file at `path` (64 characters), read in a stream.
let sha256 (path: string) : string =
    use fs = File.OpenRead path
    use h = SHA256.Create()
    Convert.ToHexString(h.ComputeHash fs).ToLowerInvariant()
