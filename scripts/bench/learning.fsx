// The learning bench (`bench.fsx learning`): every shipped main config trained over a block of
// seeds that no one tuned on (batched in one process, as `num_seeds=` does), judged the way
// rl-baselines3-zoo's benchmark.md and CleanRL's Open RL Benchmark judge: per config, the success
// rate against the seed document's bar, the mean final evaluation with a 95 % bootstrap interval,
// the median steps until the periodic deterministic evaluation (`eval_every`, evals.csv) first
// reaches the bar (the training return for GRPO, which has none), how many seeds stayed at the
// bar in every later evaluation, and the wall time; a report (table and learning curves, median
// and quartiles over seeds) in runs/bench-learning/report.html.
//
// The seeds: 1000 .. 1000+S-1 for every config (chosen before any run was looked at; tune on
// others). RL_LEARNING_SEEDS=<n> caps S, RL_LEARNING_QUICK=1 shortens every budget to a smoke test,
// RL_LEARNING_ONLY=<name,name> runs only those rows.
module BenchLearning

open System
open System.IO
open System.Text.Json
open Plotly.NET
open Rl
open BenchCommon

/// One row of the table: a shipped config, its seeds, and the bar it must clear.
type LearningJob =
    {
        /// Row name.
        Name: string
        /// `algo=` of train.fsx.
        Algo: string
        /// File under scripts/configs.
        Config: string
        /// Seeds in the block (from `FirstSeed`).
        Seeds: int
        /// The bar and what it is (the seed document's success criterion).
        Bar: float
        BarText: string
        /// The summary.json key of the final evaluation (without `_seed_<s>`).
        EvalKey: string
        /// Curve columns in metrics.csv.
        X: string
        Y: string
        /// Overrides for quick mode.
        Quick: string list
        /// Overrides always given: the periodic evaluation (`eval_every`) when the config has none.
        Extra: string list
    }

let FirstSeed = 1000L

/// A job judged on its final evaluation return, its training curve the episodic return per step.
let private returnJob name algo config seeds bar barText quick extra =
    {
        Name = name
        Algo = algo
        Config = config
        Seeds = seeds
        Bar = bar
        BarText = barText
        EvalKey = "eval_return_mean"
        X = "global_step"
        Y = "episodic_return"
        Quick = quick
        Extra = extra
    }

let jobs =
    [
        returnJob
            "PPO Pendulum (default)"
            "ppo"
            "ppo-pendulum.yaml"
            10
            -200.0
            "eval >= -200 (seed 002)"
            [ "total_timesteps=8192"; "eval_every=4096" ]
            []
        returnJob
            "PPO Pendulum (seed 002's table)"
            "ppo"
            "ppo-pendulum-seed.yaml"
            10
            -200.0
            "eval >= -200 (seed 002)"
            [ "total_timesteps=4096"; "eval_every=2048" ]
            [ "eval_every=10000" ]
        returnJob
            "PPO CartPole (CleanRL's config)"
            "ppo"
            "ppo-cartpole.yaml"
            16
            500.0
            "eval = 500 (CartPole-v1's maximum)"
            [ "total_timesteps=2048"; "eval_every=1024" ]
            [ "eval_every=25000" ]
        returnJob
            "DQN CartPole (CleanRL's config)"
            "dqn"
            "dqn-cartpole.yaml"
            10
            475.0
            "greedy eval >= 475 (CartPole-v1's reward_threshold)"
            [
                "total_timesteps=3000"
                "learning_starts=500"
                "log_every=500"
                "eval_every=1500"
            ]
            [ "eval_every=25000" ]
        returnJob
            "REINFORCE CartPole (baseline)"
            "reinforce"
            "reinforce-cartpole.yaml"
            10
            475.0
            "eval >= 475 (CartPole-v1's reward_threshold)"
            [ "iterations=3"; "eval_every=2" ]
            [ "eval_every=10" ]
        { returnJob
              "GRPO MNIST"
              "grpo"
              "grpo-mnist.yaml"
              3
              0.95
              "test accuracy >= 0.95 (seed 004)"
              [ "epochs=1"; "train_size=512"; "test_size=256" ]
              [] with
            EvalKey = "test_accuracy"
            X = "epoch"
            Y = "test_accuracy"
        }
    ]

