// Time to a solved policy, side by side (`bench.fsx solve`): for Pendulum-v1 (our default config
// against CleanRL's ppo_continuous_action.py at its defaults, 1M steps) and CartPole-v1
// (ppo-cartpole.yaml, CleanRL's own config, against CleanRL's ppo.py at its defaults, 500k steps),
// one seed per process on one thread each, the wall seconds until
//   - ours: the periodic deterministic evaluation (eval_every, evals.csv) first reaches the bar
//     (Pendulum >= -200 over the config's 100 episodes, CartPole = 500 over 10), in a run with
//     periodic evaluation (its cost included); and the mean training return of the last 20
//     episodes first reaches the training bar, in a second run without periodic evaluation (the
//     work CleanRL does). Both clocks start with the run (the F# script is already compiled);
//   - CleanRL: the mean training return of its last 20 episodes first reaches the training bar
//     (CleanRL evaluates only after training, so this is the one criterion both have; our
//     scripts/peers/cleanrl/tbstub.py prints each episode's time, counted from its SummaryWriter,
//     made after Python's imports). CleanRL's process is stopped as soon as it is there.
// Training bars: Pendulum -200, CartPole 475 (CartPole-v1's reward_threshold). Seeds 1000..
// (untuned; RL_SOLVE_SEEDS=<n>, default 2). Needs RL_CLEANRL_DIR (scripts/peers/cleanrl/setup.sh);
// without it only our side runs. RL_SOLVE_ONLY=pendulum|cartpole runs one task.
module BenchSolve

open System
open System.Diagnostics
open System.IO
open Rl
open BenchCommon

/// One task of the section.
type SolveTask =
    {
        Name: string
        /// Our config file under scripts/configs and the overrides for this bench.
        Config: string
        Overrides: string list
        /// The deterministic evaluation's bar and the training-return bar (last 20 episodes).
        EvalBar: float
        TrainBar: float
        /// CleanRL's script and its arguments (its defaults otherwise).
        CleanRlScript: string
        CleanRlArgs: string
    }

let tasks =
    [
        {
            Name = "pendulum"
            Config = "ppo-pendulum.yaml"
            Overrides = [ "eval_every=2048" ]
            EvalBar = -200.0
            TrainBar = -200.0
            CleanRlScript = "ppo_continuous_action.py"
            CleanRlArgs = "--env-id Pendulum-v1"
        }
        {
            Name = "cartpole"
            Config = "ppo-cartpole.yaml"
            Overrides = [ "eval_every=10000" ]
            EvalBar = 500.0
            TrainBar = 475.0
            CleanRlScript = "ppo.py"
            CleanRlArgs = "--env-id CartPole-v1"
        }
    ]

