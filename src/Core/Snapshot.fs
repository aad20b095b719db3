/// Saving and restoring the running state of a training run at an update boundary, so that a
/// resumed run continues exactly as if it had never stopped: a `System.Random` whose state can be
/// read and written (`SeededRandom`), and text (JSON) forms of tensors and `torch.Generator`
/// states (`Snapshot`).
namespace Rl

open System
open System.Text.Json.Nodes
open TorchSharp

/// A `System.Random` whose whole state can be saved and restored (`State`). It is Knuth's
/// subtractive generator (Knuth, TAOCP vol. 2, section 3.6; Numerical Recipes' `ran3`), seeded the
/// way .NET seeds `new Random(seed)`, so `Next()`, `Next(max)`, `Next(min, max)`, `NextDouble()`
/// and `NextBytes` return exactly what `new Random(seed)` returns for the same seed and calls (a
/// test compares the two). `NextSingle` and `NextInt64` draw from the same stream but are this
/// type's own (not System.Random's values). Raises `ArgumentOutOfRangeException` as
/// `System.Random` does for a negative `max` or `min > max`.
type SeededRandom(seed: int) =
    inherit Random()

    let table = Array.zeroCreate<int> 56
    let mutable inext = 0
    let mutable inextp = 21

    do
        let subtraction = if seed = Int32.MinValue then Int32.MaxValue else abs seed
        let mutable mj = 161803398 - subtraction
        table[55] <- mj
        let mutable mk = 1
        let mutable ii = 0

        for _ in 1..54 do
            ii <- ii + 21

            if ii >= 55 then
                ii <- ii - 55

            table[ii] <- mk
            mk <- mj - mk

            if mk < 0 then
                mk <- mk + Int32.MaxValue

            mj <- table[ii]

        for _ in 1..4 do
            for i in 1..55 do
                let n = if i + 30 >= 55 then i + 30 - 55 else i + 30
                table[i] <- table[i] - table[1 + n]

                if table[i] < 0 then
                    table[i] <- table[i] + Int32.MaxValue

    /// One draw in [0, Int32.MaxValue).
    member private _.Draw() : int =
        let a = if inext + 1 >= 56 then 1 else inext + 1
        let b = if inextp + 1 >= 56 then 1 else inextp + 1
        let mutable r = table[a] - table[b]

        if r = Int32.MaxValue then
            r <- r - 1

        if r < 0 then
            r <- r + Int32.MaxValue

        table[a] <- r
        inext <- a
        inextp <- b
        r

    member private this.LargeRangeSample() : float =
        let mutable r = this.Draw()

        if this.Draw() % 2 = 0 then
            r <- -r

        (float r + float (Int32.MaxValue - 1)) / (2.0 * float Int32.MaxValue - 1.0)

    /// The generator's state: the two indices, then the 56 table entries (58 ints).
    member _.State
        with get () = Array.append [| inext; inextp |] table
        and set (v: int[]) =
            if isNull v || v.Length <> 58 then
                invalidArg
                    "State"
                    $"SeededRandom: a state is 58 ints (2 indices, 56 table entries), got {if isNull v then 0 else v.Length}"

            if v[0] < 0 || v[0] > 55 || v[1] < 0 || v[1] > 55 then
                invalidArg "State" $"SeededRandom: the indices must be in 0..55, got {v[0]} and {v[1]}"

            inext <- v[0]
            inextp <- v[1]
            Array.blit v 2 table 0 56

    override this.Sample() =
        float (this.Draw()) * (1.0 / float Int32.MaxValue)

    override this.NextDouble() = this.Sample()
    override this.Next() = this.Draw()

    override this.Next(maxValue: int) =
        if maxValue < 0 then
            raise (ArgumentOutOfRangeException("maxValue", maxValue, "must be >= 0"))

        int (this.Sample() * float maxValue)

    override this.Next(minValue: int, maxValue: int) =
        if minValue > maxValue then
            raise (ArgumentOutOfRangeException("minValue", minValue, $"must be <= maxValue ({maxValue})"))

        let range = int64 maxValue - int64 minValue

        if range <= int64 Int32.MaxValue then
            int (this.Sample() * float range) + minValue
        else
            int (int64 (this.LargeRangeSample() * float range) + int64 minValue)

    override this.NextBytes(buffer: byte[]) =
        if isNull buffer then
            nullArg "buffer"

        for i in 0 .. buffer.Length - 1 do
            buffer[i] <- byte (this.Draw())

    override this.NextBytes(buffer: Span<byte>) =
        for i in 0 .. buffer.Length - 1 do
            buffer[i] <- byte (this.Draw())

    override this.NextSingle() =
        float32 (this.Draw() >>> 7) * (1.0f / 16777216.0f)

    override this.NextInt64() =
        ((int64 (this.Draw()) <<< 32)
         ||| (int64 (this.Draw()) <<< 1)
         ||| int64 (this.Draw() &&& 1))
        &&& Int64.MaxValue
        |> fun v -> if v = Int64.MaxValue then v - 1L else v

    override this.NextInt64(maxValue: int64) = this.NextInt64(0L, maxValue)

    override this.NextInt64(minValue: int64, maxValue: int64) =
        if minValue > maxValue then
            raise (ArgumentOutOfRangeException("minValue", minValue, $"must be <= maxValue ({maxValue})"))

        if minValue = maxValue then
            minValue
        else
            let range = uint64 (maxValue - minValue)
            minValue + int64 (uint64 (this.NextInt64()) % range)

