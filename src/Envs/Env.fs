/// The environment contract shared by every environment in `Rl.Envs`: a single form that
/// follows Gymnasium's `Env.reset`/`Env.step` (with the registered `TimeLimit` applied), and a
/// batched form that steps N copies at once as TorchSharp tensor operations with auto-reset in
/// Gymnasium's SAME_STEP mode (`gymnasium/vector/vector_env.py`, `AutoresetMode.SAME_STEP`).
namespace Rl

open TorchSharp

/// An action given to a single environment.
[<RequireQualifiedAccess>]
type Action =
    /// Index into a `Space.Discrete`.
    | Discrete of int
    /// A vector in a `Space.Box` (values outside the box are clipped as Gymnasium does).
    | Continuous of float[]

/// What one `step` of a single environment returns (Gymnasium's 5-tuple less `info`).
type StepResult =
    {
        /// Observation after the step (for FrozenLake, the state index as one float).
        Obs: float32[]
        /// Reward of this step.
        Reward: float
        /// The episode ended in a terminal state of the MDP (do not bootstrap).
        Terminated: bool
        /// The episode was cut by the time limit (bootstrap from `Obs`).
        Truncated: bool
    }

/// A single environment with Gymnasium's semantics, including the registered time limit.
type IEnv =
    /// Registered id, e.g. `Pendulum-v1`.
    abstract Id: string
    abstract ObservationSpace: Space
    abstract ActionSpace: Space
    /// The `TimeLimit` length (e.g. 200 for Pendulum-v1).
    abstract MaxEpisodeSteps: int
    /// Starts an episode. `Some seed` reseeds the environment's generator first (as
    /// `reset(seed=...)`), `None` continues its stream. Returns the first observation.
    abstract Reset: seed: int64 option -> float32[]
    /// Applies one action. Raises `ArgumentException` for an action outside the action space
    /// (discrete) or of the wrong length/NaN, and `InvalidOperationException` when called
    /// before `Reset` or after the episode ended without a new `Reset`.
    abstract Step: action: Action -> StepResult

/// What one `step` of a batched environment returns; every tensor has leading dimension N
/// (the number of copies) and lives on the environment's device.
type BatchStep =
    {
        /// [N; obsDim] float32: the observation to act on next: for copies whose episode ended at
        /// this step, the first observation of their fresh episode (SAME_STEP auto-reset).
        Obs: torch.Tensor
        /// [N] float32 reward of this step.
        Reward: torch.Tensor
        /// [N] bool: the copy reached a terminal state at this step.
        Terminated: torch.Tensor
        /// [N] bool: the copy was cut by the time limit at this step.
        Truncated: torch.Tensor
        /// [N; obsDim] float32: the observation this step reached, before any auto-reset
        /// (equals `Obs` where the episode goes on). Bootstrap truncated episodes from this.
        FinalObs: torch.Tensor
        /// [N] float32: undiscounted return of the episode that ended at this step (0 elsewhere).
        EpisodeReturn: torch.Tensor
        /// [N] int64: length of the episode that ended at this step (0 elsewhere).
        EpisodeLength: torch.Tensor
    }

/// N copies of an environment stepped together as tensor operations (CPU or CUDA).
type IBatchedEnv =
    inherit System.IDisposable
    abstract Id: string
    /// N, the number of copies.
    abstract NumEnvs: int
    abstract ObservationSpace: Space
    abstract ActionSpace: Space
    abstract MaxEpisodeSteps: int
    abstract Device: torch.Device
    /// Resets all copies; copy i draws from a generator seeded from `seed` (same seed, same
    /// observations). Returns [N; obsDim] float32.
    abstract Reset: seed: int64 -> torch.Tensor
    /// Steps all copies: `action` is [N] int64 for discrete spaces or [N; actDim] float32 for
    /// boxes (clipped to the box). Raises `ArgumentException` for a wrong shape or an
    /// out-of-range discrete action.
    abstract Step: action: torch.Tensor -> BatchStep

/// An environment whose running state (dynamics, time-limit counters, episode accumulators and
/// random generator) can be written as text and read back, so that a run checkpointed at an
/// update boundary resumes exactly as if it had never stopped. Every built-in env (single and
/// batched forms) implements it, and `SyncVectorEnv` does when all its copies do; a custom env
/// may (without it, a resumed run starts fresh episodes).
type IEnvSnapshot =
    /// Whether `SaveState` works for this env now (a custom env may not support it).
    abstract CanSaveState: bool
    /// The running state as text (JSON); the env is not changed.
    abstract SaveState: unit -> string
    /// Restores a state written by `SaveState` of an env of the same id and number of copies.
    /// Raises `FormatException` for text that is not such a state (naming what is wrong).
    abstract LoadState: state: string -> unit

/// Raised when an environment breaks its contract while it runs (an observation outside its
/// space or of the wrong length, a step after the episode ended, a non-finite reward): names the
/// env id, the step of the episode (0 for `Reset`) and the broken rule.
type EnvContractException(envId: string, step: int, rule: string, detail: string) =
    inherit System.InvalidOperationException($"{envId}, step {step}: {rule}: {detail}")
    /// The env's id.
    member _.EnvId = envId
    /// The step of the episode at which the rule broke (0 for `Reset`).
    member _.Step = step
    /// The broken rule, in words (e.g. "observation outside the observation space").
    member _.Rule = rule
