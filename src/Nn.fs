/// Networks: MLPs whose every parameter carries a leading seed axis (so S independent agents
/// train as one batched computation, the TorchSharp counterpart of `jax.vmap` over seeds),
/// per-seed reproducible initialisation, action distributions, policy heads and critics.
///
/// Shape convention: network inputs are [S; B; inDim] (S seeds, B samples per seed), outputs
/// [S; B; outDim]. With one seed S = 1.
module Rl.Nn

open System
open TorchSharp
open TorchSharp.Modules
open Rl.Tensor

/// Hidden-layer activation.
type Activation =
    | Relu
    | Tanh

    /// Applies the activation elementwise.
    member a.Apply(x: Tensor) =
        match a with
        | Relu -> torch.nn.functional.relu x
        | Tanh -> torch.tanh x

    /// Parses "relu" or "tanh" (case-insensitive); raises `ArgumentException` otherwise.
    static member Parse(s: string) =
        match s.Trim().ToLowerInvariant() with
        | "relu" -> Relu
        | "tanh" -> Tanh
        | _ -> invalidArg "activation" $"unknown activation '{s}'; allowed: relu, tanh"

/// How a layer's weights are initialised (biases start at 0 for `Orthogonal`).
type Init =
    /// PyTorch's `nn.Linear` default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))
    /// (kaiming_uniform with a = sqrt 5; `torch/nn/modules/linear.py` `reset_parameters`).
    | TorchDefault
    /// Orthogonal weights scaled by `gain`, zero bias (Saxe et al. 2014; CleanRL's `layer_init`:
    /// sqrt 2 for hidden layers, 0.01 for the policy output, 1.0 for the value output).
    | Orthogonal of gain: float

/// A linear layer with a leading seed axis: weight [S; in; out], bias [S; 1; out];
/// `forward x` maps [S; B; in] to [S; B; out] with one batched matmul (`bmm`) plus the bias (one
/// output: a product and a sum over `in`, so that a seed computes the same alone and in a batch).
type SeededLinear(name: string, seeds: int, inDim: int, outDim: int) as this =
    inherit torch.nn.Module<Tensor, Tensor>(name)

    let weight = new Parameter(torch.zeros (int64 seeds, int64 inDim, int64 outDim))

    let bias = new Parameter(torch.zeros (int64 seeds, 1L, int64 outDim))
    do this.RegisterComponents()

    member _.Weight = weight
    member _.Bias = bias
    member _.Seeds = seeds
    member _.InDim = inDim
    member _.OutDim = outDim

    /// Re-initialises seed k's slice from generator `gens[k]` (CPU generators), so seed k gets
    /// the same initial weights whether it is trained alone or inside a batch of seeds.
    member _.Initialise(init: Init, gens: torch.Generator[]) =
        if gens.Length <> seeds then
            invalidArg "gens" $"SeededLinear {name}: need {seeds} generators, got {gens.Length}"

        use _ng = torch.no_grad ()

        for k in 0 .. seeds - 1 do
            use scope = torch.NewDisposeScope()

            match init with
            | TorchDefault ->
                let bound = 1.0 / Math.Sqrt(float inDim)

                let w =
                    torch.rand ([| int64 inDim; int64 outDim |], generator = gens[k])
                    * (2.0 * bound)
                    - bound

                let b =
                    torch.rand ([| 1L; int64 outDim |], generator = gens[k]) * (2.0 * bound) - bound

                weight[k].copy_ w |> ignore
                bias[k].copy_ b |> ignore
            | Orthogonal gain ->
                // torch.nn.init.orthogonal_ on a [out; in] matrix: QR of a normal matrix,
                // signs fixed by diag(R); transpose when rows < cols.
                let rows, cols = outDim, inDim
                let a = torch.randn ([| int64 rows; int64 cols |], generator = gens[k])
                let a = if rows < cols then a.t () else a
                let struct (q, r) = torch.linalg.qr a
                let q = q * torch.sign(torch.diagonal r).unsqueeze 0
                let q = if rows < cols then q.t () else q // [out; in]
                weight[k].copy_((q * gain).t()) |> ignore
                bias[k].zero_() |> ignore

    // Note: TorchSharp 0.107.0's baddbmm mis-orders its operands, so bmm then add.
    // One output column (a value head, a 1-D action's mean): libtorch's bmm takes a
    // matrix-vector path for one seed and the batched gemm for several, which round differently,
    // so seed k would not compute the same alone and in a batch (tests/ScaleTests.fs). A product
    // and a sum over the input axis round the same for every seed count, and cost less than a
    // padded second column (about 2 us more than bmm per call at 64 rows here, 8 us with backward).
    override _.forward(x: Tensor) =
        if outDim = 1 then
            (x * weight.transpose (1L, 2L)).sum([| -1L |], true) + bias
        else
            torch.bmm (x, weight) + bias

