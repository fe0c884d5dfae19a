"""The end every folder export shares (BLIP ITM and captioner: blip_folders.py, BLIP-2: blip2_folder.py):
preprocessor_config.json, the tokenizer files, the check images under reference/, reference.json with the
PyTorch outputs on them, then the self-check against vlcurate's CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from check_images import load_pixels, write_check_images
from folder_files import preprocessor_config, write_json, write_tokenizer


def finish_folder(folder: Path, *, image_size: int, tokenizer: Any, max_length: int, user_images: list[str], drawn_images: int,
                  source: dict[str, Any], outputs: Callable[[torch.Tensor], dict[str, Any]],
                  self_check: Callable[[dict[str, Any]], list[str]] | None) -> dict[str, Any]:
    """`outputs` gives the PyTorch outputs on the check images' pixels (reference.json holds them between
    "images" and "exported_by"); `self_check` (None to skip) lists the disagreements with the written
    reference. Returns reference.json's content; raises SystemExit when the check fails."""
    write_json(folder / "preprocessor_config.json", preprocessor_config(image_size))
    write_tokenizer(folder, tokenizer, max_length)
    images = write_check_images(folder, image_size, drawn_images, user_images)
    pixels = load_pixels(folder, images)
    ref = {"images": images, **outputs(pixels), "exported_by": source}
    write_json(folder / "reference.json", ref)
    if self_check is not None:
        failures = self_check(ref)
        if failures:
            raise SystemExit("self-check FAILED:\n  " + "\n  ".join(failures))
    return ref
