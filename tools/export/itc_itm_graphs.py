"""Writing the four graphs of an ITC + ITM folder in vlcurate's split layouts, from four wrapper modules
the model family supplies (BLIP: blip_itm_graphs.py, BLIP-2: blip2_graphs.py):

- `onnx/vision_model.onnx`: pixel_values -> image_embeds;
- `onnx/text_model.onnx`: input_ids, attention_mask -> text_embeds;
- `onnx/itm_vision.onnx`: pixel_values -> image_embeds, the image states the fusion graph reads;
- `onnx/itm_fusion.onnx`: image_embeds, input_ids, attention_mask -> itm_logits.

The batch axis is dynamic in every graph, the texts' length in those that read texts.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from onnx_io import export_graph


def export_itc_itm_graphs(folder: Path, image_size: int, vocab_size: int, *, vision: nn.Module, text: nn.Module,
                          itm_vision: nn.Module, itm_fusion: nn.Module) -> None:
    onnx_dir = folder / "onnx"
    pixels = torch.randn(2, 3, image_size, image_size)
    ids = torch.tensor([[101, 2, 3, 102], [101, 4, 102, 0]]) % vocab_size
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    batch = {0: "batch_size"}
    text_axes = {"input_ids": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "sequence_length"}}
    export_graph(vision, (pixels,), onnx_dir / "vision_model.onnx", ["pixel_values"], ["image_embeds"],
                 {"pixel_values": batch, "image_embeds": batch})
    export_graph(text, (ids, mask), onnx_dir / "text_model.onnx", ["input_ids", "attention_mask"], ["text_embeds"],
                 {**text_axes, "text_embeds": batch})
    export_graph(itm_vision, (pixels,), onnx_dir / "itm_vision.onnx", ["pixel_values"], ["image_embeds"],
                 {"pixel_values": batch, "image_embeds": batch})
    with torch.no_grad():
        states = itm_vision(pixels)
    export_graph(itm_fusion, (states, ids, mask), onnx_dir / "itm_fusion.onnx", ["image_embeds", "input_ids", "attention_mask"],
                 ["itm_logits"], {"image_embeds": batch, **text_axes, "itm_logits": batch})