/// Makes one CPU generator per seed for initialising networks: generator k is seeded from
/// `seeds[k]` and the stream label `label` (see `Seed.derive`).
let initGenerators (label: string) (seeds: int64[]) =
    seeds |> Array.map (fun s -> Seed.generator torch.CPU (Seed.derive s label))

/// An MLP trunk: `SeededLinear` layers of the given sizes, each followed by the activation.
/// `sizes = [in; h1; h2]` gives two hidden layers. Output [S; B; last size].
type Trunk(name: string, seeds: int, sizes: int list, activation: Activation) as this =
    inherit torch.nn.Module<Tensor, Tensor>(name)

    let layers =
        sizes
        |> List.pairwise
        |> List.mapi (fun i (a, b) -> new SeededLinear($"{name}.{i}", seeds, a, b))

    let layerList = torch.nn.ModuleList<SeededLinear>(Array.ofList layers)
    // Registered explicitly: `RegisterComponents` only sees fields, and `layerList` (used only
    // here) compiles to a constructor local, which left every hidden layer out of
    // `parameters ()` (so optimizers never trained them) and out of checkpoints.
    do this.register_module ("layers", layerList)

    member _.Layers = layers
    member _.OutDim = List.last sizes
    /// The activation after every layer.
    member _.Activation = activation

    member _.Initialise(init: Init, gens) =
        for l in layers do
            l.Initialise(init, gens)

    override _.forward(x: Tensor) =
        let mutable h = x

        for l in layers do
            h <- activation.Apply(l.forward h)

        h

// ---------------------------------------------------------------------------------------
// Distributions
// ---------------------------------------------------------------------------------------

/// An action distribution for a batch of states; leading dims [S; B].
type Dist =
    /// Diagonal Gaussian: mean and standard deviation [S; B; actDim].
    | Normal of mean: Tensor * std: Tensor
    /// Categorical over n actions: log-probabilities [S; B; n] (normalised log-softmax).
    | Categorical of logProbs: Tensor

/// Random numbers of `shape` (leading axis S) drawn per seed: `gens[k]` draws seed k's slice, so
/// seed k gets the same numbers alone or in a batch (one generator draws all when `gens` has
/// length 1). `draw shape gen` makes one slice.
let perSeedNoise (gens: torch.Generator[]) (shape: int64[]) (draw: int64[] -> torch.Generator -> Tensor) : Tensor =
    if gens.Length = 1 then
        draw shape gens[0]
    else
        let per = Array.append [| 1L |] shape[1..]
        torch.cat ([| for g in gens -> draw per g |], 0L)