/// The key of the first (key, episode return) pair, in order, at which the mean of the last 20
/// returns reaches `bar`; None if it never does. Reads `events` only that far.
let firstLast20 (bar: float) (events: ('k * float) seq) : 'k option =
    let window = Collections.Generic.Queue<float>()

    events
    |> Seq.tryPick (fun (key, v) ->
        window.Enqueue v

        if window.Count > 20 then
            window.Dequeue() |> ignore

        if window.Count = 20 && Seq.average window >= bar then
            Some key
        else
            None)

/// Our run of one seed with `overrides` after the task's config: the wall seconds to the first
/// deterministic eval at the bar (None without periodic evaluation), to the training bar, and in
/// all, with the steps of the first two.
let oursWith (task: SolveTask) (seed: int64) (overrides: string list) =
    let runs = Path.GetFullPath(Path.Combine("runs", "bench-solve", task.Name))
    let clock = Stopwatch.StartNew()
    let times = Collections.Generic.List<int64 * float>()

    let options =
        { Train.DriveOptions.Default with
            OnProgress = fun step _ _ -> times.Add((step, clock.Elapsed.TotalSeconds))
        }

    let args =
        [
            "config=" + Path.Combine(configsDir, task.Config)
            $"seed={seed}"
            $"runs={runs}"
            $"threads={threads}"
        ]
        @ overrides

    let outcome = Train.run options Ppo.Runner.algorithm (Train.FromArgs args)
    let total = clock.Elapsed.TotalSeconds
    // The time of a step: the progress call after it (its evaluation included), or the end.
    let timeAfter (step: int64) =
        times
        |> Seq.tryFind (fun (s, _) -> s > step)
        |> Option.map snd
        |> Option.defaultValue total

    let evalsFile = Path.Combine(outcome.Dir, PeriodicEval.File)

    let evalHit =
        if File.Exists evalsFile then
            PeriodicEval.read evalsFile
            |> List.tryFind (fun r -> r.Mean >= task.EvalBar - 1e-9)
            |> Option.map (fun r -> r.Step, timeAfter r.Step)
        else
            None

    // training episodes: each update's mean return over its `episodes`, expanded per episode
    let table = Metrics.readCsv (Path.Combine(outcome.Dir, Metrics.CsvFile))
    let steps = Metrics.column "global_step" table
    let returns = Metrics.column "episodic_return" table
    let counts = Metrics.column "episodes" table

    let trainHit =
        seq {
            for i in 0 .. steps.Length - 1 do
                if Double.IsFinite returns[i] then
                    for _ in 1 .. int counts[i] do
                        yield int64 steps[i], returns[i]
        }
        |> firstLast20 task.TrainBar
        |> Option.map (fun s -> s, timeAfter (s - 1L))

    evalHit, trainHit, total

/// Our two runs of one seed: with the task's periodic evaluation (the time to the eval bar, its
/// evaluations' cost included) and without it (`eval_every=0`: the time to the training bar at the
/// work CleanRL does, which evaluates nothing while training). Returns the eval bar's hit, the
/// training bar's hit (of the second run) and both runs' wall seconds.
let ours (task: SolveTask) (seed: int64) =
    let evalHit, _, evalRun = oursWith task seed task.Overrides
    let _, trainHit, trainRun = oursWith task seed [ "eval_every=0" ]
    evalHit, trainHit, evalRun + trainRun

/// CleanRL's run of one seed: stopped once its last-20 training mean reaches the bar. Returns the
/// (seconds, global step) of that moment (None if its whole budget passed first) and the wall
/// seconds of the process. None when RL_CLEANRL_DIR is unset.
let cleanRlRun (task: SolveTask) (seed: int64) =
    match startCleanRl task.CleanRlScript $"{task.CleanRlArgs} --seed {seed}" with
    | None -> None
    | Some(p, _, sw) ->
        use p = p
        let err = p.StandardError.ReadToEndAsync()
        // "episode <seconds> <global_step> <return>" lines (tbstub.py), read until the bar
        let episodes =
            seq {
                let mutable line = p.StandardOutput.ReadLine()

                while not (isNull line) do
                    match line.Split ' ' with
                    | [| "episode"; t; step; r |] -> yield (float t, int64 step), float r
                    | _ -> ()

                    line <- p.StandardOutput.ReadLine()
            }

        let hit = firstLast20 task.TrainBar episodes
        let stopped = hit.IsSome

        if stopped then
            p.Kill true

        p.WaitForExit()

        if not stopped && p.ExitCode <> 0 then
            failwithf "CleanRL %s failed with exit code %d:\n%s" task.CleanRlScript p.ExitCode err.Result

        Some(hit, sw.Elapsed.TotalSeconds)

/// The section: every task (or RL_SOLVE_ONLY), RL_SOLVE_SEEDS seeds from 1000, a table per task.
let benchSolve () =
    let seeds = defaultArg (envInt "RL_SOLVE_SEEDS") 2

    let only = Environment.GetEnvironmentVariable "RL_SOLVE_ONLY"

    for task in tasks |> List.filter (fun t -> String.IsNullOrEmpty only || t.Name = only) do
        printfn "## solve %s: seeds 1000-%d, one process and one thread each" task.Name (1000 + seeds - 1)

        let show (hit: (int64 * float) option) =
            match hit with
            | Some(step, t) -> $"{t:F1} s (step {step})"
            | None -> "not reached"

        let rows =
            [
                for k in 0 .. seeds - 1 do
                    let seed = 1000L + int64 k
                    let evalHit, trainHit, total = ours task seed

                    printfn
                        "seed %d ours: eval >= %g at %s (run with eval_every); last-20 training >= %g at %s (run without periodic evaluation); both runs %.1f s"
                        seed
                        task.EvalBar
                        (show evalHit)
                        task.TrainBar
                        (show trainHit)
                        total

                    let peer = cleanRlRun task seed

                    match peer with
                    | Some(hit, wall) ->
                        printfn
                            "seed %d CleanRL %s: last-20 training >= %g at %s; process %.1f s%s"
                            seed
                            task.CleanRlScript
                            task.TrainBar
                            (show (hit |> Option.map (fun (t, s) -> s, t)))
                            wall
                            (if hit.IsSome then " (stopped there)" else " (whole budget)")
                    | None -> printfn "seed %d CleanRL: RL_CLEANRL_DIR not set, not run" seed

                    yield seed, evalHit, trainHit, peer
            ]

        // Ratios at equal criterion: CleanRL's time to its training bar over ours to the same bar;
        // and over ours to the deterministic eval's bar.
        for seed, evalHit, trainHit, peer in rows do
            match peer with
            | Some(Some(tPeer, _), _) ->
                let ratio (hit: (int64 * float) option) =
                    hit |> Option.map (fun (_, t) -> $"{tPeer / t:F1}x") |> Option.defaultValue "-"

                printfn
                    "seed %d: CleanRL's time to the training bar / ours: %s (same criterion); / ours to the eval bar: %s"
                    seed
                    (ratio trainHit)
                    (ratio evalHit)
            | Some(None, wall) ->
                printfn
                    "seed %d: CleanRL did not reach the training bar in its budget (%.0f s): ratio > %s"
                    seed
                    wall
                    (match evalHit with
                     | Some(_, t) -> $"{wall / t:F1}x (to our eval bar)"
                     | None -> "-")
            | None -> ()