/// Text (JSON) forms of run state for checkpoints: tensors (dtype, shape, raw bytes in base64,
/// so values come back bit for bit), `torch.Generator` states, `SeededRandom` states and float
/// arrays. Readers raise `FormatException` naming the missing or malformed field.
module Snapshot =
    /// A tensor as `{"dtype": ..., "shape": [...], "data": base64}` (copied to the CPU).
    let ofTensor (t: torch.Tensor) : JsonNode =
        use c = t.detach().cpu().contiguous()
        let o = JsonObject()
        o["dtype"] <- JsonValue.Create(string c.dtype)
        o["shape"] <- JsonArray([| for d in c.shape -> JsonValue.Create d :> JsonNode |])
        o["data"] <- JsonValue.Create(Convert.ToBase64String(c.bytes.ToArray()))
        o

    /// The field `name` of a JSON object; raises `FormatException` when it is missing.
    let field (name: string) (node: JsonNode) : JsonNode =
        match node with
        | :? JsonObject as o when o.ContainsKey name && not (isNull o[name]) -> o[name]
        | _ -> raise (FormatException $"snapshot: the field '{name}' is missing")

    /// A tensor written by `ofTensor`, on `device`. Raises `FormatException` for a malformed node.
    let toTensor (device: torch.Device) (node: JsonNode) : torch.Tensor =
        let dtypeName = string (field "dtype" node)

        let dtype =
            match Enum.TryParse<torch.ScalarType> dtypeName with
            | true, d -> d
            | _ -> raise (FormatException $"snapshot: unknown tensor dtype '{dtypeName}'")

        let shape =
            (field "shape" node).AsArray()
            |> Seq.map (fun d -> d.GetValue<int64>())
            |> Array.ofSeq

        let bytes = Convert.FromBase64String(string (field "data" node))
        use t = torch.empty (shape, dtype = dtype)

        if int64 bytes.Length <> t.NumberOfElements * t.ElementSize then
            raise (
                FormatException
                    $"snapshot: a {dtype} tensor of shape %A{shape} needs {t.NumberOfElements * t.ElementSize} bytes, got {bytes.Length}"
            )

        bytes.AsSpan().CopyTo(t.bytes)
        t.``to``(device).clone()

    /// A generator's state (its `get_state()` bytes).
    let ofGenerator (g: torch.Generator) : JsonNode =
        use s = g.get_state ()
        ofTensor s

    /// Restores a generator's state written by `ofGenerator`.
    let restoreGenerator (g: torch.Generator) (node: JsonNode) : unit =
        use s = toTensor torch.CPU node
        g.set_state s

    /// A tensor written by `ofTensor` that must have the shape and dtype of `like`, on `like`'s
    /// device. Raises `FormatException` naming `what` and both shapes and dtypes otherwise.
    let toTensorLike (what: string) (like: torch.Tensor) (node: JsonNode) : torch.Tensor =
        let t = toTensor like.device node

        if t.shape <> like.shape || t.dtype <> like.dtype then
            let msg =
                $"{what}: saved {t.dtype} %A{t.shape}, expected {like.dtype} %A{like.shape}"

            t.Dispose()
            raise (FormatException msg)

        t

    /// Several generators' states (one `ofGenerator` each), in order.
    let ofGenerators (gens: torch.Generator seq) : JsonNode =
        JsonArray([| for g in gens -> ofGenerator g |])

    /// Restores the generators written by `ofGenerators` in order. Raises `FormatException`
    /// naming `what` when the node holds another number of states.
    let restoreGenerators (what: string) (gens: torch.Generator[]) (node: JsonNode) : unit =
        let saved = node.AsArray()

        if saved.Count <> gens.Length then
            raise (FormatException $"{what}: {saved.Count} generator states saved, {gens.Length} expected")

        for k in 0 .. gens.Length - 1 do
            restoreGenerator gens[k] saved[k]

    /// Texts (e.g. the states of several environments) as a JSON array of strings.
    let ofTexts (texts: string seq) : JsonNode =
        JsonArray([| for t in texts -> JsonValue.Create t :> JsonNode |])

    /// Texts written by `ofTexts`; raises `FormatException` naming `what` unless there are
    /// `count` of them.
    let toTexts (what: string) (count: int) (node: JsonNode) : string[] =
        let saved = node.AsArray() |> Seq.map (fun x -> x.GetValue<string>()) |> Array.ofSeq

        if saved.Length <> count then
            raise (FormatException $"{what}: {saved.Length} saved, {count} expected")

        saved

    /// A `SeededRandom`'s state as a JSON array of 58 ints.
    let ofRandom (r: SeededRandom) : JsonNode =
        JsonArray([| for v in r.State -> JsonValue.Create v :> JsonNode |])

    /// Restores a `SeededRandom` state written by `ofRandom`.
    let restoreRandom (r: SeededRandom) (node: JsonNode) : unit =
        let v = node.AsArray() |> Seq.map (fun x -> x.GetValue<int>()) |> Array.ofSeq

        try
            r.State <- v
        with :? ArgumentException as e ->
            raise (FormatException $"snapshot: {e.Message}")

    /// Doubles as a JSON array of round-trip strings (NaN and infinities included).
    let ofFloats (xs: float[]) : JsonNode =
        JsonArray(
            [|
                for x in xs -> JsonValue.Create(x.ToString("R", Globalization.CultureInfo.InvariantCulture)) :> JsonNode
            |]
        )

    /// Doubles written by `ofFloats`.
    let toFloats (node: JsonNode) : float[] =
        node.AsArray()
        |> Seq.map (fun x -> Double.Parse(x.GetValue<string>(), Globalization.CultureInfo.InvariantCulture))
        |> Array.ofSeq

    /// Parses snapshot text; raises `FormatException` when it is not JSON.
    let parse (text: string) : JsonNode =
        try
            JsonNode.Parse text
        with :? Text.Json.JsonException as e ->
            raise (FormatException $"snapshot: not JSON ({e.Message})")

    /// Parses the snapshot text of the env `envId` and checks that it was saved by an env of that
    /// id (its `id` field). Raises `FormatException` for text that is not JSON, has no `id`, or
    /// names another env.
    let parseFor (envId: string) (text: string) : JsonNode =
        let o = parse text
        let savedId = string (field "id" o)

        if savedId <> envId then
            raise (FormatException $"{envId}: the saved state is of {savedId}")

        o
