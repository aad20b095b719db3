/// CartPole-v1: balance a pole on a cart by pushing the cart left or right.
/// Follows `gymnasium/envs/classic_control/cartpole.py` (Gymnasium 1.4.0, commit 3f0476a8) with
/// the registered `TimeLimit` of 500 steps.
///
/// State `[x; x_dot; theta; theta_dot]` (m, m/s, rad, rad/s), float64; observation `float32 state`,
/// Box([-4.8, -inf, -0.4189, -inf], [4.8, inf, 0.4189, inf]). Action Discrete(2): 0 pushes left
/// (-10 N), 1 pushes right (+10 N). Reward 1 on every step including the terminating one; stepping
/// on after termination (only `StepUnchecked`) gives 0. Terminates when |x| > 2.4 or
/// |theta| > 12 degrees.
module Rl.CartPole

open System
open TorchSharp
open Rl

/// Registered id.
[<Literal>]
let Id = "CartPole-v1"

/// Constants (`cartpole.py:124-136`).
let gravity = 9.8
let masscart = 1.0
let masspole = 0.1
/// `masspole + masscart`.
let totalMass = masspole + masscart
/// Half the pole's length, m.
let length = 0.5
/// `masspole * length`.
let polemassLength = masspole * length
/// Force magnitude, N.
let forceMag = 10.0
/// Seconds between state updates.
let tau = 0.02
/// Termination angle `12 * 2 * pi / 360` rad (`cartpole.py:135`).
let thetaThresholdRadians = 12.0 * 2.0 * Math.PI / 360.0
/// Termination position, m.
let xThreshold = 2.4
/// TimeLimit length.
let maxEpisodeSteps = 500

/// Observation space: bounds twice the termination thresholds, as float32 (`cartpole.py:140-151`).
let observationSpace =
    let high =
        [|
            float (float32 (xThreshold * 2.0))
            Double.PositiveInfinity
            float (float32 (thetaThresholdRadians * 2.0))
            Double.PositiveInfinity
        |]

    Space.Box(Array.map (~-) high, high, [| 4 |])

/// Action space: Discrete(2).
let actionSpace = Space.Discrete(2, 0)

/// One Euler step in double precision in the operation order of `cartpole.py:169-196`
/// (`np.square(x)` is `x * x`). Returns the new state and whether it is terminal
/// (`cartpole.py:198-202`).
let transition (state: float[]) (action: int) : float[] * bool =
    let x, xDot, theta, thetaDot = state[0], state[1], state[2], state[3]
    let force = if action = 1 then forceMag else -forceMag
    let costheta = Math.Cos theta
    let sintheta = Math.Sin theta
    let temp = (force + polemassLength * (thetaDot * thetaDot) * sintheta) / totalMass

    let thetaacc =
        (gravity * sintheta - costheta * temp)
        / (length * (4.0 / 3.0 - masspole * (costheta * costheta) / totalMass))

    let xacc = temp - polemassLength * thetaacc * costheta / totalMass
    let x = x + tau * xDot
    let xDot = xDot + tau * xacc
    let theta = theta + tau * thetaDot
    let thetaDot = thetaDot + tau * thetaacc

    let terminated =
        x < -xThreshold
        || x > xThreshold
        || theta < -thetaThresholdRadians
        || theta > thetaThresholdRadians

    [| x; xDot; theta; thetaDot |], terminated

/// The single form. `StepsBeyondTerminated` is Gymnasium's hidden `steps_beyond_terminated`
/// counter (None until the first terminated step; it makes rewards 0 when stepping on).
type Env(?maxSteps: int) =
    inherit ClassicEnv(Id, observationSpace, actionSpace, defaultArg maxSteps maxEpisodeSteps)
    let mutable state = Array.zeroCreate<float> 4
    let mutable stepsBeyond: int option = None

    /// Gymnasium's `steps_beyond_terminated` (settable to re-synchronise).
    member _.StepsBeyondTerminated
        with get () = stepsBeyond
        and set v = stepsBeyond <- v

    override _.State
        with get () = Array.copy state
        and set v =
            if Array.length v <> 4 then
                invalidArg "State" $"{Id}: the state is [x; x_dot; theta; theta_dot], got {Array.length v} values"

            state <- Array.copy v

    /// `steps_beyond_terminated` for snapshots: empty when None, else its value.
    override _.Extra
        with get () =
            match stepsBeyond with
            | Some k -> [| float k |]
            | None -> [||]
        and set v = stepsBeyond <- if Array.isEmpty v then None else Some(int v[0])

    /// Each component ~ U(-0.05, 0.05) (`cartpole.py:237-242`); clears `StepsBeyondTerminated`.
    override _.ResetState rng =
        state <- Array.init 4 (fun _ -> EnvUtil.uniform rng -0.05 0.05)
        stepsBeyond <- None

    override _.Observe() = Array.map float32 state

    /// `Render.cartPole` of the cart position and pole angle.
    override _.Draw() = Render.cartPole state[0] state[2]

    /// Reward logic of `cartpole.py:205-220`.
    override _.Advance action =
        match action with
        | Action.Discrete a ->
            let s, terminated = transition state a
            state <- s

            let reward =
                if not terminated then
                    1.0
                else
                    match stepsBeyond with
                    | None ->
                        stepsBeyond <- Some 0
                        1.0
                    | Some k ->
                        stepsBeyond <- Some(k + 1)
                        0.0

            reward, terminated
        | Action.Continuous _ -> invalidOp "unreachable: checked by CheckAction"

/// The batched form: state [N; 4] in `dtype` (float32 default, or float64) on `device`; actions
/// [N] int64 in {0, 1}. Reward 1 per step (an ended copy is reset within the step, so the
/// post-termination reward 0 of the single form never occurs).
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
            4
        )

    let dtype = defaultArg dtype torch.float32
    do EnvUtil.checkFloatDtype Id dtype


    /// The force of actions 0 and 1, N.
    let forces =
        torch.tensor([| -forceMag; forceMag |], dtype = dtype, device = device).DetachFromDisposeScope()

    override _.InitialStates(count, generator) =
        use scope = torch.NewDisposeScope()

        let u =
            torch.rand ([| count; 4L |], dtype = dtype, device = device, generator = generator)

        (u * 0.1 - 0.05).MoveToOuterDisposeScope()

    override _.Observe state = state.``to`` torch.float32

    override this.Dynamics(state, action) =
        let x = state.select (1, 0L)
        let xDot = state.select (1, 1L)
        let theta = state.select (1, 2L)
        let thetaDot = state.select (1, 3L)
        let force = forces.index_select (0, action)
        let costheta = this.Cos theta
        let sintheta = this.Sin theta
        let temp = (force + thetaDot * thetaDot * polemassLength * sintheta) / totalMass

        let thetaacc =
            (sintheta * gravity - costheta * temp)
            / ((((costheta * costheta) * masspole / totalMass).neg() + 4.0 / 3.0) * length)

        let xacc = temp - thetaacc * polemassLength * costheta / totalMass
        let x = x + xDot * tau
        let xDot = xDot + xacc * tau
        let theta = theta + thetaDot * tau
        let thetaDot = thetaDot + thetaacc * tau

        let terminated =
            // |x| > 2.4 is exactly x < -2.4 or x > 2.4
            x.abs().gt(xThreshold.ToScalar()).logical_or(theta.abs().gt(thetaThresholdRadians.ToScalar()))

        torch.stack ([ x; xDot; theta; thetaDot ], 1), torch.ones_like (x, dtype = torch.float32), terminated