/// What one row measured.
type LearningRow =
    {
        Job: LearningJob
        Seeds: int64[]
        /// Final evaluation per seed.
        Finals: float[]
        /// Steps (or epochs) at which each seed's periodic evaluation (else its training curve)
        /// first reached the bar.
        Reached: float option[]
        /// Per seed, with periodic evaluations: whether every evaluation after the first at the
        /// bar stayed at it, and whether every evaluation in the last fifth of the run's steps was
        /// at it (late drift); None without them.
        Held: (bool * bool) option[]
        /// Whether `Reached` comes from periodic evaluations (evals.csv).
        FromEvals: bool
        WallSeconds: float
        RunDir: string
        /// The run's metrics.csv.
        Table: MetricsTable
    }

let private quick = Environment.GetEnvironmentVariable "RL_LEARNING_QUICK" = "1"

/// The training curve of one seed as (x, y), y smoothed as `Sweep.Stats.recentReturns` (the last
/// 20 episodes) when the table counts episodes, else as logged.
let private curve (job: LearningJob) (t: MetricsTable) =
    let xs = Metrics.column job.X t
    let ys = Metrics.column job.Y t

    if Metrics.hasColumn "episodes" t then
        xs, Sweep.Stats.recentReturns Sweep.Stats.ThresholdEpisodes ys (Metrics.column "episodes" t)
    else
        xs, ys

/// Trains one job through the CLI (as `train.fsx algo=... config=... num_seeds=S seed=1000`
/// would) under `root`, then reads the run folder's summary.json and metrics.csv.
let runJob (root: string) (job: LearningJob) : LearningRow =
    let seeds = min job.Seeds (defaultArg (envInt "RL_LEARNING_SEEDS") job.Seeds)
    let runs = Path.Combine(root, job.Config.Replace(".yaml", ""))

    let args =
        [
            "config=" + Path.Combine(configsDir, job.Config)
            $"num_seeds={seeds}"
            $"seed={FirstSeed}"
            $"runs={runs}"
        ]
        @ job.Extra
        @ (if quick then job.Quick else [])

    let algo =
        match Cli.tryFind job.Algo with
        | Some a -> a
        | None -> failwithf "%s: algo %s is not one of %s" job.Name job.Algo (String.Join(", ", Cli.names))

    printfn "### %s: dotnet fsi scripts/train.fsx algo=%s %s" job.Name job.Algo (String.Join(" ", args))
    let clock = Diagnostics.Stopwatch.StartNew()
    let dir = algo.DriveWith Threading.CancellationToken.None args
    let wall = clock.Elapsed.TotalSeconds

    let summary =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, Run.SummaryFile))).RootElement

    let seedIds = Array.init seeds (fun k -> FirstSeed + int64 k)

    let finals =
        seedIds
        |> Array.map (fun s ->
            let key = if seeds = 1 then job.EvalKey else $"{job.EvalKey}_seed_{s}"
            summary.GetProperty(key).GetDouble())

    let table = Metrics.readCsv (Path.Combine(dir, Metrics.CsvFile))

    let evalsPath = Path.Combine(dir, PeriodicEval.File)
    let fromEvals = File.Exists evalsPath

    let reached, held =
        if fromEvals then
            let rows = PeriodicEval.read evalsPath

            let atBar (r: PeriodicEval.Row) = r.Mean >= job.Bar - 1e-9
            let last = rows |> List.map (fun r -> r.Step) |> List.max

            seedIds
            |> Array.map (fun s ->
                let mine = rows |> List.filter (fun r -> r.Seed = s)

                let late =
                    mine
                    |> List.filter (fun r -> float r.Step >= 0.8 * float last)
                    |> List.forall atBar

                match mine |> List.tryFindIndex atBar with
                | Some i -> Some(float mine[i].Step), Some(mine |> List.skip i |> List.forall atBar, late)
                | None -> None, Some(false, late))
            |> Array.unzip
        else
            Metrics.bySeed table
            |> List.map (fun (_, t) ->
                let xs, ys = curve job t
                Sweep.Stats.stepsToThreshold job.Bar xs ys)
            |> Array.ofList,
            Array.create seeds None

    {
        Job = job
        Seeds = seedIds
        Finals = finals
        Reached = reached
        Held = held
        FromEvals = fromEvals
        WallSeconds = wall
        RunDir = dir
        Table = table
    }

