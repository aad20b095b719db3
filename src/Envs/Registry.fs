/// The environment registry: `Envs.make "CartPole-v1"` as Gymnasium's `gymnasium.make`
/// (`gymnasium/envs/registration.py`), with the registered time limits of
/// `gymnasium/envs/__init__.py`, and `Envs.makeBatched` for the batched tensor form.
///
/// Options are given as `(key, value)` pairs with Gymnasium's kwarg names:
/// * every env: `"max_episode_steps"` (int, overrides the registered time limit);
/// * single forms: `"render_mode"` (`"rgb_array"`, or `"ansi"` for FrozenLake-v1; see `render`);
/// * batched forms: `"dtype"` (`torch.ScalarType`, float32 (default) or float64; not FrozenLake);
/// * Pendulum-v1: `"g"` (float, gravity in m/s^2, default 10.0);
/// * FrozenLake-v1: `"is_slippery"` (bool, default true), `"map_name"` (`"4x4"` default or
///   `"8x8"`), `"desc"` (string[], a custom map of `S`, `F`, `H`, `G` rows; overrides `map_name`),
///   `"success_rate"` (float, default 1/3).
[<RequireQualifiedAccess>]
module Rl.Envs

open System
open TorchSharp
open Rl

/// The registered ids, in the order Gymnasium's docs list them.
let ids =
    [
        CartPole.Id
        Pendulum.Id
        MountainCar.Id
        MountainCarContinuous.Id
        Acrobot.Id
        FrozenLake.Id
    ]

/// Custom environments registered by `register`: id -> factory of a fresh single-form env.
let private custom =
    Collections.Concurrent.ConcurrentDictionary<string, unit -> IEnv>(StringComparer.Ordinal)

/// The built-in ids (`ids`), then the registered custom ids in the order of their names.
let allIds () : string list =
    ids @ (custom.Keys |> Seq.sort |> List.ofSeq)

/// True for a built-in or registered id.
let isKnown (id: string) =
    List.contains id ids || custom.ContainsKey id

/// True for an id registered with `register` (a custom environment).
let isCustom (id: string) = custom.ContainsKey id

let private unknownId (id: string) =
    let valid = String.Join(", ", allIds ())
    raise (ArgumentException($"Unknown environment id '{id}'. Valid ids: {valid}", "id"))

let private idPattern =
    Text.RegularExpressions.Regex(@"^([A-Za-z0-9_.:/-]+/)?[A-Za-z][A-Za-z0-9_.-]*-v[0-9]+$")

/// Registers a custom environment under `id` (Gymnasium's `gymnasium.register`): `factory ()`
/// makes a fresh single-form env each call; `make`, `makeSync`, `makeVec`, every algorithm's
/// `env_id` and sweeps then accept the id. A custom env has no tensor-batched form:
/// `makeBatched` and `makeVec "vector"` step its single forms through `SyncVectorEnv`. Raises
/// `ArgumentException` for an id that is not `Name-vN` (Gymnasium's format, e.g. `MyGrid-v0`),
/// that names a built-in env, or that is registered already (pass `replace = true` to replace it),
/// and when the factory's env reports another id.
let registerWith (replace: bool) (id: string) (factory: unit -> IEnv) =
    if isNull id || not (idPattern.IsMatch id) then
        invalidArg "id" $"environment id '{id}' must look like Name-vN (e.g. MyGrid-v0), as Gymnasium's ids"

    if List.contains id ids then
        invalidArg "id" $"'{id}' is a built-in environment and cannot be registered again"

    if not replace && custom.ContainsKey id then
        invalidArg "id" $"'{id}' is registered already; register it with replace = true to replace it"

    let probe = factory ()

    if isNull (box probe) then
        invalidArg "factory" $"{id}: the factory returned null"

    if probe.Id <> id then
        invalidArg "factory" $"{id}: the factory makes an env whose Id is '{probe.Id}'; they must agree"

    custom[id] <- factory

