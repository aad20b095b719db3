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