/// Functions over `Dist`. Log-probabilities and entropies sum over the action dimension, as
/// CleanRL's `ppo_continuous_action.py` does (`logprob.sum(1)`).
module Dist =
    let private log2Pi = Math.Log(2.0 * Math.PI)

    /// log pi(a|s), [S; B]. `action` is [S; B; actDim] float (Normal) or [S; B] int64 (Categorical).
    let logProb (dist: Dist) (action: Tensor) : Tensor =
        match dist with
        | Normal(mean, std) ->
            let z = (action - mean) / std
            (-0.5 * z * z - torch.log std - 0.5 * log2Pi).sum(-1L)
        | Categorical lp -> lp.gather(-1L, action.unsqueeze (-1L)).squeeze(-1L)

    /// KL(p || q) of two distributions over the same actions, per state [S; B], analytic and
    /// summed over action dimensions: diagonal Gaussians
    /// sum_d log(sq/sp) + (sp^2 + (mp - mq)^2) / (2 sq^2) - 1/2; categoricals
    /// sum_a p(a) (log p(a) - log q(a)). Differentiable in both. Raises `ArgumentException` when
    /// one is Normal and the other Categorical. (Used by PPO's KL penalty, Schulman et al. 2017, sec. 4.)
    let kl (p: Dist) (q: Dist) : Tensor =
        match p, q with
        | Normal(mp, sp), Normal(mq, sq) ->
            (torch.log (sq / sp) + (sp * sp + (mp - mq).square()) / (2.0 * sq * sq) - 0.5).sum(-1L)
        | Categorical lp, Categorical lq -> (torch.exp lp * (lp - lq)).sum(-1L)
        | _ -> invalidArg "q" "Dist.kl: both distributions must be Normal, or both Categorical"

    /// The rows `idx` [S; B'] of a distribution over [S; B] states (a minibatch of it).
    let takeRows (idx: Tensor) (dist: Dist) : Dist =
        let take = Rl.Tensor.takeRows idx

        match dist with
        | Normal(mean, std) -> Normal(take mean, take std)
        | Categorical lp -> Categorical(take lp)

    /// Entropy, [S; B].
    let entropy (dist: Dist) : Tensor =
        match dist with
        | Normal(_, std) -> (0.5 + 0.5 * log2Pi + torch.log std).sum(-1L)
        | Categorical lp -> -(torch.exp lp * lp).sum(-1L)

    /// The deterministic action: the mean (Normal) or the most likely action (Categorical).
    let mode (dist: Dist) : Tensor =
        match dist with
        | Normal(mean, _) -> mean
        | Categorical lp -> lp.argmax (-1L)

    /// Draws one action per state. `gens[k]` drives seed k's draws (one generator for all
    /// when `gens` has length 1), so seed k draws the same numbers alone or in a batch.
    /// Normal: mean + std * N(0,1); Categorical: Gumbel-max (argmax of logits + Gumbel noise).
    let sample (gens: torch.Generator[]) (dist: Dist) : Tensor =
        match dist with
        | Normal(mean, std) ->
            let eps =
                perSeedNoise gens (sizes mean) (fun s g -> torch.randn (s, generator = g, device = mean.device))

            mean + std * eps
        | Categorical lp ->
            let u =
                perSeedNoise gens (sizes lp) (fun s g -> torch.rand (s, generator = g, device = lp.device))

            let gumbel = -torch.log(-torch.log(u.clamp_min ((1e-20).ToScalar())))
            (lp + gumbel).argmax(-1L)

// ---------------------------------------------------------------------------------------
// Policy heads and actors
// ---------------------------------------------------------------------------------------

/// How a Gaussian policy parameterises its standard deviation.
type Sigma =
    /// sigma = softplus(linear(h)) + 1e-5, state-dependent (seed 002's Pendulum actor).
    | Softplus
    /// sigma = exp(logStd), a learned parameter per action dimension, independent of the
    /// state (CleanRL `ppo_continuous_action.py`, `actor_logstd`), starting at `initLogStd`.
    | LogStd of initLogStd: float
    /// sigma = a constant, the same for every state and action dimension and never learned
    /// (seed 003's "fixed": for tasks where the right amount of exploration is known in advance).
    /// Must be > 0.
    | Fixed of sigma: float
    /// Generalized state-dependent exploration (gSDE; Raffin, Kober and Stulp, CoRL 2021, eq. 3-4;
    /// SB3 `StateDependentNoiseDistribution` with `full_std`, `learn_features = false`): the
    /// exploration noise is h W for the policy's last hidden features h [F] (detached) and a
    /// matrix W [F; actDim] with W_ij ~ N(0, sigma_ij^2), held fixed over several steps (see
    /// `Sde`). Its marginal per state is the diagonal Gaussian with
    /// std_j = sqrt(sum_i h_i^2 sigma_ij^2 + 1e-6); sigma = exp(logSigma) is a learned
    /// [F; actDim] matrix per seed, starting at exp(initLogStd) everywhere.
    | StateDependent of initLogStd: float

    /// Parses "softplus", "logstd" (starting at `initLogStd`), "fixed" (at `fixedSigma`, which
    /// must be > 0) or "sde" (gSDE, starting at `initLogStd`); raises `ArgumentException` otherwise.
    static member Parse(s: string, initLogStd, fixedSigma) =
        match s.Trim().ToLowerInvariant() with
        | "softplus" -> Softplus
        | "logstd" -> LogStd initLogStd
        | "fixed" when fixedSigma > 0.0 -> Fixed fixedSigma
        | "fixed" -> invalidArg "fixedSigma" $"sigma 'fixed' needs a standard deviation > 0, got {fixedSigma}"
        | "sde" -> StateDependent initLogStd
        | _ -> invalidArg "sigma" $"unknown sigma parameterisation '{s}'; allowed: softplus, logstd, fixed, sde"

