/// Replays Gymnasium's recorded trajectories (the files in the repository's
/// `tests/data/gymnasium/`, format in its README.md) through the single and the batched forms and measures
/// the deviations. Used by `scripts/conformance.fsx` and by the test suite, so both run the same
/// code. The reference files' record types and their reading from JSON are in `ConformanceData.fs`
/// (module `Rl.ConformanceData`); `load` here checks and reads a file.
///
/// Modes, per trajectory:
/// * `single/resync`: before each step the state and the elapsed-step counter are set to the
///   recorded previous ones (README "Single-step re-sync"); also checks the reset observation.
/// * `single/rollout`: open loop from `initial_state`, every recorded action applied in turn.
/// * `batched-float32/resync`, `batched-float64/resync`, `batched-float64-exact/resync` (with
///   `ExactMath`): all steps of a trajectory as the N copies of one batched step (copy t starts
///   from the state before step t), on the CPU. The reward compared is the one `Dynamics`
///   computes in the state dtype (the step's float32 reward must equal it rounded to float32).
///   Only normal episodes (`trajectories`, `slippery_trajectories`): the batched form auto-resets,
///   so stepping past the end has no meaning there.
///
/// Pass criteria (`passes`): the single form must be bit-exact (every obs, reward and state
/// value bit-identical, no flag mismatch); the batched form with no flag mismatch and within
/// 1e-12 absolute in float64 (see `Float64Tolerance`), and in float32 within 1e-5 relative to
/// the size of each value, `|e - a| <= 1e-5 max(1, |e|)` (see `Float32Tolerance`).
module Rl.Conformance

open System
open System.IO
open System.Text.Json
open TorchSharp
open Rl
open Rl.ConformanceData

/// One recorded step (README "Step object"); see `ConformanceData.RefStep`.
type RefStep = ConformanceData.RefStep

/// One recorded trajectory (README "Trajectory object"); see `ConformanceData.RefTrajectory`.
type RefTrajectory = ConformanceData.RefTrajectory

/// One entry of FrozenLake's transition table `P[s][a]`; see `ConformanceData.RefTransition`.
type RefTransition = ConformanceData.RefTransition

/// A reference file; see `ConformanceData.RefFile`.
type RefFile = ConformanceData.RefFile

/// The schema version of the reference files this reader understands.
[<Literal>]
let SchemaVersion = 1

/// What a reference file must hold, in words (for error messages).
let private expected =
    $"a Gymnasium reference file: JSON with schema_version {SchemaVersion} and the fields env_id, max_episode_steps, "
    + "observation_space, action_space and trajectories (format: tests/data/gymnasium/README.md)"

/// Reads a reference file (format: `tests/data/gymnasium/README.md`). Raises
/// `FileNotFoundException` naming the file when it is absent, and `InvalidDataException` naming
/// the file, what is wrong and what was expected when it is not valid JSON, has another
/// `schema_version`, or lacks a field or has one of the wrong kind. Reads only; changes nothing.
let load (path: string) : RefFile =
    if not (File.Exists path) then
        raise (FileNotFoundException($"Reference file {path} not found; expected {expected}.", path))

    let bad (what: string) =
        raise (InvalidDataException($"Reference file {path} is damaged: {what}; expected {expected}."))

    let doc =
        try
            JsonDocument.Parse(File.ReadAllText path)
        with :? JsonException as e ->
            bad $"not valid JSON ({e.Message})"

    use doc = doc
    let root = doc.RootElement

    if root.ValueKind <> JsonValueKind.Object then
        bad $"the top level is a JSON {root.ValueKind}, not an object"

    match root.TryGetProperty "schema_version" with
    | true, v when v.ValueKind = JsonValueKind.Number && v.GetInt32() = SchemaVersion -> ()
    | true, v -> bad $"schema_version is {v.GetRawText()}"
    | false, _ -> bad "no schema_version field"

    try
        parseFile path root
    with
    | :? Collections.Generic.KeyNotFoundException as e -> bad $"a field is missing ({e.Message})"
    | :? InvalidOperationException as e -> bad $"a field has the wrong kind of value ({e.Message})"
    | :? FormatException as e -> bad $"a number is out of range ({e.Message})"

/// The reference folder's path inside the repository.
let ReferenceFolder = Path.Combine("tests", "data", "gymnasium")

