/// Finding and loading libtorch for TorchSharp: the CPU libtorch from the TorchSharp-cpu
/// packages by default, a repaired copy of `libLibTorchSharp.so` on hosts whose libstdc++ is
/// too old (Debian 12, Ubuntu 22.04), and a user's CUDA libtorch or PyTorch `lib` folder named
/// by the `RL_LIBTORCH` environment variable. Also device choice and thread count.
///
/// Why a repair: TorchSharp 0.107.0's `libLibTorchSharp.so` was built with GCC 13 and asks for
/// the symbol version `GLIBCXX_3.4.32` (for exactly one symbol, `std::ios_base_library_init`),
/// which Debian 12's libstdc++ (up to `GLIBCXX_3.4.30`) does not have. The repair, done once on
/// a copy in the user's cache folder (never in the NuGet cache): a tiny shim library defining
/// that function; `patchelf` clears the symbol's version, adds the shim as a dependency and sets
/// the run path to `$ORIGIN`; the remaining version requirement is renamed to `GLIBCXX_3.4.30`
/// with its ELF hash recomputed. The tools it needs (`g++`, `patchelf`) are installed with apt-get
/// when the process runs as root (CI, containers); otherwise the error names the one command to run.
module Rl.Native

open System
open System.IO
open System.Runtime.InteropServices
open System.Text
open TorchSharp

/// The environment variable naming a folder with a (CUDA) libtorch: either libtorch's own
/// `lib` folder or PyTorch's `torch/lib` (find it with
/// `python3 -c "import torch,os;print(os.path.dirname(torch.__file__))"` and append `/lib`).
[<Literal>]
let LibTorchEnvVar = "RL_LIBTORCH"

/// Version of TorchSharp this library is built against (for cache folder names and messages).
[<Literal>]
let TorchSharpVersion = "0.107.0"

/// Version of the libtorch-cpu packages this library is built against.
[<Literal>]
let LibTorchVersion = "2.10.0"

type private Marker = class end

let private missingGlibcxx = "GLIBCXX_3.4.32"
let private presentGlibcxx = "GLIBCXX_3.4.30"
let private shimName = "libRlStdcxxCompat.so"
let private isLinux = RuntimeInformation.IsOSPlatform OSPlatform.Linux

/// Folder where this project keeps its own files outside the repository:
/// `$RL_CACHE_DIR`, else `$XDG_CACHE_HOME/rl-workspace`, else `~/.cache/rl-workspace`.
let cacheDir () =
    match Environment.GetEnvironmentVariable "RL_CACHE_DIR" with
    | null
    | "" ->
        match Environment.GetEnvironmentVariable "XDG_CACHE_HOME" with
        | null
        | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".cache", "rl-workspace")
        | xdg -> Path.Combine(xdg, "rl-workspace")
    | dir -> dir

let private nugetRoot () =
    match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
    | null
    | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
    | p -> p

/// Folders searched, in order, for a native library shipped by a package: next to this
/// assembly and TorchSharp.dll (build output), their `runtimes/linux-x64/native`, then the
/// NuGet package folder of `package/version`.
let private candidateDirs (package: string) (version: string) =
    let here = Path.GetDirectoryName(typeof<Marker>.Assembly.Location)
    let torchSharp = Path.GetDirectoryName(typeof<torch.Tensor>.Assembly.Location)

    [
        for d in [ here; torchSharp ] do
            if not (String.IsNullOrEmpty d) then
                yield d
                yield Path.Combine(d, "runtimes", "linux-x64", "native")
        yield Path.Combine(nugetRoot (), package, version, "runtimes", "linux-x64", "native")
    ]
    |> List.distinct

let private findIn (dirs: string list) (file: string) =
    dirs |> List.map (fun d -> Path.Combine(d, file)) |> List.tryFind File.Exists

// ---------------------------------------------------------------------------------------
// ELF editing: rename one version requirement in .gnu.version_r (and fix its hash).
// ---------------------------------------------------------------------------------------