/// The table's cells of one row: success rate, mean [95 % CI], median steps to the bar (and how
/// many seeds reached it, in the periodic evaluation or in training), how many held it in every
/// later evaluation, wall time, seeds.
let cells (r: LearningRow) =
    let n = r.Finals.Length

    let passed =
        r.Finals |> Array.filter (fun v -> v >= r.Job.Bar - 1e-9) |> Array.length

    let mean = Array.average r.Finals
    let lo, hi = Sweep.Stats.bootstrapCi 0.95 10_000 0 r.Finals
    let hits = r.Reached |> Array.choose id

    // REINFORCE's evaluations count updates (its eval_every unit), GRPO's curve epochs
    let per =
        if r.Job.X = "epoch" then "epochs"
        elif r.FromEvals && r.Job.Algo = "reinforce" then "updates"
        else "steps"

    let median =
        if hits.Length = 0 then
            "never"
        else
            let m = Charts.percentile 0.5 hits
            $"{m:N0} {per}"

    [
        r.Job.Name
        r.Job.BarText
        $"{passed}/{n}"
        $"{mean:F3} [{lo:F3}, {hi:F3}]"
        $"""{median} ({hits.Length}/{n} reach it in {(if r.FromEvals then "eval" else "training")})"""
        (match r.Held |> Array.choose id with
         | [||] -> "-"
         | hs ->
             let count f = hs |> Array.filter f |> Array.length
             $"{count fst}/{n} from the first, {count snd}/{n} over the last fifth")
        $"{r.WallSeconds:F0} s"
        $"{r.Seeds[0]}-{r.Seeds[n - 1]}"
    ]

let private header =
    [
        "config"
        "bar"
        "success"
        "mean final eval [95 % CI]"
        "median to the bar"
        "held to the end"
        "wall"
        "seeds"
    ]

/// The markdown table of all rows, from their `cells`.
let markdown (rows: string list list) =
    let line (cs: string list) = "| " + String.Join(" | ", cs) + " |"

    [
        yield line header
        yield line (header |> List.map (fun _ -> "---"))
        for cs in rows do
            yield line cs
    ]
    |> String.concat "\n"

/// Writes report.html under `root` (`Report.write`: offline, plotly.js inline): one summary line
/// per row, then each row's learning curves (median and quartiles over seeds) beside the bar.
let writeReport (root: string) (rows: (LearningRow * string list) list) =
    let summary =
        [
            for _, cs in rows ->
                match cs with
                | name :: rest -> name, String.Join("; ", List.map2 (fun h c -> $"{h}: {c}") (List.tail header) rest)
                | [] -> "", ""
        ]

    let sections =
        rows
        |> List.map (fun (r, _) ->
            let t = r.Table
            let xs = Metrics.column r.Job.X t |> Array.filter Double.IsFinite

            let bar =
                if xs.Length = 0 then
                    []
                else
                    [
                        Charts.lines
                            ""
                            r.Job.X
                            r.Job.Y
                            [ "bar", [| Array.min xs; Array.max xs |], [| r.Job.Bar; r.Job.Bar |] ]
                    ]

            let chart =
                Chart.combine (Charts.learningCurve MedianQuartiles r.Job.X r.Job.Y t :: bar)
                |> Chart.withTitle $"{r.Job.Name} ({r.RunDir})"

            r.Job.Name, [ chart ])

    let path = Path.Combine(root, "report.html")
    Report.write path $"Learning bench: seeds from {FirstSeed}, untuned" summary sections
    path

/// The section: runs every job (or those in RL_LEARNING_ONLY), prints the table, writes the report.
let benchLearning () =
    let root = Path.GetFullPath(Path.Combine("runs", "bench-learning"))
    Directory.CreateDirectory root |> ignore

    let only =
        match Environment.GetEnvironmentVariable "RL_LEARNING_ONLY" with
        | null
        | "" -> None
        | s -> Some(s.Split(',') |> Array.map (fun x -> x.Trim()) |> Set.ofArray)

    let selected =
        jobs
        |> List.filter (fun j ->
            match only with
            | None -> true
            | Some names -> names.Contains(j.Config.Replace(".yaml", "")) || names.Contains j.Name)

    printfn
        "## learning: %d configs, seeds from %d (untuned)%s"
        selected.Length
        FirstSeed
        (if quick then
             ", QUICK budgets (a smoke test, not results)"
         else
             "")

    let rows =
        selected
        |> List.map (fun job ->
            let r = runJob root job
            r, cells r)

    printfn "\n%s\n" (markdown (List.map snd rows))
    printfn "report: %s" (writeReport root rows)