/// Walks up from `startDir` to the repository root (the first folder holding
/// `tests/data/gymnasium`) and returns that reference folder's path, or `None`.
let findReferenceFolder (startDir: string) : string option =
    let rec up (d: DirectoryInfo) =
        if isNull d then
            None
        else
            let p = Path.Combine(d.FullName, ReferenceFolder)
            if Directory.Exists p then Some p else up d.Parent

    up (DirectoryInfo startDir)

/// The `*.json` files of a folder, sorted, or the file itself.
let referenceFiles (fileOrFolder: string) : string list =
    if Directory.Exists fileOrFolder then
        Directory.GetFiles(fileOrFolder, "*.json") |> Array.sort |> Array.toList
    elif File.Exists fileOrFolder then
        [ fileOrFolder ]
    else
        raise (FileNotFoundException($"No reference file or folder at {fileOrFolder}", fileOrFolder))

/// Deviations of one replay.
type Deviation =
    {
        /// Steps compared.
        Steps: int
        /// Largest absolute deviation of an observation component (as doubles).
        MaxObs: float
        MaxReward: float
        MaxState: float
        /// Largest deviation of any value scaled by its size, `|e - a| / max(1, |e|)`.
        MaxScaled: float
        /// Steps whose terminated or truncated flag (or FrozenLake's prob / transition index) differs.
        FlagMismatches: int
        /// Values (obs, reward, state components) that are not bit-identical to the reference.
        Inexact: int
        /// Description of the first mismatch (a flag, or an inexact value), if any.
        First: string option
    }

let private empty =
    {
        Steps = 0
        MaxObs = 0.0
        MaxReward = 0.0
        MaxState = 0.0
        MaxScaled = 0.0
        FlagMismatches = 0
        Inexact = 0
        First = None
    }

/// Accumulates comparisons of one replay.
type private Acc() =
    let mutable firstIsFlag = false
    let mutable d = empty

    member _.Result = d
    member _.Step() = d <- { d with Steps = d.Steps + 1 }

    /// Keeps the first message; a flag mismatch replaces an earlier note about an inexact value.
    member _.Note(msg: string, ?isFlag: bool) =
        let isFlag = defaultArg isFlag false

        if d.First.IsNone || (isFlag && not firstIsFlag) then
            d <- { d with First = Some msg }
            firstIsFlag <- isFlag

    member this.Flag (t: int) (what: string) (expected: obj) (actual: obj) =
        if expected <> actual then
            d <-
                { d with
                    FlagMismatches = d.FlagMismatches + 1
                }

            this.Note($"step {t}: {what} expected {expected}, got {actual}", true)

    member private this.Values
        (t: int)
        (what: string)
        (exact: float -> float -> bool)
        (expected: float[])
        (actual: float[])
        =
        if expected.Length <> actual.Length then
            d <-
                { d with
                    FlagMismatches = d.FlagMismatches + 1
                }

            this.Note $"step {t}: {what} has {actual.Length} values, expected {expected.Length}"
            0.0
        else
            let mutable m = 0.0

            for i in 0 .. expected.Length - 1 do
                let e, a = expected[i], actual[i]
                let dev = if e = a then 0.0 else abs (e - a)
                let dev = if Double.IsNaN dev then Double.PositiveInfinity else dev
                m <- max m dev

                d <-
                    { d with
                        MaxScaled = max d.MaxScaled (dev / max 1.0 (abs e))
                    }

                if not (exact e a) then
                    d <- { d with Inexact = d.Inexact + 1 }
                    this.Note $"step {t}: {what}[{i}] expected {e:R}, got {a:R}"

            m

    member this.Obs (t: int) (expected: float[]) (actual: float32[]) =
        let bits32 (e: float) (a: float) =
            BitConverter.SingleToInt32Bits(float32 e) = BitConverter.SingleToInt32Bits(float32 a)

        let m = this.Values t "obs" bits32 expected (Array.map float actual)
        d <- { d with MaxObs = max d.MaxObs m }

    member this.Reward (t: int) (expected: float) (actual: float) =
        let bits (e: float) (a: float) =
            BitConverter.DoubleToInt64Bits e = BitConverter.DoubleToInt64Bits a

        let m = this.Values t "reward" bits [| expected |] [| actual |]
        d <- { d with MaxReward = max d.MaxReward m }

    member this.State (t: int) (expected: float[]) (actual: float[]) =
        let bits (e: float) (a: float) =
            BitConverter.DoubleToInt64Bits e = BitConverter.DoubleToInt64Bits a

        let m = this.Values t "state" bits expected actual
        d <- { d with MaxState = max d.MaxState m }

