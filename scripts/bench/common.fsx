// What every bench section shares: the settings read from the environment (RL_BENCH_SECONDS,
// RL_THREADS), the steps/s clock, the RSS probe, the flop yardstick (this machine's matmul rate
// and the flops of PPO's and DQN's learning phases), one PPO run with its time split, and the
// CleanRL peer runner (side by side when RL_CLEANRL_DIR is set, else the peers.md anchor).
// Loaded by ../bench.fsx after load.fsx and before the section files; it defines the settings
// and functions only.
module BenchCommon

open System
open System.Diagnostics
open TorchSharp
open Rl

/// scripts/configs, where the benchmarks' YAML configs live.
let configsDir =
    IO.Path.GetFullPath(IO.Path.Combine(__SOURCE_DIRECTORY__, "..", "configs"))

/// The integer in environment variable `name`, or None when it is unset or empty.
let envInt (name: string) =
    match Environment.GetEnvironmentVariable name with
    | null
    | "" -> None
    | s -> Some(int s)

/// Seconds per env-bench case (RL_BENCH_SECONDS, default 2).
let secondsPerCase =
    match Environment.GetEnvironmentVariable "RL_BENCH_SECONDS" with
    | null
    | "" -> 2.0
    | s -> float s

/// Torch intra-op threads (RL_THREADS, default 1, so that figures are per core).
let threads = defaultArg (envInt "RL_THREADS") 1

/// Runs `step` (which returns the env steps it did) repeatedly for about `seconds` after a short
/// warm-up; returns env steps per second.
let measure (seconds: float) (step: unit -> int) =
    let warm = Stopwatch.StartNew()

    while warm.Elapsed.TotalSeconds < 0.2 * seconds do
        step () |> ignore

    let sw = Stopwatch.StartNew()
    let mutable steps = 0L

    while sw.Elapsed.TotalSeconds < seconds do
        steps <- steps + int64 (step ())

    float steps / sw.Elapsed.TotalSeconds

/// Resident set size of this process in MiB.
let rssMiB () =
    Process.GetCurrentProcess().Refresh()
    float (Process.GetCurrentProcess().WorkingSet64) / 1048576.0

/// Float32 matmul rate of this machine on `threads` threads (GFLOP/s), from 512 x 512 products:
/// the yardstick for "flop-limited time".
let matmulGflops () =
    use a = torch.randn (512L, 512L)
    use b = torch.randn (512L, 512L)

    for _ in 1..5 do
        (torch.mm (a, b)).Dispose()

    let n = 50
    let clock = Stopwatch.StartNew()

    for _ in 1..n do
        (torch.mm (a, b)).Dispose()

    2.0 * 512.0 ** 3.0 * float n / clock.Elapsed.TotalSeconds / 1e9

/// Forward flops of an MLP per sample: 2 * sum of in * out over its layers.
let mlpFlops (sizes: int list) =
    sizes |> List.pairwise |> List.sumBy (fun (i, o) -> 2.0 * float i * float o)

/// Flops of PPO's learning phase for `cfg` on an env with `obsDim` observations and `actDim`
/// policy outputs: forward + backward (about three forwards) of actor and critic for every sample
/// of every minibatch step, all seeds.
let ppoLearnFlops (cfg: Ppo.PpoConfig) (obsDim: int) (actDim: int) =
    let perSample =
        3.0
        * (mlpFlops (obsDim :: cfg.Hidden @ [ actDim ])
           + mlpFlops (obsDim :: cfg.Hidden @ [ 1 ]))

    perSample
    * float (
        cfg.NumUpdates
        * cfg.UpdateEpochs
        * cfg.MinibatchesPerEpoch
        * cfg.MinibatchLength
    )
    * float cfg.Run.NumSeeds

/// Flops of DQN's learning phase on CartPole-v1 for `cfg`: the online network's forward and
/// backward and the target network's forward (about four forwards) per sample, all seeds.
let dqnLearnFlops (cfg: Dqn.DqnConfig) =
    let q = mlpFlops (4 :: cfg.Hidden @ [ 2 ])

    let learns =
        float (cfg.TotalTimesteps - cfg.LearningStarts) / float cfg.TrainFrequency

    4.0 * q * learns * float cfg.BatchSize * float cfg.Run.NumSeeds

/// Percent of the flop-limited rate reached: the time `flops` take at `gflops` over `seconds`.
let flopShare (flops: float) (gflops: float) (seconds: float) =
    100.0 * flops / (gflops * 1e9) / seconds

