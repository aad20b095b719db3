/// Periodic evaluation during training, with the best policy kept (Stable-Baselines3's
/// `EvalCallback`): every `eval_every` environment steps per seed (at the first update boundary
/// at or past each multiple, and at the end of the run) the algorithm evaluates its deterministic
/// policy on `eval_episodes` episodes; the run driver writes one row per seed to `evals.csv` and
/// asks the algorithm to save a checkpoint of every seed whose mean return beats its best so far
/// into `best/` (one seed) or `best/seed_<s>/` (several: each folder holds the whole batched
/// checkpoint of the moment seed s peaked). The evaluation episodes are the final evaluation's
/// (seeds `eval_seed + s`), so picking the best policy on them is selection on the reported
/// episodes, as in SB3; `evaluate.fsx episodes=` with more episodes gives a fresh estimate.
module Rl.PeriodicEval

open System
open System.Globalization
open System.IO
open Rl

/// `evals.csv`, in the run folder.
[<Literal>]
let File = "evals.csv"

/// `best`, the folder of the best checkpoints in the run folder.
[<Literal>]
let BestDir = "best"

/// The columns of `evals.csv`.
let header = "step,seed,eval_return_mean,eval_return_std,episodes,best"

/// One row of `evals.csv`: seed `Seed`'s deterministic evaluation at environment step `Step`
/// (per seed), its mean and population std over `Episodes` episodes, and whether it was the best
/// so far (a checkpoint of it was saved).
type Row =
    {
        Step: int64
        Seed: int64
        Mean: float
        Std: float
        Episodes: int
        Best: bool
    }

let private inv = CultureInfo.InvariantCulture

let private format (r: Row) =
    String.Join(
        ",",
        [|
            string r.Step
            string r.Seed
            r.Mean.ToString("R", inv)
            r.Std.ToString("R", inv)
            string r.Episodes
            (if r.Best then "1" else "0")
        |]
    )

/// The best-checkpoint folder of seed index `k` of a run of `seeds`: `<runDir>/best` for one
/// seed, `<runDir>/best/seed_<s>` for several.
let bestDir (runDir: string) (seeds: int64[]) (k: int) =
    if seeds.Length = 1 then
        Path.Combine(runDir, BestDir)
    else
        Path.Combine(runDir, BestDir, $"seed_{seeds[k]}")

/// The rows of an `evals.csv`. Raises `InvalidDataException` naming the file and line when the
/// header or a row is not what this module writes.
let read (path: string) : Row list =
    let lines = System.IO.File.ReadAllLines path

    let fail (n: int) (what: string) =
        raise (InvalidDataException($"{path}, line {n}: {what}; expected the columns {header}"))

    if lines.Length = 0 || lines[0] <> header then
        fail 1 "not the evals.csv header"

    [
        for n in 1 .. lines.Length - 1 do
            if lines[n] <> "" then
                let cells = lines[n].Split ','

                let num (i: int) =
                    match Double.TryParse(cells[i], NumberStyles.Float, inv) with
                    | true, v -> v
                    | _ -> fail (n + 1) $"'{cells[i]}' is not a number"

                if cells.Length <> 6 then
                    fail (n + 1) $"{cells.Length} cells"

                yield
                    {
                        Step = int64 (num 0)
                        Seed = int64 (num 1)
                        Mean = num 2
                        Std = num 3
                        Episodes = int (num 4)
                        Best = num 5 = 1.0
                    }
    ]

/// A run's periodic evaluation: the rows so far (those of a resumed run up to the step it resumes
/// at; later ones are dropped, exact resume recomputes them), each seed's best mean and its step,
/// and when the next evaluation is due. `every` = 0 turns it off (nothing is written).
type Log(runDir: string, seeds: int64[], every: int64, resumedAt: int64 option) =
    let path = Path.Combine(runDir, File)

    let rows =
        ResizeArray<Row>(
            match resumedAt with
            | Some step when every > 0L && System.IO.File.Exists path ->
                read path |> List.filter (fun r -> r.Step <= step)
            | _ -> []
        )

    let best = Array.create seeds.Length Double.NegativeInfinity
    let bestStep = Array.create seeds.Length -1L

    let note (r: Row) =
        match Array.tryFindIndex ((=) r.Seed) seeds with
        | Some k when r.Mean > best[k] ->
            best[k] <- r.Mean
            bestStep[k] <- r.Step
        | _ -> ()

    do rows |> Seq.iter note

    let mutable next =
        let at = defaultArg resumedAt 0L

        if every > 0L then
            (at / every + 1L) * every
        else
            Int64.MaxValue

    let mutable lastStep = rows |> Seq.fold (fun m r -> max m r.Step) -1L

    /// Steps between evaluations (0: off).
    member _.Every = every
    /// The rows so far, in order.
    member _.Rows = List.ofSeq rows
    /// Per seed index, the best mean evaluation return so far (-infinity before the first).
    member _.Best = Array.copy best
    /// Per seed index, the step of `Best` (-1 before the first evaluation).
    member _.BestStep = Array.copy bestStep

    /// Whether an evaluation is due at `step`: eval_every is on and `step` reached the next
    /// multiple, or the run is `finished` and `step` was not evaluated yet.
    member _.Due(step: int64, finished: bool) =
        every > 0L && (step >= next || (finished && step <> lastStep))

    /// Records the evaluation at `step` (per seed index, the episode returns), rewrites
    /// `evals.csv` atomically and returns per seed index whether it beat that seed's best (the
    /// caller saves those seeds' checkpoints). Raises `ArgumentException` when `evals` does not
    /// hold one array of returns per seed.
    member _.Record(step: int64, evals: float[][]) : bool[] =
        if evals.Length <> seeds.Length then
            invalidArg "evals" $"periodic evaluation: {evals.Length} result(s) for {seeds.Length} seed(s)"

        let improved =
            evals
            |> Array.mapi (fun k returns ->
                let m = Array.average returns
                let s = sqrt (Array.averageBy (fun x -> (x - m) * (x - m)) returns)
                let better = m > best[k]

                let r =
                    {
                        Step = step
                        Seed = seeds[k]
                        Mean = m
                        Std = s
                        Episodes = returns.Length
                        Best = better
                    }

                rows.Add r
                note r
                better)

        lastStep <- step
        next <- (step / every + 1L) * every
        let text = String.Join("\n", Seq.append [ header ] (Seq.map format rows)) + "\n"
        Files.writeTextAtomic path text
        improved

    /// The pairs `summary.json` gets (none when off or before any evaluation): `eval_every`,
    /// `eval_policy` ("final": `eval_return_mean` is the final policy's), `best_eval_return_mean`
    /// (the mean over seeds of each seed's best) and per seed `best_eval_return_mean_seed_<s>` and
    /// `best_step_seed_<s>` (several seeds) or `best_step` (one).
    member _.Pairs: (string * SummaryValue) list =
        if every = 0L || rows.Count = 0 then
            []
        else
            [
                yield "eval_every", Integer every
                yield "eval_policy", Text "final"
                yield "best_eval_return_mean", Number(Array.average best)
                if seeds.Length = 1 then
                    yield "best_step", Integer bestStep[0]
                else
                    for k in 0 .. seeds.Length - 1 do
                        yield $"best_eval_return_mean_seed_{seeds[k]}", Number best[k]
                        yield $"best_step_seed_{seeds[k]}", Integer bestStep[k]
            ]
