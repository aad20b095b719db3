/// Acrobot-v1: swing the tip of a two-link chain, actuated at the middle joint, above a line.
/// Follows `gymnasium/envs/classic_control/acrobot.py` (Gymnasium 1.4.0, commit 3f0476a8), "book"
/// dynamics, with the registered `TimeLimit` of 500 steps.
///
/// State `[theta1; theta2; dtheta1; dtheta2]` (rad, rad/s): float32 right after reset, float64
/// after every step. Observation `float32 [cos t1; sin t1; cos t2; sin t2; dt1; dt2]`. Action
/// Discrete(3): torque -1, 0, +1 at the joint. One RK4 step of 0.2 s per step; angles wrapped
/// into [-pi, pi], velocities clamped to +-4pi and +-9pi. Reward -1, or 0 on terminal steps.
/// Terminates when `-cos t1 - cos(t2 + t1) > 1`.
module Rl.Acrobot

open System
open TorchSharp
open Rl

/// Registered id.
[<Literal>]
let Id = "Acrobot-v1"

/// Constants (`acrobot.py:147-167`).
let dt = 0.2
let linkLength1 = 1.0
let linkLength2 = 1.0
let linkMass1 = 1.0
let linkMass2 = 1.0
let linkComPos1 = 0.5
let linkComPos2 = 0.5
let linkMoi = 1.0
/// Velocity bounds 4 pi and 9 pi, rad/s.
let maxVel1 = 4.0 * Math.PI
let maxVel2 = 9.0 * Math.PI
/// Torques of actions 0, 1, 2.
let availTorque = [| -1.0; 0.0; 1.0 |]
/// The literal g of `_dsdt` (`acrobot.py:252`).
let g = 9.8
/// TimeLimit length.
let maxEpisodeSteps = 500

/// Observation space (velocity bounds are float32(4 pi), float32(9 pi)) (`acrobot.py:173-178`).
let observationSpace =
    let high =
        [| 1.0; 1.0; 1.0; 1.0; float (float32 maxVel1); float (float32 maxVel2) |]

    Space.Box(Array.map (~-) high, high, [| 6 |])

/// Action space: Discrete(3).
let actionSpace = Space.Discrete(3, 0)

/// `_dsdt` (`acrobot.py:244-279`, book version): derivatives of `[t1; t2; dt1; dt2]` under torque
/// `a`, in the source's operation order (`x**2` is `Math.Pow(x, 2.0)`; `cos(x - pi/2)` is
/// evaluated literally).
let dsdt (a: float) (theta1: float) (theta2: float) (dtheta1: float) (dtheta2: float) =
    let m1, m2, l1 = linkMass1, linkMass2, linkLength1
    let lc1, lc2, I1, I2 = linkComPos1, linkComPos2, linkMoi, linkMoi
    let pi = Math.PI

    let d1 =
        m1 * Math.Pow(lc1, 2.0)
        + m2 * (Math.Pow(l1, 2.0) + Math.Pow(lc2, 2.0) + 2.0 * l1 * lc2 * Math.Cos theta2)
        + I1
        + I2

    let d2 = m2 * (Math.Pow(lc2, 2.0) + l1 * lc2 * Math.Cos theta2) + I2
    let phi2 = m2 * lc2 * g * Math.Cos(theta1 + theta2 - pi / 2.0)

    let phi1 =
        -m2 * l1 * lc2 * Math.Pow(dtheta2, 2.0) * Math.Sin theta2
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * Math.Sin theta2
        + (m1 * lc1 + m2 * l1) * g * Math.Cos(theta1 - pi / 2.0)
        + phi2

    let ddtheta2 =
        (a + d2 / d1 * phi1
         - m2 * l1 * lc2 * Math.Pow(dtheta1, 2.0) * Math.Sin theta2
         - phi2)
        / (m2 * Math.Pow(lc2, 2.0) + I2 - Math.Pow(d2, 2.0) / d1)

    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    dtheta1, dtheta2, ddtheta1, ddtheta2

/// `wrap(x, m, M)` (`acrobot.py:375-393`): repeated +-(M - m) until m <= x <= M.
let wrap (x: float) (m: float) (M: float) =
    let diff = M - m
    let mutable x = x

    while x > M do
        x <- x - diff

    while x < m do
        x <- x + diff

    x