/// `registerWith false`: registers a new custom id.
let register (id: string) (factory: unit -> IEnv) = registerWith false id factory

/// Removes a registered custom id; false when it was not registered.
let unregister (id: string) : bool = custom.TryRemove(id) |> fst

/// Option reader: checks that every key is allowed for `id` and reads typed values.
type private Opts(id: string, allowed: string list, options: (string * obj) list) =
    do
        let valid = String.Join(", ", allowed)

        for k, v in options do
            if not (List.contains k allowed) then
                raise (
                    ArgumentException($"{id}: unknown option '{k}' (value {v}). Allowed options: {valid}", "options")
                )

    member _.Get<'T>(key: string) : 'T option =
        options
        |> List.tryFindBack (fun (k, _) -> k = key)
        |> Option.map (fun (_, v) ->
            match v with
            | :? 'T as t -> t
            | :? int as i when typeof<'T> = typeof<float> -> unbox<'T>(box (float i))
            | _ ->
                let actual = if isNull v then "null" else v.GetType().Name

                raise (
                    ArgumentException(
                        $"{id}: option '{key}' must be a {typeof<'T>.Name}, got {v} ({actual})",
                        "options"
                    )
                ))

let private common = [ "max_episode_steps" ]

/// The render modes `id` offers (`render_mode`): `rgb_array` for every env (a custom env must
/// implement `IRenderable` to use it), and `ansi` too for FrozenLake-v1.
let renderModesOf (id: string) : string list =
    if id = FrozenLake.Id then Render.modes else [ "rgb_array" ]

/// The frame of a single env's current state (`IRenderable.Render`, Gymnasium's `render()` in
/// `rgb_array` mode). Raises `NotSupportedException` for an env that does not draw itself (a custom
/// env that does not implement `IRenderable`, or a C# `CustomEnv` that does not override
/// `Render`), `InvalidOperationException` when it draws nothing (null) or before `Reset`.
let frame (env: IEnv) : Frame =
    match box env with
    | :? IRenderable as r ->
        match r.Render() with
        | null ->
            invalidOp
                $"{env.Id}: Render returned no frame; a custom env must draw its state (return a Frame) to be rendered or recorded"
        | f -> f
    | _ ->
        raise (
            NotSupportedException(
                $"{env.Id} does not draw itself: implement IRenderable (C#: override CustomEnv.Render) to render it or record videos"
            )
        )

/// What `render` returns, as Gymnasium's `env.render()` per render mode.
[<RequireQualifiedAccess>]
type Rendered =
    /// `rgb_array`: the frame.
    | Rgb of Frame
    /// `ansi`: the text (FrozenLake-v1).
    | Ansi of string

/// Gymnasium's `env.render()`: in the env's `render_mode` (given to `makeWith`; `rgb_array` when
/// none was given), the frame or the text. Raises as `frame`.
let render (env: IEnv) : Rendered =
    match box env with
    | :? FrozenLake.Env as lake when lake.RenderMode = Some "ansi" -> Rendered.Ansi(lake.RenderAnsi())
    | _ -> Rendered.Rgb(frame env)

/// Checks `render_mode` for `id` (a string among `renderModesOf id`). Raises `ArgumentException`
/// listing the allowed values.
let private checkRenderMode (id: string) (value: obj) : string =
    let allowed = renderModesOf id
    let valid = String.Join(", ", allowed)

    match value with
    | :? string as m when List.contains m allowed -> m
    | :? string as "human" ->
        raise (
            ArgumentException(
                $"{id}: render_mode 'human' (a window) is not offered; allowed values: {valid} (record a video with capture_video=true or evaluate.fsx video=true)",
                "options"
            )
        )
    | v -> raise (ArgumentException($"{id}: unknown render_mode '{v}'; allowed values: {valid}", "options"))

