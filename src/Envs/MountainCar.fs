/// MountainCar-v0: drive an under-powered car up the right hill by rocking it back and forth.
/// Follows `gymnasium/envs/classic_control/mountain_car.py` (Gymnasium 1.4.0, commit 3f0476a8)
/// with the registered `TimeLimit` of 200 steps.
///
/// State `[position; velocity]`, float64; observation `float32 state`,
/// Box([-1.2, -0.07], [0.6, 0.07]). Action Discrete(3): 0 push left, 1 no push, 2 push right.
/// Reward -1 on every step. Terminates when position >= 0.5 and velocity >= 0.
module Rl.MountainCar

open System
open TorchSharp
open Rl

/// Registered id.
[<Literal>]
let Id = "MountainCar-v0"

/// Constants (`mountain_car.py:109-116`).
let minPosition = -1.2
let maxPosition = 0.6
let maxSpeed = 0.07
let goalPosition = 0.5
let goalVelocity = 0.0
let force = 0.001
let gravity = 0.0025
/// TimeLimit length.
let maxEpisodeSteps = 200

/// Observation space: Box([-1.2, -0.07], [0.6, 0.07]) float32 (`mountain_car.py:118-121`).
let observationSpace =
    Space.Box(
        [| float (float32 minPosition); float (float32 -maxSpeed) |],
        [| float (float32 maxPosition); float (float32 maxSpeed) |],
        [| 2 |]
    )

/// Action space: Discrete(3).
let actionSpace = Space.Discrete(3, 0)

/// One step in double precision in the order of `mountain_car.py:137-150`: returns
/// (position, velocity, terminated). There is no velocity reset at the right edge.
let transition (position: float) (velocity: float) (action: int) =
    let velocity =
        velocity + (float (action - 1) * force + Math.Cos(3.0 * position) * (-gravity))

    let velocity = EnvUtil.clip -maxSpeed maxSpeed velocity
    let position = position + velocity
    let position = EnvUtil.clip minPosition maxPosition position

    let velocity =
        if position = minPosition && velocity < 0.0 then
            0.0
        else
            velocity

    let terminated = position >= goalPosition && velocity >= goalVelocity
    position, velocity, terminated

/// The single form; `State` is `[position; velocity]`.
type Env(?maxSteps: int) =
    inherit ClassicEnv(Id, observationSpace, actionSpace, defaultArg maxSteps maxEpisodeSteps)
    let mutable position = 0.0
    let mutable velocity = 0.0

    override _.State
        with get () = [| position; velocity |]
        and set v =
            if Array.length v <> 2 then
                invalidArg "State" $"{Id}: the state is [position; velocity], got {Array.length v} values"

            position <- v[0]
            velocity <- v[1]

    /// position ~ U(-0.6, -0.4), velocity 0 (`mountain_car.py:165-166`).
    override _.ResetState rng =
        position <- EnvUtil.uniform rng -0.6 -0.4
        velocity <- 0.0

    /// `Render.mountainCar` of the position, with this env's flag.
    override _.Draw() =
        Render.mountainCar goalPosition position

    override _.Observe() =
        [| float32 position; float32 velocity |]

    override _.Advance action =
        match action with
        | Action.Discrete a ->
            let p, v, terminated = transition position velocity a
            position <- p
            velocity <- v
            -1.0, terminated
        | Action.Continuous _ -> invalidOp "unreachable: checked by CheckAction"

/// Batched helpers shared with MountainCarContinuous: clip, move, clip, inelastic left wall.
let internal moveTensor (position: torch.Tensor) (velocity: torch.Tensor) =
    let velocity = velocity.clamp ((-maxSpeed).ToScalar(), maxSpeed.ToScalar())

    let position =
        (position + velocity).clamp(minPosition.ToScalar(), maxPosition.ToScalar())

    let velocity =
        velocity.masked_fill (
            position.eq(minPosition.ToScalar()).logical_and(velocity.lt (0.0.ToScalar())),
            0.0.ToScalar()
        )

    position, velocity

/// Reset states for both mountain cars: position ~ U(-0.6, -0.4), velocity 0.
let internal initialTensor
    (count: int64)
    (dtype: torch.ScalarType)
    (device: torch.Device)
    (generator: torch.Generator)
    =
    use scope = torch.NewDisposeScope()

    let u =
        torch.rand ([| count |], dtype = dtype, device = device, generator = generator)

    let position = u * 0.2 - 0.6
    torch.stack([ position; torch.zeros_like position ], 1).MoveToOuterDisposeScope()

/// The batched form: state [N; 2] in `dtype` (float32 default, or float64); actions [N] int64 in
/// {0, 1, 2}.
type BatchedEnv(numEnvs: int, device: torch.Device, ?dtype: torch.ScalarType, ?maxSteps: int) =
    inherit
        BatchedClassicEnv(
            Id,
            numEnvs,
            device,
            defaultArg dtype torch.float32,
            observationSpace,
            actionSpace,
            defaultArg maxSteps maxEpisodeSteps,
            2
        )

    let dtype = defaultArg dtype torch.float32
    do EnvUtil.checkFloatDtype Id dtype


    override _.InitialStates(count, generator) =
        initialTensor count dtype device generator

    override _.Observe state = state.``to`` torch.float32

    override this.Dynamics(state, action) =
        let position = state.select (1, 0L)
        let velocity = state.select (1, 1L)

        let velocity =
            velocity
            + ((action - 1L).``to`` dtype * force + this.Cos(position * 3.0) * (-gravity))

        let position, velocity = moveTensor position velocity

        let terminated =
            position.ge(goalPosition.ToScalar()).logical_and(velocity.ge (goalVelocity.ToScalar()))

        torch.stack ([ position; velocity ], 1), torch.full_like (position, (-1.0).ToScalar()), terminated
