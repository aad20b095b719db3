/// Small tensor helpers used across the library: dispose scopes, host copies, shapes.
module Rl.Tensor

open TorchSharp

type Tensor = torch.Tensor

/// Runs `f` inside a fresh TorchSharp dispose scope and moves its result out of the scope, so
/// every temporary tensor made by `f` is freed when it returns. Use around loop bodies
/// (TorchSharp's `docfx/articles/memory.md`).
let scoped (f: unit -> Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    (f ()).MoveToOuterDisposeScope()

/// Like `scoped` for a body that returns no tensor (all its tensors are freed).
let scopedUnit (f: unit -> unit) : unit =
    use _scope = torch.NewDisposeScope()
    f ()

/// Copies a tensor of any shape to a flat float[] on the host (converting dtype).
let toArray (t: Tensor) : float[] =
    use c = t.detach().cpu().to_type(torch.float64).contiguous()
    c.data<float>().ToArray()

/// Copies a tensor of any shape to a flat float32[] on the host (converting dtype).
let toArray32 (t: Tensor) : float32[] =
    use c = t.detach().cpu().to_type(torch.float32).contiguous()
    c.data<float32>().ToArray()

/// The value of a one-element tensor as a double (raises `ArgumentException` otherwise).
let item (t: Tensor) : float =
    if t.numel () <> 1L then
        invalidArg "t" $"item: expected a one-element tensor, got shape %A{t.shape}"

    use c = t.detach().cpu().to_type(torch.float64)
    c.item<float>()

/// A float32 tensor [len] on `device` from a host array.
let ofArray32 (device: torch.Device) (xs: float32[]) : Tensor = torch.tensor (xs, device = device)

/// The sizes of `t`, as `t.shape`, read one dimension at a time. TorchSharp's `shape` fills a
/// pinned array through a callback from native code, several times the cost of `dim` plus one
/// `size` per dimension; checks on hot paths (every env step, every minibatch) use this.
let sizes (t: Tensor) : int64[] =
    Array.init (int (t.dim ())) (fun i -> t.size i)

/// True when `t` has exactly the shape `expected` (see `sizes`).
let hasShape (expected: int64[]) (t: Tensor) : bool =
    t.dim () = int64 expected.Length
    && Array.forall id (Array.mapi (fun i e -> t.size i = e) expected)

/// True when `a` and `b` have the same shape (see `sizes`).
let sameShape (a: Tensor) (b: Tensor) : bool = hasShape (sizes a) b

/// The rows `idx` [S; B] of each seed's samples in `x` [S; M] or [S; M; D]: [S; B] or [S; B; D]
/// (minibatches and replay samples with a leading seed axis).
let takeRows (idx: Tensor) (x: Tensor) : Tensor =
    if x.dim () = 2L then
        x.gather (1L, idx)
    else
        x.gather (1L, idx.unsqueeze(-1L).expand(-1L, -1L, x.size 2))

/// Shape as a readable string, e.g. "[2048; 3]", for error messages.
let shapeString (t: Tensor) =
    "[" + System.String.Join("; ", t.shape) + "]"

/// Raises `ArgumentException` unless `t` has exactly `expected` shape (-1 matches any size).
let expectShape (what: string) (expected: int64[]) (t: Tensor) =
    let actual = sizes t

    let ok =
        actual.Length = expected.Length
        && Array.forall2 (fun e a -> e = -1L || e = a) expected actual

    if not ok then
        let e =
            "["
            + System.String.Join("; ", expected |> Array.map (fun x -> if x < 0L then "*" else string x))
            + "]"

        invalidArg what $"{what}: expected shape {e}, got {shapeString t}"
