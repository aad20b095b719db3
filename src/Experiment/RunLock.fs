/// One writer per folder: `run.lock` (`RunLock`) and who holds it (`LockHolder`).
namespace Rl

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text
open System.Text.Json

/// Who holds a folder's lock (`RunLock`): one process, named so that a pid reused by another
/// process later is told apart from it.
type LockHolder =
    {
        /// The process id.
        Pid: int
        /// The host name (`Environment.MachineName`).
        Host: string
        /// The process's start in clock ticks after boot (field 22 of `/proc/<pid>/stat`): with the
        /// pid, it names one process on its host. None where there is no `/proc` (then only whether
        /// the pid is alive is checked).
        StartTicks: int64 option
        /// When the process started (UTC), for people reading the lock.
        Started: DateTime
        /// When the lock was taken (UTC).
        Acquired: DateTime
        /// `SLURM_JOB_ID` of the process, "" outside Slurm: a task requeued onto another node takes
        /// over the lock its own earlier run left (Slurm runs one instance of a job at a time).
        SlurmJob: string
        /// A random id of this taking of the lock: a release deletes the lock only while it is this one.
        Token: string
    }

/// One writer per run folder: `run.lock`, created atomically (`FileMode.CreateNew`) when a run
/// starts training into a folder (a fresh run, a resume, a sweep point) and deleted when it ends,
/// however it ends. It holds the owner as JSON (`LockHolder`: pid, host, process start). A second
/// process finds it and is refused while the owner lives; a lock whose owner is gone (killed with
/// SIGKILL, a crashed machine's Slurm task requeued) is taken over with one printed line.
module RunLock =
    /// The lock file's name in a locked folder.
    [<Literal>]
    let FileName = "run.lock"

    /// The `Source` of the `ConfigError` a refused lock raises (see `Refused`).
    [<Literal>]
    let Source = "run lock"

    /// The lock file of folder `dir`.
    let pathOf (dir: string) = Path.Combine(dir, FileName)

    /// The state letter and start ticks of process `pid` from `/proc/<pid>/stat`; None when there is
    /// no such process, or no `/proc` (not Linux).
    let private procStat (pid: int) : (char * int64) option =
        try
            let text = File.ReadAllText $"/proc/{pid}/stat"
            // the command name (field 2) is in parentheses and may hold spaces: count after the last ')'
            let rest = text.Substring(text.LastIndexOf ')' + 2).Split ' '
            Some(rest[0][0], Int64.Parse(rest[19], CultureInfo.InvariantCulture))
        with _ ->
            None

    /// The start of process `pid` in clock ticks after boot (`/proc/<pid>/stat`, as `LockHolder.StartTicks`
    /// records it); None when there is no such process or no `/proc`.
    let startTicksOf (pid: int) : int64 option = procStat pid |> Option.map snd

    let private slurmJob () =
        match Environment.GetEnvironmentVariable "SLURM_JOB_ID" with
        | null -> ""
        | j -> j.Trim()

    /// This process as a lock holder, with a fresh token and the current time as `Acquired`.
    let current () : LockHolder =
        let pid = Environment.ProcessId

        {
            Pid = pid
            Host = Environment.MachineName
            StartTicks = startTicksOf pid
            Started =
                (try
                    Process.GetCurrentProcess().StartTime.ToUniversalTime()
                 with _ ->
                     DateTime.UtcNow)
            Acquired = DateTime.UtcNow
            SlurmJob = slurmJob ()
            Token = Guid.NewGuid().ToString "N"
        }

    /// The JSON text of a lock file holding `h` (one object, one line).
    let format (h: LockHolder) : string =
        use ms = new MemoryStream()

        do
            use w = new Utf8JsonWriter(ms)
            w.WriteStartObject()
            w.WriteNumber("pid", h.Pid)
            w.WriteString("host", h.Host)

            match h.StartTicks with
            | Some t -> w.WriteNumber("process_start_ticks", t)
            | None -> w.WriteNull "process_start_ticks"

            w.WriteString("process_started", h.Started.ToString("o", CultureInfo.InvariantCulture))
            w.WriteString("acquired", h.Acquired.ToString("o", CultureInfo.InvariantCulture))
            w.WriteString("slurm_job", h.SlurmJob)
            w.WriteString("token", h.Token)
            w.WriteEndObject()

        Files.utf8.GetString(ms.ToArray()) + "\n"

    /// The holder in a lock file's text; None when the text is not a complete lock (empty, cut
    /// short, damaged).
    let parse (text: string) : LockHolder option =
        try
            use doc = JsonDocument.Parse text
            let r = doc.RootElement

            let time (name: string) =
                DateTime.Parse(
                    r.GetProperty(name).GetString(),
                    CultureInfo.InvariantCulture,
                    DateTimeStyles.AdjustToUniversal ||| DateTimeStyles.AssumeUniversal
                )

            Some
                {
                    Pid = r.GetProperty("pid").GetInt32()
                    Host = r.GetProperty("host").GetString()
                    StartTicks =
                        match r.GetProperty "process_start_ticks" with
                        | t when t.ValueKind = JsonValueKind.Number -> Some(t.GetInt64())
                        | _ -> None
                    Started = time "process_started"
                    Acquired = time "acquired"
                    SlurmJob = r.GetProperty("slurm_job").GetString()
                    Token = r.GetProperty("token").GetString()
                }
        with _ ->
            None

    /// The text of the lock file at `path`, None when there is none. A text that is not a complete
    /// lock is read again for up to half a second (its writer may be between creating and writing it).
    let private readText (path: string) : string option =
        let rec go k =
            let text =
                try
                    Some(File.ReadAllText path)
                with
                | :? FileNotFoundException
                | :? DirectoryNotFoundException -> None

            match text with
            | Some t when (parse t).IsNone && k < 10 ->
                Threading.Thread.Sleep 50
                go (k + 1)
            | t -> t

        go 0

    /// The holder of folder `dir`'s lock; None when it is not locked or its lock is unreadable.
    let holderOf (dir: string) : LockHolder option =
        readText (pathOf dir) |> Option.bind parse

    /// `h` for messages: `pid 123 on host h (process started ..., lock taken ...)`.
    let describe (h: LockHolder) =
        let slurm = if h.SlurmJob = "" then "" else $", Slurm job {h.SlurmJob}"

        let u (t: DateTime) =
            t.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)

        $"pid {h.Pid} on host {h.Host} (process started {u h.Started}, lock taken {u h.Acquired}{slurm})"

    /// Why the holder `h` is gone (Some reason: its lock is stale), or None when it may still run.
    let private goneReason (me: LockHolder) (h: LockHolder) : string option =
        if h.Host <> me.Host then
            if h.SlurmJob <> "" && h.SlurmJob = me.SlurmJob then
                Some $"an earlier run of this same Slurm job {h.SlurmJob} (requeued here)"
            else
                None // cannot be checked from here
        elif OperatingSystem.IsLinux() then
            match procStat h.Pid with
            | None -> Some "which is no longer running"
            | Some(state, _) when state = 'Z' || state = 'X' -> Some "which has exited"
            | Some(_, ticks) when h.StartTicks.IsSome && h.StartTicks.Value <> ticks ->
                Some "which is no longer running (its pid now belongs to another process, started at another time)"
            | Some _ -> None
        else
            try
                use p = Process.GetProcessById h.Pid
                if p.HasExited then Some "which has exited" else None
            with :? ArgumentException ->
                Some "which is no longer running"

    /// The refusal of folder `dir` locked by the live (or unverifiable) holder `h`.
    let private refuse (me: LockHolder) (dir: string) (h: LockHolder) : 'T =
        let lockPath = pathOf dir

        let problem =
            if h.Host <> me.Host then
                $"{dir} is in use: {FileName} says {describe h} trains into it, and a process on host {h.Host} cannot be checked from host {me.Host}; "
                + $"wait for that run to end, or, if it is no longer running on {h.Host}, delete {lockPath} and try again"
            else
                let self = if h.Pid = me.Pid then " (this very process)" else ""

                $"{dir} is in use: {describe h}{self} trains into it and is still running; "
                + $"wait for that run to end (or stop it), then try again; if you are sure no process uses the folder, delete {lockPath}"

        raise (ConfigError(Source, "", dir, "", problem))

    /// A lock held by this process: `Dispose` (or `Release`) deletes the lock file while it is still
    /// this one; printing a line instead of raising when that fails, so a release in a `finally`
    /// never hides the run's own exception.
    [<Sealed>]
    type Held internal (dir: string, holder: LockHolder, replaced: string option) =
        let mutable released = false

        /// The locked folder (absolute).
        member _.Dir = dir
        /// The lock file.
        member _.Path = pathOf dir
        /// What the lock file says: this process.
        member _.Holder = holder
        /// The line printed when a stale lock was taken over to get this one; None otherwise.
        member _.Replaced = replaced

        /// Deletes the lock file if it is still this lock (idempotent).
        member this.Release() =
            if not released then
                released <- true

                try
                    match readText this.Path with
                    | Some t when (parse t |> Option.map (fun h -> h.Token)) = Some holder.Token ->
                        File.Delete this.Path
                    | Some t ->
                        let other =
                            parse t |> Option.map describe |> Option.defaultValue "an unreadable lock"

                        eprintfn "run lock: %s now holds %s, not this run's lock; left as it is" this.Path other
                    | None -> ()
                with e ->
                    eprintfn "run lock: could not remove %s: %s" this.Path e.Message

        interface IDisposable with
            member this.Dispose() = this.Release()

    /// Creates the lock file at `path` with `text` unless one exists: true when created.
    let private tryCreate (path: string) (text: string) : bool =
        let created =
            try
                Some(
                    new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite ||| FileShare.Delete)
                )
            with :? IOException when File.Exists path ->
                None

        match created with
        | None -> false
        | Some fs ->
            try
                try
                    let bytes = Files.utf8.GetBytes text
                    fs.Write(bytes, 0, bytes.Length)
                    fs.Flush true
                finally
                    fs.Dispose()

                true
            with _ ->
                (try
                    File.Delete path
                 with _ ->
                     ())

                reraise ()

    /// Removes the stale lock file at `path` if it still holds `text` (moved aside first, then read
    /// back: of two processes taking over the same stale lock at once, the later one puts back the
    /// lock the earlier one just created instead of deleting it).
    let private removeStale (path: string) (text: string) =
        let aside = $"{path}.stale-{Guid.NewGuid():N}"

        let moved =
            try
                File.Move(path, aside)
                true
            with
            | :? FileNotFoundException
            | :? DirectoryNotFoundException -> false

        if moved then
            if File.ReadAllText aside = text then
                File.Delete aside
            else
                try
                    File.Move(aside, path)
                with :? IOException ->
                    File.Delete aside

    /// Takes the lock of folder `dir` (which must exist) for this process: creates `dir/run.lock`
    /// holding `current ()`. A lock whose holder is gone (its pid is not running on this host, runs
    /// another process than the one that took the lock, or is an earlier run of this same Slurm job)
    /// or that is unreadable is taken over with one printed line saying so. Raises `ConfigError`
    /// (`Source` = "run lock", `Value` = the folder; see `Refused`) naming the folder, the holder's pid,
    /// host and start time and what to do when the holder is alive, also when the holder is this
    /// process (a folder is not trained twice at once by one process either), and when it runs on
    /// another host, which cannot be checked from here. Raises the usual IO exceptions when the file
    /// cannot be written. Keep the result (`use`) for as long as the folder is written to.
    let acquire (dir: string) : Held =
        let dir = Path.GetFullPath dir
        let path = pathOf dir
        let me = current ()
        let text = format me

        let rec attempt (n: int) (replaced: string option) =
            if n > 5 then
                raise (IOException $"run lock: {path} keeps changing; other processes are taking it at the same time")

            if tryCreate path text then
                new Held(dir, me, replaced)
            else
                match readText path with
                | None -> attempt (n + 1) replaced // released meanwhile: try again
                | Some old ->
                    let line =
                        match parse old with
                        | Some h ->
                            match goneReason me h with
                            | Some why -> $"run lock: taking over {path}: it was left by {describe h}, {why}"
                            | None -> refuse me dir h
                        | None ->
                            $"run lock: taking over {path}: it is unreadable (not a lock this library wrote, or cut short)"

                    printfn "%s" line
                    removeStale path old
                    attempt (n + 1) (Some line)

        attempt 0 None

    /// Matches the `ConfigError` raised by `acquire` for a folder in use, giving the folder.
    let (|Refused|_|) (e: exn) : string option =
        match e with
        | ConfigError(source, _, dir, _, _) when source = Source -> Some dir
        | _ -> None
