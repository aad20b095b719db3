/// Seeding: torch's global generator, explicit `torch.Generator`s for reproducible sampling,
/// and derived seeds for independent streams (per seed, per purpose).
module Rl.Seed

open TorchSharp

/// Seeds torch's global generator (used by layer initialisation) and returns it.
let setGlobal (seed: int64) : unit = torch.manual_seed seed |> ignore

/// A fresh generator on `device` seeded with `seed`: use one per independent random stream.
let generator (device: torch.Device) (seed: int64) : torch.Generator =
    let g = new torch.Generator(uint64 seed, device)
    g

/// Derives a well-mixed 63-bit seed from a base seed and a stream label (SplitMix64 finaliser),
/// so e.g. the environment, the policy sampling and the minibatch shuffling of one run use
/// unrelated streams, and seed k of a batch of seeds gets the same streams as seed k run alone.
let derive (seed: int64) (stream: string) : int64 =
    let mutable z = uint64 seed + 0x9E3779B97F4A7C15UL

    for c in stream do
        z <- (z ^^^ uint64 c) * 0xBF58476D1CE4E5B9UL
        z <- z ^^^ (z >>> 27)

    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    z <- z ^^^ (z >>> 31)
    int64 (z >>> 1)