/// Creates the single form of `id` with options (see the module comment) and `render_mode`
/// (`renderModesOf`). Raises `ArgumentException` for an unknown id (listing the valid ids), an
/// unknown option key (listing the allowed keys), a value of the wrong type, or a render mode the
/// env does not offer (listing the allowed values; a custom env must implement `IRenderable`).
let rec makeWith (id: string) (options: (string * obj) list) : IEnv =
    match options |> List.partition (fun (k, _) -> k = "render_mode") with
    | [], _ -> makeCore id options
    | modes, rest ->
        let mode = checkRenderMode id (snd (List.last modes))
        let env = makeCore id rest

        match box env with
        | :? ClassicEnv as c -> c.RenderMode <- Some mode
        | :? IRenderable -> ()
        | _ ->
            raise (
                ArgumentException(
                    $"{id}: render_mode '{mode}' needs an env that draws itself; this custom env does not implement IRenderable (C#: override CustomEnv.Render)",
                    "options"
                )
            )

        env

and private makeCore (id: string) (options: (string * obj) list) : IEnv =
    match id with
    | Pendulum.Id ->
        let o = Opts(id, common @ [ "g" ], options)
        Pendulum.Env(?g = o.Get "g", ?maxSteps = o.Get "max_episode_steps") :> IEnv
    | CartPole.Id ->
        let o = Opts(id, common, options)
        CartPole.Env(?maxSteps = o.Get "max_episode_steps") :> IEnv
    | MountainCar.Id ->
        let o = Opts(id, common, options)
        MountainCar.Env(?maxSteps = o.Get "max_episode_steps") :> IEnv
    | MountainCarContinuous.Id ->
        let o = Opts(id, common, options)
        MountainCarContinuous.Env(?maxSteps = o.Get "max_episode_steps") :> IEnv
    | Acrobot.Id ->
        let o = Opts(id, common, options)
        Acrobot.Env(?maxSteps = o.Get "max_episode_steps") :> IEnv
    | FrozenLake.Id ->
        let o =
            Opts(id, common @ [ "is_slippery"; "map_name"; "desc"; "success_rate" ], options)

        FrozenLake.Env(
            ?desc = o.Get "desc",
            ?mapName = o.Get "map_name",
            ?isSlippery = o.Get "is_slippery",
            ?successRate = o.Get "success_rate",
            ?maxSteps = o.Get "max_episode_steps"
        )
        :> IEnv
    | _ when custom.ContainsKey id ->
        if not options.IsEmpty then
            let given = String.Join(", ", options |> List.map fst)

            raise (ArgumentException($"{id}: a registered custom environment takes no options, got {given}", "options"))

        custom[id]()
    | _ -> unknownId id

/// Creates the single form of `id` with its registered defaults (`gymnasium.make(id)`). Raises
/// `ArgumentException` listing the valid ids for an unknown id.
let make (id: string) : IEnv = makeWith id []

/// Creates `SyncVectorEnv` over `numEnvs` single forms of `id` made with `options` (Gymnasium's
/// `make_vec(id, num_envs, vectorization_mode="sync")`, SAME_STEP auto-reset), handing results
/// over as tensors on `device`. Raises `ArgumentException` as `makeWith`, or for `numEnvs < 1`.
let makeSyncWith (id: string) (numEnvs: int) (device: torch.Device) (options: (string * obj) list) : IBatchedEnv =
    if numEnvs < 1 then
        invalidArg "numEnvs" $"{id}: the number of copies must be at least 1, got {numEnvs}"

    new SyncVectorEnv(Array.init numEnvs (fun _ -> makeWith id options), device) :> IBatchedEnv