/// `bound(x, m, M) = min(max(x, m), M)` (`acrobot.py:396-412`).
let bound (x: float) (m: float) (M: float) = min (max x m) M

/// One classical RK4 step over [0, dt] of the state augmented with the torque
/// (`acrobot.py:415-461`): `y0 + dt/6 (k1 + 2 k2 + 2 k3 + k4)` with half steps `dt/2`.
let rk4 (torque: float) (s: float[]) : float[] =
    let f (y: float[]) =
        let a, b, c, d = dsdt torque y[0] y[1] y[2] y[3]
        [| a; b; c; d |]

    let dt2 = dt / 2.0
    let k1 = f s
    let k2 = f (Array.init 4 (fun i -> s[i] + dt2 * k1[i]))
    let k3 = f (Array.init 4 (fun i -> s[i] + dt2 * k2[i]))
    let k4 = f (Array.init 4 (fun i -> s[i] + dt * k3[i]))
    Array.init 4 (fun i -> s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))

/// One step (`acrobot.py:202-230`): integrate, wrap the angles, bound the velocities; returns the
/// new state and whether it is terminal (`acrobot.py:239-242`).
let transition (state: float[]) (action: int) : float[] * bool =
    let ns = rk4 availTorque[action] state
    ns[0] <- wrap ns[0] -Math.PI Math.PI
    ns[1] <- wrap ns[1] -Math.PI Math.PI
    ns[2] <- bound ns[2] -maxVel1 maxVel1
    ns[3] <- bound ns[3] -maxVel2 maxVel2
    let terminal = -Math.Cos ns[0] - Math.Cos(ns[1] + ns[0]) > 1.0
    ns, terminal

/// The observation `float32 [cos t1; sin t1; cos t2; sin t2; dt1; dt2]` (`acrobot.py:232-236`).
let observe (s: float[]) =
    [|
        float32 (Math.Cos s[0])
        float32 (Math.Sin s[0])
        float32 (Math.Cos s[1])
        float32 (Math.Sin s[1])
        float32 s[2]
        float32 s[3]
    |]

/// The single form; `State` is `[theta1; theta2; dtheta1; dtheta2]`.
type Env(?maxSteps: int) =
    inherit ClassicEnv(Id, observationSpace, actionSpace, defaultArg maxSteps maxEpisodeSteps)
    let mutable state = Array.zeroCreate<float> 4

    override _.State
        with get () = Array.copy state
        and set v =
            if Array.length v <> 4 then
                invalidArg "State" $"{Id}: the state is [theta1; theta2; dtheta1; dtheta2], got {Array.length v} values"

            state <- Array.copy v

    /// Each component ~ U(-0.1, 0.1) drawn in double, then rounded to float32 (`acrobot.py:189-196`).
    override _.ResetState rng =
        state <- Array.init 4 (fun _ -> float (float32 (EnvUtil.uniform rng -0.1 0.1)))

    override _.Observe() = observe state

    /// `Render.acrobot` of the two joint angles.
    override _.Draw() = Render.acrobot state[0] state[1]

    override _.Advance action =
        match action with
        | Action.Discrete a ->
            let s, terminal = transition state a
            state <- s
            (if terminal then 0.0 else -1.0), terminal
        | Action.Continuous _ -> invalidOp "unreachable: checked by CheckAction"

