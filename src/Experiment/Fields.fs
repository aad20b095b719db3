/// The `Field` constructors for configuration records (`Rl.Field`): one per value type (floats,
/// integers, booleans, text, choices, devices, environment ids, optional floats, lists) and the
/// keys every trainer shares (`Field.runSettings`). The `Field` type, `Allow`, `ConfigText` and
/// the `Config` functions that use the field lists are in `Config.fs`.
namespace Rl

open System
open System.Globalization

/// Constructors of `Field`s for the common value types. Each takes the key, the documentation,
/// (for numbers) an `Allow` range, a getter and a setter of the record.
module Field =
    /// A field of any type given its description of allowed values, a formatter and a parser
    /// (an `Error` from the parser says what is wrong with the text).
    let custom
        (key: string)
        (doc: string)
        (allowed: string)
        (format: 'T -> string)
        (parse: string -> Result<'T, string>)
        (get: 'C -> 'T)
        (set: 'C -> 'T -> 'C)
        : Field<'C> =
        {
            Key = key
            Doc = doc
            Allowed = allowed
            Get = get >> format
            Set = fun c s -> parse s |> Result.map (set c)
            IsList = false
            Type = typeof<'T>
        }

    let private inRange (parse: string -> Result<'T, string>) (check: 'T -> bool) (text: string) =
        match parse text with
        | Ok x when check x -> Ok x
        | Ok _ -> Error "out of range"
        | Error e -> Error e

    let private describe kind (allowed: string) =
        if allowed = "any" then
            "any " + kind
        else
            kind + " " + allowed

    /// `ConfigText.parseFloat` for config values, which the runs compute with in float32 tensors:
    /// refuses NaN (no setting means "not a number", also where any float is allowed) and finite
    /// values beyond float32's range (|x| > 3.4e38), on which libtorch raises an
    /// `ExternalException` ("value cannot be converted to type float without overflow") in the
    /// middle of a run, after its folder was written; infinities are left to the field's range.
    let private parseSetting (text: string) : Result<float, string> =
        match ConfigText.parseFloat text with
        | Ok x when Double.IsNaN x -> Error "not a number (NaN)"
        | Ok x when Double.IsFinite x && abs x > double Single.MaxValue ->
            Error "too large for the float32 tensors a run computes with (|x| <= 3.4e38, or .inf)"
        | r -> r

    /// A 64-bit float field with a range, e.g.
    /// `Field.float "gamma" "Discount factor." (Allow.openClosed 0.0 1.0) (fun c -> c.Gamma) (fun c v -> { c with Gamma = v })`.
    /// NaN and finite values beyond float32's range are refused whatever the range (see `parseSetting`).
    let float key doc (allowed: string, check: float -> bool) (get: 'C -> float) (set: 'C -> float -> 'C) =
        custom key doc (describe "float" allowed) ConfigText.formatFloat (inRange parseSetting check) get set

    /// A 32-bit integer field with a range; accepts `100_000`, `1e5` and other whole-valued notations.
    let int key doc (allowed: string, check: int -> bool) (get: 'C -> int) (set: 'C -> int -> 'C) =
        custom
            key
            doc
            (describe "integer" allowed)
            (fun (n: int) -> n.ToString CultureInfo.InvariantCulture)
            (inRange ConfigText.parseInt check)
            get
            set

    /// A 64-bit integer field with a range (e.g. total environment steps, seeds).
    let int64 key doc (allowed: string, check: int64 -> bool) (get: 'C -> int64) (set: 'C -> int64 -> 'C) =
        custom
            key
            doc
            (describe "integer" allowed)
            (fun (n: int64) -> n.ToString CultureInfo.InvariantCulture)
            (inRange ConfigText.parseInt64 check)
            get
            set

    /// A boolean field (`true`/`false`, also `yes`/`no`, `on`/`off`).
    let bool key doc (get: 'C -> bool) (set: 'C -> bool -> 'C) =
        custom key doc "true or false" (fun b -> if b then "true" else "false") ConfigText.parseBool get set

    /// A free-text field (any string, including empty).
    let string key doc (get: 'C -> string) (set: 'C -> string -> 'C) = custom key doc "any text" id Ok get set

    /// A torch device name: `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available), as
    /// `Native.device` accepts; stored lower-case. Availability is checked when the run starts.
    let device key (get: 'C -> string) (set: 'C -> string -> 'C) =
        let parse (s: string) =
            let s = s.Trim().ToLowerInvariant()

            if
                s = "cpu"
                || s = "cuda"
                || s = "auto"
                || (s.StartsWith "cuda:" && fst (Int32.TryParse(s.Substring 5)))
            then
                Ok s
            else
                Error "not a valid device"

        custom key "cpu, cuda, cuda:N or auto (CUDA when available)." "one of: cpu, cuda, cuda:N, auto" id parse get set

    /// A text field restricted to `choices` (case-sensitive), e.g. a device or an environment id.
    /// The error for another value suggests the closest choice.
    let choice key doc (choices: string list) (get: 'C -> string) (set: 'C -> string -> 'C) =
        let parse (s: string) =
            let s = s.Trim()

            if List.contains s choices then
                Ok s
            else
                match ConfigText.closest choices s with
                | Some c -> Error(sprintf "not a valid choice (did you mean '%s'?)" c)
                | None -> Error "not a valid choice"

        custom key doc ("one of: " + String.Join(", ", choices)) id parse get set

    /// `env_id`: a built-in environment id or one registered with `Envs.register` (checked when
    /// the value is set, so ids registered at run time are accepted).
    let envId (doc: string) (get: 'C -> string) (set: 'C -> string -> 'C) =
        let parse (s: string) =
            let s = s.Trim()

            if Envs.isKnown s then
                Ok s
            else
                match ConfigText.closest (Envs.allIds ()) s with
                | Some c -> Error(sprintf "not a registered environment (did you mean '%s'?)" c)
                | None -> Error "not a registered environment"

        custom
            "env_id"
            doc
            ("one of: "
             + String.Join(", ", Envs.ids)
             + ", or an id registered with Envs.register")
            id
            parse
            get
            set

    /// `vectorization_mode`: how the copies of an environment are stepped, one of
    /// `Envs.vectorizationModes` (see `Envs.makeVec`); `Config.checkVectorization` is its
    /// cross-field check against the device.
    let vectorizationMode (get: 'C -> string) (set: 'C -> string -> 'C) =
        choice
            "vectorization_mode"
            "How the copies are stepped: vector (tensor-batched form, on the device) or sync (single forms on the host, Gymnasium's SyncVectorEnv; fastest on the CPU for few copies, not for cuda)."
            Envs.vectorizationModes
            get
            set

    // The keys every trainer shares, each declared once with its documentation and range.

    /// `beta_1`: Adam's first-moment decay (RMSprop ignores it), in [0, 1].
    let beta1 (get: 'C -> float) (set: 'C -> float -> 'C) =
        float "beta_1" "Adam beta1." (Allow.within 0.0 1.0) get set

    /// `beta_2`: Adam's second-moment decay (RMSprop's smoothing), in [0, 1].
    let beta2 (get: 'C -> float) (set: 'C -> float -> 'C) =
        float "beta_2" "Adam beta2." (Allow.within 0.0 1.0) get set

    /// `adam_eps`: the optimizer's epsilon, > 0.
    let adamEps (get: 'C -> float) (set: 'C -> float -> 'C) =
        float "adam_eps" "Adam epsilon." (Allow.gt 0.0) get set

    /// `capture_video` (CleanRL's key): after training, record each seed's first evaluation start
    /// as a video in the run folder's `videos/` (see `Train.recordVideosOf`).
    let captureVideo (get: 'C -> bool) (set: 'C -> bool -> 'C) =
        bool
            "capture_video"
            "After training, record each seed's first evaluation episode (deterministic policy) as a video in videos/ (MP4 through ffmpeg, PNG frames without it), shown in report.html."
            get
            set

    /// `seed`: the base seed (seeds seed .. seed + num_seeds - 1 are trained), >= 0.
    /// `eval_every`: the periodic evaluation's interval in `unit` (e.g. "environment steps per
    /// seed"), >= 0, 0 = only the final evaluation (see `PeriodicEval`).
    let evalEvery (unit: string) (get: 'C -> int64) (set: 'C -> int64 -> 'C) =
        int64
            "eval_every"
            $"Evaluate the deterministic policy every this many {unit} (at the first boundary at or past each multiple, and at the end) on eval_episodes episodes, log it to evals.csv and keep each seed's best policy in best/ (SB3 EvalCallback); 0: only the final evaluation."
            (Allow.ge 0L)
            get
            set

    let seed (get: 'C -> int64) (set: 'C -> int64 -> 'C) =
        int64 "seed" "Base seed; seeds seed .. seed + num_seeds - 1 are trained." (Allow.ge 0L) get set

    /// `num_seeds`: independent seeds trained as one batched computation, >= 1.
    let numSeeds (get: 'C -> int) (set: 'C -> int -> 'C) =
        int "num_seeds" "Independent seeds trained at once as one batched computation." (Allow.ge 1) get set

    /// `activation`: the hidden-layer activation, `relu` or `tanh` (`Nn.Activation`).
    let activation (get: 'C -> Rl.Nn.Activation) (set: 'C -> Rl.Nn.Activation -> 'C) =
        choice
            "activation"
            "Hidden activation."
            [ "relu"; "tanh" ]
            (fun c ->
                match get c with
                | Rl.Nn.Relu -> "relu"
                | Rl.Nn.Tanh -> "tanh")
            (fun c v -> set c (Rl.Nn.Activation.Parse v))

    /// `threads`: libtorch intra-op threads, >= 0 (0 keeps libtorch's default).
    let threads (get: 'C -> int) (set: 'C -> int -> 'C) =
        int "threads" "libtorch intra-op threads; 0 keeps libtorch's default." (Allow.ge 0) get set

    /// The keys of `RunSettings`, in this order: beta_1, beta_2, adam_eps, seed, num_seeds, device,
    /// threads; `get` and `set` reach a config's `RunSettings`.
    let runSettings (get: 'C -> RunSettings) (set: 'C -> RunSettings -> 'C) : Field<'C> list =
        let on (update: RunSettings -> RunSettings) (c: 'C) = set c (update (get c))

        [
            beta1 (fun c -> (get c).Beta1) (fun c v -> on (fun r -> { r with Beta1 = v }) c)
            beta2 (fun c -> (get c).Beta2) (fun c v -> on (fun r -> { r with Beta2 = v }) c)
            adamEps (fun c -> (get c).AdamEps) (fun c v -> on (fun r -> { r with AdamEps = v }) c)
            seed (fun c -> (get c).Seed) (fun c v -> on (fun r -> { r with Seed = v }) c)
            numSeeds (fun c -> (get c).NumSeeds) (fun c v -> on (fun r -> { r with NumSeeds = v }) c)
            device "device" (fun c -> (get c).Device) (fun c v -> on (fun r -> { r with Device = v }) c)
            threads (fun c -> (get c).Threads) (fun c v -> on (fun r -> { r with Threads = v }) c)
        ]

    /// An optional float: `null`, `~`, `none` or an empty value mean `None` (e.g. PPO's target KL).
    let floatOption
        key
        doc
        (allowed: string, check: float -> bool)
        (get: 'C -> float option)
        (set: 'C -> float option -> 'C)
        =
        let parse (s: string) =
            match s.Trim().ToLowerInvariant() with
            | ""
            | "~"
            | "null"
            | "none" -> Ok None
            | _ -> inRange parseSetting check s |> Result.map Some

        let format =
            function
            | None -> "null"
            | Some x -> ConfigText.formatFloat x

        custom key doc (describe "float" allowed + ", or null") format parse get set

    let private list kind (parseItem: string -> Result<'T, string>) (formatItem: 'T -> string) key doc allowed get set =
        let parse (s: string) =
            let items = ConfigText.splitList s

            let rec go acc i =
                function
                | [] -> Ok(List.rev acc)
                | x :: rest ->
                    match parseItem x with
                    | Ok v -> go (v :: acc) (i + 1) rest
                    | Error e -> Error(sprintf "item %d ('%s'): %s" i x e)

            go [] 0 items

        { custom
              key
              doc
              (sprintf "list of %s" (describe kind allowed))
              (List.map formatItem >> ConfigText.formatList)
              parse
              get
              set with
            IsList = true
        }

    /// A list of floats written `[0.1, 0.2]` in YAML or `key=0.1,0.2` / `key=[0.1,0.2]` as an override;
    /// each item must pass the range.
    let floatList
        key
        doc
        (allowed: string, check: float -> bool)
        (get: 'C -> float list)
        (set: 'C -> float list -> 'C)
        =
        list "float" (inRange parseSetting check) ConfigText.formatFloat key doc allowed get set

    /// A list of 32-bit integers (e.g. hidden layer sizes `[64, 64]`); each item must pass the range.
    let intList key doc (allowed: string, check: int -> bool) (get: 'C -> int list) (set: 'C -> int list -> 'C) =
        list
            "integer"
            (inRange ConfigText.parseInt check)
            (fun (n: int) -> n.ToString CultureInfo.InvariantCulture)
            key
            doc
            allowed
            get
            set
