/// A trained deterministic policy taken out of its run: what `export.fsx` writes as ONNX and what
/// the C# face's `Policy.Act` runs. An algorithm that reloads its policy describes it here twice:
/// as the library computes it (`LoadedPolicy.Act`, the same calls as its evaluation) and as plain
/// numbers per seed (`PolicyNetwork`: observation normalisation, dense layers, the output rule), from
/// which `Onnx.model` builds a graph. Tests run both on the same observations.
module Rl.PolicyExport

open System
open TorchSharp
open Rl.Tensor
open Rl.Nn
open Rl.Wrappers

/// One dense layer of one seed, y = x W + b: `Weight` row-major [In; Out] (`SeededLinear`'s
/// weight slice, already in x W orientation), `Bias` [Out].
type Dense =
    {
        Weight: float32[]
        Bias: float32[]
        In: int
        Out: int
    }

/// Observation normalisation as training applied it (`RunningMeanStd.Normalize`, Gymnasium
/// `NormalizeObservation`): z = clip((obs - Mean) / sqrt(Var + Epsilon), -Clip, Clip), computed in
/// float64 and cast to float32.
type ObsNorm =
    {
        Mean: float[]
        Var: float[]
        Epsilon: float
        Clip: float
    }

/// What turns the last layer's outputs into the action the environment receives.
type Output =
    /// A continuous action: the outputs (`MeanScale * tanh(outputs)` when a scale is given,
    /// seed 002's `2 tanh`) clipped into the action box [Low; High] per dimension (infinite
    /// bounds clip nothing), as Gymnasium's `ClipAction` and the classic-control environments do.
    | Continuous of meanScale: float option * low: float[] * high: float[]
    /// A discrete action: the index of the largest output. `LogSoftmax` says whether the outputs
    /// are logits that the policy turns into log-probabilities first (PPO's categorical head) or
    /// values compared as they are (DQN's Q-values).
    | Discrete of logSoftmax: bool

/// One seed's deterministic policy as numbers: obs [B; ObsDim] float32 -> (optional
/// normalisation) -> `Hidden` layers each followed by `Activation` -> `Out` -> `Output`.
type PolicyNetwork =
    {
        /// The training seed this network belongs to.
        Seed: int64
        ObsDim: int
        ObsNorm: ObsNorm option
        Hidden: Dense list
        Activation: Activation
        Out: Dense
        Output: Output
    }

/// A run's policy restored from its checkpoint, for every seed of the run.
type LoadedPolicy =
    {
        /// `algo=` name of the run ("ppo", "dqn").
        Algo: string
        EnvId: string
        /// The run's seeds; index k of the seed axis is seed `Seeds[k]`.
        Seeds: int64[]
        /// The environment's observation space; `ObsDim` is its flat size.
        ObservationSpace: Rl.Space
        ActionSpace: Rl.Space
        /// What the outputs of a discrete policy are: "log_probs" (PPO) or "q_values" (DQN); null
        /// for a continuous policy.
        ScoresName: string
        /// The library's deterministic action for observations [S; B; ObsDim] float32 (raw, as the
        /// environment returns them): [S; B; actDim] float32 clipped into the action box, or [S; B]
        /// int64 indices; computed by the same calls as the run's evaluation. Call it through
        /// `ActOn`/`ActFor`, which record no gradient.
        Act: torch.Tensor -> torch.Tensor
        /// The network's outputs that the action is read from, [S; B; n] float32: the mean before
        /// clipping (continuous), or the log-probabilities / Q-values (discrete); see `OutputsFor`.
        Outputs: torch.Tensor -> torch.Tensor
        /// Seed index k's network as numbers.
        Network: int -> PolicyNetwork
        /// Frees the networks.
        Release: unit -> unit
    }

    /// Values per observation (the observation space's flat size).
    member p.ObsDim = p.ObservationSpace.FlatSize

    /// `f` of observations [B; ObsDim] given to every seed at once ([S; B; ObsDim]), seed index
    /// k's slice of the result; no gradient recorded.
    member private p.ForSeed(f: torch.Tensor -> torch.Tensor, k: int, obs: torch.Tensor) =
        use _ng = torch.no_grad ()
        let sz = Rl.Tensor.sizes obs
        let S = int64 p.Seeds.Length
        (f (obs.unsqueeze(0L).expand(S, sz[0], sz[1]))).[k]

    /// Seed index k's deterministic action (see `Act`) for observations [B; ObsDim]: [B; actDim]
    /// float32 or [B] int64.
    member p.ActOn(k: int, obs: torch.Tensor) = p.ForSeed(p.Act, k, obs)

    /// `ActOn` for observations as B * ObsDim floats, row after row: the actions flattened
    /// (B * actDim values, or B indices).
    member p.ActFor(k: int, obs: float32[]) : float[] =
        use scope = torch.NewDisposeScope()
        toArray (p.ActOn(k, torch.tensor(obs).reshape(-1L, int64 p.ObsDim)))

    /// Seed index k's `Outputs` for observations as B * ObsDim floats: B * n values.
    member p.OutputsFor(k: int, obs: float32[]) : float[] =
        use scope = torch.NewDisposeScope()
        toArray (p.ForSeed(p.Outputs, k, torch.tensor(obs).reshape(-1L, int64 p.ObsDim)))

    interface IDisposable with
        member p.Dispose() = p.Release()