/// One PPO run of `cfg` (no files written): wall seconds, env steps/s, the rollout/GAE/learn
/// split, and RSS (MiB) when the run passes 25 %, 50 % and 100 % of its updates.
let ppoRun (cfg: Ppo.PpoConfig) =
    let marks = [| 0.25; 0.5; 1.0 |]
    let rss = Array.create marks.Length nan

    let hooks: Ppo.Hooks =
        {
            OnUpdate =
                fun _ progress _ _ ->
                    let frac = float progress.Update / float cfg.NumUpdates

                    marks
                    |> Array.iteri (fun i m ->
                        if Double.IsNaN rss[i] && frac >= m then
                            rss[i] <- rssMiB ())
        }

    let r = Ppo.Loop.train cfg hooks None
    let sum f = r.Metrics |> List.sumBy f

    let evals =
        Ppo.Evaluate.evaluate (Ppo.PpoConfig.makeEnv cfg) r.Agent r.Normalizers.Obs cfg.EvalEpisodes cfg.EvalSeed

    (r.Agent :> IDisposable).Dispose()
    let steps = float cfg.TotalTimesteps * float cfg.Run.NumSeeds
    let perSeed = float cfg.Run.NumSeeds
    let rollout = sum (fun m -> m.RolloutSeconds) / perSeed
    let gae = sum (fun m -> m.GaeSeconds) / perSeed
    let learn = sum (fun m -> m.LearnSeconds) / perSeed
    r.WallSeconds, steps / r.WallSeconds, (rollout, gae, learn), rss, evals |> Array.map Array.average

/// Runs a CleanRL script (`ppo.py`, `ppo_continuous_action.py` or `dqn.py`) with `args` (tyro-style
/// `--key value` pairs) and one torch thread on the CPU, from the folder that
/// `scripts/peers/cleanrl/setup.sh` builds, named by RL_CLEANRL_DIR (python: RL_CLEANRL_PYTHON,
/// default /usr/bin/python3). Returns Some (steps/s as the script prints it last, wall seconds of
/// the process, last-20 mean training return), or None when RL_CLEANRL_DIR is unset. Fails with
/// the script's output when the run fails.
/// Starts a CleanRL script (`script args --cuda false`, one torch thread) in the folder named by
/// RL_CLEANRL_DIR with RL_CLEANRL_PYTHON (default /usr/bin/python3), its output redirected;
/// returns the process, its folder and a clock started with it, or None when RL_CLEANRL_DIR is unset.
let startCleanRl (script: string) (args: string) =
    match Environment.GetEnvironmentVariable "RL_CLEANRL_DIR" with
    | null
    | "" -> None
    | dir ->
        let python =
            match Environment.GetEnvironmentVariable "RL_CLEANRL_PYTHON" with
            | null
            | "" -> "/usr/bin/python3"
            | p -> p

        let psi =
            ProcessStartInfo(
                python,
                $"{script} {args} --cuda false",
                WorkingDirectory = dir,
                RedirectStandardOutput = true,
                RedirectStandardError = true
            )

        psi.Environment["OMP_NUM_THREADS"] <- "1"
        psi.Environment["MKL_NUM_THREADS"] <- "1"
        let sw = Stopwatch.StartNew()
        Some(Process.Start psi, dir, sw)

let cleanRl (script: string) (args: string) =
    match startCleanRl script args with
    | None -> None
    | Some(p, dir, sw) ->
        use p = p
        let err = p.StandardError.ReadToEndAsync()
        let out = p.StandardOutput.ReadToEnd()
        p.WaitForExit()
        let wall = sw.Elapsed.TotalSeconds
        let lines = out.Split('\n') |> Array.map (fun l -> l.Trim())

        let last (prefix: string) =
            lines
            |> Array.tryFindBack (fun l -> l.StartsWith prefix)
            |> Option.map (fun l -> l.Substring(prefix.Length).Trim())

        match p.ExitCode, last "SPS:", last "episodes" with
        | 0, Some sps, Some eps ->
            // "episodes <n> last-20 mean return <r>" (tbstub.py)
            let ret = eps.Split(' ') |> Array.last |> float
            Some(float sps, wall, ret)
        | code, _, _ ->
            failwithf
                "CleanRL %s in %s (RL_CLEANRL_DIR) failed with exit code %d:\n%s\n%s"
                script
                dir
                code
                (String.Join("\n", lines |> Array.truncate 20))
                err.Result

/// CleanRL's steps/s for `script args`: measured side by side (printing wall time, steps/s and the
/// last-20 training return) when RL_CLEANRL_DIR is set, else `anchor` from peers.md. Returns the
/// figure and a label saying which it is.
let cleanRlOrAnchor (script: string) (args: string) (anchor: float) =
    match cleanRl script args with
    | Some(sps, wall, ret) ->
        printfn
            "CleanRL %s %s here, now (1 thread): %.1f s, %.0f steps/s, last-20 training return %.1f"
            script
            args
            wall
            sps
            ret

        sps, "measured side by side"
    | None ->
        anchor,
        "peers.md anchor from another machine: set RL_CLEANRL_DIR (scripts/peers/cleanrl/setup.sh) to measure it here"
