/// Pendulum-v1: swing a frictionless pendulum up and hold it upright with a bounded torque.
/// Follows `gymnasium/envs/classic_control/pendulum.py` (Gymnasium 1.4.0, commit 3f0476a8) with
/// the registered `TimeLimit` of 200 steps (`gymnasium/envs/__init__.py:48-52`).
///
/// State `[theta; theta_dot]` (rad, rad/s; theta = 0 is upright, never wrapped). Observation
/// `float32 [cos theta; sin theta; theta_dot]`, Box([-1,-1,-8], [1,1,8]). Action: torque in N m,
/// Box(-2, 2, (1,)), clipped. Reward `-(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)`
/// on the pre-step state and the clipped torque. Never terminates.
module Rl.Pendulum

open System
open TorchSharp
open Rl

/// Registered id.
[<Literal>]
let Id = "Pendulum-v1"

/// Maximum angular speed, rad/s (`pendulum.py:103`).
let maxSpeed = 8.0
/// Maximum torque, N m (`pendulum.py:104`).
let maxTorque = 2.0
/// Time step, s (`pendulum.py:105`).
let dt = 0.05
/// Default gravity, m/s^2 (the `g` kwarg's default, `pendulum.py:101`).
let defaultG = 10.0
/// Mass (kg) and length (m) (`pendulum.py:107-108`).
let m, l = 1.0, 1.0
/// TimeLimit length.
let maxEpisodeSteps = 200

/// Observation space: Box([-1,-1,-8], [1,1,8]) float32 (`pendulum.py:116-121`).
let observationSpace =
    Space.Box([| -1.0; -1.0; -8.0 |], [| 1.0; 1.0; 8.0 |], [| 3 |])

/// Action space: Box(-2, 2, (1,)) float32 (`pendulum.py:115`).
let actionSpace = Space.Box([| -maxTorque |], [| maxTorque |], [| 1 |])

/// `angle_normalize(x) = ((x + pi) % (2 pi)) - pi` with Python's floored modulo, into [-pi, pi)
/// (`pendulum.py:281-282`); `angleNormalize pi = -pi`.
let angleNormalize (x: float) =
    EnvUtil.pyMod (x + Math.PI) (2.0 * Math.PI) - Math.PI

/// The observation `float32 [cos th; sin th; thdot]` (`pendulum.py:169-171`).
let observe (th: float) (thdot: float) =
    [| float32 (Math.Cos th); float32 (Math.Sin th); float32 thdot |]

/// One transition in double precision, in the operation order of `pendulum.py:132-147`:
/// `u` is clipped to [-2, 2]; returns (new theta, new theta_dot, reward). Each `x**2` of the
/// source is `Math.Pow(x, 2.0)` (glibc's `pow`, bit-identical to Python's).
let transition (g: float) (th: float) (thdot: float) (action: float) =
    let u = EnvUtil.clip -maxTorque maxTorque action

    let costs =
        Math.Pow(angleNormalize th, 2.0)
        + 0.1 * Math.Pow(thdot, 2.0)
        + 0.001 * Math.Pow(u, 2.0)

    let newthdot =
        thdot
        + (3.0 * g / (2.0 * l) * Math.Sin th + 3.0 / (m * Math.Pow(l, 2.0)) * u) * dt

    let newthdot = EnvUtil.clip -maxSpeed maxSpeed newthdot
    let newth = th + newthdot * dt
    newth, newthdot, -costs

/// The single form. `g` is gravity (m/s^2, default 10), `maxSteps` the time limit (default 200).
/// `State` is `[theta; theta_dot]` as doubles; see `ClassicEnv` for `Step`/`StepUnchecked`.
type Env(?g: float, ?maxSteps: int) =
    inherit ClassicEnv(Id, observationSpace, actionSpace, defaultArg maxSteps maxEpisodeSteps)
    let g = defaultArg g defaultG
    let mutable th = 0.0
    let mutable thdot = 0.0
    let mutable lastU: float option = None

    /// Gravity used by this instance.
    member _.G = g

    /// The last step's clipped torque (N m), None after `Reset` (Gymnasium's `last_u`, drawn as
    /// the torque arrow; settable to draw a given state). Not part of the snapshot.
    member _.LastU
        with get () = lastU
        and set v = lastU <- v

    /// `Render.pendulum` of the angle and the last torque.
    override _.Draw() = Render.pendulum th lastU

    override _.State
        with get () = [| th; thdot |]
        and set v =
            if Array.length v <> 2 then
                invalidArg "State" $"{Id}: the state is [theta; theta_dot], got {Array.length v} values"

            th <- v[0]
            thdot <- v[1]

    /// theta ~ U(-pi, pi), theta_dot ~ U(-1, 1) (`pendulum.py:12-13,152-162`).
    override _.ResetState rng =
        th <- EnvUtil.uniform rng -Math.PI Math.PI
        thdot <- EnvUtil.uniform rng -1.0 1.0
        lastU <- None

    override _.Observe() = observe th thdot

    override _.Advance action =
        match action with
        | Action.Continuous a ->
            let nth, nthdot, reward = transition g th thdot a[0]
            lastU <- Some(EnvUtil.clip -maxTorque maxTorque a[0])
            th <- nth
            thdot <- nthdot
            reward, false
        | Action.Discrete _ -> invalidOp "unreachable: checked by CheckAction"

/// The batched form: state [N; 2] in `dtype` (float32 default, or float64) on `device`; actions
/// [N; 1] floating (clipped to [-2, 2]). Same formulas as `transition`, as tensor operations
/// (`Square` for `x**2`, `torch.remainder` for the floored modulo; see `ExactMath` for bit-exact float64).
type BatchedEnv(numEnvs: int, device: torch.Device, ?dtype: torch.ScalarType, ?g: float, ?maxSteps: int) =
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
    let g = defaultArg g defaultG


    override _.InitialStates(count, generator) =
        use scope = torch.NewDisposeScope()

        let u =
            torch.rand ([| count; 2L |], dtype = dtype, device = device, generator = generator)

        let high = torch.tensor ([| Math.PI; 1.0 |], dtype = dtype, device = device)
        // numpy's uniform(low, high) = low + (high - low) * u with low = -high
        (u * (high * 2.0) - high).MoveToOuterDisposeScope()

    override this.Observe state =
        use scope = torch.NewDisposeScope()
        let th = state.select (1, 0L)
        let thdot = state.select (1, 1L)
        torch.stack([ this.Cos th; this.Sin th; thdot ], 1).``to``(torch.float32).MoveToOuterDisposeScope()

    override this.Dynamics(state, action) =
        let th = state.select (1, 0L)
        let thdot = state.select (1, 1L)

        let u =
            action.select(1, 0L).clamp(min = (-maxTorque).ToScalar(), max = maxTorque.ToScalar())

        let two = (2.0).ToScalar()
        let an = (th + Math.PI).remainder((2.0 * Math.PI).ToScalar()) - Math.PI
        let costs = this.Square an + this.Square thdot * 0.1 + this.Square u * 0.001

        let newthdot =
            (thdot
             + (this.Sin th * (3.0 * g / (2.0 * l)) + u * (3.0 / (m * Math.Pow(l, 2.0)))) * dt)
                .clamp(min = (-maxSpeed).ToScalar(), max = maxSpeed.ToScalar())

        let newth = th + newthdot * dt
        torch.stack ([ newth; newthdot ], 1), costs.neg (), torch.zeros_like (th, dtype = torch.ScalarType.Bool)