/// The System V ELF hash of a symbol-version name (the `vna_hash` field of `Elf64_Vernaux`).
/// Source: System V ABI, "Hash Table" (the `elf_hash` function).
let elfHash (name: string) : uint32 =
    let mutable h = 0u

    for c in Encoding.ASCII.GetBytes name do
        h <- (h <<< 4) + uint32 c
        let g = h &&& 0xf0000000u

        if g <> 0u then
            h <- h ^^^ (g >>> 24)

        h <- h &&& ~~~g

    h

/// Renames the version requirement `fromName` to `toName` (same length) in the
/// `.gnu.version_r` section of the 64-bit little-endian ELF file at `path`, in place, and
/// recomputes its hash. Returns how many entries were renamed.
/// Raises `InvalidDataException` if the file is not a 64-bit little-endian ELF file or has no
/// `.gnu.version_r` section, and `ArgumentException` if the names differ in length.
let renameVersionNeed (path: string) (fromName: string) (toName: string) : int =
    if fromName.Length <> toName.Length then
        invalidArg "toName" $"renameVersionNeed: '{fromName}' and '{toName}' must have the same length"

    let bytes = File.ReadAllBytes path

    if
        bytes.Length < 64
        || bytes[0] <> 0x7Fuy
        || bytes[1] <> byte 'E'
        || bytes[4] <> 2uy
        || bytes[5] <> 1uy
    then
        raise (InvalidDataException $"{path} is not a 64-bit little-endian ELF file")

    let u16 (o: int64) =
        int (BitConverter.ToUInt16(bytes, int o))

    let u32 (o: int64) = BitConverter.ToUInt32(bytes, int o)

    let u64 (o: int64) =
        int64 (BitConverter.ToUInt64(bytes, int o))

    let shoff = u64 0x28L
    let shentsize = u16 0x3AL
    let shnum = u16 0x3CL
    let section i = shoff + int64 (i * shentsize)
    let shType i = u32 (section i + 4L)
    let shOffset i = u64 (section i + 24L)
    let shLink i = int (u32 (section i + 40L))
    let shInfo i = int (u32 (section i + 44L))

    let verneed =
        [ 0 .. shnum - 1 ]
        |> List.tryFind (fun i -> shType i = 0x6ffffffeu)
        |> Option.defaultWith (fun () -> raise (InvalidDataException $"{path} has no .gnu.version_r section"))

    let strtab = shOffset (shLink verneed)

    let readName (off: int64) =
        let start = int (strtab + off)
        let mutable e = start

        while bytes[e] <> 0uy do
            e <- e + 1

        Encoding.ASCII.GetString(bytes, start, e - start)

    let mutable renamed = 0
    let mutable vn = shOffset verneed

    for _ in 1 .. shInfo verneed do
        let cnt = u16 (vn + 2L)
        let mutable aux = vn + int64 (u32 (vn + 8L))

        for _ in 1..cnt do
            let nameOff = int64 (u32 (aux + 8L))

            if readName nameOff = fromName then
                Encoding.ASCII.GetBytes(toName).CopyTo(bytes, int (strtab + nameOff))
                BitConverter.GetBytes(elfHash toName).CopyTo(bytes, int aux)
                renamed <- renamed + 1

            aux <- aux + int64 (u32 (aux + 12L))

        vn <- vn + int64 (u32 (vn + 12L))

    File.WriteAllBytes(path, bytes)
    renamed

// ---------------------------------------------------------------------------------------
// Host check and repair
// ---------------------------------------------------------------------------------------

let private libstdcxxPaths =
    [
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
        "/lib/x86_64-linux-gnu/libstdc++.so.6"
        "/usr/lib64/libstdc++.so.6"
        "/usr/lib/libstdc++.so.6"
    ]

/// True when this host's libstdc++ lacks `GLIBCXX_3.4.32`, so TorchSharp's native library
/// needs the repaired copy. False on non-Linux hosts and where no libstdc++ is found.
let needsRepair () =
    isLinux
    && (match libstdcxxPaths |> List.tryFind File.Exists with
        | None -> false
        | Some p ->
            let text = Encoding.ASCII.GetString(File.ReadAllBytes p)
            not (text.Contains missingGlibcxx))