/// Generalized state-dependent exploration (gSDE; Raffin, Kober and Stulp, CoRL 2021; SB3
/// `StateDependentNoiseDistribution`): exploration matrices W and the noise h W they give.
/// Every product is written as a broadcast multiply and a sum over the feature axis, so that seed
/// k's numbers are the same alone or in a batch (a batched matmul with one output column takes a
/// different libtorch kernel at S = 1, see `SeededLinear`).
module Sde =
    /// The added variance constant of SB3's gSDE (`epsilon = 1e-6`).
    let epsilon = 1e-6

    /// The per-state standard deviation of the noise h W, [S; B; actDim]:
    /// sqrt(sum_i h_i^2 exp(logSigma)_ij^2 + 1e-6) for features `h` [S; B; F] (detached here,
    /// SB3's `learn_features = false`) and `logSigma` [S; F; actDim].
    let std (h: Tensor) (logSigma: Tensor) : Tensor =
        let h2 = h.detach().square().unsqueeze(-1L) // [S; B; F; 1]
        let s2 = torch.exp(logSigma * 2.0).unsqueeze 1 // [S; 1; F; A]
        torch.sqrt ((h2 * s2).sum(-2L) + epsilon)

    /// Draws one exploration matrix per environment, W [S; N; F; actDim] with
    /// W_ij ~ N(0, exp(logSigma)_ij^2), `gens[k]` driving seed k's draws (SB3 `sample_weights`
    /// with `batch_size = N`). No gradient is recorded.
    let sampleMatrices (gens: torch.Generator[]) (logSigma: Tensor) (n: int) : Tensor =
        use _ng = torch.no_grad ()
        let sz = sizes logSigma // [S; F; A]
        let shape = [| sz[0]; int64 n; sz[1]; sz[2] |]

        let eps =
            perSeedNoise gens shape (fun s g -> torch.randn (s, generator = g, device = logSigma.device))

        eps * torch.exp(logSigma).unsqueeze 1

    /// The exploration noise h W, [S; N; actDim], for features `h` [S; N; F] and matrices `w`
    /// [S; N; F; actDim] (SB3 `get_noise`, one matrix per environment).
    let noise (h: Tensor) (w: Tensor) : Tensor = (h.unsqueeze (-1L) * w).sum(-2L)

/// What kind of action distribution a policy outputs.
type Head =
    /// Categorical over `n` discrete actions.
    | CategoricalHead of n: int
    /// Gaussian over `actDim` reals; the mean is `meanScale * tanh(linear h)` when `meanScale`
    /// is given (seed 002: 2 * tanh for Pendulum's [-2, 2] torque), else `linear h`.
    | GaussianHead of actDim: int * meanScale: float option * sigma: Sigma

