/// Typed, algorithm-agnostic configuration: each algorithm keeps its hyperparameters in a plain
/// F# record with defaults and describes its keys with a list of `Field`s; this module loads a
/// YAML mapping into the record, applies `key=value` overrides, reports every bad key or value
/// with the key, the value and what is allowed, and writes the resolved record back as YAML with
/// each field's documentation as a comment. Nothing here touches the disk except `load`, which
/// only reads, so a bad config is refused before a run writes anything. The `Field` constructors
/// are in `Fields.fs`.
namespace Rl

open System
open System.Globalization
open System.IO
open System.Text
open System.Text.RegularExpressions
open YamlDotNet.Core
open YamlDotNet.RepresentationModel

/// Raised for a configuration that cannot be used: a YAML syntax error, an unknown key, a value
/// that does not parse or is out of range, or a failed cross-field check.
/// `Source` is where it came from (a file path, `override 'k=v'`, `yaml` or `check`); `Key` and
/// `Value` are the offending key and its text (empty for a syntax error); `Allowed` says what is
/// accepted; `Problem` says what is wrong. The message is `Source: Problem` when there is neither
/// a key nor `Allowed` (a syntax error), else it names the key (also an empty one, a YAML `: v`),
/// the value and what is allowed.
exception ConfigError of Source: string * Key: string * Value: string * Allowed: string * Problem: string with
    override this.Message =
        let where =
            if String.IsNullOrEmpty this.Source then
                ""
            else
                this.Source + ": "

        if String.IsNullOrEmpty this.Key && String.IsNullOrEmpty this.Allowed then
            where + this.Problem
        else
            let allowed =
                if String.IsNullOrEmpty this.Allowed then
                    ""
                else
                    "; allowed: " + this.Allowed

            sprintf "%sconfig key '%s' = '%s': %s%s" where this.Key this.Value this.Problem allowed

/// One key of a configuration record `'C`: its YAML name, its documentation, what it accepts, how
/// to read it from the record as text, and how to set it from text (an `Error` says what is wrong
/// with the text; `Config` adds the key, the value and `Allowed` to the message).
type Field<'C> =
    {
        /// The YAML key and override name, e.g. `learning_rate`.
        Key: string
        /// One or more lines of documentation (units, meaning); written as comments by `Config.toYaml`.
        Doc: string
        /// What the field accepts, in words, e.g. `float > 0` or `one of: cpu, cuda`.
        Allowed: string
        /// The value in the record as text that `Set` accepts back (round trip).
        Get: 'C -> string
        /// Parses and checks the text and returns the updated record, or the problem.
        Set: 'C -> string -> Result<'C, string>
        /// True when `Get` returns a YAML flow sequence (`[1, 2]`) written without quotes.
        IsList: bool
        /// The .NET type of the value (`float`, `int`, `int64`, `bool`, `string`, `int list`,
        /// `float list`, `float option`), e.g. for typed settings objects (`Rl.CSharp`).
        Type: Type
    }

/// The settings every training run shares, whatever the algorithm: config keys `beta_1`,
/// `beta_2`, `adam_eps` (the optimizer's), `seed`, `num_seeds`, `device`, `threads`
/// (`Field.runSettings` declares them once). Each algorithm's config holds one in its `Run` field:
/// read `cfg.Run.Seed`, set `{ cfg with Run.Seed = 3L }`.
type RunSettings =
    {
        /// Adam's beta1 (RMSprop ignores it), beta2 (RMSprop's smoothing) and epsilon.
        Beta1: float
        Beta2: float
        AdamEps: float
        /// Base seed; seeds Seed .. Seed + NumSeeds - 1 are trained.
        Seed: int64
        /// Independent seeds trained at once (one batched computation).
        NumSeeds: int
        /// "cpu", "cuda", "cuda:N" or "auto".
        Device: string
        /// libtorch intra-op threads (0 = leave libtorch's default).
        Threads: int
    }

    /// The seed values trained: Seed .. Seed + NumSeeds - 1.
    member s.Seeds = Array.init s.NumSeeds (fun k -> s.Seed + int64 k)

    /// Adam's usual constants, seed 0, one seed, the CPU, one thread (one thread is the fastest
    /// for this project's small networks on two cores; see README "Benchmarks").
    static member Defaults =
        {
            Beta1 = 0.9
            Beta2 = 0.999
            AdamEps = 1e-8
            Seed = 0L
            NumSeeds = 1
            Device = "cpu"
            Threads = 1
        }