let private makeBatchedCore
    (id: string)
    (numEnvs: int)
    (device: torch.Device)
    (options: (string * obj) list)
    : IBatchedEnv =
    match id with
    | Pendulum.Id ->
        let o = Opts(id, common @ [ "dtype"; "g" ], options)

        new Pendulum.BatchedEnv(
            numEnvs,
            device,
            ?dtype = o.Get "dtype",
            ?g = o.Get "g",
            ?maxSteps = o.Get "max_episode_steps"
        )
        :> IBatchedEnv
    | CartPole.Id ->
        let o = Opts(id, common @ [ "dtype" ], options)

        new CartPole.BatchedEnv(numEnvs, device, ?dtype = o.Get "dtype", ?maxSteps = o.Get "max_episode_steps")
        :> IBatchedEnv
    | MountainCar.Id ->
        let o = Opts(id, common @ [ "dtype" ], options)

        new MountainCar.BatchedEnv(numEnvs, device, ?dtype = o.Get "dtype", ?maxSteps = o.Get "max_episode_steps")
        :> IBatchedEnv
    | MountainCarContinuous.Id ->
        let o = Opts(id, common @ [ "dtype" ], options)

        new MountainCarContinuous.BatchedEnv(
            numEnvs,
            device,
            ?dtype = o.Get "dtype",
            ?maxSteps = o.Get "max_episode_steps"
        )
        :> IBatchedEnv
    | Acrobot.Id ->
        let o = Opts(id, common @ [ "dtype" ], options)

        new Acrobot.BatchedEnv(numEnvs, device, ?dtype = o.Get "dtype", ?maxSteps = o.Get "max_episode_steps")
        :> IBatchedEnv
    | FrozenLake.Id ->
        let o =
            Opts(id, common @ [ "is_slippery"; "map_name"; "desc"; "success_rate" ], options)

        new FrozenLake.BatchedEnv(
            numEnvs,
            device,
            ?desc = o.Get "desc",
            ?mapName = o.Get "map_name",
            ?isSlippery = o.Get "is_slippery",
            ?successRate = o.Get "success_rate",
            ?maxSteps = o.Get "max_episode_steps"
        )
        :> IBatchedEnv
    | _ when custom.ContainsKey id -> makeSyncWith id numEnvs device options
    | _ -> unknownId id

/// Creates the batched form of `id`: `numEnvs` copies on `device`, with options (see the module
/// comment; also `"exact_math"` (bool, default false), see `BatchedClassicEnv.ExactMath`).
/// Raises `ArgumentException` for an unknown id, option or value, or `numEnvs < 1`.
let makeBatchedWith (id: string) (numEnvs: int) (device: torch.Device) (options: (string * obj) list) : IBatchedEnv =
    let exact, rest = options |> List.partition (fun (k, _) -> k = "exact_math")
    let env = makeBatchedCore id numEnvs device rest

    match exact |> List.tryLast, env with
    | Some(_, (:? bool as b)), (:? BatchedClassicEnv as e) -> e.ExactMath <- b
    | Some(_, v), _ ->
        env.Dispose()
        raise (ArgumentException($"{id}: option 'exact_math' must be a Boolean, got {v}", "options"))
    | None, _ -> ()

    env

/// Creates the batched form of `id` with its registered defaults (float32 state).
let makeBatched (id: string) (numEnvs: int) (device: torch.Device) : IBatchedEnv = makeBatchedWith id numEnvs device []

/// `makeSyncWith` with the registered defaults.
let makeSync (id: string) (numEnvs: int) (device: torch.Device) : IBatchedEnv = makeSyncWith id numEnvs device []

/// The ways `makeVec` steps N copies, named as Gymnasium's `make_vec(vectorization_mode=...)`:
/// "vector" (the tensor-batched form, `makeBatched`) and "sync" (`SyncVectorEnv`, `makeSync`).
let vectorizationModes = [ "vector"; "sync" ]

/// N copies of `id` on `device` stepped the way `mode` names (see `vectorizationModes`). Raises
/// `ArgumentException` for another mode (listing the allowed ones), or as `makeBatched`/`makeSync`.
let makeVec (mode: string) (id: string) (numEnvs: int) (device: torch.Device) : IBatchedEnv =
    match mode with
    | "vector" -> makeBatched id numEnvs device
    | "sync" -> makeSync id numEnvs device
    | _ ->
        let allowed = String.Join(", ", vectorizationModes)
        invalidArg "mode" $"{id}: unknown vectorization mode '{mode}'; allowed: {allowed}"
