/// Sweep grids: `key=v1,v2,...` arguments parsed into axes, the grid points and their folder names.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// One grid axis: a config key and the values it takes (as text, in the order given).
type Axis =
    {
        /// The config key (snake_case, as in the YAML files).
        Key: string
        /// Its values as text, in the order given.
        Values: string list
    }

/// Grid axes, points and point names.
module Grid =
    /// Parses sweep arguments `key=v1,v2,...` into axes (a single value gives a one-point axis).
    /// Every value is checked by applying it to `defaults` through `fields`, so an unknown key or a
    /// bad value (e.g. non-numeric for a numeric key) raises the config's own `ConfigError`
    /// naming the key, the value and what is allowed. An empty list (`key=` or `key=,`) raises
    /// `ConfigError` too. Raises for a key given twice.
    let parseGrid (fields: Field<'C> list) (defaults: 'C) (args: string list) : Axis list =
        let axes =
            [
                for a in args ->
                    let k, v = Config.parseOverride a

                    let values =
                        v.Split(',')
                        |> Array.map (fun s -> s.Trim())
                        |> Array.filter (fun s -> s <> "")
                        |> List.ofArray

                    if values.IsEmpty then
                        raise (ConfigError("sweep", k, v, "one or more comma-separated values", "empty list of values"))

                    for x in values do
                        Config.withOverrides fields [ $"{k}={x}" ] defaults |> ignore

                    { Key = k; Values = values }
            ]

        match axes |> List.countBy (fun a -> a.Key) |> List.tryFind (fun (_, n) -> n > 1) with
        | Some(k, _) -> raise (ConfigError("sweep", k, "", "each key once", "key given more than once"))
        | None -> axes

    /// The grid points: the cartesian product of the axes, first axis varying slowest; each point is
    /// a list of (key, value) in axis order. No axes give one empty point.
    let points (axes: Axis list) : (string * string) list list =
        List.foldBack
            (fun (ax: Axis) acc ->
                [
                    for v in ax.Values do
                        for rest in acc -> (ax.Key, v) :: rest
                ])
            axes
            [ [] ]

    /// A folder name for a grid point, e.g. "beta_1=0.9,num_seeds=10" ("default" for the empty
    /// point); characters not allowed in file names become '_'.
    let pointName (point: (string * string) list) : string =
        if point.IsEmpty then
            "default"
        else
            let s = String.Join(",", point |> List.map (fun (k, v) -> $"{k}={v}"))
            let bad = Path.GetInvalidFileNameChars()
            String(s.ToCharArray() |> Array.map (fun c -> if Array.contains c bad then '_' else c))
