#!/usr/bin/python3
"""Write SigLIP's `logit_scale` and `logit_bias` into a model folder's config.json, where vlcurate reads
them for `probability(cos) = sigmoid(exp(logit_scale) * cos + logit_bias)` (src/models/README.md).

    python3 tools/export/siglip_logits.py FOLDER [--checkpoint model.safetensors | pytorch_model.bin | DIR]

Upstream the two values exist only as parameters of the checkpoint (transformers' SiglipModel, open_clip
and timm all name them `logit_scale` and `logit_bias`; `logit_scale` is the log of the scale) and as
constants inside an exported `onnx/model.onnx`. They are read, in this order, from --checkpoint, from
FOLDER/model.safetensors or FOLDER/pytorch_model.bin, or from initializers of FOLDER/onnx/model.onnx
named `logit_scale` / `logit_bias`. No transformers needed: safetensors files are read directly.
config.json keeps every other field; `logit_source` records where the values came from.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

KEYS = ("logit_scale", "logit_bias")
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def _scalar(values: np.ndarray, key: str, source: str) -> float:
    if values.size != 1:
        raise SystemExit(f"{source}: `{key}` has {values.size} values, expected one")
    return float(values.reshape(()))


def read_safetensors(path: Path) -> dict[str, float]:
    """The two scalars from a .safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        found = {}
        for key in KEYS:
            name = next((k for k in header if k == key or k.endswith("." + key)), None)
            if name is None:
                continue
            entry = header[name]
            start, end = entry["data_offsets"]
            f.seek(8 + length + start)
            raw = f.read(end - start)
            if entry["dtype"] == "BF16":  # bfloat16: the high half of a float32
                values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            elif entry["dtype"] in _DTYPES:
                values = np.frombuffer(raw, dtype=np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<"))
            else:
                raise SystemExit(f"{path}: `{name}` has dtype {entry['dtype']}, expected F32, F16, BF16 or F64")
            found[key] = _scalar(values, key, str(path))
    return found


def read_torch(path: Path) -> dict[str, float]:
    import torch

    state = torch.load(str(path), map_location="cpu")
    state = state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state
    found = {}
    for key in KEYS:
        name = next((k for k in state if k == key or k.endswith("." + key)), None)
        if name is not None:
            found[key] = _scalar(state[name].float().numpy(), key, str(path))
    return found


def read_onnx(path: Path) -> dict[str, float]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    found = {}
    for init in model.graph.initializer:
        for key in KEYS:
            if init.name == key or init.name.endswith("." + key):
                found[key] = _scalar(numpy_helper.to_array(init), key, str(path))
    return found


def read_logits(folder: Path, checkpoint: str | None) -> tuple[dict[str, float], str]:
    candidates: list[Path] = []
    if checkpoint:
        c = Path(checkpoint)
        candidates = [c / "model.safetensors", c / "pytorch_model.bin"] if c.is_dir() else [c]
    else:
        candidates = [folder / "model.safetensors", folder / "pytorch_model.bin", folder / "onnx" / "model.onnx"]
    tried = []
    for path in candidates:
        if not path.is_file():
            continue
        reader = read_safetensors if path.suffix == ".safetensors" else read_onnx if path.suffix == ".onnx" else read_torch
        found = reader(path)
        if all(k in found for k in KEYS):
            return found, str(path)
        tried.append(f"{path} (has {', '.join(found) or 'neither'})")
    raise SystemExit(
        "found no `logit_scale` and `logit_bias`: " + ("; ".join(tried) if tried else f"none of {', '.join(map(str, candidates))} exists")
        + ". Pass --checkpoint with the SigLIP checkpoint (model.safetensors or pytorch_model.bin)."
    )


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description="Write SigLIP's logit_scale and logit_bias into FOLDER/config.json.")
    p.add_argument("folder", help="the SigLIP model folder vlcurate loads")
    p.add_argument("--checkpoint", help="model.safetensors, pytorch_model.bin or a folder holding one")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SystemExit(f"{config_path} does not exist")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if str(config.get("model_type", "")).lower() != "siglip":
        print(f"warning: {config_path} has model_type {config.get('model_type')!r}; vlcurate uses logit_scale/logit_bias only for \"siglip\"", file=sys.stderr)
    values, source = read_logits(folder, args.checkpoint)
    # Name a file inside the folder relative to it, so the folder can move.
    where = os.path.relpath(source, folder) if Path(source).resolve().is_relative_to(folder.resolve()) else source
    config.update({"logit_scale": values["logit_scale"], "logit_bias": values["logit_bias"], "logit_source": where})
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"{config_path}: logit_scale {values['logit_scale']:.6g} (scale {np.exp(values['logit_scale']):.6g}), logit_bias {values['logit_bias']:.6g}, from {source}")


if __name__ == "__main__":
    main(sys.argv[1:])