/// The policy output of a network (`Actor`, `ActorCritic`): a linear layer from the trunk's
/// features to logits (Categorical) or means (Gaussian), plus, for a Gaussian, a softplus sigma
/// layer or a state-independent log-std parameter [S; 1; actDim]. `Dist h` maps trunk features
/// [S; B; featureDim] to the action distribution.
type PolicyHead(name: string, seeds: int, featureDim: int, head: Head) as this =
    inherit torch.nn.Module(name)

    let outDim =
        match head with
        | CategoricalHead n -> n
        | GaussianHead(d, _, _) -> d

    let outLayer = new SeededLinear($"{name}.out", seeds, featureDim, outDim)

    let sigmaLayer =
        match head with
        | GaussianHead(d, _, Softplus) -> Some(new SeededLinear($"{name}.sigma", seeds, featureDim, d))
        | _ -> None

    let logStd =
        match head with
        | GaussianHead(d, _, LogStd init) ->
            Some(new Parameter(torch.full ([| int64 seeds; 1L; int64 d |], init.ToScalar())))
        | GaussianHead(d, _, StateDependent init) ->
            Some(new Parameter(torch.full ([| int64 seeds; int64 featureDim; int64 d |], init.ToScalar())))
        | _ -> None

    do
        this.RegisterComponents()
        sigmaLayer |> Option.iter (fun m -> this.register_module ("sigma", m))
        logStd |> Option.iter (fun p -> this.register_parameter ("log_std", p))

    /// Re-initialises the output (and sigma) layer per seed from `gens` with `init`, and resets
    /// the log-std to its initial value.
    member _.Initialise(init: Init, gens: torch.Generator[]) =
        outLayer.Initialise(init, gens)
        sigmaLayer |> Option.iter (fun m -> m.Initialise(init, gens))

        match head, logStd with
        | GaussianHead(_, _, LogStd init), Some p
        | GaussianHead(_, _, StateDependent init), Some p ->
            use _ng = torch.no_grad ()
            p.fill_ init |> ignore
        | _ -> ()

    /// The linear layer from the trunk's features to the logits (Categorical) or the raw means
    /// (Gaussian, before `meanScale * tanh`), [S; B; featureDim] -> [S; B; outDim].
    member _.OutLayer = outLayer

    /// gSDE's log sigma matrix [S; featureDim; actDim] (the parameter "log_std") when the head is
    /// `StateDependent`, else None.
    member _.SdeLogSigma: Tensor option =
        match head with
        | GaussianHead(_, _, StateDependent _) -> logStd |> Option.map (fun p -> p :> Tensor)
        | _ -> None

    /// The action distribution for trunk features [S; B; featureDim].
    member _.Dist(h: Tensor) : Dist =
        match head with
        | CategoricalHead _ -> Categorical(torch.nn.functional.log_softmax (outLayer.forward h, -1L))
        | GaussianHead(_, meanScale, sigma) ->
            let raw = outLayer.forward h

            let mean =
                match meanScale with
                | Some s -> torch.tanh raw * s
                | None -> raw

            let std =
                match sigma with
                | Softplus -> torch.nn.functional.softplus (sigmaLayer.Value.forward h) + 1e-5
                | LogStd _ -> torch.exp(logStd.Value).expand_as mean
                | Fixed s -> torch.ones_like mean * s
                | StateDependent _ -> Sde.std h logStd.Value

            Normal(mean, std)

/// A policy network pi(a|s): trunk, then the head. `Dist obs` maps [S; B; obsDim] to a `Dist`.
type Actor(name: string, seeds: int, obsDim: int, hidden: int list, activation: Activation, head: Head) as this =
    inherit torch.nn.Module(name)

    let trunk = new Trunk($"{name}.trunk", seeds, obsDim :: hidden, activation)

    let policy = new PolicyHead($"{name}.head", seeds, trunk.OutDim, head)
    do this.RegisterComponents()

    member _.Head = head
    member _.Seeds = seeds
    member _.Trunk = trunk
    /// The policy head on top of the trunk.
    member _.Policy = policy

    /// Re-initialises all weights per seed (see `SeededLinear.Initialise`): hidden layers with
    /// `hiddenInit`, the output layer(s) with `outInit`; the log-std parameter is reset to its
    /// initial value.
    member _.Initialise(hiddenInit: Init, outInit: Init, seedValues: int64[]) =
        let gens = initGenerators $"{name}.init" seedValues
        trunk.Initialise(hiddenInit, gens)
        policy.Initialise(outInit, gens)

    /// The action distribution for observations [S; B; obsDim].
    member _.Dist(obs: Tensor) : Dist = policy.Dist(trunk.forward obs)

    /// The action distribution and the trunk's last hidden features [S; B; F] (what gSDE's noise
    /// reads) for observations [S; B; obsDim].
    member _.DistFeatures(obs: Tensor) : Dist * Tensor =
        let h = trunk.forward obs
        policy.Dist h, h

    /// gSDE's log sigma matrix [S; F; actDim] when sigma is `StateDependent`, else None.
    member _.SdeLogSigma = policy.SdeLogSigma