/// Ranges for numeric fields: a pair of the text shown to users (bounds in the invariant
/// culture) and the check. The bounds fix the numeric type, so `Allow.gt 0.0` is for floats and
/// `Allow.ge 1` for ints.
module Allow =
    /// Any value.
    let any<'T> : string * ('T -> bool) = "any", (fun _ -> true)

    /// Strictly greater than `lo`.
    let inline gt lo = "> " + string lo, (fun x -> x > lo)

    /// Greater than or equal to `lo`.
    let inline ge lo = ">= " + string lo, (fun x -> x >= lo)

    /// In the closed interval `[lo, hi]`.
    let inline between lo hi =
        sprintf "in [%s, %s]" (string lo) (string hi), (fun x -> x >= lo && x <= hi)

    /// In the half-open interval `(lo, hi]`, e.g. a discount factor `Allow.openClosed 0.0 1.0`.
    let inline openClosed lo hi =
        sprintf "in (%s, %s]" (string lo) (string hi), (fun x -> x > lo && x <= hi)

    /// In the open interval `(lo, hi)`.
    let inline within lo hi =
        sprintf "in (%s, %s)" (string lo) (string hi), (fun x -> x > lo && x < hi)

/// Text forms of values as this module writes and reads them (invariant culture, YAML 1.2 core
/// schema spellings plus YAML 1.1 conveniences such as `100_000`).
module ConfigText =
    let private inv = CultureInfo.InvariantCulture

    let private numberWithUnderscores =
        Regex(@"^[+-]?[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?\z", RegexOptions.Compiled)

    let private stripUnderscores (s: string) =
        if s.Contains '_' && numberWithUnderscores.IsMatch s then
            s.Replace("_", "")
        else
            s

    /// Float as round-trip text: shortest exact form, `e` for exponents, always with `.` or `e`
    /// so it reads as a float (`3.0`, `0.0003`, `1e-05`), and `.inf`, `-.inf`, `.nan`.
    let formatFloat (x: float) =
        if Double.IsNaN x then
            ".nan"
        elif Double.IsPositiveInfinity x then
            ".inf"
        elif Double.IsNegativeInfinity x then
            "-.inf"
        else
            let s = x.ToString("R", inv).Replace("E", "e")

            if s.Contains '.' || s.Contains 'e' then s else s + ".0"

    /// Parses a float: decimal or exponent notation (`3e-4`, `1_000.5`), `.inf`/`inf`,
    /// `-.inf`, `.nan`/`nan`. A finite literal too large for a double is an error.
    let parseFloat (text: string) : Result<float, string> =
        let s = text.Trim()

        match s.ToLowerInvariant() with
        | ""
        | "~"
        | "null" -> Error "missing value"
        | ".inf"
        | "+.inf"
        | "inf"
        | "+inf"
        | "infinity" -> Ok Double.PositiveInfinity
        | "-.inf"
        | "-inf"
        | "-infinity" -> Ok Double.NegativeInfinity
        | ".nan"
        | "nan" -> Ok Double.NaN
        | _ ->
            match Double.TryParse(stripUnderscores s, NumberStyles.Float, inv) with
            | true, x when Double.IsInfinity x -> Error "too large for a float"
            | true, x when not (Double.IsNaN x) -> Ok x
            | _ -> Error "not a number"

    /// Parses a whole number: `100000`, `100_000`, `+5`, or exponent/decimal notation whose value
    /// is whole (`1e5`, `2e6`, `2.5e3`). `1.5` is an error ("not a whole number").
    let parseInt64 (text: string) : Result<int64, string> =
        let s = stripUnderscores (text.Trim())

        match s.ToLowerInvariant() with
        | ""
        | "~"
        | "null" -> Error "missing value"
        | _ ->
            match Int64.TryParse(s, NumberStyles.AllowLeadingSign, inv) with
            | true, n -> Ok n
            | _ ->
                match Decimal.TryParse(s, NumberStyles.Float, inv) with
                | true, d when d <> Decimal.Truncate d -> Error "not a whole number"
                | true, d when d >= decimal Int64.MinValue && d <= decimal Int64.MaxValue -> Ok(int64 d)
                | _ ->
                    match Double.TryParse(s, NumberStyles.Float, inv) with
                    | true, x when not (Double.IsNaN x) -> Error "too large for a 64-bit integer"
                    | _ -> Error "not a whole number"

    /// Parses a 32-bit whole number (see `parseInt64`).
    let parseInt (text: string) : Result<int, string> =
        match parseInt64 text with
        | Ok n when n >= int64 Int32.MinValue && n <= int64 Int32.MaxValue -> Ok(int n)
        | Ok _ -> Error "too large for a 32-bit integer"
        | Error e -> Error e

    /// Parses `true`/`false` (also `yes`/`no`, `on`/`off`), case-insensitive.
    let parseBool (text: string) : Result<bool, string> =
        match text.Trim().ToLowerInvariant() with
        | "true"
        | "yes"
        | "on" -> Ok true
        | "false"
        | "no"
        | "off" -> Ok false
        | ""
        | "~"
        | "null" -> Error "missing value"
        | _ -> Error "not a boolean"

    /// Splits a list written as `[a, b, c]` or `a,b,c` into trimmed items; `[]` is empty.
    let splitList (text: string) : string list =
        let s = text.Trim()

        let inner =
            if s.StartsWith "[" && s.EndsWith "]" then
                s.Substring(1, s.Length - 2)
            else
                s

        if String.IsNullOrWhiteSpace inner then
            []
        else
            inner.Split ',' |> Array.map (fun x -> x.Trim()) |> List.ofArray

    /// Formats items as a YAML flow sequence `[a, b]`.
    let formatList (items: string seq) = "[" + String.Join(", ", items) + "]"

    let private plain =
        Regex(@"^-?[A-Za-z0-9_.+/][A-Za-z0-9_.+\-/]*\z", RegexOptions.Compiled)

    /// A string as a YAML scalar: plain when it only has letters, digits and `_ . + - /`
    /// (and does not start with `-` alone), else double-quoted with escapes for `\`, `"` and
    /// control characters.
    let quote (s: string) =
        if plain.IsMatch s then
            s
        else
            let sb = StringBuilder("\"")

            for c in s do
                match c with
                | '\\' -> sb.Append "\\\\" |> ignore
                | '"' -> sb.Append "\\\"" |> ignore
                | '\n' -> sb.Append "\\n" |> ignore
                | '\t' -> sb.Append "\\t" |> ignore
                | '\r' -> sb.Append "\\r" |> ignore
                | c when Char.IsControl c || c = '\u2028' || c = '\u2029' || c = '\uFEFF' ->
                    sb.AppendFormat("\\u{0:X4}", int c) |> ignore
                | c -> sb.Append c |> ignore

            sb.Append('"').ToString()

    /// Edit distance (insertions, deletions, substitutions) between two strings.
    let levenshtein (a: string) (b: string) =
        let d = Array2D.zeroCreate (a.Length + 1) (b.Length + 1)

        for i in 0 .. a.Length do
            d[i, 0] <- i

        for j in 0 .. b.Length do
            d[0, j] <- j

        for i in 1 .. a.Length do
            for j in 1 .. b.Length do
                let cost = if a[i - 1] = b[j - 1] then 0 else 1
                d[i, j] <- min (min (d[i - 1, j] + 1) (d[i, j - 1] + 1)) (d[i - 1, j - 1] + cost)

        d[a.Length, b.Length]

    /// The candidate closest to `word` when it is plausibly a typo of it (edit distance at most
    /// max(2, length/3) after lower-casing and mapping `-` to `_`, or one contains the other).
    let closest (candidates: string seq) (word: string) : string option =
        let norm (s: string) = s.ToLowerInvariant().Replace('-', '_')
        let w = norm word

        candidates
        |> Seq.map (fun c ->
            let n = norm c
            let dist = levenshtein w n

            let ok =
                dist <= max 2 (max w.Length n.Length / 3)
                || (w.Length >= 3 && (n.Contains w || w.Contains n))

            c, dist, ok)
        |> Seq.filter (fun (_, _, ok) -> ok)
        |> Seq.sortBy (fun (_, d, _) -> d)
        |> Seq.tryHead
        |> Option.map (fun (c, _, _) -> c)

