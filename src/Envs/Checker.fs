/// An environment checker in the spirit of Gymnasium's `check_env`
/// (`gymnasium/utils/env_checker.py`): valid spaces, observations of the right length inside the
/// observation space after `Reset` and every `Step`, finite rewards, reproducible seeding
/// (`Reset (Some seed)` twice gives the same observation and, with the same actions, the same
/// trajectory), the time limit ending an episode, and `Step` refused after the episode ended.
[<RequireQualifiedAccess>]
module Rl.EnvChecker

open System
open Rl

/// Raised by `check` with every problem found; the message names the env and lists them.
type EnvCheckException(envId: string, problems: string list) =
    inherit
        InvalidOperationException(
            $"{envId} fails the environment check:\n"
            + String.Join("\n", problems |> List.map (fun p -> "  - " + p))
        )

    member _.EnvId = envId
    /// One line per problem.
    member _.Problems = problems

let private spaceProblems (name: string) (space: Space) =
    [
        match space with
        | Space.Discrete(n, _) when n < 1 -> yield $"{name} {space}: a Discrete space needs n >= 1"
        | Space.Discrete _ -> ()
        | Space.Box(low, high, shape) ->
            if low.Length = 0 then
                yield $"{name} {space}: a Box needs at least one component"

            if low.Length <> high.Length || Array.fold (*) 1 shape <> low.Length then
                yield $"{name} {space}: low, high and shape disagree in size"
            elif Array.exists2 (fun (l: float) h -> Double.IsNaN l || Double.IsNaN h || l > h) low high then
                yield $"{name} {space}: every low must be <= its high, without NaN"
    ]

let private fmt (xs: float32[]) =
    "[" + String.Join(", ", xs |> Array.map (fun x -> x.ToString "R")) + "]"

/// The observation rule broken by `obs`, if any: its length, then containment in `space`, then
/// finiteness: an infinity lies in a Box whose bound is infinite (as Gymnasium's `Box.contains`
/// says), but no network can take it, so it is refused as Gymnasium's passive checker warns of it.
let observationProblem (space: Space) (obs: float32[]) : string option =
    if isNull obs then
        Some "the observation is null"
    elif obs.Length <> space.FlatSize then
        Some $"observation {fmt obs} has {obs.Length} values, the observation space {space} needs {space.FlatSize}"
    elif not (space.Contains(Array.map float obs)) then
        Some $"observation {fmt obs} is outside the observation space {space}"
    elif not (Array.forall Single.IsFinite obs) then
        Some
            $"observation {fmt obs} is not finite; observations must be finite numbers, also in the unbounded space {space}"
    else
        None

/// Every problem the checker finds in `env` (empty when it passes), running at most `maxSteps`
/// steps (default: the env's `MaxEpisodeSteps` + 1, so that the time limit must end an episode).
/// Resets the env (seeds 42 and 43) and leaves it mid-episode or ended.
let problemsWith (maxSteps: int option) (env: IEnv) : string list =
    let found = ResizeArray<string>()
    let add (s: string) = found.Add s
    found.AddRange(spaceProblems "observation space" env.ObservationSpace)
    found.AddRange(spaceProblems "action space" env.ActionSpace)

    if env.MaxEpisodeSteps < 1 then
        add $"MaxEpisodeSteps is {env.MaxEpisodeSteps}; it must be >= 1"

    if found.Count > 0 then
        List.ofSeq found
    else
        let limit = defaultArg maxSteps (env.MaxEpisodeSteps + 1)

        let toAction (x: float[]) =
            match env.ActionSpace with
            | Space.Discrete _ -> Action.Discrete(int x[0])
            | Space.Box _ -> Action.Continuous x

        /// Runs one seeded episode with actions drawn from a fixed generator; returns the trace,
        /// whether it ended, and the number of steps.
        let episode () =
            let rng = SeededRandom 7
            let trace = ResizeArray<string>()
            let first = env.Reset(Some 42L)

            match observationProblem env.ObservationSpace first with
            | Some p -> add $"reset(seed=42): {p}"
            | None -> ()

            trace.Add(fmt first)
            let mutable ended = false
            let mutable t = 0

            while not ended && t < limit do
                t <- t + 1
                let r = env.Step(toAction (env.ActionSpace.Sample rng))

                match observationProblem env.ObservationSpace r.Obs with
                | Some p -> add $"step {t}: {p}"
                | None -> ()

                if not (Double.IsFinite r.Reward) then
                    add $"step {t}: the reward {r.Reward} is not finite"

                trace.Add $"{fmt r.Obs} {r.Reward:R} {r.Terminated} {r.Truncated}"
                ended <- r.Terminated || r.Truncated

            List.ofSeq trace, ended, t

        try
            // the same seed again after another one must give the same first observation
            let first = env.Reset(Some 42L)
            env.Reset(Some 43L) |> ignore
            let again = env.Reset(Some 42L)

            if fmt first <> fmt again then
                add
                    $"seeding: reset(seed=42) gave {fmt first}, then {fmt again}; the same seed must give the same observation"

            let trace1, ended, steps = episode ()
            let trace2, _, _ = episode ()

            if trace1 <> trace2 then
                let i = List.zip trace1 trace2 |> List.findIndex (fun (a, b) -> a <> b)

                add
                    $"seeding: two episodes from reset(seed=42) with the same actions differ at step {i} ({trace1[i]} vs {trace2[i]}); all randomness must come from the seeded generator"

            if not ended then
                add
                    $"time limit: the episode did not end within {steps} steps (MaxEpisodeSteps = {env.MaxEpisodeSteps}); the env must truncate at its time limit"
            else
                let refused =
                    try
                        env.Step(toAction (env.ActionSpace.Sample(SeededRandom 1))) |> ignore
                        false
                    with :? InvalidOperationException ->
                        true

                if not refused then
                    add
                        $"step after done: Step after the episode ended (step {steps}) must raise InvalidOperationException until Reset"

            env.Reset None |> ignore
        with
        | :? EnvContractException as e -> add e.Message
        | e -> add $"the env raised {e.GetType().Name}: {e.Message}"

        List.ofSeq found

/// `problemsWith None`.
let problems (env: IEnv) : string list = problemsWith None env

/// Checks `env` (see `problemsWith`); raises `EnvCheckException` listing every problem.
let check (env: IEnv) : unit =
    match problems env with
    | [] -> ()
    | ps -> raise (EnvCheckException(env.Id, ps))
