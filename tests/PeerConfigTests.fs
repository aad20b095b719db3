/// The configs that say they are a peer's (CleanRL, PureJaxRL) are checked key by key against
/// `tests/data/peers/keys.tsv`, a table of the peers' defaults read from their sources; with the
/// peers' repositories at hand (RL_CLEANRL_SRC, RL_PUREJAXRL_SRC: a clone or a mirror's git
/// directory) the table itself is checked against the sources at HEAD.
module Rl.Tests.PeerConfigTests

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text.RegularExpressions
open Expecto
open Rl

/// One row of keys.tsv (see the file's header for the kinds).
type Row =
    {
        Line: int
        Peer: string
        Kind: string
        Name: string
        PeerValue: string
        Config: string
        Key: string
        Value: string
        Note: string
    }

    /// The repository of the peer (`cleanrl`, `purejaxrl`) and the file's path inside it.
    member r.Repo = r.Peer.Split(':').[0]
    member r.Path = r.Peer.Split(':').[1]

let private tablePath =
    lazy (Path.Combine(TestPaths.repoRoot.Value, "tests", "data", "peers", "keys.tsv"))

let private kinds = set [ "arg"; "maps"; "code"; "override"; "none" ]

let private rows =
    lazy
        (File.ReadAllLines tablePath.Value
         |> Array.indexed
         |> Array.filter (fun (_, l) -> l.Trim() <> "" && not (l.StartsWith "#"))
         |> Array.map (fun (i, l) ->
             let c = l.Split '\t'

             if c.Length <> 8 then
                 failwith $"keys.tsv line {i + 1}: {c.Length} tab-separated columns, 8 expected"

             {
                 Line = i + 1
                 Peer = c.[0]
                 Kind = c.[1]
                 Name = c.[2]
                 PeerValue = c.[3]
                 Config = c.[4]
                 Key = c.[5]
                 Value = c.[6]
                 Note = c.[7]
             }))