/// The observation and action spaces of environment `envId` (one copy made and freed).
let spacesOf (envId: string) : Rl.Space * Rl.Space =
    use env = Rl.Envs.makeBatched envId 1 torch.CPU
    env.ObservationSpace, env.ActionSpace

/// Seed index `k` of a seeded linear layer as a `Dense`.
let dense (layer: SeededLinear) (k: int) : Dense =
    {
        Weight = toArray32 layer.Weight[k]
        Bias = toArray32 layer.Bias[k]
        In = layer.InDim
        Out = layer.OutDim
    }

/// Seed index `k` of observation statistics with clip `clip` (epsilon 1e-8, as `Normalize`).
let obsNorm (stats: RunningMeanStd) (clip: float) (k: int) : ObsNorm =
    let d = stats.Dim
    let mean = toArray stats.Mean
    let var = toArray stats.Var

    {
        Mean = mean[k * d .. (k + 1) * d - 1]
        Var = var[k * d .. (k + 1) * d - 1]
        Epsilon = 1e-8
        Clip = clip
    }

/// Clips continuous actions [S; B; actDim] into a box's bounds (infinite bounds clip nothing);
/// other spaces' actions pass unchanged.
let clipToBox (space: Rl.Space) (action: torch.Tensor) : torch.Tensor =
    match space with
    | Rl.Space.Box(low, high, _) ->
        let bound (xs: float[]) =
            torch.tensor(xs |> Array.map float32, device = action.device).reshape(1L, 1L, int64 xs.Length)

        torch.minimum (torch.maximum (action, bound low), bound high)
    | _ -> action

/// The output rule of a policy over `space`: `Continuous` with the head's mean scale for a box,
/// `Discrete logSoftmax` otherwise.
let outputFor (space: Rl.Space) (meanScale: float option) (logSoftmax: bool) : Output =
    match space with
    | Rl.Space.Box(low, high, _) -> Continuous(meanScale, low, high)
    | Rl.Space.Discrete _ -> Discrete logSoftmax

/// Seed index `k` of a policy made of `trunk` and `outLayer` (and, when given, the observation
/// normalisation of seed index k), as numbers. Raises `ArgumentException` for an index outside
/// the seeds.
let network
    (seeds: int64[])
    (trunk: Trunk)
    (outLayer: SeededLinear)
    (norm: (int -> ObsNorm) option)
    (output: Output)
    (k: int)
    : PolicyNetwork =
    if k < 0 || k >= seeds.Length then
        invalidArg "k" $"seed index {k} is outside the run's {seeds.Length} seed(s)"

    {
        Seed = seeds[k]
        ObsDim = trunk.Layers.Head.InDim
        ObsNorm = norm |> Option.map (fun f -> f k)
        Hidden = trunk.Layers |> List.map (fun l -> dense l k)
        Activation = trunk.Activation
        Out = dense outLayer k
        Output = output
    }
