/// A real headless browser for the tests: Debian's Chromium, started with a fresh profile and
/// driven over the Chrome DevTools Protocol (CDP) with `ClientWebSocket` and System.Text.Json
/// (no browser-automation package). Pages are opened from disk (file:// URLs) with every http(s)
/// request blocked, so a page that needs the network shows it (as `ExternalRequests`) instead of
/// passing only where the machine happens to be online.
module Rl.Tests.Browser

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net.WebSockets
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks

/// The Chromium executable: RL_CHROMIUM when it names an existing file, else /usr/bin/chromium
/// (Debian's package `chromium`), else `chromium` or `chromium-browser` on PATH; None when absent.
let find () : string option =
    let onPath (name: string) =
        (Environment.GetEnvironmentVariable "PATH"
         |> Option.ofObj
         |> Option.defaultValue "")
            .Split(':')
        |> Array.filter (fun d -> d <> "")
        |> Array.map (fun d -> Path.Combine(d, name))
        |> Array.tryFind File.Exists

    match Environment.GetEnvironmentVariable "RL_CHROMIUM" with
    | p when not (String.IsNullOrWhiteSpace p) && File.Exists p -> Some p
    | _ ->
        if File.Exists "/usr/bin/chromium" then
            Some "/usr/bin/chromium"
        else
            onPath "chromium" |> Option.orElse (onPath "chromium-browser")

/// What the browser made of one `<video>` element of a page.
type VideoCheck =
    {
        /// Position of the element among the page's `<video>` elements (document order, from 0).
        Index: int
        /// Whether its metadata loaded (`loadedmetadata` fired: the container and codec were understood).
        Loaded: bool
        /// Its duration in seconds (0 when not loaded).
        Duration: float
        /// Whether `currentTime` passed 0.2 s after `play()` (waiting at most 15 s).
        Played: bool
        /// Frames decoded by then (`getVideoPlaybackQuality().totalVideoFrames`): above 0 when the
        /// codec is really decoded, not only the container read.
        Frames: int
        /// The media error (`MediaError.code` and `message`), a refused `play()`, or a timeout; None when fine.
        Error: string option
        /// Its intrinsic width in pixels (`videoWidth`; 0 when not loaded).
        Width: int
        /// Its intrinsic height in pixels (`videoHeight`; 0 when not loaded).
        Height: int
    }

/// What the browser made of a page as a whole.
type PageCheck =
    {
        /// Whether a stylesheet loaded and applies: at least one stylesheet of the page has rules
        /// (readable ones, or a linked sheet that loaded), and the computed style of `<body>`
        /// differs from that of an unstyled page.
        Styled: bool
        /// Every resource that failed to load ("url (error)"), external ones included.
        FailedRequests: string list
        /// Every http(s) address the page tried to reach (all are blocked: pages must work offline).
        ExternalRequests: string list
        /// Elements with class `js-plotly-plot` once the page settled: Plotly charts that rendered.
        PlotlyCharts: int
        /// Uncaught script exceptions and console errors, one line each.
        ScriptErrors: string list
    }

