/// Exact resume for PPO, in one place: the random streams of a run segment (per seed, derived
/// from the seed and the update the segment starts at: action sampling, minibatch order,
/// environment resets), and the checkpoint's `streams` entry that continues them, the
/// environments' running state, the current observations and the reward normaliser's discounted
/// returns exactly where a run stopped (see `Snapshot`).
namespace Rl.Ppo

open System
open TorchSharp
open Rl

/// The generators a PPO run segment draws from, one per seed.
type Generators =
    {
        /// Action sampling during rollouts, on the run's device.
        Policy: torch.Generator[]
        /// Minibatch permutations, on the CPU.
        Minibatch: torch.Generator[]
    }

/// The random streams of a run segment and their snapshot.
module Streams =
    /// The seed of stream `label` of training seed `seed` for a segment starting after `update`
    /// updates.
    let internal streamSeed (seed: int64) (label: string) (update: int) = Seed.derive seed $"{label}/{update}"

    /// Fresh generators for seeds `seeds` of a segment starting after `update` updates.
    let generators (seeds: int64[]) (device: torch.Device) (update: int) : Generators =
        {
            Policy =
                seeds
                |> Array.map (fun s -> Seed.generator device (streamSeed s "policy" update))
            Minibatch =
                seeds
                |> Array.map (fun s -> Seed.generator torch.CPU (streamSeed s "minibatch" update))
        }

    /// The reset seed of the fused environment of all seeds (see `SeedEnvs.Reset`).
    let fusedEnvSeed (seeds: int64[]) (update: int) = streamSeed seeds[0] "env-fused" update

    /// The reset seed of seed index k's own environments.
    let envSeed (seeds: int64[]) (update: int) (k: int) = streamSeed seeds[k] "env" update

    /// Continues the checkpoint's streams when `progress.Streams` holds them (then clears it):
    /// the environments' state, the observations and discounted returns of `state`, and the
    /// generators, instead of the fresh episodes the segment started. Raises `FormatException`
    /// naming what does not fit.
    let restore (progress: Progress) (envs: SeedEnvs) (state: RolloutState) (gens: Generators) =
        if not (isNull progress.Streams) then
            let node = Snapshot.parse progress.Streams
            envs.LoadState(Snapshot.field "envs" node)

            let obs =
                Snapshot.toTensorLike "PPO streams, observations" state.Obs (Snapshot.field "obs" node)

            state.Obs.Dispose()
            state.Obs <- obs.DetachFromDisposeScope()

            use discounted =
                Snapshot.toTensorLike
                    "PPO streams, discounted returns"
                    state.Discounted
                    (Snapshot.field "discounted" node)

            state.Discounted.copy_ discounted |> ignore
            Snapshot.restoreGenerators "PPO streams, policy generators" gens.Policy (Snapshot.field "policy" node)

            Snapshot.restoreGenerators
                "PPO streams, minibatch generators"
                gens.Minibatch
                (Snapshot.field "minibatch" node)

            progress.Streams <- null

    /// What `Progress.CaptureStreams` calls at an update boundary: the streams as JSON text;
    /// null when the environments cannot save their state (`IEnvSnapshot`).
    let capture (envs: SeedEnvs) (state: RolloutState) (gens: Generators) : Func<string> =
        if envs.CanSnapshot then
            Func<string>(fun () ->
                let o = Text.Json.Nodes.JsonObject()
                o["envs"] <- envs.SaveState()
                o["obs"] <- Snapshot.ofTensor state.Obs
                o["discounted"] <- Snapshot.ofTensor state.Discounted
                o["policy"] <- Snapshot.ofGenerators gens.Policy
                o["minibatch"] <- Snapshot.ofGenerators gens.Minibatch
                o.ToJsonString())
        else
            null