/// Runs program `exe` with `args` and the extra environment variables `env`, writing `stdin` to
/// its standard input when given; waits for it and returns (exit code, standard output, standard
/// error), both trimmed. Raises `Win32Exception` when the program cannot be started.
let capture (env: (string * string) list) (stdin: string option) (exe: string) (args: string list) =
    let psi =
        Diagnostics.ProcessStartInfo(
            exe,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin.IsSome
        )

    for a in args do
        psi.ArgumentList.Add a

    for k, v in env do
        psi.Environment[k] <- v

    use p = Diagnostics.Process.Start psi

    match stdin with
    | Some text ->
        p.StandardInput.Write text
        p.StandardInput.Close()
    | None -> ()

    let err = p.StandardError.ReadToEndAsync()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out.Trim(), err.Result.Trim()

/// `capture` for the repair's tools (apt-get non-interactive): (exit code, output and errors);
/// -1 when the program is not found.
let private run (exe: string) (args: string list) =
    try
        let code, out, err = capture [ "DEBIAN_FRONTEND", "noninteractive" ] None exe args

        code, (out + "\n" + err).Trim()
    with :? ComponentModel.Win32Exception ->
        -1, $"{exe} not found"

/// The full path of program `name` on PATH, if any.
let which (name: string) : string option =
    match Environment.GetEnvironmentVariable "PATH" with
    | null -> None
    | path ->
        path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun d -> Path.Combine(d, name))
        |> Array.tryFind File.Exists

let private onPath exe = (which exe).IsSome

let private shimSource =
    """// Provides std::ios_base_library_init(), which GCC 13's libstdc++ exports at GLIBCXX_3.4.32
// and older ones lack. Its only job there is to run the iostream static initialiser.
#include <ios>
namespace std {
void ios_base_library_init() { static ios_base::Init init; }
}
"""

/// Folder of the repaired copy of `libLibTorchSharp.so` for this TorchSharp version.
let repairedDir () =
    Path.Combine(cacheDir (), "native", $"torchsharp-{TorchSharpVersion}")

/// Path of the original `libLibTorchSharp.so` (build output or NuGet package folder).
/// Raises `FileNotFoundException` naming the folders searched if it is absent.
let originalLibTorchSharp () =
    let dirs = candidateDirs "torchsharp" TorchSharpVersion

    match findIn dirs "libLibTorchSharp.so" with
    | Some p -> p
    | None ->
        let searched = String.Join(", ", dirs)

        raise (
            FileNotFoundException
                $"libLibTorchSharp.so not found (searched: {searched}). Run `dotnet fsi build.fsx Setup` to restore packages."
        )

/// What the repair needs to do about its tools (`g++`, `patchelf`) before it can run.
type RepairTools =
    /// Every tool is on PATH.
    | Ready
    /// These Debian packages are missing and will be installed with apt-get (running as root).
    | Install of packages: string list
    /// Tools are missing and cannot be installed from here; the message names the one command
    /// that fixes it.
    | Missing of message: string

/// The one-line message for missing repair tools that this process cannot install itself
/// (not root, or no apt-get): names the packages and the one command to run.
let missingToolsMessage (missing: string list) =
    let pkgs = String.Join(" ", missing)

    $"TorchSharp {TorchSharpVersion} needs {missingGlibcxx}, which this host's libstdc++ lacks; the workspace repairs a private "
    + $"copy of its native library but needs {pkgs} for that. Run `sudo apt-get install -y {pkgs}` once, then run this command again."

/// Decides what to do about the repair tools: `Ready` when none is missing, `Install` when the
/// process is root and apt-get exists (as in CI), else `Missing` with `missingToolsMessage`.
let repairToolsPlan (isRoot: bool) (hasAptGet: bool) (missing: string list) : RepairTools =
    match missing with
    | [] -> Ready
    | _ when isRoot && hasAptGet -> Install missing
    | _ -> Missing(missingToolsMessage missing)