/// One CDP connection to a page of a freshly started headless Chromium; disposing it closes the
/// browser, kills its processes and deletes its profile folder.
type Session private (proc: Process, profile: string, socket: ClientWebSocket, stderr: ResizeArray<string>) =
    let mutable nextId = 0
    let pending = Dictionary<int, TaskCompletionSource<JsonNode>>()
    let events = ResizeArray<JsonNode>()
    let gate = obj ()
    let sendLock = new SemaphoreSlim(1, 1)
    let cts = new CancellationTokenSource()
    let mutable sessionId: string = null
    let mutable disposed = false

    let reader =
        Task.Run<unit>(fun () ->
            task {
                let buffer = Array.zeroCreate<byte>(1 <<< 16)
                use message = new MemoryStream()

                try
                    while socket.State = WebSocketState.Open && not cts.IsCancellationRequested do
                        let! r = socket.ReceiveAsync(ArraySegment buffer, cts.Token)

                        if r.MessageType = WebSocketMessageType.Close then
                            cts.Cancel()
                        else
                            message.Write(buffer, 0, r.Count)

                            if r.EndOfMessage then
                                let node =
                                    JsonNode.Parse(Encoding.UTF8.GetString(message.GetBuffer(), 0, int message.Length))

                                message.SetLength 0L

                                lock gate (fun () ->
                                    match node["id"] with
                                    | null ->
                                        events.Add node
                                        Monitor.PulseAll gate
                                    | id ->
                                        match pending.TryGetValue(id.GetValue<int>()) with
                                        | true, tcs ->
                                            pending.Remove(id.GetValue<int>()) |> ignore
                                            tcs.TrySetResult node |> ignore
                                        | _ -> ())
                with _ ->
                    ()

                lock gate (fun () ->
                    for tcs in pending.Values do
                        tcs.TrySetException(Exception "the DevTools connection closed") |> ignore

                    pending.Clear()
                    Monitor.PulseAll gate)
            })

    /// Sends a CDP command (to the attached page unless `toBrowser`) and waits for its result.
    member private _.Send(toBrowser: bool, methodName: string, parameters: JsonObject, timeout: TimeSpan) : JsonNode =
        let tcs =
            TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously)

        let id =
            lock gate (fun () ->
                nextId <- nextId + 1
                pending[nextId] <- tcs
                nextId)

        let msg = JsonObject()
        msg["id"] <- JsonValue.Create id
        msg["method"] <- JsonValue.Create methodName
        msg["params"] <- (if isNull parameters then JsonObject() else parameters)

        if not toBrowser && not (isNull sessionId) then
            msg["sessionId"] <- JsonValue.Create sessionId

        let bytes = Encoding.UTF8.GetBytes(msg.ToJsonString())
        sendLock.Wait()

        try
            socket.SendAsync(ArraySegment bytes, WebSocketMessageType.Text, true, cts.Token).GetAwaiter().GetResult()
        finally
            sendLock.Release() |> ignore

        if not (tcs.Task.Wait timeout) then
            lock gate (fun () -> pending.Remove id |> ignore)
            failwithf "Chromium did not answer %s within %.0f s" methodName timeout.TotalSeconds

        let reply = tcs.Task.Result

        match reply["error"] with
        | null -> reply["result"]
        | e -> failwithf "Chromium refused %s: %s" methodName (e.ToJsonString())

    /// Sends a CDP command to the attached page and returns its `result`.
    member this.Call(methodName: string, ?parameters: JsonObject, ?timeout: TimeSpan) : JsonNode =
        this.Send(false, methodName, defaultArg parameters null, defaultArg timeout (TimeSpan.FromSeconds 30.0))

    /// The number of CDP events received so far (a mark for `WaitEvent`).
    member _.EventCount = lock gate (fun () -> events.Count)

    /// Every event received since the mark `from` (see `EventCount`), as (method, params).
    member _.EventsSince(from: int) : (string * JsonNode) list =
        lock gate (fun () ->
            [
                for i in from .. events.Count - 1 -> events[i].["method"].GetValue<string>(), events[i].["params"]
            ])

    /// Waits for an event called `methodName` received after the mark `from`; returns its
    /// params, or None after `timeout`.
    member _.WaitEvent(methodName: string, from: int, timeout: TimeSpan) : JsonNode option =
        let deadline = DateTime.UtcNow + timeout

        lock gate (fun () ->
            let rec look i =
                if i < events.Count then
                    if events[i].["method"].GetValue<string>() = methodName then
                        Some events[i].["params"]
                    else
                        look (i + 1)
                else
                    let left = deadline - DateTime.UtcNow

                    if left <= TimeSpan.Zero || reader.IsCompleted then
                        None
                    else
                        Monitor.Wait(gate, left) |> ignore
                        look i

            look from)

    /// Navigates the page to `url` and waits (up to `timeout`) for its load event.
    member this.Navigate(url: string, ?timeout: TimeSpan) =
        let timeout = defaultArg timeout (TimeSpan.FromSeconds 60.0)
        let mark = this.EventCount

        let r =
            this.Call("Page.navigate", JsonObject(dict [ "url", JsonValue.Create url :> JsonNode ]), timeout)

        match r["errorText"] with
        | null -> ()
        | e -> failwithf "Chromium could not open %s: %s" url (e.GetValue<string>())

        if (this.WaitEvent("Page.loadEventFired", mark, timeout)).IsNone then
            failwithf "%s did not finish loading within %.0f s" url timeout.TotalSeconds

    /// Evaluates a JavaScript expression in the page (awaiting it when it is a promise) and
    /// returns its value as JSON; a thrown exception fails.
    member this.Evaluate(expression: string, ?timeout: TimeSpan) : JsonNode =
        let timeout = defaultArg timeout (TimeSpan.FromSeconds 60.0)

        let p =
            JsonObject(
                dict
                    [
                        "expression", JsonValue.Create expression :> JsonNode
                        "awaitPromise", JsonValue.Create true
                        "returnByValue", JsonValue.Create true
                        "timeout", JsonValue.Create timeout.TotalMilliseconds
                    ]
            )

        let r = this.Call("Runtime.evaluate", p, timeout + TimeSpan.FromSeconds 5.0)

        match r["exceptionDetails"] with
        | null -> r["result"].["value"]
        | e ->
            let text =
                match e["exception"] with
                | null -> e["text"].GetValue<string>()
                | x -> string x["description"]

            failwithf "script failed in the page: %s" text

    /// A PNG of the page as it is now (the full page when `fullPage`, else the 1280x900 viewport).
    member this.Screenshot(fullPage: bool) : byte[] =
        let p = JsonObject(dict [ "format", JsonValue.Create "png" :> JsonNode ])

        if fullPage then
            p["captureBeyondViewport"] <- JsonValue.Create true

        let r = this.Call("Page.captureScreenshot", p, TimeSpan.FromSeconds 60.0)
        Convert.FromBase64String(r["data"].GetValue<string>())

    /// The lines Chromium wrote on stderr so far (for failure messages).
    member _.Stderr = lock stderr (fun () -> List.ofSeq stderr)

    /// Starts Chromium headless with a fresh profile, opens a blank page, attaches to it and
    /// enables the Page, Runtime, Log and Network domains, with every http(s) address blocked.
    static member Start(chromium: string) : Session =
        let profile = Path.Combine(Path.GetTempPath(), $"rl-chromium-{Guid.NewGuid():N}")

        Directory.CreateDirectory profile |> ignore

        let psi =
            ProcessStartInfo(
                chromium,
                UseShellExecute = false,
                RedirectStandardError = true,
                RedirectStandardOutput = true
            )

        for a in
            [
                "--headless"
                "--no-sandbox"
                "--disable-gpu"
                "--disable-quic"
                "--no-first-run"
                "--disable-background-networking"
                "--disable-component-update"
                "--disable-sync"
                "--disable-dev-shm-usage"
                "--autoplay-policy=no-user-gesture-required"
                "--mute-audio"
                "--hide-scrollbars"
                "--window-size=1280,900"
                $"--user-data-dir={profile}"
                "--remote-debugging-port=0"
                "about:blank"
            ] do
            psi.ArgumentList.Add a

        let stderr = ResizeArray<string>()

        let address =
            TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously)

        let proc = new Process(StartInfo = psi)

        proc.ErrorDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                lock stderr (fun () -> stderr.Add e.Data)
                let i = e.Data.IndexOf "ws://"

                if e.Data.StartsWith "DevTools listening on" && i >= 0 then
                    address.TrySetResult(e.Data.Substring(i).Trim()) |> ignore)

        proc.OutputDataReceived.Add(fun _ -> ())
        proc.Exited.Add(fun _ -> address.TrySetException(Exception "Chromium exited") |> ignore)
        proc.EnableRaisingEvents <- true

        let cleanup () =
            try
                if not proc.HasExited then
                    proc.Kill true
                    proc.WaitForExit 10000 |> ignore
            with _ ->
                ()

            proc.Dispose()

            try
                Directory.Delete(profile, true)
            with _ ->
                ()

        try
            proc.Start() |> ignore
            proc.BeginErrorReadLine()
            proc.BeginOutputReadLine()
            // also written to <profile>/DevToolsActivePort as "port\npath"
            let ok =
                try
                    address.Task.Wait(TimeSpan.FromSeconds 30.0)
                with _ ->
                    false

            if not ok then
                let lines = lock stderr (fun () -> String.Join("\n", stderr))
                failwithf "Chromium (%s) did not print its DevTools address within 30 s; stderr:\n%s" chromium lines

            let socket = new ClientWebSocket()
            socket.Options.KeepAliveInterval <- TimeSpan.Zero

            socket.ConnectAsync(Uri address.Task.Result, CancellationToken.None).Wait(TimeSpan.FromSeconds 30.0)
            |> ignore

            if socket.State <> WebSocketState.Open then
                failwithf "could not connect to Chromium's DevTools at %s" address.Task.Result

            let s = new Session(proc, profile, socket, stderr)

            try
                let target =
                    s.Send(
                        true,
                        "Target.createTarget",
                        JsonObject(dict [ "url", JsonValue.Create "about:blank" :> JsonNode ]),
                        TimeSpan.FromSeconds 30.0
                    )

                let attached =
                    s.Send(
                        true,
                        "Target.attachToTarget",
                        JsonObject(
                            dict
                                [
                                    "targetId", target["targetId"].DeepClone()
                                    "flatten", JsonValue.Create true :> JsonNode
                                ]
                        ),
                        TimeSpan.FromSeconds 30.0
                    )

                s.SetSession(attached["sessionId"].GetValue<string>())

                for domain in [ "Page.enable"; "Runtime.enable"; "Log.enable"; "Network.enable" ] do
                    s.Call domain |> ignore

                let blocked = JsonArray(JsonValue.Create "http://*", JsonValue.Create "https://*")

                s.Call("Network.setBlockedURLs", JsonObject(dict [ "urls", blocked :> JsonNode ]))
                |> ignore

                s
            with _ ->
                (s :> IDisposable).Dispose()
                reraise ()
        with _ ->
            cleanup ()
            reraise ()

    member private _.SetSession(id: string) = sessionId <- id

    interface IDisposable with
        /// Closes the browser, kills what is left of it and deletes its profile folder.
        member _.Dispose() =
            if not disposed then
                disposed <- true

                try
                    let msg = """{"id":999999,"method":"Browser.close","params":{}}"""

                    socket
                        .SendAsync(
                            ArraySegment(Encoding.UTF8.GetBytes msg),
                            WebSocketMessageType.Text,
                            true,
                            CancellationToken.None
                        )
                        .Wait(TimeSpan.FromSeconds 5.0)
                    |> ignore
                with _ ->
                    ()

                try
                    if not (proc.WaitForExit 5000) then
                        proc.Kill true
                        proc.WaitForExit 10000 |> ignore
                with _ ->
                    ()

                cts.Cancel()

                try
                    reader.Wait(TimeSpan.FromSeconds 5.0) |> ignore
                with _ ->
                    ()

                socket.Dispose()
                proc.Dispose()
                cts.Dispose()
                sendLock.Dispose()
                // Chromium's helper processes may still be writing to the profile for a moment
                let rec delete n =
                    try
                        if Directory.Exists profile then
                            Directory.Delete(profile, true)
                    with _ when n > 0 ->
                        Thread.Sleep 200
                        delete (n - 1)

                try
                    delete 10
                with _ ->
                    ()

