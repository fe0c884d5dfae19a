"""Images for checking an export: drawn here at exactly the model's input size (so vlcurate's resize is
the identity and both sides see the same pixels), or the user's own images resized once with PIL and
saved as PNG; and BLIP's normalisation of such an image into a tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from folder_files import IMAGE_MEAN, IMAGE_STD


def drawn_image(index: int, size: int) -> Image.Image:
    """A simple deterministic scene: a two-colour gradient with a few filled shapes."""
    rng = np.random.default_rng(1000 + index)
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    pixels = (top[None, None, :] * (1 - t) + bottom[None, None, :] * t).repeat(size, axis=1).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(2 + index % 3):
        x0, y0 = (int(v) for v in rng.integers(0, size * 2 // 3, 2))
        w, h = (int(v) for v in rng.integers(size // 6, size // 2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (x0, y0, min(size - 1, x0 + w), min(size - 1, y0 + h))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return img


def write_check_images(folder: Path, size: int, count: int, user_images: list[str]) -> list[str]:
    """Write the check images under `folder/reference/`; returns their paths relative to `folder`."""
    out_dir = folder / "reference"
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    images = [drawn_image(i, size) for i in range(count)]
    for path in user_images:
        images.append(Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC))
    for i, img in enumerate(images):
        name = f"reference/image-{i}.png"
        img.save(folder / name)
        names.append(name)
    return names


def load_pixels(folder: Path, names: list[str]) -> torch.Tensor:
    """[B,3,S,S] float32: RGB / 255, normalised with BLIP's mean and std (the images are already S x S)."""
    arrays = [np.asarray(Image.open(folder / n).convert("RGB"), dtype=np.float32) / 255.0 for n in names]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()
