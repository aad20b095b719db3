/// MountainCarContinuous-v0: the mountain car with a continuous force and an energy penalty.
/// Follows `gymnasium/envs/classic_control/continuous_mountain_car.py` (Gymnasium 1.4.0, commit
/// 3f0476a8) with the registered `TimeLimit` of 999 steps.
///
/// State `[position; velocity]`: float64 after reset, stored as float32 after every step
/// (`continuous_mountain_car.py:178`); observation `float32 state`,
/// Box([-1.2, -0.07], [0.6, 0.07]). Action: force in Box(-1, 1, (1,)), clipped for the dynamics.
/// Reward `100 * terminated - 0.1 a^2` with the *unclipped* action. Terminates when
/// position >= 0.45 and velocity >= 0 (evaluated before the float32 store).
module Rl.MountainCarContinuous

open System
open TorchSharp
open Rl

/// Registered id.
[<Literal>]
let Id = "MountainCarContinuous-v0"

/// Constants (`continuous_mountain_car.py:117-126`).
let minAction = -1.0
let maxAction = 1.0
let minPosition = -1.2
let maxPosition = 0.6
let maxSpeed = 0.07
/// Note 0.45, not MountainCar-v0's 0.5.
let goalPosition = 0.45
let goalVelocity = 0.0
let power = 0.0015
/// The literal gravity of `step` (`continuous_mountain_car.py:155`).
let gravity = 0.0025
/// TimeLimit length.
let maxEpisodeSteps = 999

/// Observation space: Box([-1.2, -0.07], [0.6, 0.07]) float32.
let observationSpace = MountainCar.observationSpace
/// Action space: Box(-1, 1, (1,)) float32.
let actionSpace = Space.Box([| minAction |], [| maxAction |], [| 1 |])

/// One step in double precision in the order of `continuous_mountain_car.py:151-178`: returns
/// (position, velocity, reward, terminated) with position and velocity rounded to float32 (the
/// stored state). `3 * position` is evaluated in double (numpy 1.x, as the reference data).
let transition (position: float) (velocity: float) (action: float) =
    let force = min (max action minAction) maxAction
    let velocity = velocity + (force * power - gravity * Math.Cos(3.0 * position))
    let velocity = if velocity > maxSpeed then maxSpeed else velocity
    let velocity = if velocity < -maxSpeed then -maxSpeed else velocity
    let position = position + velocity
    let position = if position > maxPosition then maxPosition else position
    let position = if position < minPosition then minPosition else position

    let velocity =
        if position = minPosition && velocity < 0.0 then
            0.0
        else
            velocity

    let terminated = position >= goalPosition && velocity >= goalVelocity
    let reward = (if terminated then 100.0 else 0.0) - Math.Pow(action, 2.0) * 0.1
    float (float32 position), float (float32 velocity), reward, terminated

/// The single form; `State` is `[position; velocity]` (float32-exact after a step).
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

    /// position ~ U(-0.6, -0.4), velocity 0, float64 (`continuous_mountain_car.py:189-190`).
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
        | Action.Continuous a ->
            let p, v, reward, terminated = transition position velocity a[0]
            position <- p
            velocity <- v
            reward, terminated
        | Action.Discrete _ -> invalidOp "unreachable: checked by CheckAction"

/// The batched form: state [N; 2] in `dtype` (float32 default, or float64 holding
/// float32-rounded values after each step, as Gymnasium); actions [N; 1] floating.
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
        MountainCar.initialTensor count dtype device generator

    override _.Observe state = state.``to`` torch.float32

    override this.Dynamics(state, action) =
        let position = state.select (1, 0L)
        let velocity = state.select (1, 1L)
        let a = action.select (1, 0L)
        let force = a.clamp (minAction.ToScalar(), maxAction.ToScalar())
        let velocity = velocity + (force * power - this.Cos(position * 3.0) * gravity)
        let position, velocity = MountainCar.moveTensor position velocity

        let terminated =
            position.ge(goalPosition.ToScalar()).logical_and(velocity.ge (goalVelocity.ToScalar()))

        let reward = terminated.``to`` dtype * 100.0 - this.Square a * 0.1
        // the float32 store of continuous_mountain_car.py:178
        let next = torch.stack([ position; velocity ], 1).``to``(torch.float32).``to`` dtype
        next, reward, terminated