/// A state-value network V(s): trunk, then a linear output. `forward` maps [S; B; obsDim] to
/// [S; B].
type Critic(name: string, seeds: int, obsDim: int, hidden: int list, activation: Activation) as this =
    inherit torch.nn.Module<Tensor, Tensor>(name)

    let trunk = new Trunk($"{name}.trunk", seeds, obsDim :: hidden, activation)
    let outLayer = new SeededLinear($"{name}.out", seeds, trunk.OutDim, 1)
    do this.RegisterComponents()

    /// Re-initialises all weights per seed (see `SeededLinear.Initialise`).
    member _.Initialise(hiddenInit: Init, outInit: Init, seedValues: int64[]) =
        let gens = initGenerators $"{name}.init" seedValues
        trunk.Initialise(hiddenInit, gens)
        outLayer.Initialise(outInit, gens)

    override _.forward(obs: Tensor) =
        outLayer.forward(trunk.forward obs).squeeze(-1L)

/// An action-value network Q(s, .) for `nActions` discrete actions: a trunk (hidden layers with
/// the activation) and a linear output layer. `forward` maps [S; B; obsDim] to [S; B; nActions]
/// (seed 004 module 3.1: input the state, output one Q-value per action; CleanRL `dqn.py`
/// `QNetwork` is the 4-120-84-2 case).
type QNetwork(name: string, seeds: int, obsDim: int, hidden: int list, activation: Activation, nActions: int) as this =
    inherit torch.nn.Module<Tensor, Tensor>(name)

    let trunk = new Trunk($"{name}.trunk", seeds, obsDim :: hidden, activation)
    let outLayer = new SeededLinear($"{name}.out", seeds, trunk.OutDim, nActions)
    do this.RegisterComponents()

    /// Number of seeds S (the leading axis of every parameter).
    member _.Seeds = seeds
    /// Number of actions (the output width).
    member _.NumActions = nActions
    /// The hidden layers (input [S; B; obsDim]).
    member _.Trunk = trunk
    /// The linear layer from the trunk's features to the Q-values [S; B; nActions].
    member _.OutLayer = outLayer

    /// Re-initialises all weights per seed (see `SeededLinear.Initialise`); with the same
    /// `seedValues` (and `name`) two networks get identical weights.
    member _.Initialise(hiddenInit: Init, outInit: Init, seedValues: int64[]) =
        let gens = initGenerators $"{name}.init" seedValues
        trunk.Initialise(hiddenInit, gens)
        outLayer.Initialise(outInit, gens)

    override _.forward(obs: Tensor) = outLayer.forward (trunk.forward obs)

/// Polyak averaging of parameters, target <- tau * source + (1 - tau) * target, parameter by
/// parameter in registration order (the two modules must have the same architecture); `tau = 1`
/// is DQN's hard copy ("target network", Mnih et al. 2015, Methods), `tau < 1` the soft update of
/// Lillicrap et al. 2016 (DDPG, Algorithm 1). No gradient is recorded. Raises
/// `ArgumentException` when tau is outside (0, 1] or the parameter lists differ in count or shape.
let syncParameters (tau: float) (source: torch.nn.Module) (target: torch.nn.Module) : unit =
    if not (tau > 0.0 && tau <= 1.0) then
        invalidArg "tau" $"syncParameters: tau must be in (0, 1], got {tau}"

    let src = source.parameters () |> Seq.toArray
    let dst = target.parameters () |> Seq.toArray

    if src.Length <> dst.Length then
        invalidArg "target" $"syncParameters: source has {src.Length} parameters, target {dst.Length}"

    use _ng = torch.no_grad ()

    for s, d in Array.zip src dst do
        if s.shape <> d.shape then
            invalidArg "target" $"syncParameters: parameter shapes differ: {shapeString s} vs {shapeString d}"

        if tau = 1.0 then
            d.copy_ s |> ignore
        else
            d.mul_((1.0 - tau).ToScalar()).add_(s, alpha = tau.ToScalar()) |> ignore

