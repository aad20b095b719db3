/// The C# face of the library (`using Rl.CSharp;`): settings objects with properties, training
/// entry points taking `IProgress<TrainProgress>` and a `CancellationToken`, environments with
/// arrays and nullable seeds, custom environments written in C#, GAE and the PPO loss with named
/// parameters. No F# list, option, function or union type appears in its public signatures (a test
/// checks by reflection). Written in F# inside `Rl.dll`, so one package serves F# and C#.
namespace Rl.CSharp

open System
open System.Globalization
open System.Reflection
open Rl

/// Base of the settings objects (`PpoSettings`, `DqnSettings`, ...): one public read-write
/// property per config key, named as the key in PascalCase (`total_timesteps` ->
/// `TotalTimesteps`, `beta_1` -> `Beta1`), initialised to the library's defaults. `ToConfig`
/// converts to the F# config record and validates; `FromYaml` reads the YAML files of
/// `scripts/configs`; `ToYaml` writes one.
[<AbstractClass; AllowNullLiteral>]
type Settings<'C> internal (fields: Field<'C> list, defaults: 'C, validate: 'C -> unit, kind: string) =
    static let norm (s: string) = s.Replace("_", "").ToLowerInvariant()

    static let formatValue (value: obj) : string =
        match value with
        | null -> "null"
        | :? float as x -> ConfigText.formatFloat x
        | :? int as n -> n.ToString CultureInfo.InvariantCulture
        | :? int64 as n -> n.ToString CultureInfo.InvariantCulture
        | :? bool as b -> if b then "true" else "false"
        | :? string as s -> s
        | :? (int[]) as xs -> ConfigText.formatList (xs |> Array.map (fun n -> n.ToString CultureInfo.InvariantCulture))
        | :? (float[]) as xs -> ConfigText.formatList (xs |> Array.map ConfigText.formatFloat)
        | other -> string other

    static let parseValue (t: Type) (text: string) : obj =
        let fail () =
            raise (FormatException $"cannot read '{text}' as {t.Name}")

        let ok r =
            match r with
            | Ok v -> v
            | Error _ -> fail ()

        if t = typeof<float> then
            box (ok (ConfigText.parseFloat text))
        elif t = typeof<int> then
            box (ok (ConfigText.parseInt text))
        elif t = typeof<int64> then
            box (ok (ConfigText.parseInt64 text))
        elif t = typeof<bool> then
            box (ok (ConfigText.parseBool text))
        elif t = typeof<string> then
            box text
        elif t = typeof<int[]> then
            box (
                ConfigText.splitList text
                |> List.map (ConfigText.parseInt >> ok)
                |> Array.ofList
            )
        elif t = typeof<float[]> then
            box (
                ConfigText.splitList text
                |> List.map (ConfigText.parseFloat >> ok)
                |> Array.ofList
            )
        elif t = typeof<Nullable<float>> then
            match text.Trim().ToLowerInvariant() with
            | ""
            | "~"
            | "null"
            | "none" -> box (Nullable<float>())
            | _ -> box (Nullable<float>(ok (ConfigText.parseFloat text)))
        else
            fail ()

    /// The property of each config key, in the fields' order.
    member private this.Bound =
        let props =
            this.GetType().GetProperties(BindingFlags.Public ||| BindingFlags.Instance)
            |> Array.filter (fun p -> p.CanRead && p.CanWrite)

        [
            for f in fields ->
                match props |> Array.filter (fun p -> norm p.Name = norm f.Key) with
                | [| p |] -> f, p
                | _ -> invalidOp $"{this.GetType().Name}: no property for the config key '{f.Key}'"
        ]

    /// The config keys, in YAML order, with the property that holds each.
    member this.Keys: Collections.Generic.IReadOnlyList<string> =
        [| for f, _ in this.Bound -> f.Key |] :> _

    /// The name of the property holding config key `key` (e.g. `TotalTimesteps` for
    /// `total_timesteps`). Raises `ArgumentException` for an unknown key.
    member this.PropertyName(key: string) : string =
        match this.Bound |> List.tryFind (fun (f, _) -> f.Key = key) with
        | Some(_, p) -> p.Name
        | None -> invalidArg "key" $"{kind}: unknown config key '{key}'"

    /// The F# config record: the defaults, then every property, then the cross-field checks.
    /// Raises `ArgumentException` (its `ParamName` is the property) naming the property, its value
    /// and what is allowed, on the first invalid value. Writes nothing.
    member this.ToConfig() : 'C =
        let bound = this.Bound

        let propertyOf (key: string) =
            bound
            |> List.tryFind (fun (f, _) -> f.Key = key)
            |> Option.map (fun (_, p) -> p.Name)
            |> Option.defaultValue key

        let refuse (key: string) (value: string) (allowed: string) (problem: string) =
            let name = propertyOf key

            raise (
                ArgumentException($"{kind}.{name} = {value}: {problem}; allowed: {allowed} (config key '{key}')", name)
            )

        let mutable cfg = defaults

        for f, p in bound do
            let text = formatValue (p.GetValue this)

            match f.Set cfg text with
            | Ok c -> cfg <- c
            | Error problem -> refuse f.Key text f.Allowed problem

        try
            validate cfg
        with ConfigError(_, key, value, allowed, problem) ->
            refuse key value allowed problem

        cfg

    /// Checks every property (see `ToConfig`); raises `ArgumentException` on the first invalid one.
    member this.Validate() : unit = this.ToConfig() |> ignore

    /// The settings as YAML, the format of `scripts/configs` (validated first, see `ToConfig`).
    member this.ToYaml() : string = Config.toYaml fields (this.ToConfig())

    /// Sets every property from a config record.
    member internal this.Assign(cfg: 'C) =
        for f, p in this.Bound do
            p.SetValue(this, parseValue p.PropertyType (f.Get cfg))

    /// Sets every property from a YAML file of `scripts/configs` over the library defaults (keys
    /// the file does not name take the defaults). Raises `FileNotFoundException` for a
    /// missing file and `ArgumentException` naming the key, the value and what is allowed for a
    /// bad one.
    member internal this.AssignYaml(path: string) =
        if not (IO.File.Exists path) then
            raise (IO.FileNotFoundException($"{kind}: no config file at {path}", path))

        try
            this.Assign(Config.load fields defaults path)
        with ConfigError _ as e ->
            raise (ArgumentException($"{kind}: {e.Message}", "path"))

    /// `Kind { Property = value, ... }` with the values as the YAML files write them.
    override this.ToString() =
        let pairs =
            [ for _, p in this.Bound -> $"{p.Name} = {formatValue (p.GetValue this)}" ]

        kind + " { " + String.Join(", ", pairs) + " }"