/// True when this process runs as root (Linux: effective uid 0 in /proc/self/status).
let isRoot () =
    isLinux
    && (try
            File.ReadAllLines "/proc/self/status"
            |> Array.tryFind (fun l -> l.StartsWith "Uid:")
            |> Option.exists (fun l ->
                let ids = l.Split([| '\t'; ' ' |], StringSplitOptions.RemoveEmptyEntries)
                ids.Length > 2 && ids[2] = "0")
        with _ ->
            false)

/// Makes sure `g++` and `patchelf` are on PATH for `repair`: installs the missing ones with
/// `apt-get` when running as root (saying so on stderr), else raises
/// `InvalidOperationException` with `missingToolsMessage`. Raises `InvalidOperationException`
/// with apt-get's output when the install fails.
let ensureRepairTools () =
    let missing = [ "g++"; "patchelf" ] |> List.filter (onPath >> not)

    match repairToolsPlan (isRoot ()) (onPath "apt-get") missing with
    | Ready -> ()
    | Missing message -> invalidOp message
    | Install pkgs ->
        let joined = String.Join(" ", pkgs)

        eprintfn
            "This host's libstdc++ lacks %s; installing %s with apt-get for the TorchSharp repair (once)"
            missingGlibcxx
            joined

        for args in
            [
                [ "update"; "-qq" ]
                [ "install"; "-y"; "-qq"; "--no-install-recommends" ] @ pkgs
            ] do
            let code, out = run "apt-get" args

            if code <> 0 then
                let cmd = String.Join(" ", args)

                invalidOp
                    $"`apt-get {cmd}` failed (exit {code}) while installing the TorchSharp repair tools: {out.Trim()}"

        match [ "g++"; "patchelf" ] |> List.filter (onPath >> not) with
        | [] -> ()
        | still -> invalidOp (missingToolsMessage still)

/// Makes (once) the repaired copy of `libLibTorchSharp.so` in `repairedDir ()` and returns
/// its path. Needs `g++` and `patchelf` (see `ensureRepairTools`: installed when root, else an
/// `InvalidOperationException` naming the command to run); raises `InvalidOperationException`
/// when a step fails. Builds in a temporary folder and renames it into place, so an interrupted
/// repair leaves nothing half-done.
let repair () : string =
    let dir = repairedDir ()
    let target = Path.Combine(dir, "libLibTorchSharp.so")

    if File.Exists target then
        target
    else
        ensureRepairTools ()
        let original = originalLibTorchSharp ()
        Directory.CreateDirectory(Path.GetDirectoryName dir) |> ignore
        let tmp = dir + $".tmp-{Environment.ProcessId}"

        if Directory.Exists tmp then
            Directory.Delete(tmp, true)

        Directory.CreateDirectory tmp |> ignore
        let lib = Path.Combine(tmp, "libLibTorchSharp.so")
        File.Copy(original, lib)
        let src = Path.Combine(tmp, "shim.cpp")
        File.WriteAllText(src, shimSource)

        let step exe args =
            let code, out = run exe args

            if code <> 0 then
                let cmd = String.Join(" ", args)
                invalidOp $"Repairing libLibTorchSharp.so failed at `{exe} {cmd}` (exit {code}): {out}"

        step "g++" [ "-shared"; "-fPIC"; "-O2"; "-o"; Path.Combine(tmp, shimName); src ]
        step "patchelf" [ "--clear-symbol-version"; "_ZSt21ios_base_library_initv"; lib ]
        step "patchelf" [ "--add-needed"; shimName; lib ]
        step "patchelf" [ "--set-rpath"; "$ORIGIN"; lib ]

        if renameVersionNeed lib missingGlibcxx presentGlibcxx = 0 then
            invalidOp $"Repairing libLibTorchSharp.so: no {missingGlibcxx} requirement found in {original}"

        try
            Directory.Move(tmp, dir)
        with :? IOException when File.Exists target ->
            Directory.Delete(tmp, true) // another process finished first

        target

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

let private loaded = obj ()
let mutable private initialised = false
let mutable private cudaLibs = false

/// The libtorch folder named by `RL_LIBTORCH`, if set.
let userLibTorch () =
    match Environment.GetEnvironmentVariable LibTorchEnvVar with
    | null
    | "" -> None
    | d -> Some d