/// The batched form: state [N; 4] in `dtype` (float32 default, or float64); actions [N] int64 in
/// {0, 1, 2}. The same RK4 step as tensor operations.
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


    /// `_dsdt` on columns (each [N]); same operation order as `dsdt`; `sin`, `cos`, `sq` are the
    /// env's elementwise functions (see `BatchedClassicEnv.ExactMath`).
    let dsdtT
        (sin: torch.Tensor -> torch.Tensor)
        (cos: torch.Tensor -> torch.Tensor)
        (sq: torch.Tensor -> torch.Tensor)
        (a: torch.Tensor)
        (theta1: torch.Tensor)
        (theta2: torch.Tensor)
        (dtheta1: torch.Tensor)
        (dtheta2: torch.Tensor)
        =
        let m1, m2, l1 = linkMass1, linkMass2, linkLength1
        let lc1, lc2, I1, I2 = linkComPos1, linkComPos2, linkMoi, linkMoi
        let pi = Math.PI
        let cos2 = cos theta2
        let sin2 = sin theta2

        let d1 =
            ((cos2 * (2.0 * l1 * lc2) + (Math.Pow(l1, 2.0) + Math.Pow(lc2, 2.0))) * m2
             + m1 * Math.Pow(lc1, 2.0))
            + I1
            + I2

        let d2 = (cos2 * (l1 * lc2) + Math.Pow(lc2, 2.0)) * m2 + I2
        let phi2 = cos (theta1 + theta2 - pi / 2.0) * (m2 * lc2 * g)

        let phi1 =
            sq dtheta2 * (-m2 * l1 * lc2) * sin2
            - dtheta2 * (2.0 * m2 * l1 * lc2) * dtheta1 * sin2
            + cos (theta1 - pi / 2.0) * ((m1 * lc1 + m2 * l1) * g)
            + phi2

        let ddtheta2 =
            (a + d2 / d1 * phi1 - sq dtheta1 * (m2 * l1 * lc2) * sin2 - phi2)
            / ((sq d2 / d1).neg() + (m2 * Math.Pow(lc2, 2.0) + I2))

        let ddtheta1 = (d2 * ddtheta2 + phi1).neg() / d1
        [| dtheta1; dtheta2; ddtheta1; ddtheta2 |]

    let wrapT (x: torch.Tensor) =
        let lo, hi = -Math.PI, Math.PI
        let diff = hi - lo
        // two rounds of the source's loop (enough for one RK4 step), then a closed form for the rest
        let mutable x = x

        for _ in 1..2 do
            x <- torch.where (x.gt (hi.ToScalar()), x - diff, x)
            x <- torch.where (x.lt (lo.ToScalar()), x + diff, x)

        x <- torch.where (x.gt (hi.ToScalar()), x - ((x - hi) / diff).ceil() * diff, x)
        torch.where (x.lt (lo.ToScalar()), x + ((lo - x) / diff).ceil() * diff, x)

    override _.InitialStates(count, generator) =
        use scope = torch.NewDisposeScope()

        let u =
            torch.rand ([| count; 4L |], dtype = torch.float64, device = device, generator = generator)

        (u * 0.2 - 0.1).``to``(torch.float32).``to``(dtype).MoveToOuterDisposeScope()

    override this.Observe state =
        use scope = torch.NewDisposeScope()
        let t1 = state.select (1, 0L)
        let t2 = state.select (1, 1L)

        torch
            .stack(
                [
                    this.Cos t1
                    this.Sin t1
                    this.Cos t2
                    this.Sin t2
                    state.select (1, 2L)
                    state.select (1, 3L)
                ],
                1
            )
            .``to``(torch.float32)
            .MoveToOuterDisposeScope()

    override this.Dynamics(state, action) =
        let torques = torch.tensor (availTorque, dtype = dtype, device = device)
        let a = torques.index_select (0, action)
        let y0 = [| for i in 0L .. 3L -> state.select (1, i) |]

        let f (y: torch.Tensor[]) =
            dsdtT this.Sin this.Cos this.Square a y[0] y[1] y[2] y[3]

        let dt2 = dt / 2.0
        let k1 = f y0
        let k2 = f (Array.init 4 (fun i -> y0[i] + k1[i] * dt2))
        let k3 = f (Array.init 4 (fun i -> y0[i] + k2[i] * dt2))
        let k4 = f (Array.init 4 (fun i -> y0[i] + k3[i] * dt))

        let ns =
            Array.init 4 (fun i -> y0[i] + (k1[i] + k2[i] * 2.0 + k3[i] * 2.0 + k4[i]) * (dt / 6.0))

        let t1 = wrapT ns[0]
        let t2 = wrapT ns[1]
        let v1 = ns[2].clamp((-maxVel1).ToScalar(), maxVel1.ToScalar())
        let v2 = ns[3].clamp((-maxVel2).ToScalar(), maxVel2.ToScalar())
        let terminal = ((this.Cos t1).neg() - this.Cos(t2 + t1)).gt(1.0.ToScalar())
        let reward = terminal.``to`` dtype - 1.0
        torch.stack ([ t1; t2; v1; v2 ], 1), reward, terminal