/// Loading, overriding, checking and writing configuration records described by `Field` lists.
module Config =
    let private fail source key value allowed problem =
        raise (ConfigError(source, key, value, allowed, problem))

    let private validKeys (fields: Field<'C> list) =
        String.Join(", ", fields |> List.map (fun f -> f.Key))

    let private checkFields (fields: Field<'C> list) =
        match fields |> List.countBy (fun f -> f.Key) |> List.filter (fun (_, n) -> n > 1) with
        | [] -> ()
        | dups ->
            invalidArg
                "fields"
                (sprintf "duplicate config keys in the field list: %s" (String.Join(", ", dups |> List.map fst)))

    /// Sets one key from its text; raises `ConfigError` (naming `source`, the key, the value and
    /// what is allowed) for an unknown key (suggesting the closest one) or a bad value.
    let set (source: string) (fields: Field<'C> list) (key: string) (value: string) (cfg: 'C) : 'C =
        match fields |> List.tryFind (fun f -> f.Key = key) with
        | None ->
            let problem =
                match ConfigText.closest (fields |> List.map (fun f -> f.Key)) key with
                | Some k -> sprintf "unknown key (did you mean '%s'?)" k
                | None -> "unknown key"

            fail source key value ("one of the keys " + validKeys fields) problem
        | Some f ->
            match f.Set cfg value with
            | Ok c -> c
            | Error problem -> fail source key value f.Allowed problem

    /// A YAML node as text for an error message: YamlDotNet's rendering cut to 80 characters (an
    /// alias can make a node contain itself, `a: &x [*x]`, which renders as thousands of brackets).
    let private nodeText (node: YamlNode) =
        let s = string node
        if s.Length <= 80 then s else s.Substring(0, 80) + "..."

    /// The start of the last YAML event that parses in `yaml`: where YamlDotNet stopped when it
    /// fails without saying where (it raises `InvalidOperationException` for a flow list left
    /// open before more lines, `a: [1` then `b: 2`, and `ArgumentException` for an empty tag `!<>`).
    let private lastParsedMark (yaml: string) =
        let parser = Parser(new StringReader(yaml))
        let mutable mark = Mark.Empty

        try
            while parser.MoveNext() do
                mark <- parser.Current.Start
        with _ ->
            ()

        mark

    let private scalarText (source: string) (key: string) (node: YamlNode) =
        match node with
        | :? YamlScalarNode as s -> if isNull s.Value then "" else s.Value
        | :? YamlSequenceNode as q ->
            let items =
                q.Children
                |> Seq.map (fun n ->
                    match n with
                    | :? YamlScalarNode as s -> s.Value
                    | _ ->
                        fail
                            source
                            key
                            (nodeText n)
                            "a list of plain values"
                            "nested lists or mappings are not supported")

            ConfigText.formatList items
        | _ -> fail source key (nodeText node) "a plain value or a list" "nested mappings are not supported"

    /// Reads `yaml` (a mapping of keys to plain values or flow/block lists; comments allowed; an
    /// empty document gives `defaults`) into a record starting from `defaults`. `source` names
    /// the text in errors (a file path, or `yaml`). Raises `ConfigError` for a syntax error (with
    /// line and column), a duplicate key, a non-mapping document, an unknown key or a bad value.
    let parseFrom (source: string) (fields: Field<'C> list) (defaults: 'C) (yaml: string) : 'C =
        checkFields fields
        let stream = YamlStream()

        try
            stream.Load(new StringReader(yaml))
        with
        | :? YamlException as e ->
            let problem =
                let inner =
                    match e.InnerException with
                    | null -> e.Message
                    | i -> e.Message + " " + i.Message

                if inner.Contains "Duplicate key" || inner.Contains "same key" then
                    "duplicate key in the YAML mapping"
                else
                    inner

            fail source "" "" "" (sprintf "YAML error at line %d, column %d: %s" e.Start.Line e.Start.Column problem)
        | e ->
            // YamlDotNet raises these without a position: name where parsing stopped
            let at = lastParsedMark yaml

            let problem =
                match e with
                | :? ArgumentException as a when a.Message.Contains "same key" -> "duplicate key in the YAML mapping"
                | :? ArgumentException as a -> a.Message
                | _ -> "the text from here on does not parse (an unterminated list, mapping or quote?)"

            fail source "" "" "" (sprintf "YAML error at line %d, column %d: %s" at.Line at.Column problem)

        match List.ofSeq stream.Documents with
        | [] -> defaults
        | [ doc ] ->
            match doc.RootNode with
            | :? YamlMappingNode as m ->
                m.Children
                |> Seq.fold
                    (fun cfg kv ->
                        let key =
                            match kv.Key with
                            | :? YamlScalarNode as k -> k.Value
                            | k ->
                                fail
                                    source
                                    (nodeText k)
                                    ""
                                    ("one of the keys " + validKeys fields)
                                    "keys must be plain text"

                        set source fields key (scalarText source key kv.Value) cfg)
                    defaults
            | :? YamlScalarNode as s when String.IsNullOrEmpty s.Value -> defaults
            | _ -> fail source "" "" "" "the YAML document must be a mapping of keys to values"
        | _ -> fail source "" "" "" "expected one YAML document, found several (---)"

    /// `parseFrom "yaml"`: reads a YAML mapping into a record; see `parseFrom`.
    let parse (fields: Field<'C> list) (defaults: 'C) (yaml: string) : 'C = parseFrom "yaml" fields defaults yaml

    /// The first line of a sealed config (see `seal`).
    [<Literal>]
    let SealedMarker =
        "# sealed: the last line is a SHA-256 checksum of this file; to edit the file by hand, delete this line and the last"

    /// The prefix of a sealed config's last line.
    [<Literal>]
    let ChecksumPrefix = "# sha256: "

    let private sha256 (text: string) =
        Convert.ToHexString(Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes text)).ToLowerInvariant()

    /// A config text as run folders keep it (`config.yaml`): `SealedMarker` first, then `text`,
    /// then `# sha256: <hex>` of everything before that line, so that `load` refuses a damaged
    /// or truncated file instead of reading other values than the run was trained with.
    let seal (text: string) : string =
        let body = SealedMarker + "\n" + text + (if text.EndsWith "\n" then "" else "\n")
        body + ChecksumPrefix + sha256 body + "\n"

    /// Checks a sealed config text (`seal`); unsealed texts (config files written by hand, run
    /// folders from before sealing) pass. Raises `ConfigError` naming `source` for a sealed text
    /// whose checksum line is missing (truncated) or does not match (damaged or edited).
    let checkSeal (source: string) (text: string) =
        let text = text.Replace("\r\n", "\n")

        let sealedStart =
            text.Split('\n')
            |> Array.truncate 3
            |> Array.exists (fun l -> l.StartsWith "# sealed:")

        if sealedStart then
            let trimmed = text.TrimEnd '\n'
            let cut = trimmed.LastIndexOf '\n'
            let last = if cut < 0 then trimmed else trimmed.Substring(cut + 1)

            if not (last.StartsWith ChecksumPrefix) then
                fail
                    source
                    ""
                    ""
                    ""
                    "the file is sealed but its checksum line is missing: it was truncated or damaged (give resume= the key=value overrides you need instead of editing the file)"

            let body = trimmed.Substring(0, cut + 1)

            if last.Substring(ChecksumPrefix.Length).Trim() <> sha256 body then
                fail
                    source
                    ""
                    ""
                    ""
                    "the file does not match its checksum line: it was damaged or edited by hand (change keys with key=value overrides on resume=, or delete the first and last lines to accept a hand edit)"

    /// Reads the YAML file at `path` into a record (see `parseFrom`); errors name the file.
    /// Raises `ConfigError` also when the file does not exist, and for a sealed file that was
    /// damaged (`checkSeal`).
    let load (fields: Field<'C> list) (defaults: 'C) (path: string) : 'C =
        if not (File.Exists path) then
            fail path "" "" "" "config file not found"

        let text = File.ReadAllText path
        checkSeal path text
        parseFrom path fields defaults text

    /// Splits one `key=value` override at the first `=` (the value may contain `=`); the key is
    /// trimmed. Raises `ConfigError` for text without `=` or with an empty key.
    let parseOverride (text: string) : string * string =
        match text.IndexOf '=' with
        | i when i > 0 && not (String.IsNullOrWhiteSpace(text.Substring(0, i))) ->
            text.Substring(0, i).Trim(), text.Substring(i + 1).Trim()
        | _ -> fail (sprintf "override '%s'" text) "" "" "" "an override must look like key=value"

    /// Applies `key=value` overrides in order (a later one wins). Values are plain text as typed
    /// (lists as `a,b` or `[a,b]`). Raises `ConfigError` naming the override for a malformed one,
    /// an unknown key or a bad value.
    let withOverrides (fields: Field<'C> list) (overrides: string list) (cfg: 'C) : 'C =
        checkFields fields

        overrides
        |> List.fold
            (fun c o ->
                let k, v = parseOverride o
                set (sprintf "override '%s'" o) fields k v c)
            cfg

    /// Separates command-line arguments into `key=value` overrides and the rest: an argument is an
    /// override when it contains `=` and does not start with `-`. Raises `ConfigError` for a
    /// malformed override (empty key, or whitespace inside the key).
    let splitOverrides (args: string list) : string list * string list =
        let isOverride (a: string) =
            a.Contains '=' && not (a.StartsWith "-")

        for a in args |> List.filter isOverride do
            let k, _ = parseOverride a

            if k |> Seq.exists Char.IsWhiteSpace then
                fail (sprintf "override '%s'" a) "" "" "" "an override key cannot contain spaces"

        List.partition isOverride args

    /// The record as `(key, value text)` pairs in field order (for summaries and logs).
    let pairs (fields: Field<'C> list) (cfg: 'C) : (string * string) list =
        fields |> List.map (fun f -> f.Key, f.Get cfg)

    /// Writes the record as YAML: for each field its documentation and allowed values as `#`
    /// comments, then `key: value` (strings quoted when needed, lists as `[a, b]`). The text
    /// parses back to the same record with `parse fields anyDefaults`.
    let toYaml (fields: Field<'C> list) (cfg: 'C) : string =
        checkFields fields
        let sb = StringBuilder()

        for f in fields do
            for line in f.Doc.Replace("\r\n", "\n").Split '\n' do
                if not (String.IsNullOrWhiteSpace line) then
                    sb.Append("# ").Append(line.TrimEnd()).Append('\n') |> ignore

            sb.Append("# allowed: ").Append(f.Allowed).Append('\n') |> ignore
            let v = f.Get cfg

            sb.Append(f.Key).Append(": ").Append(if f.IsList then v else ConfigText.quote v).Append("\n\n")
            |> ignore

        sb.ToString()

    /// A cross-field check for an algorithm's validation function: raises `ConfigError` for `key`
    /// with `value` and the `allowed` description when `ok` is false, e.g.
    /// `Config.check (c.MinibatchSize <= c.NumSteps * c.NumEnvs) "minibatch_size" (string c.MinibatchSize) "<= num_steps * num_envs"`.
    let check (ok: bool) (key: string) (value: string) (allowed: string) : unit =
        if not ok then
            fail "check" key value allowed "inconsistent with other settings"

    /// Refuses `vectorization_mode: sync` with a CUDA device (the host-stepped envs would copy
    /// actions and results between host and GPU every step); raises `ConfigError`.
    let checkVectorization (mode: string) (device: string) =
        check
            (mode <> "sync" || not (device.Trim().ToLowerInvariant().StartsWith "cuda"))
            "vectorization_mode"
            mode
            "vector when device is cuda (sync steps the envs on the host and would copy every step)"

    /// Refuses an `env_id` whose actions are not discrete (for DQN, REINFORCE); raises `ConfigError`.
    let checkDiscreteEnv (envId: string) =
        let discrete =
            match (Envs.make envId).ActionSpace with
            | Space.Discrete _ -> true
            | _ -> false

        check
            discrete
            "env_id"
            envId
            "an environment with discrete actions (CartPole-v1, MountainCar-v0, Acrobot-v1, FrozenLake-v1)"

    /// Everything a script does before a run: defaults, then the YAML file at `path` if given,
    /// then `overrides`, then the algorithm's cross-field `validate` (which raises through
    /// `check`). Raises `ConfigError` on the first problem; touches nothing on disk but reading.
    let resolve
        (fields: Field<'C> list)
        (defaults: 'C)
        (validate: 'C -> unit)
        (path: string option)
        (overrides: string list)
        : 'C =
        let fromFile =
            match path with
            | Some p -> load fields defaults p
            | None -> defaults

        let cfg = withOverrides fields overrides fromFile
        validate cfg
        cfg
