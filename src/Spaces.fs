/// Observation and action spaces, as Gymnasium's `gymnasium/spaces/discrete.py` and
/// `gymnasium/spaces/box.py` define them (bounds held as the float32 values the space holds).
namespace Rl

/// A space of observations or actions.
[<RequireQualifiedAccess>]
type Space =
    /// The integers `start .. start + n - 1` (Gymnasium `Discrete(n, start)`).
    | Discrete of n: int * start: int
    /// A box of real vectors with elementwise bounds `low <= x <= high`; `low` and `high` have
    /// the length of the flattened `shape` and may hold infinities (Gymnasium `Box`).
    | Box of low: float[] * high: float[] * shape: int[]

    /// Number of scalar components: 1 for `Discrete` (an index), the product of `shape` for `Box`.
    member this.FlatSize =
        match this with
        | Discrete _ -> 1
        | Box(_, _, shape) -> Array.fold (*) 1 shape

    /// A short human-readable form, e.g. `Discrete(2)` or `Box(-2, 2, (1,))`.
    override this.ToString() =
        match this with
        | Discrete(n, 0) -> $"Discrete({n})"
        | Discrete(n, s) -> $"Discrete({n}, start={s})"
        | Box(low, high, shape) ->
            let b (xs: float[]) =
                if xs |> Array.forall ((=) xs[0]) then
                    string xs[0]
                else
                    "[" + System.String.Join(", ", xs) + "]"

            let sh = System.String.Join(",", shape)
            $"Box({b low}, {b high}, ({sh},))"

    /// Whether `x` lies in the space (Gymnasium `Space.contains`): for `Discrete`, one value that
    /// is an integer in `start .. start + n - 1`; for `Box`, `FlatSize` values with
    /// `low <= x <= high` elementwise (NaN is never contained). False on a wrong length.
    member this.Contains(x: float[]) : bool =
        match this with
        | Discrete(n, start) ->
            x.Length = 1
            && x[0] = System.Math.Floor x[0]
            && x[0] >= float start
            && x[0] < float (start + n)
        | Box(low, high, _) ->
            x.Length = low.Length
            && Array.forall2 (fun (l: float) v -> v >= l) low x
            && Array.forall2 (fun (h: float) v -> v <= h) high x

    /// Whether the index `i` lies in a `Discrete` space; false for a `Box`.
    member this.ContainsIndex(i: int) : bool =
        match this with
        | Discrete(n, start) -> i >= start && i < start + n
        | Box _ -> false

    /// A random element drawn from `rng`, as Gymnasium's `Space.sample`
    /// (`gymnasium/spaces/discrete.py`, `gymnasium/spaces/box.py`): `Discrete` gives
    /// `[| start + k |]` with k uniform in 0..n-1; a float32 `Box` draws each component uniformly
    /// in [low, high] where both bounds are finite, `low + Exp(1)` / `high - Exp(1)` where only one
    /// is, and `Normal(0, 1)` where neither is, then rounds to float32 (clamped into the box).
    /// Seed `rng` (`System.Random seed`) for reproducible samples.
    member this.Sample(rng: System.Random) : float[] =
        match this with
        | Discrete(n, start) -> [| float (start + rng.Next n) |]
        | Box(low, high, _) ->
            let exp () =
                -System.Math.Log(1.0 - rng.NextDouble())

            let normal () =
                let u1 = 1.0 - rng.NextDouble()
                let u2 = rng.NextDouble()

                System.Math.Sqrt(-2.0 * System.Math.Log u1)
                * System.Math.Cos(2.0 * System.Math.PI * u2)

            Array.init low.Length (fun i ->
                let l, h = low[i], high[i]

                let v =
                    match System.Double.IsInfinity l, System.Double.IsInfinity h with
                    | false, false -> l + (h - l) * rng.NextDouble()
                    | false, true -> l + exp ()
                    | true, false -> h - exp ()
                    | true, true -> normal ()

                let v = float (float32 v)

                if v < l then l
                elif v > h then h
                else v)

    /// `n` random elements as one tensor on `device`, drawn with `generator` (any device's
    /// generator; null uses torch's default): `Discrete` gives [n] int64 uniform in
    /// `start .. start + n - 1`; `Box` gives [n; FlatSize] float32, uniform in [low, high] where
    /// both bounds are finite and standard normal elsewhere. Used for random agents and benchmarks.
    member this.SampleBatch(n: int, generator: TorchSharp.torch.Generator, device: TorchSharp.torch.Device) =
        match this with
        | Discrete(k, start) ->
            TorchSharp.torch.randint (
                int64 start,
                int64 (start + k),
                [| int64 n |],
                dtype = TorchSharp.torch.int64,
                device = device,
                generator = generator
            )
        | Box(low, high, _) ->
            use scope = TorchSharp.torch.NewDisposeScope()
            let d = int64 low.Length

            let finite =
                Array.map2 (fun l h -> not (System.Double.IsInfinity l || System.Double.IsInfinity h)) low high

            let lo = Array.map2 (fun f l -> if f then l else 0.0) finite low
            let width = Array.map3 (fun f l h -> if f then h - l else 0.0) finite low high

            let u =
                TorchSharp.torch.rand (
                    [| int64 n; d |],
                    dtype = TorchSharp.torch.float64,
                    device = device,
                    generator = generator
                )

            let z =
                TorchSharp.torch.randn (
                    [| int64 n; d |],
                    dtype = TorchSharp.torch.float64,
                    device = device,
                    generator = generator
                )

            let mask = TorchSharp.torch.tensor (finite, device = device)

            let lo = TorchSharp.torch.tensor (lo, device = device)
            let width = TorchSharp.torch.tensor (width, device = device)
            let bounded = u * width + lo

            TorchSharp.torch
                .where(mask.unsqueeze 0, bounded, z)
                .``to``(TorchSharp.torch.float32)
                .MoveToOuterDisposeScope()
