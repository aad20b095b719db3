/// The Slurm launcher: the array script (sweep.sbatch), sbatch's refusals as `ConfigError`s and
/// the overrides every task adds to its point.
namespace Rl.Sweep

open System
open System.IO
open Rl

/// Slurm array scripts and refusals.
module Slurm =
    /// The Slurm array spec of a list of indices: runs of consecutive ones as ranges, e.g.
    /// [0; 1; 2; 5] -> "0-2,5".
    let arraySpec (indices: int list) : string =
        let rec go acc (xs: int list) =
            match xs, acc with
            | [], _ -> List.rev acc
            | x :: rest, (a, b) :: accRest when x = b + 1 -> go ((a, x) :: accRest) rest
            | x :: rest, _ -> go ((x, x) :: acc) rest

        go [] (List.sort indices)
        |> List.map (fun (a, b) -> if a = b then string a else $"{a}-{b}")
        |> String.concat ","

    let private shellQuote (s: string) = "'" + s.Replace("'", "'\\''") + "'"

    /// The text of the Slurm array script for sweep folder `dir` (`sweep.sbatch`): one array task
    /// per index of `indices` (`#SBATCH --array`), output appended to `logs/point-%a.log`, the
    /// launcher's `#SBATCH` lines, and a body that runs `command point sweep_dir=<dir>
    /// index=$SLURM_ARRAY_TASK_ID` from `workDir`, forwards SIGTERM to it, and (with `requeue`)
    /// requeues the task with `scontrol requeue` when the run stopped after a checkpoint (exit code
    /// 3, or 143 for a SIGTERM that came before the run had begun) while the job is still RUNNING (a `scancel --signal=TERM --full`, or the `--signal` sent
    /// ahead of `slurm_time`), so that a cancelled job stays cancelled. `command` is the program and
    /// arguments that start `scripts/sweep.fsx` (e.g. dotnet fsi --quiet /path/scripts/sweep.fsx).
    let sbatchScript
        (launch: Launch)
        (command: string list)
        (workDir: string)
        (dir: string)
        (indices: int list)
        : string =
        let line (s: string) = "#SBATCH " + s
        let name = "sweep-" + Path.GetFileName(dir.TrimEnd(Path.DirectorySeparatorChar))

        let grace =
            launch.Time
            |> Option.map (fun t -> min 120L (max 10L (Launch.slurmTimeSeconds t / 10L)))

        let cmd = command |> List.map shellQuote |> String.concat " "

        [
            yield "#!/bin/bash"
            yield "# Written by scripts/sweep.fsx launcher=slurm: one array task per grid point of"
            yield $"# {Path.Combine(dir, Folder.SpecFile)} (the task id is the point's index; seeds are batched"
            yield "# inside each task). Resubmitting the sweep folder passes --array with the unfinished points."
            yield line $"--job-name={name}"
            yield line $"--array={arraySpec indices}"
            let output = Path.Combine(dir, Folder.LogsDir, "point-%a.log")
            yield line $"--output={output}"
            yield line "--open-mode=append"

            match launch.Partition with
            | Some p -> yield line $"--partition={p}"
            | None -> ()

            match launch.Time with
            | Some t -> yield line $"--time={t}"
            | None -> ()

            match launch.CpusPerTask with
            | Some c -> yield line $"--cpus-per-task={c}"
            | None -> ()

            match launch.Gres with
            | Some g -> yield line $"--gres={g}"
            | None -> ()

            match launch.Mem with
            | Some m -> yield line $"--mem={m}"
            | None -> ()

            yield line (if launch.Requeue then "--requeue" else "--no-requeue")

            match grace with
            | Some s -> yield line $"--signal=B:TERM@{s}"
            | None -> ()

            for o in launch.Extra do
                yield line o

            yield ""
            yield "set -u"
            yield $"cd {shellQuote workDir}"
            yield "task=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\""

            yield
                "echo \"== task $task (point $SLURM_ARRAY_TASK_ID, restart ${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date -u +%FT%TZ)\""

            yield "# SIGTERM (time limit, preemption, scancel --signal=TERM --full): the run checkpoints at the"
            yield "# next update boundary and exits with code 3"
            yield "stop() { kill -TERM \"$child\" 2>/dev/null; }"
            yield "trap stop TERM INT"
            yield $"{cmd} point sweep_dir={shellQuote dir} index=\"$SLURM_ARRAY_TASK_ID\" &"
            yield "child=$!"
            yield "wait \"$child\"; rc=$?"
            yield "while kill -0 \"$child\" 2>/dev/null; do wait \"$child\"; rc=$?; done"
            yield "echo \"== task $task exited with code $rc at $(date -u +%FT%TZ)\""

            if launch.Requeue then
                yield "# 3: stopped after a checkpoint; 143: SIGTERM before the run began (nothing to lose)"
                yield $"if [ \"$rc\" -eq {Folder.StoppedExitCode} ] || [ \"$rc\" -eq 143 ]; then"
                yield "    # requeue only a job that is still running: a cancelled one stays cancelled"
                yield "    if scontrol show job \"$SLURM_JOB_ID\" | grep -q 'JobState=RUNNING'; then"
                yield "        echo \"== requeueing $task: it resumes from its checkpoint\""
                yield "        scontrol requeue \"$task\""
                yield "    fi"
                yield "fi"

            yield "exit \"$rc\""
        ]
        |> String.concat "\n"
        |> fun s -> s + "\n"

    /// Raises `ConfigError` for sbatch's refusal of a script (`sbatch --test-only`), naming the key
    /// the refusal is about (partition, time, gres, memory, else `launcher`), its value and sbatch's
    /// own message; for a partition, what sinfo lists as allowed.
    let internal sbatchRefused (launch: Launch) (message: string) =
        let lower = message.ToLowerInvariant()

        let key, value =
            if lower.Contains "partition" then
                "slurm_partition", launch.Partition |> Option.defaultValue "(the cluster's default)"
            elif lower.Contains "time" then
                "slurm_time", launch.Time |> Option.defaultValue ""
            elif lower.Contains "gres" || lower.Contains "generic resource" then
                "slurm_gres", launch.Gres |> Option.defaultValue ""
            elif lower.Contains "memory" || lower.Contains "mem" then
                "slurm_mem", launch.Mem |> Option.defaultValue ""
            elif lower.Contains "cpu" || lower.Contains "processor" then
                "slurm_cpus_per_task", launch.CpusPerTask |> Option.map string |> Option.defaultValue ""
            else
                "launcher", "slurm"

        let allowed =
            match key, Native.which "sinfo" with
            | "slurm_partition", Some sinfo ->
                match Native.capture [] None sinfo [ "-h"; "-o"; "%R" ] with
                | 0, out, _ when out <> "" ->
                    "a partition of this cluster: "
                    + String.Join(", ", out.Split('\n') |> Array.map (fun s -> s.Trim()))
                | _ -> "a partition of this cluster (sinfo -s lists them)"
            | "slurm_partition", None -> "a partition of this cluster (sinfo -s lists them)"
            | _ -> "what this cluster accepts (see sbatch's message)"

        let msg = message.Replace('\n', ' ')
        raise (ConfigError("sbatch", key, value, allowed, $"sbatch refused the job: {msg}"))

    /// The overrides every task adds to its grid point (kept in points.json): `device=cuda` when
    /// `slurm_gres` asks for a `gpu` resource, and `threads=<slurm_cpus_per_task>`, each unless the
    /// grid sweeps that key itself.
    let taskOverrides (launch: Launch) (grid: (string * string) list list) : string list =
        [
            let inGrid k =
                grid |> List.exists (List.exists (fun (kk, _) -> kk = k))

            match launch.Gres with
            | Some g when
                g.Split(',') |> Array.exists (fun r -> r.StartsWith "gpu")
                && not (inGrid "device")
                ->
                yield "device=cuda"
            | _ -> ()

            match launch.CpusPerTask with
            | Some c when not (inGrid "threads") -> yield $"threads={c}"
            | _ -> ()
        ]
