/// Storage for off-policy learning: a replay ring buffer on the device with a leading seed axis
/// (seed 004 module 3.2, "experience replay"; Mnih et al. 2015, Methods).
module Rl.Buffers

open TorchSharp
open Rl.Tensor

/// A minibatch drawn from a `ReplayBuffer`; every tensor is [S; B, ...] on the buffer's device.
type ReplayBatch =
    {
        /// [S; B; obsDim] float32 observations s.
        Obs: Tensor
        /// [S; B] int64 actions a.
        Actions: Tensor
        /// [S; B] float32 rewards r.
        Rewards: Tensor
        /// [S; B; obsDim] float32: the observation the step reached (before any auto-reset).
        NextObs: Tensor
        /// [S; B] float32, 1 where s' is terminal (no bootstrap), 0 otherwise (including truncation).
        Terminated: Tensor
        /// [S; B] int64 slot indices the batch was drawn from (for tests and diagnostics).
        Indices: Tensor
    }

/// A ring buffer of `capacity` transitions per seed for S seeds, stored as device tensors
/// [S; capacity; ...] (no host copies per step). `Add` writes N transitions per seed at the write
/// position and wraps around, overwriting the oldest; `Sample` draws slots uniformly with
/// replacement from the filled part, independently per seed. It is a `torch.nn.Module` whose
/// storage is registered as buffers, so `Checkpoint.save`/`load` store it; `Position` and
/// `Count` are host counters that a checkpoint must keep separately (see `Restore`).
/// Raises `ArgumentException` for `seeds`, `capacity` or `obsDim` below 1.
type ReplayBuffer(seeds: int, capacity: int, obsDim: int, device: torch.Device) as this =
    inherit torch.nn.Module("replay")

    do
        if seeds < 1 || capacity < 1 || obsDim < 1 then
            invalidArg
                "capacity"
                $"ReplayBuffer: seeds, capacity and obsDim must be >= 1, got {seeds}, {capacity}, {obsDim}"

    let S, C, D = int64 seeds, int64 capacity, int64 obsDim
    let obs = torch.zeros ([| S; C; D |], device = device)
    let nextObs = torch.zeros ([| S; C; D |], device = device)
    let actions = torch.zeros ([| S; C |], dtype = torch.int64, device = device)
    let rewards = torch.zeros ([| S; C |], device = device)
    let terminated = torch.zeros ([| S; C |], device = device)
    let mutable position = 0
    let mutable count = 0

    do
        this.register_buffer ("obs", obs)
        this.register_buffer ("next_obs", nextObs)
        this.register_buffer ("actions", actions)
        this.register_buffer ("rewards", rewards)
        this.register_buffer ("terminated", terminated)

    /// Transitions each seed can hold.
    member _.Capacity = capacity
    /// Number of seeds S.
    member _.Seeds = seeds
    /// The slot the next transition goes to (0 .. capacity - 1).
    member _.Position = position
    /// Transitions stored per seed (at most `Capacity`).
    member _.Count = count

    /// Stores N transitions per seed: `obs`, `nextObs` [S; N; obsDim], `actions` [S; N] (int64),
    /// `rewards` [S; N], `terminated` [S; N] (bool or 0/1). Slots position .. position + N - 1
    /// (mod capacity) are overwritten. Raises `ArgumentException` for wrong shapes or N > capacity.
    member _.Add(obsIn: Tensor, actionsIn: Tensor, rewardsIn: Tensor, nextObsIn: Tensor, terminatedIn: Tensor) =
        let n = if obsIn.dim () = 3L then obsIn.size 1 else -1L

        if not (hasShape [| S; n; D |] obsIn && sameShape nextObsIn obsIn) then
            invalidArg
                "obs"
                $"ReplayBuffer.Add: obs and nextObs must be [{S}; N; {D}], got {shapeString obsIn} and {shapeString nextObsIn}"

        for name, t in [ "actions", actionsIn; "rewards", rewardsIn; "terminated", terminatedIn ] do
            if not (hasShape [| S; n |] t) then
                invalidArg name $"ReplayBuffer.Add: {name} must be [{S}; {n}], got {shapeString t}"

        if n > C then
            invalidArg "obs" $"ReplayBuffer.Add: {n} transitions per seed exceed the capacity {capacity}"

        use _ng = torch.no_grad ()
        use scope = torch.NewDisposeScope()

        // copy_ converts to the storage's dtype (int64 actions, float32 rewards and flags).
        if int64 position + n <= C then
            // The usual case: one contiguous run of slots, written through views.
            let put (storage: Tensor) (values: Tensor) =
                storage.narrow(1L, int64 position, n).copy_ values |> ignore

            put obs obsIn
            put nextObs nextObsIn
            put actions actionsIn
            put rewards rewardsIn
            put terminated terminatedIn
        else
            let idx =
                (torch.arange (n, dtype = torch.int64, device = device) + int64 position).remainder(C.ToScalar())

            obs.index_copy_ (1L, idx, obsIn) |> ignore
            nextObs.index_copy_ (1L, idx, nextObsIn) |> ignore
            actions.index_copy_ (1L, idx, actionsIn.to_type torch.int64) |> ignore
            rewards.index_copy_ (1L, idx, rewardsIn.to_type torch.float32) |> ignore
            terminated.index_copy_ (1L, idx, terminatedIn.to_type torch.float32) |> ignore

        position <- int ((int64 position + n) % C)
        count <- int (min C (int64 count + n))

    /// Draws `batchSize` transitions per seed uniformly with replacement from the `Count` filled
    /// slots, using generator `gen` (on the buffer's device). Raises `InvalidOperationException`
    /// when the buffer is empty and `ArgumentException` for `batchSize < 1`.
    member _.Sample(batchSize: int, gen: torch.Generator) : ReplayBatch =
        if batchSize < 1 then
            invalidArg "batchSize" $"ReplayBuffer.Sample: batchSize must be >= 1, got {batchSize}"

        if count = 0 then
            invalidOp "ReplayBuffer.Sample: the buffer is empty; add transitions first"

        let idx =
            torch.randint (int64 count, [| S; int64 batchSize |], generator = gen, dtype = torch.int64, device = device)

        {
            Obs = takeRows idx obs
            Actions = takeRows idx actions
            Rewards = takeRows idx rewards
            NextObs = takeRows idx nextObs
            Terminated = takeRows idx terminated
            Indices = idx
        }

    /// Restores the host counters after loading the storage from a checkpoint. Raises
    /// `ArgumentException` when they are out of range.
    member _.Restore(newPosition: int, newCount: int) =
        if
            newPosition < 0
            || newPosition >= capacity
            || newCount < 0
            || newCount > capacity
        then
            invalidArg
                "newPosition"
                $"ReplayBuffer.Restore: position {newPosition} must be in 0..{capacity - 1} and count {newCount} in 0..{capacity}"

        position <- newPosition
        count <- newCount
