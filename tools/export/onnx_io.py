"""torch.onnx.export with the settings every graph here uses (opset 17, constant folding, dynamic axes),
followed by onnx's checker on the written file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import torch

OPSET = 17


def export_graph(module: torch.nn.Module, args: tuple[Any, ...], path: Path, inputs: list[str], outputs: list[str], axes: dict[str, dict[int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, do_constant_folding=True,
        )
    onnx.checker.check_model(str(path))