let private load (path: string) =
    try
        NativeLibrary.Load path |> ignore
    with e ->
        invalidOp $"Could not load native library {path}: {e.Message}"

/// Loads libtorch and TorchSharp's native library once per process (idempotent, thread-safe).
/// Uses the folder in `RL_LIBTORCH` if set (CUDA or CPU libtorch), else the CPU libtorch of the
/// TorchSharp-cpu packages; on hosts without `GLIBCXX_3.4.32` uses (and if needed makes) the
/// repaired copy (see `repair`). Raises `InvalidOperationException` or `FileNotFoundException`
/// explaining what is missing.
let init () =
    lock loaded (fun () ->
        if not initialised then
            if isLinux then
                let torchDir, isUser =
                    match userLibTorch () with
                    | Some d ->
                        if not (File.Exists(Path.Combine(d, "libtorch_cpu.so"))) then
                            invalidOp
                                $"{LibTorchEnvVar}={d} does not contain libtorch_cpu.so; point it at libtorch's `lib` folder or PyTorch's `torch/lib`."

                        d, true
                    | None ->
                        let dirs = candidateDirs "libtorch-cpu-linux-x64" LibTorchVersion

                        match findIn dirs "libtorch_cpu.so" with
                        | Some p -> Path.GetDirectoryName p, false
                        | None ->
                            let searched = String.Join(", ", dirs)

                            raise (
                                FileNotFoundException
                                    $"libtorch_cpu.so not found (searched: {searched}). Run `dotnet fsi build.fsx Setup`."
                            )

                for name in
                    [
                        "libc10.so"
                        "libc10_cuda.so"
                        "libtorch_cpu.so"
                        "libtorch_cuda.so"
                        "libtorch.so"
                    ] do
                    let p = Path.Combine(torchDir, name)

                    if File.Exists p then
                        load p

                cudaLibs <- isUser && File.Exists(Path.Combine(torchDir, "libtorch_cuda.so"))

                let libTorchSharp =
                    if needsRepair () then
                        repair ()
                    else
                        originalLibTorchSharp ()

                load libTorchSharp

            torch.InitializeDeviceType DeviceType.CPU
            initialised <- true)

/// True when a CUDA device can be used (after `init`).
let cudaAvailable () =
    init ()
    cudaLibs && torch.cuda.is_available ()

/// The torch device for a config value: "cpu", "cuda" or "cuda:N", or "auto" (CUDA when
/// available, else CPU). Raises `ArgumentException` for another name, and
/// `InvalidOperationException` explaining how to enable CUDA when it is asked for but absent.
let device (name: string) : torch.Device =
    init ()

    match name.Trim().ToLowerInvariant() with
    | "cpu" -> torch.CPU
    | "auto" -> if cudaAvailable () then torch.CUDA else torch.CPU
    | n when n = "cuda" || n.StartsWith "cuda:" ->
        if not (cudaAvailable ()) then
            let how =
                match userLibTorch () with
                | None ->
                    $"set {LibTorchEnvVar} to a CUDA libtorch `lib` folder or PyTorch's `torch/lib` (e.g. "
                    + "`export RL_LIBTORCH=$(python3 -c \"import torch,os;print(os.path.dirname(torch.__file__))\")/lib`)"
                | Some d ->
                    $"{LibTorchEnvVar}={d} was loaded but CUDA is not available there (no libtorch_cuda.so, no GPU, or no driver)"

            invalidOp $"device '{name}' asked for but CUDA is not available: {how}. See README.md, 'Using a GPU'."

        torch.Device n
    | _ -> invalidArg "device" $"unknown device '{name}'; allowed: cpu, cuda, cuda:N, auto"

/// Sets the number of intra-op threads libtorch uses (1 is often fastest for small MLPs).
/// Raises `ArgumentException` if `n < 1`.
let setThreads (n: int) =
    if n < 1 then
        invalidArg "n" $"threads must be >= 1, got {n}"

    init ()
    torch.set_num_threads n
