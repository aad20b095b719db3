/// Exact resume for DQN, in one place: the random streams of a run segment (exploration and
/// replay sampling, derived from the base seed and the step the segment starts at; environment
/// resets), and the checkpoint's `streams` entry that continues them, the environments' running
/// state and the current observations exactly where a run stopped (see `Snapshot`). The replay
/// buffer itself is a module of the checkpoint (`Runner.modules`).
namespace Rl.Dqn

open System
open TorchSharp
open Rl
open Rl.Tensor

/// The generators a DQN run segment draws from (one of each for all seeds, derived from the
/// base seed).
type Generators =
    {
        /// Epsilon-greedy draws (the coin and the random action), on the run's device.
        Explore: torch.Generator
        /// Replay minibatch indices, on the run's device.
        Replay: torch.Generator
    }

/// The random streams of a run segment and their snapshot.
module Streams =
    /// The seed of stream `label` for a segment of base seed `seed` starting at env step `step`.
    let internal stream (seed: int64) (label: string) (step: int64) = Seed.derive seed $"{label}/{step}"

    /// Fresh generators for a segment starting at env step `step`.
    let generators (seed: int64) (device: torch.Device) (step: int64) : Generators =
        {
            Explore = Seed.generator device (stream seed "dqn-explore" step)
            Replay = Seed.generator device (stream seed "dqn-replay" step)
        }

    /// The reset seed of the segment's environments.
    let envSeed (seed: int64) (step: int64) = stream seed "dqn-env" step

    /// Continues the checkpoint's streams when `progress.Streams` holds them (then clears it):
    /// loads the environments' state and the generators, and returns the saved observations in
    /// place of `obs` (disposed); otherwise returns `obs`. Raises `FormatException` naming what
    /// does not fit (also when env `envId` cannot load a saved state).
    let restore (progress: Progress) (envId: string) (env: IBatchedEnv) (gens: Generators) (obs: Tensor) : Tensor =
        if isNull progress.Streams then
            obs
        else
            let node = Snapshot.parse progress.Streams

            match env with
            | :? IEnvSnapshot as e -> e.LoadState(string (Snapshot.field "env" node))
            | _ -> raise (FormatException $"DQN streams: {envId}'s environments cannot load a saved state")

            let saved =
                Snapshot.toTensorLike "DQN streams, observations" obs (Snapshot.field "obs" node)

            obs.Dispose()
            Snapshot.restoreGenerator gens.Explore (Snapshot.field "explore" node)
            Snapshot.restoreGenerator gens.Replay (Snapshot.field "replay" node)
            progress.Streams <- null
            saved.DetachFromDisposeScope()

    /// What `Progress.CaptureStreams` calls at a log boundary: the streams (with the observations
    /// `currentObs ()` gives then) as JSON text; null when the environments cannot save their state.
    let capture (env: IBatchedEnv) (gens: Generators) (currentObs: unit -> Tensor) : Func<string> =
        match env with
        | :? IEnvSnapshot as e when e.CanSaveState ->
            Func<string>(fun () ->
                let o = Text.Json.Nodes.JsonObject()
                o["env"] <- Text.Json.Nodes.JsonValue.Create(e.SaveState())
                o["obs"] <- Snapshot.ofTensor (currentObs ())
                o["explore"] <- Snapshot.ofGenerator gens.Explore
                o["replay"] <- Snapshot.ofGenerator gens.Replay
                o.ToJsonString())
        | _ -> null