/// The file:// URL of a file on disk.
let fileUrl (path: string) = Uri(Path.GetFullPath path).AbsoluteUri

/// Runs `f` on a fresh browser session (see `Session.Start`) and closes the browser afterwards;
/// fails when Chromium is not found.
let withSession (f: Session -> 'T) : 'T =
    match find () with
    | None -> failwith "Chromium not found (install Debian's chromium, or set RL_CHROMIUM)"
    | Some chromium ->
        use s = Session.Start chromium
        f s

/// Writes `html` to a fresh temporary folder as page.html, runs `f` on its path, deletes the folder.
let private withTempPage (html: string) (f: string -> 'T) : 'T =
    let dir = Path.Combine(Path.GetTempPath(), $"rl-page-{Guid.NewGuid():N}")
    Directory.CreateDirectory dir |> ignore

    try
        let file = Path.Combine(dir, "page.html")
        File.WriteAllText(file, html)
        f file
    finally
        try
            Directory.Delete(dir, true)
        with _ ->
            ()

let private str (n: JsonNode) =
    match n with
    | null -> None
    | n -> Some(n.GetValue<string>())

/// Script that checks every `<video>` of the page in turn: waits up to 15 s for its metadata (or
/// an error, of the element or of its last `<source>`), then plays it muted and waits up to 15 s
/// for `currentTime` to pass 0.2 s.
let private videoScript =
    """
(async () => {
  const wait = (ms) => new Promise(r => setTimeout(r, ms));
  const describe = (v) => v.error ? `MediaError ${v.error.code}: ${v.error.message || ''}`.trim() : null;
  const out = [];
  const videos = Array.from(document.querySelectorAll('video'));
  for (let i = 0; i < videos.length; i++) {
    const v = videos[i];
    const r = { index: i, loaded: false, duration: 0, played: false, frames: 0, error: null, width: 0, height: 0 };
    const sources = Array.from(v.querySelectorAll('source'));
    const state = await new Promise(resolve => {
      if (v.readyState >= 1) return resolve('ok');
      if (v.error) return resolve('error');
      if (sources.length > 0 && v.networkState === 3) return resolve('error');
      const t = setTimeout(() => resolve('timeout'), 15000);
      const done = (s) => () => { clearTimeout(t); resolve(s); };
      v.addEventListener('loadedmetadata', done('ok'), { once: true });
      v.addEventListener('error', done('error'), { once: true });
      if (sources.length > 0) sources[sources.length - 1].addEventListener('error', done('error'), { once: true });
      if (v.preload === 'none' || v.networkState === 0) v.load();
    });
    if (state === 'ok') {
      r.loaded = true;
      r.duration = isFinite(v.duration) ? v.duration : -1;
      r.width = v.videoWidth;
      r.height = v.videoHeight;
      v.muted = true;
      try {
        await v.play();
        const start = Date.now();
        while (v.currentTime <= 0.2 && !v.error && !v.ended && Date.now() - start < 15000) await wait(50);
        r.played = v.currentTime > 0.2;
        r.frames = v.getVideoPlaybackQuality().totalVideoFrames;
        if (!r.played) r.error = describe(v) || `currentTime ${v.currentTime} s after ${Date.now() - start} ms of play()`;
        v.pause();
      } catch (e) {
        r.error = describe(v) || `play() refused: ${e}`;
      }
    } else if (state === 'error') {
      r.error = describe(v) || (sources.length > 0 ? 'no <source> could be played (networkState NO_SOURCE)' : 'error event without MediaError');
    } else {
      r.error = describe(v) || `no loadedmetadata within 15 s (readyState ${v.readyState}, networkState ${v.networkState})`;
    }
    out.push(r);
  }
  return out;
})()
"""

/// Checks every `<video>` element of the page file `path` (see `VideoCheck`).
let checkVideosFile (path: string) : VideoCheck list =
    withSession (fun s ->
        s.Navigate(fileUrl path)
        let n = s.Evaluate("document.querySelectorAll('video').length").GetValue<int>()
        let r = s.Evaluate(videoScript, TimeSpan.FromSeconds(30.0 * float n + 30.0))

        [
            for v in r.AsArray() ->
                {
                    Index = v["index"].GetValue<int>()
                    Loaded = v["loaded"].GetValue<bool>()
                    Duration = v["duration"].GetValue<float>()
                    Played = v["played"].GetValue<bool>()
                    Frames = v["frames"].GetValue<int>()
                    Error = str v["error"]
                    Width = v["width"].GetValue<int>()
                    Height = v["height"].GetValue<int>()
                }
        ])

/// Checks every `<video>` element of the page `html` (written to a temporary file and opened
/// from disk; so it should embed its videos, as data: URIs): whether each loads, its duration
/// and size, and whether it plays (see `VideoCheck`).
let checkVideos (html: string) : VideoCheck list = withTempPage html checkVideosFile

/// Script that reports on the loaded page: stylesheets with rules, whether body's computed style
/// differs from an unstyled page's (an about:blank iframe), and the rendered Plotly charts once
/// their count has been steady for 0.5 s (at most 10 s).
let private pageScript =
    """
(async () => {
  const wait = (ms) => new Promise(r => setTimeout(r, ms));
  let sheets = 0;
  for (const s of Array.from(document.styleSheets)) {
    try { if (s.cssRules.length > 0) sheets++; }
    catch (e) { if (s.ownerNode && s.ownerNode.tagName === 'LINK') sheets++; }
  }
  const frame = document.createElement('iframe');
  document.documentElement.appendChild(frame);
  const props = ['font-family', 'font-size', 'color', 'background-color', 'margin-top', 'margin-left', 'line-height', 'display'];
  const plain = frame.contentWindow.getComputedStyle(frame.contentDocument.body);
  const mine = getComputedStyle(document.body);
  const differs = props.filter(p => plain.getPropertyValue(p) !== mine.getPropertyValue(p));
  frame.remove();
  let charts = -1, steady = 0;
  const start = Date.now();
  while (steady < 5 && Date.now() - start < 10000) {
    const n = document.querySelectorAll('.js-plotly-plot').length;
    steady = n === charts ? steady + 1 : 0;
    charts = n;
    await wait(100);
  }
  return { sheets, differs, charts };
})()
"""

/// Checks the page file `path` (opened from disk, http(s) blocked; see `PageCheck`).
let checkPageFile (path: string) : PageCheck =
    withSession (fun s ->
        let mark = s.EventCount
        s.Navigate(fileUrl path)
        let r = s.Evaluate(pageScript, TimeSpan.FromSeconds 30.0)
        let events = s.EventsSince mark
        let urls = Dictionary<string, string>()

        for m, p in events do
            if m = "Network.requestWillBeSent" then
                urls[p["requestId"].GetValue<string>()] <- p["request"].["url"].GetValue<string>()

        let short (u: string) =
            if u.StartsWith "data:" && u.Length > 60 then
                u.Substring(0, 60) + "..."
            else
                u

        let failed =
            [
                for m, p in events do
                    if m = "Network.loadingFailed" then
                        let url =
                            match urls.TryGetValue(p["requestId"].GetValue<string>()) with
                            | true, u -> short u
                            | _ -> "?"

                        let why =
                            [
                                str p["errorText"]
                                str p["blockedReason"] |> Option.map (sprintf "blocked: %s")
                            ]
                            |> List.choose id
                            |> List.filter (fun t -> t <> "")
                            |> String.concat ", "

                        yield $"{url} ({why})"
            ]

        let external =
            [
                for KeyValue(_, u) in urls do
                    if u.StartsWith "http://" || u.StartsWith "https://" then
                        yield u
            ]
            |> List.distinct

        let errors =
            [
                for m, p in events do
                    match m with
                    | "Runtime.exceptionThrown" ->
                        let d = p["exceptionDetails"]

                        let text =
                            match d["exception"] with
                            | null -> string d["text"]
                            | x -> string x["description"]

                        yield text.Split('\n')[0]
                    | "Log.entryAdded" when
                        string p["entry"].["level"] = "error"
                        && string p["entry"].["source"] <> "network"
                        ->
                        yield string p["entry"].["text"]
                    | "Runtime.consoleAPICalled" when string p["type"] = "error" ->
                        yield
                            p["args"].AsArray()
                            |> Seq.map (fun a -> string (if isNull a["value"] then a["description"] else a["value"]))
                            |> String.concat " "
                    | _ -> ()
            ]

        {
            Styled = r["sheets"].GetValue<int>() > 0 && r["differs"].AsArray().Count > 0
            FailedRequests = failed
            ExternalRequests = external
            PlotlyCharts = r["charts"].GetValue<int>()
            ScriptErrors = errors
        })

/// Checks the page `html` (written to a temporary file, opened from disk with http(s) blocked):
/// whether it is styled, which requests failed, which external addresses it tried, how many
/// Plotly charts rendered (see `PageCheck`). A page that links files relative to its own folder
/// must be checked with `checkPageFile` in place instead.
let checkPage (html: string) : PageCheck = withTempPage html checkPageFile

/// Opens the page file `path` and writes a PNG screenshot of it to `png` (the whole page when
/// `fullPage`, else the 1280x900 viewport), after its load event and a 1 s pause for scripts.
let screenshotFile (path: string) (png: string) (fullPage: bool) =
    withSession (fun s ->
        s.Navigate(fileUrl path)
        Thread.Sleep 1000
        File.WriteAllBytes(png, s.Screenshot fullPage))