/// A shared-trunk actor-critic (seed 001's network; CleanRL `ppo_atari.py`'s layout): one MLP
/// trunk feeds a policy output layer (plus a softplus sigma layer or a log-std parameter for a
/// Gaussian head, as `Actor`) and a linear value output layer. `DistValue obs` maps
/// [S; B; obsDim] to the action distribution and the values [S; B] in one trunk pass. Every
/// parameter has a leading seed axis S, so seeds stay independent. With `shareTrunk = false` the
/// value layer reads a second trunk of its own (`value_trunk`): two MLPs in one module, trained by
/// one optimizer on one total loss, which is CleanRL `ppo.py`'s and PureJaxRL `ppo.py`'s agent.
type ActorCritic
    (name: string, seeds: int, obsDim: int, hidden: int list, activation: Activation, head: Head, ?shareTrunk: bool) as this
    =
    inherit torch.nn.Module(name)

    let trunk = new Trunk($"{name}.trunk", seeds, obsDim :: hidden, activation)

    let policy = new PolicyHead($"{name}.policy", seeds, trunk.OutDim, head)
    let valueLayer = new SeededLinear($"{name}.value", seeds, trunk.OutDim, 1)

    let valueTrunk =
        if defaultArg shareTrunk true then
            None
        else
            Some(new Trunk($"{name}.value_trunk", seeds, obsDim :: hidden, activation))

    do
        this.RegisterComponents()
        // held in an option, so RegisterComponents does not see it (an unregistered module would not train)
        valueTrunk |> Option.iter (fun t -> this.register_module ("value_trunk", t))

    /// The policy head this network was built with.
    member _.Head = head
    /// S, the size of the leading seed axis.
    member _.Seeds = seeds
    /// The shared trunk (input [S; B; obsDim], output [S; B; last hidden size]).
    member _.Trunk = trunk
    /// The policy head on top of the trunk.
    member _.Policy = policy

    /// Re-initialises all weights per seed (see `SeededLinear.Initialise`): the trunk with
    /// `hiddenInit`, the policy (and sigma) layer with `policyInit`, the value layer with
    /// `valueInit` (CleanRL: orthogonal sqrt 2, 0.01, 1.0); the log-std is reset.
    member _.Initialise(hiddenInit: Init, policyInit: Init, valueInit: Init, seedValues: int64[]) =
        let gens = initGenerators $"{name}.init" seedValues
        trunk.Initialise(hiddenInit, gens)
        policy.Initialise(policyInit, gens)
        valueLayer.Initialise(valueInit, gens)
        valueTrunk |> Option.iter (fun t -> t.Initialise(hiddenInit, gens))

    /// True when policy and value read one trunk (seed 001), false for two MLPs.
    member _.SharesTrunk = valueTrunk.IsNone

    /// The features the value layer reads: the shared trunk's `h`, or the value trunk's own.
    member private _.ValueFeatures(obs: Tensor, h: Tensor) =
        match valueTrunk with
        | Some t -> t.forward obs
        | None -> h

    /// The action distribution and the state values [S; B] for observations [S; B; obsDim].
    member this.DistValue(obs: Tensor) : Dist * Tensor =
        let h = trunk.forward obs
        let value = valueLayer.forward(this.ValueFeatures(obs, h)).squeeze(-1L)

        let dist = policy.Dist h
        dist, value

    /// The action distribution for observations [S; B; obsDim].
    member this.Dist(obs: Tensor) : Dist = fst (this.DistValue obs)

    /// The action distribution and the policy's trunk features [S; B; F] (what gSDE's noise
    /// reads) for observations [S; B; obsDim]; no value is computed.
    member _.DistFeatures(obs: Tensor) : Dist * Tensor =
        let h = trunk.forward obs
        policy.Dist h, h

    /// gSDE's log sigma matrix [S; F; actDim] when sigma is `StateDependent`, else None.
    member _.SdeLogSigma = policy.SdeLogSigma

    /// The state values [S; B] for observations [S; B; obsDim].
    member _.Value(obs: Tensor) : Tensor =
        let features =
            match valueTrunk with
            | Some t -> t.forward obs
            | None -> trunk.forward obs

        valueLayer.forward(features).squeeze(-1L)
