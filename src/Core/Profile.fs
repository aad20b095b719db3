/// Opt-in profiling for `scripts/bench.fsx profile`: wall time, calls and tensors created per
/// named section of the training loops (`Profile.section "learn.backward" (fun () -> ...)`).
/// Off by default, when a section costs one flag test and one closure. "Tensors created" is read
/// from TorchSharp's `DisposeScopeManager.Statistics` and counts every native call that returns a
/// new tensor, so it is a lower bound of native calls (in-place ops such as `add_` create none).
/// Sections may nest; an outer section's figures include its inner ones. Not thread-safe: profile
/// one run at a time on one thread.
module Rl.Profile

open System.Collections.Generic
open System.Diagnostics
open TorchSharp

/// Totals of one section.
type SectionStats =
    {
        Name: string
        /// Wall-clock seconds spent in the section.
        Seconds: float
        /// Times the section ran.
        Calls: int64
        /// Tensors created inside it (a lower bound of its native calls).
        Tensors: int64
    }

/// Set true to record sections (and `reset` first); false (the default) records nothing.
let mutable enabled = false

let private totals = Dictionary<string, float * int64 * int64>()

let private created () =
    let s = DisposeScopeManager.Statistics
    s.CreatedInScopeCount + s.CreatedOutsideScopeCount

/// Runs `f` and, when profiling is enabled, adds its time, one call and the tensors it created to
/// section `name`. Returns what `f` returns; exceptions propagate (the section is not counted).
let section (name: string) (f: unit -> 'T) : 'T =
    if not enabled then
        f ()
    else
        let before = created ()
        let clock = Stopwatch.StartNew()
        let result = f ()
        let seconds = clock.Elapsed.TotalSeconds
        let tensors = created () - before

        match totals.TryGetValue name with
        | true, (s, c, t) -> totals[name] <- (s + seconds, c + 1L, t + tensors)
        | _ -> totals[name] <- (seconds, 1L, tensors)

        result

/// Forgets every section's totals.
let reset () = totals.Clear()

/// The totals so far, one per section, in name order.
let report () : SectionStats list =
    [
        for KeyValue(name, (s, c, t)) in totals ->
            {
                Name = name
                Seconds = s
                Calls = c
                Tensors = t
            }
    ]
    |> List.sortBy (fun s -> s.Name)
