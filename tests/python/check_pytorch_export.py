"""Loads a policy exported by `export.fsx format=pytorch` into the equivalent torch.nn MLP and
compares its actions with the library's (tests/ExportTests.fs runs it with Debian's python3-torch).

usage: python3 check_pytorch_export.py <policy.json> <policy.pt> <policy.safetensors> <cases.json>

<cases.json> holds {"obs": [[...], ...], "actions": [[...], ...]}: observations and the library's
deterministic actions for them. Prints one line with the largest difference and exits 0 when it
is at most 1e-5 (discrete: every index equal) and the safetensors file holds the .pt's tensors.
"""
import json
import struct
import sys

import numpy as np
import torch


def load_safetensors(path):
    """The tensors of a safetensors file (8-byte header length, JSON header, raw data), as numpy."""
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[key] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def main():
    desc_path, pt_path, st_path, cases_path = sys.argv[1:5]
    desc = json.load(open(desc_path))
    state = torch.load(pt_path)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[desc["activation"]]

    modules = []
    for i, layer in enumerate(desc["layers"]):
        modules.append(torch.nn.Linear(layer["in"], layer["out"]))
        if i < len(desc["layers"]) - 1:
            modules.append(act())
    net = torch.nn.Sequential(*modules)
    norm = desc["obs_normalization"]
    stats = {k: state.pop(k) for k in ("obs_mean", "obs_var") if k in state}
    net.load_state_dict(state, strict=True)

    st = load_safetensors(st_path)
    for key, value in list(state.items()) + list(stats.items()):
        if not np.array_equal(st[key], value.numpy()):
            print(f"safetensors: {key} differs from the .pt file")
            return 1

    cases = json.load(open(cases_path))
    obs = torch.tensor(cases["obs"], dtype=torch.float32)
    with torch.no_grad():
        x = obs
        if norm is not None:
            z = (obs.double() - stats["obs_mean"]) / torch.sqrt(stats["obs_var"] + norm["epsilon"])
            x = z.clamp(-norm["clip"], norm["clip"]).float()
        y = net(x)
        out = desc["output"]
        if out["kind"] == "continuous":
            m = out["mean_scale"] * torch.tanh(y) if out["mean_scale"] is not None else y
            low = torch.tensor(out["low"], dtype=torch.float32)
            high = torch.tensor(out["high"], dtype=torch.float32)
            action = torch.max(torch.min(m, high), low)
        else:
            scores = torch.log_softmax(y, -1) if out["log_softmax"] else y
            action = scores.argmax(-1, keepdim=True).float()
    expected = torch.tensor(cases["actions"], dtype=torch.float32)
    diff = (action - expected).abs().max().item()
    print(f"pytorch export: {len(obs)} observations, max |diff| {diff:.3g}")
    return 0 if diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