/// Creates the single form for a trajectory (its `env_kwargs` as registry options). Raises
/// `InvalidOperationException` if the registry's env is not a `ClassicEnv`.
let singleEnv (envId: string) (traj: RefTrajectory) : ClassicEnv =
    match Envs.makeWith envId traj.EnvKwargs with
    | :? ClassicEnv as e -> e
    | e -> invalidOp $"{envId}: {e.GetType().Name} is not a ClassicEnv"

/// Env-specific parts of a replay.
module private EnvHooks =
    /// Restores hidden state before a re-synchronised step from the flags of the steps before it
    /// (CartPole's `steps_beyond_terminated`: None until the first terminated step, then k-1 after
    /// k terminated steps).
    let restoreHidden (env: ClassicEnv) (previousTerminated: bool[]) =
        match env with
        | :? CartPole.Env as c ->
            let k = previousTerminated |> Array.filter id |> Array.length
            c.StepsBeyondTerminated <- (if k = 0 then None else Some(k - 1))
        | _ -> ()

    /// Injects a recorded uniform draw for the next step (slippery FrozenLake).
    let injectUniform (env: ClassicEnv) (u: float option) =
        match env, u with
        | :? FrozenLake.Env as f, Some u -> f.UniformSource <- Some(fun () -> u)
        | _ -> ()

    /// `info` of the last step as (prob, transition index), where the env has one (FrozenLake).
    let lastInfo (env: ClassicEnv) : (float * int) option =
        match env with
        | :? FrozenLake.Env as f -> Some(f.LastProb, f.LastTransitionIndex)
        | _ -> None

    /// Injects recorded uniform draws [N] float64 for the next batched step (slippery FrozenLake).
    let prepareBatched (env: BatchedClassicEnv) (uniforms: torch.Tensor option) =
        match env, uniforms with
        | :? FrozenLake.BatchedEnv as f, Some u -> f.NextUniforms <- Some u
        | _ -> ()

/// Restores hidden state and injects the recorded draw before re-synchronised step `t` (1-based).
let private prepareStep (env: ClassicEnv) (traj: RefTrajectory) (t: int) =
    EnvHooks.restoreHidden env (traj.Steps[.. t - 2] |> Array.map (fun s -> s.Terminated))
    EnvHooks.injectUniform env traj.Steps[t - 1].U

/// Compares one step result (and env state) against the record.
let private compareStep (acc: Acc) (env: ClassicEnv) (s: RefStep) (r: StepResult) =
    acc.Step()
    acc.Obs s.T s.Obs r.Obs
    acc.Reward s.T s.Reward r.Reward
    acc.Flag s.T "terminated" s.Terminated r.Terminated
    acc.Flag s.T "truncated" s.Truncated r.Truncated
    acc.State s.T s.State env.State

    match EnvHooks.lastInfo env with
    | Some(prob, index) ->
        s.Prob |> Option.iter (fun p -> acc.Flag s.T "prob" p prob)

        s.TransitionIndex
        |> Option.iter (fun i -> acc.Flag s.T "transition_index" i index)
    | None -> ()

/// Single form, re-synchronised before every step (and the reset observation checked as step 0).
let replaySingleResync (envId: string) (traj: RefTrajectory) : Deviation =
    let acc = Acc()
    let env = singleEnv envId traj
    env.Reset(Some traj.ResetSeed) |> ignore
    env.State <- traj.InitialState
    acc.Obs 0 traj.InitialObs (env.Observe())

    for s in traj.Steps do
        env.Reset(Some traj.ResetSeed) |> ignore

        env.State <-
            (if s.T = 1 then
                 traj.InitialState
             else
                 traj.Steps[s.T - 2].State)

        env.ElapsedSteps <- s.T - 1
        prepareStep env traj s.T

        let r =
            if s.T > traj.DoneAtStep then
                env.StepUnchecked s.Action
            else
                env.Step s.Action

        compareStep acc env s r

    acc.Result

/// Single form, open loop from `initial_state` (`Step` up to the first done step, then
/// `StepUnchecked`, as the `post_done_trajectories` were recorded).
let replaySingleRollout (envId: string) (traj: RefTrajectory) : Deviation =
    let acc = Acc()
    let env = singleEnv envId traj
    env.Reset(Some traj.ResetSeed) |> ignore
    env.State <- traj.InitialState

    for s in traj.Steps do
        EnvHooks.injectUniform env s.U

        let r =
            if s.T > traj.DoneAtStep then
                env.StepUnchecked s.Action
            else
                env.Step s.Action

        compareStep acc env s r

    acc.Result

