/// The environments of one PPO run: N copies for each of S seeds stepped as one (fused into one
/// batched environment where the env allows it), with per-seed resets and snapshots for exact
/// resume.
namespace Rl.Ppo

open System
open System.Diagnostics
open TorchSharp
open Rl
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// The N environment copies of each of S seeds, stepped as one: actions [S; N] or [S; N; actDim]
/// in, every field [S; N; ...] out. With several seeds and a classic-control env, one env of
/// S * N copies steps every seed in one call ("fused"); its initial and auto-reset states are
/// drawn per seed from seed k's own generator, exactly as seed k's own N-copy env would draw
/// them, so seed k sees the same episodes alone or in a batch. Otherwise (one seed, or another
/// env type) one env per seed. A `SyncVectorEnv` of S * N copies is fused the same way: copy i of
/// seed k is reset with seed k's env seed + i, as in seed k's own N-copy env, and continues its
/// own generator. Exception: on CUDA (`SyncFreeAutoReset`) the per-seed redraw would read back
/// which copies ended every step; there the fused env keeps its own sync-free auto-reset, drawing
/// every seed's fresh states from one generator seeded from the base seed. No host transfer per
/// step then, but a seed's later episodes depend on S (its first ones, its network, action
/// sampling and minibatch order stay its own). `makeEnv n` builds a batched env of n copies.
type SeedEnvs(makeEnv: int -> IBatchedEnv, S: int, N: int, device: torch.Device) =
    let fused, fusedSync =
        if S > 1 then
            match makeEnv (S * N) with
            | :? BatchedClassicEnv as b -> Some b, None
            | :? SyncVectorEnv as v -> None, Some v
            | other ->
                other.Dispose()
                None, None
        else
            None, None

    let envs =
        match fused, fusedSync with
        | None, None -> Array.init S (fun _ -> makeEnv N)
        | _ -> [||]

    do
        // The policy's actions are valid by construction (an index below n, or a finite real):
        // skip the per-step value check, which reads a scalar back from the device every step.
        for e in Array.append envs (fused |> Option.map (fun b -> b :> IBatchedEnv) |> Option.toArray) do
            match e with
            | :? BatchedClassicEnv as b -> b.ValidateActions <- false
            | _ -> ()

    let probe =
        match fused, fusedSync with
        | Some b, _ -> b :> IBatchedEnv
        | _, Some v -> v :> IBatchedEnv
        | None, None -> envs[0]

    let fusedGens: torch.Generator[] = Array.zeroCreate S

    /// A fused env's action: [S; N; ...] -> [S * N; ...].
    let flatAction (action: Tensor) =
        let trailing = (sizes action)[2..]
        action.reshape (Array.append [| int64 (S * N) |] trailing)

    /// A fused env's step, [S * N; ...] fields -> [S; N; ...].
    let splitSeeds (r: BatchStep) : BatchStep =
        let rs (x: Tensor) =
            let trailing = (sizes x)[1..]
            x.reshape (Array.append [| int64 S; int64 N |] trailing)

        {
            Obs = rs r.Obs
            Reward = rs r.Reward
            Terminated = rs r.Terminated
            Truncated = rs r.Truncated
            FinalObs = rs r.FinalObs
            EpisodeReturn = rs r.EpisodeReturn
            EpisodeLength = rs r.EpisodeLength
        }

    /// The fused classic env's step with seed k's own draws for the copies that ended.
    let stepFusedPerSeed (b: BatchedClassicEnv) (action: Tensor) =
        let r = b.Step(flatAction action)
        let ended = toArray (r.Terminated.logical_or r.Truncated)
        let mutable next = r.Obs

        if ended |> Array.exists (fun v -> v <> 0.0) then
            // Replace the env's own auto-reset draws by seed k's draws (see the type's comment).
            let st = b.State
            let o = r.Obs.clone ()

            for k in 0 .. S - 1 do
                let idx =
                    [|
                        for i in 0 .. N - 1 do
                            if ended[k * N + i] <> 0.0 then
                                int64 (k * N + i)
                    |]

                if idx.Length > 0 then
                    let it = torch.tensor (idx, device = device)
                    let fresh = b.InitialStates(int64 idx.Length, fusedGens[k])
                    st.index_copy_ (0L, it, fresh) |> ignore
                    o.index_copy_ (0L, it, b.Observe fresh) |> ignore

            b.State <- st
            next <- o

        splitSeeds { r with Obs = next }

    /// One env per seed: step each and stack the fields.
    let stepEach (action: Tensor) : BatchStep =
        let steps = [| for k in 0 .. S - 1 -> envs[k].Step(action[k]) |]

        let stack (f: BatchStep -> Tensor) =
            if S = 1 then
                (f steps[0]).unsqueeze 0L
            else
                torch.stack ([| for s in steps -> f s |], 0L)

        {
            Obs = stack (fun s -> s.Obs)
            Reward = stack (fun s -> s.Reward)
            Terminated = stack (fun s -> s.Terminated)
            Truncated = stack (fun s -> s.Truncated)
            FinalObs = stack (fun s -> s.FinalObs)
            EpisodeReturn = stack (fun s -> s.EpisodeReturn)
            EpisodeLength = stack (fun s -> s.EpisodeLength)
        }

    member _.ObservationSpace = probe.ObservationSpace
    member _.ActionSpace = probe.ActionSpace

    /// True when every environment can save its running state (`IEnvSnapshot`).
    member _.CanSnapshot =
        match fused, fusedSync with
        | Some _, _ -> true
        | _, Some v -> v.CanSnapshot
        | None, None ->
            envs
            |> Array.forall (fun e ->
                match e with
                | :? IEnvSnapshot as s -> s.CanSaveState
                | _ -> false)

    /// The running state of every environment (and of the fused env's per-seed reset
    /// generators) as JSON; see `CanSnapshot`.
    member _.SaveState() : Text.Json.Nodes.JsonNode =
        let o = Text.Json.Nodes.JsonObject()

        match fused, fusedSync with
        | Some b, _ ->
            o["fused"] <- Text.Json.Nodes.JsonValue.Create(b.SaveState())
            o["fused_generators"] <- Snapshot.ofGenerators fusedGens
        | _, Some v -> o["sync"] <- Text.Json.Nodes.JsonValue.Create(v.SaveState())
        | None, None -> o["envs"] <- Snapshot.ofTexts [ for e in envs -> (e :?> IEnvSnapshot).SaveState() ]

        o

    /// Restores what `SaveState` wrote (after `Reset`, for the same seeds and copies). Raises
    /// `FormatException` when the state is of another layout.
    member _.LoadState(node: Text.Json.Nodes.JsonNode) =
        match fused, fusedSync with
        | Some b, _ ->
            b.LoadState(string (Snapshot.field "fused" node))

            Snapshot.restoreGenerators
                "PPO streams, fused-env generators"
                fusedGens
                (Snapshot.field "fused_generators" node)
        | _, Some v -> v.LoadState(string (Snapshot.field "sync" node))
        | None, None ->
            let saved =
                Snapshot.toTexts "PPO streams, environments" S (Snapshot.field "envs" node)

            for k in 0 .. S - 1 do
                (envs[k] :?> IEnvSnapshot).LoadState saved[k]

    /// Resets every copy and returns the observations [S; N; obsDim]: seed k's copies from
    /// `envSeed k` (copy i of a `SyncVectorEnv` from `envSeed k + i`); a fused classic env is
    /// first reset from `fusedSeed`, then given seed k's states from a generator seeded by
    /// `envSeed k`.
    member _.Reset(fusedSeed: int64, envSeed: int -> int64) : Tensor =
        match fused, fusedSync with
        | Some b, _ ->
            use scope = torch.NewDisposeScope()
            b.Reset fusedSeed |> ignore

            for k in 0 .. S - 1 do
                if not (isNull fusedGens[k]) then
                    fusedGens[k].Dispose()

                fusedGens[k] <- new torch.Generator(uint64 (envSeed k), device)

            let states =
                torch.cat ([| for k in 0 .. S - 1 -> b.InitialStates(int64 N, fusedGens[k]) |], 0L)

            b.State <- states
            b.Observe(states).reshape(int64 S, int64 N, -1L).MoveToOuterDisposeScope()
        | None, Some v ->
            let seedsOfCopies =
                [|
                    for k in 0 .. S - 1 do
                        for i in 0 .. N - 1 do
                            yield envSeed k + int64 i
                |]

            use scope = torch.NewDisposeScope()
            v.ResetEach(seedsOfCopies).reshape(int64 S, int64 N, -1L).MoveToOuterDisposeScope()
        | None, None -> torch.stack ([| for k in 0 .. S - 1 -> envs[k].Reset(envSeed k) |], 0L)

    /// One step of every seed's environments: action [S; N] or [S; N; actDim]; fields [S; N; ...].
    member _.Step(action: Tensor) : BatchStep =
        match fused, fusedSync with
        | Some b, _ when b.SyncFreeAutoReset -> splitSeeds (b.Step(flatAction action))
        | Some b, _ -> stepFusedPerSeed b action
        | None, Some v -> splitSeeds (v.Step(flatAction action))
        | None, None -> stepEach action

    interface IDisposable with
        member _.Dispose() =
            for e in envs do
                e.Dispose()

            fused |> Option.iter (fun b -> b.Dispose())
            fusedSync |> Option.iter (fun v -> (v :> IDisposable).Dispose())

            for g in fusedGens do
                if not (isNull g) then
                    g.Dispose()