/// The config file's keys as the config module writes them, and a function that writes a value
/// text of one key the same way (so that `2.5e-4` and `0.00025` compare equal).
let private configView (file: string) : Map<string, string> * (string -> string -> string) =
    let view (fields: Field<'C> list) (defaults: 'C) =
        let cfg = Config.load fields defaults (TestPaths.config file)
        let pairs (c: 'C) = Config.pairs fields c |> Map.ofList

        let format key value =
            (pairs (Config.set "keys.tsv" fields key value defaults)).[key]

        pairs cfg, format

    match file with
    | n when n.StartsWith "ppo-" -> view Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults
    | n when n.StartsWith "dqn-" -> view Dqn.DqnConfig.fields Dqn.DqnConfig.defaults
    | n -> failwith $"keys.tsv names {n}: only ppo- and dqn- configs have peers"

/// A peer's default as a comparable value: numbers as numbers, Python's True/False as booleans,
/// quotes removed.
let private normalise (text: string) =
    let t = text.Trim().Trim('"')

    match t with
    | "True" -> "true"
    | "False" -> "false"
    | _ ->
        match Double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, x -> x.ToString("R", CultureInfo.InvariantCulture)
        | _ -> t

/// The peer's file at HEAD, when its repository is given by RL_CLEANRL_SRC / RL_PUREJAXRL_SRC.
let private peerSource (repo: string) (path: string) : string option =
    match Environment.GetEnvironmentVariable $"RL_{repo.ToUpperInvariant()}_SRC" with
    | null
    | "" -> None
    | dir ->
        let psi = ProcessStartInfo("git", [ "-C"; dir; "show"; $"HEAD:{path}" ])
        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        use p = Process.Start psi
        let text = p.StandardOutput.ReadToEnd()
        p.WaitForExit()

        if p.ExitCode <> 0 then
            failwith $"RL_{repo.ToUpperInvariant()}_SRC={dir}: git show HEAD:{path} failed"

        Some text

/// The arguments and their default texts: CleanRL's `class Args` fields, PureJaxRL's `config` dict.
let private peerArgs (repo: string) (source: string) : (string * string) list =
    let lines = source.Split '\n' |> Array.map (fun l -> l.TrimEnd '\r')

    let block (opens: string -> bool) (closes: string -> bool) =
        let start = lines |> Array.findIndex opens
        lines.[start + 1 ..] |> Array.takeWhile (closes >> not)

    let pick (pattern: string) (ls: string[]) =
        [
            for l in ls do
                let m = Regex.Match(l, pattern)

                if m.Success then
                    m.Groups.[1].Value, m.Groups.[2].Value.Trim()
        ]

    match repo with
    | "cleanrl" ->
        block (fun l -> l.StartsWith "class Args") (fun l -> l <> "" && not (Char.IsWhiteSpace l.[0]))
        |> pick @"^    (\w+): [^=]+= (.+)$"
    | "purejaxrl" ->
        block (fun l -> l.Trim() = "config = {") (fun l -> l.Trim() = "}")
        |> pick @"^\s+""(\w+)"": (.+),$"
    | r -> failwith $"keys.tsv: unknown peer repository {r}"

/// The comment lines at the top of a config file.
let private header (file: string) =
    File.ReadLines(TestPaths.config file)
    |> Seq.takeWhile (fun l -> l.StartsWith "#")
    |> String.concat "\n"

[<Tests>]
let tests =
    testList
        "peer configs"
        [
            test "every row of keys.tsv is well formed" {
                Expect.isGreaterThan rows.Value.Length 100 "the table's rows"

                for r in rows.Value do
                    let at = $"keys.tsv line {r.Line}"
                    Expect.isTrue (kinds.Contains r.Kind) $"{at}: kind {r.Kind} is one of {kinds}"
                    Expect.isTrue (r.Peer.Contains ":") $"{at}: peer is repo:path"

                    if r.Kind = "none" then
                        Expect.equal (r.Config, r.Key, r.Value) ("-", "-", "-") $"{at}: a none row names no key"
                    else
                        Expect.notEqual r.Key "-" $"{at}: a {r.Kind} row names our key"

                    if r.Kind <> "arg" && r.Kind <> "code" then
                        Expect.isNotEmpty (r.Note.Trim()) $"{at}: a {r.Kind} row says why in its note"
            }

            test "each config holds the value its peer's row gives, key by key" {
                let byConfig =
                    rows.Value
                    |> Array.filter (fun r -> r.Config <> "-")
                    |> Array.groupBy (fun r -> r.Config)

                Expect.isGreaterThanOrEqual byConfig.Length 3 "ppo-cartpole, ppo-pendulum-cleanrl, dqn-cartpole"

                for file, rs in byConfig do
                    let pairs, format = configView file

                    for r in rs do
                        let at = $"keys.tsv line {r.Line} ({r.Peer} {r.Name})"

                        match pairs.TryFind r.Key with
                        | None -> failtest $"{at}: {file} has no key {r.Key}"
                        | Some actual -> Expect.equal actual (format r.Key r.Value) $"{at}: {file} {r.Key}"
            }

            test "an arg row's value is the peer's default" {
                for r in rows.Value |> Array.filter (fun r -> r.Kind = "arg") do
                    Expect.equal
                        (normalise r.Value)
                        (normalise r.PeerValue)
                        $"keys.tsv line {r.Line}: {r.Config} {r.Key} = {r.Value}, {r.Peer} {r.Name} = {r.PeerValue}; a different value is an override row"
            }

            test "a config's header names every key it overrides" {
                for r in rows.Value |> Array.filter (fun r -> r.Kind = "override") do
                    Expect.stringContains
                        (header r.Config)
                        r.Key
                        $"keys.tsv line {r.Line}: {r.Config} changes {r.Peer}'s {r.Name}; its header must say so"
            }

            test "the table agrees with the peers' sources at HEAD" {
                let files = rows.Value |> Array.groupBy (fun r -> r.Repo, r.Path)
                let mutable checkedFiles = 0

                for (repo, path), rs in files do
                    match peerSource repo path with
                    | None -> ()
                    | Some source ->
                        checkedFiles <- checkedFiles + 1
                        let args = peerArgs repo source
                        let argRows = rs |> Array.filter (fun r -> r.Kind <> "code")

                        Expect.sequenceEqual
                            (argRows |> Array.map (fun r -> r.Name) |> Array.sort)
                            (args |> List.map fst |> List.sort)
                            $"{repo}:{path}: every argument has one row"

                        let defaults = Map.ofList args

                        for r in argRows do
                            Expect.equal r.PeerValue defaults.[r.Name] $"keys.tsv line {r.Line}: {repo}:{path} {r.Name}"

                        for r in rs |> Array.filter (fun r -> r.Kind = "code") do
                            Expect.stringContains source r.Name $"keys.tsv line {r.Line}: {repo}:{path} has this code"

                if checkedFiles = 0 then
                    skiptest
                        "peer sources not given: set RL_CLEANRL_SRC and RL_PUREJAXRL_SRC to clones of vwxyzjn/cleanrl and luchris429/purejaxrl"
            }
        ]