/// Batched form on `device` with state dtype `dtype`: the steps of `traj` as the copies of one
/// batched step (copy t-1 starts from the state before step t with elapsed steps t-1). Compares
/// `FinalObs`, `Reward` (float32), the flags, and the state from `Dynamics`.
let replayBatchedWith
    (envId: string)
    (dtype: torch.ScalarType)
    (exactMath: bool)
    (device: torch.Device)
    (traj: RefTrajectory)
    : Deviation =
    let acc = Acc()
    let steps = traj.Steps
    let n = steps.Length
    use scope = torch.NewDisposeScope()

    let options =
        traj.EnvKwargs
        @ (if envId = "FrozenLake-v1" then
               []
           else
               [ "dtype", box dtype ])
        @ [ "exact_math", box exactMath ]

    use env =
        match Envs.makeBatchedWith envId n device options with
        | :? BatchedClassicEnv as e -> e
        | e -> invalidOp $"{envId}: {e.GetType().Name} is not a BatchedClassicEnv"

    env.Reset(traj.ResetSeed) |> ignore

    let prev =
        steps
        |> Array.map (fun s -> if s.T = 1 then traj.InitialState else steps[s.T - 2].State)

    let stateTensor () =
        torch.tensor (Array2D.init n prev[0].Length (fun i j -> prev[i][j]), dtype = torch.float64)

    let actionTensor =
        match steps[0].Action with
        | Action.Discrete _ ->
            torch.tensor (
                steps
                |> Array.map (fun s ->
                    match s.Action with
                    | Action.Discrete a -> int64 a
                    | _ -> failwith "mixed actions"),
                dtype = torch.int64
            )
        | Action.Continuous a0 ->
            let rows =
                steps
                |> Array.map (fun s ->
                    match s.Action with
                    | Action.Continuous a -> a
                    | _ -> failwith "mixed actions")

            torch.tensor (Array2D.init n a0.Length (fun i j -> rows[i][j]), dtype = dtype)

    let uniforms =
        if steps |> Array.forall (fun s -> s.U.IsSome) then
            Some(torch.tensor (steps |> Array.map (fun s -> s.U.Value), dtype = torch.float64))
        else
            None

    // the state after the step, from the dynamics alone (no auto-reset)
    env.State <- stateTensor ()
    EnvHooks.prepareBatched env uniforms
    let a = env.PrepareAction actionTensor
    let newState, dynReward, _ = env.Dynamics(env.State, a)
    let newState = newState.``to``(torch.float64).data<float>().ToArray()
    let dynReward = dynReward.``to``(torch.float64).data<float>().ToArray()
    // the full step
    env.State <- stateTensor ()
    env.ElapsedSteps <- torch.tensor (steps |> Array.map (fun s -> int64 (s.T - 1)))
    EnvHooks.prepareBatched env uniforms
    let r = env.Step actionTensor
    let obs = r.FinalObs.data<float32>().ToArray()
    let reward = r.Reward.data<float32>().ToArray()
    let term = r.Terminated.data<bool>().ToArray()
    let trunc = r.Truncated.data<bool>().ToArray()
    let od = obs.Length / n
    let sd = newState.Length / n

    for i in 0 .. n - 1 do
        let s = steps[i]
        acc.Step()
        acc.Obs s.T s.Obs obs[i * od .. (i + 1) * od - 1]
        acc.Reward s.T s.Reward dynReward[i]
        acc.Flag s.T "float32 reward of the step" (float32 dynReward[i]) reward[i]
        acc.Flag s.T "terminated" s.Terminated term[i]
        acc.Flag s.T "truncated" s.Truncated trunc[i]
        acc.State s.T s.State newState[i * sd .. (i + 1) * sd - 1]

    acc.Result

/// `replayBatchedWith` with torch's own math (`ExactMath` off).
let replayBatched (envId: string) (dtype: torch.ScalarType) (device: torch.Device) (traj: RefTrajectory) =
    replayBatchedWith envId dtype false device traj

/// Absolute tolerance for the batched float64 form with torch's own math. torch's vectorised
/// CPU `sin`/`cos` differ from glibc's by one ulp on some inputs, and `torch.pow(x, 2)` is `x * x`
/// where Gymnasium's `x**2` is glibc's `pow` (which differs from `x * x` by one ulp on about 0.09%
/// of inputs), so this mode is not bit-exact: on the reference data the largest deviation is one
/// ulp (8.9e-16 on a Pendulum reward, 2.2e-16 on an Acrobot angle), on 4 of about 20,000 values.
/// With `ExactMath` the batched float64 form is bit-exact (mode `batched-float64-exact`).
let Float64Tolerance = 1e-12

