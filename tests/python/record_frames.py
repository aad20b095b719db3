#!/usr/bin/env python3
"""Record reference frames from Gymnasium's own renderers, as test data.

For every (env, state) pair below this script:

  1. builds the env with ``gymnasium.make(env_id, render_mode="rgb_array", **kwargs)``
     (a fresh env per frame, so nothing is carried over between frames),
  2. resets it with ``seed=0``,
  3. overwrites the state directly on ``env.unwrapped``
     (``state`` / ``last_u`` for classic control, ``s`` / ``lastaction`` for FrozenLake),
  4. calls ``env.render()`` and writes the returned HxWx3 uint8 frame as a
     lossless 8-bit RGB PNG (colour type 2, no filtering, zlib level 9).

It also records FrozenLake's ``render_mode="ansi"`` strings, and writes
``frames.json`` describing every file (see README.md in the output dir).

Usage:
    SDL_VIDEODRIVER=dummy /usr/bin/python3 tests/python/record_frames.py \
        --gymnasium-src /tmp/gymsrc --out tests/data/frames

``--gymnasium-src`` is the directory that *contains* the ``gymnasium``
package (it is put first on ``sys.path``); leave it out to use an installed
Gymnasium.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import zlib

# --------------------------------------------------------------------------
# The state sets.  Each entry: (file stem, env_id, env_kwargs, state dict)
# --------------------------------------------------------------------------

PI = math.pi

CARTPOLE = [
    # x, x_dot, theta, theta_dot
    ("cartpole_centre_upright", [0.0, 0.0, 0.0, 0.0]),
    ("cartpole_centre_tilt_right", [0.0, 0.0, 0.15, 0.0]),
    ("cartpole_left_tilt_left", [-1.5, 0.0, -0.2, 0.0]),
    ("cartpole_right_tilt_right", [2.0, 0.5, 0.15, -0.3]),
    ("cartpole_far_left_edge", [-2.4, 0.0, 0.0, 0.0]),
    ("cartpole_fallen", [1.0, 0.0, -1.2, 0.0]),
]

PENDULUM = [
    # (th, thdot), last_u
    ("pendulum_upright_no_u", [0.0, 0.0], None),
    ("pendulum_down_u_pos", [PI, 0.0], 1.5),
    ("pendulum_th1_u_neg_max", [1.0, 2.0], -2.0),
    ("pendulum_thm2p5_u_small", [-2.5, -1.0], 0.3),
    ("pendulum_thm0p5_u_pos_max", [-0.5, 0.0], 2.0),
]

MOUNTAIN_CAR_POSITIONS = [
    ("left_wall", [-1.2, 0.0]),
    ("valley", [-0.5, 0.0]),
    ("mid", [0.0, 0.01]),
    ("near_flag", [0.45, 0.0]),
    ("past_flag", [0.55, 0.0]),
]

ACROBOT = [
    # theta1, theta2, dtheta1, dtheta2
    ("acrobot_hanging", [0.0, 0.0, 0.0, 0.0]),
    ("acrobot_horizontal", [PI / 2, 0.0, 0.0, 0.0]),
    ("acrobot_upright", [PI, 0.0, 0.0, 0.0]),
    ("acrobot_bent", [0.5, -1.2, 0.3, -0.4]),
    ("acrobot_swung", [-2.0, 2.5, 0.0, 0.0]),
]

# FrozenLake: (stem, s, lastaction).  Actions: 0 Left, 1 Down, 2 Right, 3 Up.
# 4x4 map:  SFFF / FHFH / FFFH / HFFG   -> S=0, F=1, H=5, G=15
# 8x8 map:  S=0, F=9, H=19 (row 2 col 3), G=63
FROZEN_4x4 = [
    ("frozenlake4x4_s0_start_none", 0, None),
    ("frozenlake4x4_s1_ice_right", 1, 2),
    ("frozenlake4x4_s5_hole_down", 5, 1),
    ("frozenlake4x4_s14_ice_up", 14, 3),
    ("frozenlake4x4_s15_goal_right", 15, 2),
    ("frozenlake4x4_s0_start_left", 0, 0),
]
FROZEN_8x8 = [
    ("frozenlake8x8_s0_start_none", 0, None),
    ("frozenlake8x8_s9_ice_left", 9, 0),
    ("frozenlake8x8_s19_hole_right", 19, 2),
    ("frozenlake8x8_s62_ice_up", 62, 3),
    ("frozenlake8x8_s63_goal_down", 63, 1),
]
ANSI_CASES = {
    "4x4": [(0, None), (1, 2), (5, 1), (15, 2), (6, 0), (14, 3)],
    "8x8": [(0, None), (9, 0), (19, 2), (63, 1), (36, 3)],
}


# --------------------------------------------------------------------------
# PNG writer (lossless, 8-bit RGB, colour type 2)
# --------------------------------------------------------------------------


def _chunk(tag: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + tag
        + data
        + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    )


def write_png(path: str, frame) -> None:
    import numpy as np

    frame = np.ascontiguousarray(frame)
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, (
        frame.dtype,
        frame.shape,
    )
    h, w, _ = frame.shape
    # filter byte 0 (None) before each scanline
    raw = np.zeros((h, 1 + w * 3), dtype=np.uint8)
    raw[:, 1:] = frame.reshape(h, w * 3)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + _chunk(b"IEND", b"")
    )
    with open(path, "wb") as f:
        f.write(data)


def check_png_roundtrip(path: str, frame) -> None:
    """Decode the PNG with pygame and check it equals the frame exactly."""
    import numpy as np
    import pygame

    surf = pygame.image.load(path)
    back = pygame.surfarray.array3d(surf).transpose(1, 0, 2)
    if back.shape != frame.shape or not np.array_equal(back, frame):
        raise RuntimeError(f"PNG round-trip mismatch for {path}")


# --------------------------------------------------------------------------


def _jsonable(v):
    if v is None:
        return None
    return float(v)


def record(gym_src: str | None, out_dir: str) -> None:
    if gym_src:
        sys.path.insert(0, os.path.abspath(gym_src))
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

    import numpy as np
    import pygame
    import gymnasium as gym

    os.makedirs(out_dir, exist_ok=True)
    frames: list[dict] = []
    ansi: list[dict] = []

    def render_and_save(stem, env_id, env_kwargs, set_state, rec_extra):
        env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
        env.reset(seed=0)
        set_state(env.unwrapped)
        frame = env.render()
        frame = np.asarray(frame)
        fname = stem + ".png"
        path = os.path.join(out_dir, fname)
        write_png(path, frame)
        check_png_roundtrip(path, frame)
        rec = {
            "file": fname,
            "env_id": env_id,
            "env_kwargs": env_kwargs,
        }
        rec.update(rec_extra(env.unwrapped))
        rec.update(
            {
                "width": int(frame.shape[1]),
                "height": int(frame.shape[0]),
                "render_fps": env.metadata.get("render_fps"),
                "rgb_sha256": hashlib.sha256(frame.tobytes()).hexdigest(),
            }
        )
        frames.append(rec)
        env.close()
        print(f"{fname}: {frame.shape[1]}x{frame.shape[0]}")

    def classic(state, **extra):
        def setter(u):
            u.state = np.array(state, dtype=np.float64)
            for k, v in extra.items():
                setattr(u, k, v)

        def info(u):
            d = {"state": [float(x) for x in u.state]}
            for k in extra:
                d[k] = _jsonable(getattr(u, k))
            return d

        return setter, info

    for stem, st in CARTPOLE:
        render_and_save(stem, "CartPole-v1", {}, *classic(st))

    for stem, st, u in PENDULUM:
        render_and_save(stem, "Pendulum-v1", {}, *classic(st, last_u=u))

    for env_id, prefix in (
        ("MountainCar-v0", "mountaincar"),
        ("MountainCarContinuous-v0", "mountaincarcont"),
    ):
        for name, st in MOUNTAIN_CAR_POSITIONS:
            render_and_save(f"{prefix}_{name}", env_id, {}, *classic(st))

    for stem, st in ACROBOT:
        render_and_save(stem, "Acrobot-v1", {}, *classic(st))

    def lake(s, a):
        def setter(u):
            u.s = int(s)
            u.lastaction = a

        def info(u):
            return {"state": int(u.s), "lastaction": u.lastaction}

        return setter, info

    for map_name, cases in (("4x4", FROZEN_4x4), ("8x8", FROZEN_8x8)):
        for stem, s, a in cases:
            render_and_save(
                stem, "FrozenLake-v1", {"map_name": map_name}, *lake(s, a)
            )

    for map_name, cases in ANSI_CASES.items():
        for s, a in cases:
            kwargs = {"map_name": map_name}
            env = gym.make("FrozenLake-v1", render_mode="ansi", **kwargs)
            env.reset(seed=0)
            env.unwrapped.s = int(s)
            env.unwrapped.lastaction = a
            text = env.render()
            env.close()
            ansi.append(
                {
                    "env_id": "FrozenLake-v1",
                    "env_kwargs": kwargs,
                    "s": int(s),
                    "lastaction": a,
                    "ansi": text,
                }
            )

    meta = {
        "gymnasium_version": gym.__version__,
        "pygame_version": pygame.version.ver,
        "sdl_version": ".".join(map(str, pygame.get_sdl_version())),
        # Pendulum's torque arrow goes through pygame.transform.smoothscale,
        # whose output can differ slightly between its SSE/MMX/GENERIC paths.
        "smoothscale_backend": pygame.transform.get_smoothscale_backend(),
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "reset_seed": 0,
    }
    with open(os.path.join(out_dir, "frames.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "frames": frames, "ansi": ansi}, f, indent=1)
        f.write("\n")
    print(json.dumps(meta))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--gymnasium-src",
        default=None,
        help="directory containing the gymnasium package (prepended to sys.path)",
    )
    p.add_argument("--out", required=True, help="output directory")
    args = p.parse_args()
    record(args.gymnasium_src, args.out)


if __name__ == "__main__":
    main()