/// Tolerance for the batched float32 form (single step from a double state), relative to
/// `max(1, |value|)`. Relative because float32 cannot hold values of size 10..30 (Pendulum's
/// unwrapped theta and its costs, Acrobot's velocities) to 1e-5 absolute: one float32 ulp at 16
/// is 1.9e-6, and Pendulum's cost `angle_normalize(theta)^2` amplifies the rounding of a theta of
/// several turns to about 2e-5 absolute.
let Float32Tolerance = 1e-5

/// One line of a conformance report.
type Row =
    {
        EnvId: string
        Trajectory: string
        Mode: string
        Deviation: Deviation
        Passed: bool
    }

/// Whether a deviation passes in a mode: single modes and `batched-float64-exact` (ExactMath on)
/// must be bit-exact; batched float64 within
/// `Float64Tolerance` absolute, batched float32 within `Float32Tolerance` relative; all with
/// matching flags.
let passes (mode: string) (d: Deviation) =
    d.FlagMismatches = 0
    && (if mode.StartsWith "single" || mode.Contains "exact" then
            d.Inexact = 0
        elif mode.Contains "float64" then
            d.MaxObs <= Float64Tolerance
            && d.MaxReward <= Float64Tolerance
            && d.MaxState <= Float64Tolerance
        else
            d.MaxScaled <= Float32Tolerance)

/// Checks the spaces and the time limit of the registered env against the file; returns a row
/// per mismatch (mode `spaces`).
let checkSpaces (file: RefFile) : Row list =
    let env = Envs.make file.EnvId

    [
        for what, expected, actual in
            [
                "observation_space", string file.ObservationSpace, string env.ObservationSpace
                "action_space", string file.ActionSpace, string env.ActionSpace
                "max_episode_steps", string file.MaxEpisodeSteps, string env.MaxEpisodeSteps
            ] do
            let ok =
                match what with
                | "observation_space" -> file.ObservationSpace = env.ObservationSpace
                | "action_space" -> file.ActionSpace = env.ActionSpace
                | _ -> expected = actual

            {
                EnvId = file.EnvId
                Trajectory = what
                Mode = "spaces"
                Deviation =
                    { empty with
                        FlagMismatches = (if ok then 0 else 1)
                        First =
                            (if ok then
                                 None
                             else
                                 Some $"expected {expected}, got {actual}")
                    }
                Passed = ok
            }
    ]

/// Replays every trajectory of a file in every mode (single re-sync and rollout; batched float32
/// and float64 re-sync on the CPU for normal episodes) and checks the spaces.
let runFile (file: RefFile) : Row list =
    let cpu = torch.CPU

    checkSpaces file
    @ [
        for traj in file.Trajectories do
            let modes =
                [
                    "single/resync", (fun () -> replaySingleResync file.EnvId traj)
                    "single/rollout", (fun () -> replaySingleRollout file.EnvId traj)
                    if traj.List <> "post_done_trajectories" then
                        "batched-float32/resync", (fun () -> replayBatched file.EnvId torch.float32 cpu traj)
                        "batched-float64/resync", (fun () -> replayBatched file.EnvId torch.float64 cpu traj)

                        "batched-float64-exact/resync",
                        (fun () -> replayBatchedWith file.EnvId torch.float64 true cpu traj)
                ]

            for mode, f in modes do
                let d = f ()

                yield
                    {
                        EnvId = file.EnvId
                        Trajectory = traj.Id
                        Mode = mode
                        Deviation = d
                        Passed = passes mode d
                    }
    ]

/// Formats a row as one line: env, trajectory, mode, max deviations, mismatches, verdict.
let formatRow (r: Row) =
    let d = r.Deviation

    let first =
        match d.First with
        | Some f -> "  first: " + f
        | None -> ""

    sprintf
        "%-26s %-38s %-30s steps %4d  obs %9.2e  reward %9.2e  state %9.2e  scaled %9.2e  flags %d  inexact %4d  %s%s"
        r.EnvId
        r.Trajectory
        r.Mode
        d.Steps
        d.MaxObs
        d.MaxReward
        d.MaxState
        d.MaxScaled
        d.FlagMismatches
        d.Inexact
        (if r.Passed then "ok" else "FAIL")
        first
