"""The timm pieces BLIP's vit.py imports: PatchEmbed (a strided convolution over non-overlapping
patches, flattened to tokens), trunc_normal_, DropPath (identity at inference), named_apply,
adapt_input_conv, drop_path and to_2tuple (LAVIS's EVA ViT), the registry decorator and the default-config helper, and the hub download helper
(refused: checkpoints are read from local files here)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768, norm_layer: Any = None, flatten: bool = True) -> None:
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten = flatten
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if self.flatten:
            x = x.flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, H*W, C]
        return self.norm(x)


def trunc_normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> torch.Tensor:
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


class DropPath(nn.Module):
    """Stochastic depth: drops whole residual branches while training, identity otherwise."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def to_2tuple(x: Any) -> tuple[Any, Any]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def named_apply(fn: Callable[..., None], module: nn.Module, name: str = "", depth_first: bool = True, include_root: bool = False) -> nn.Module:
    if not depth_first and include_root:
        fn(module=module, name=name)
    for child_name, child in module.named_children():
        child_name = ".".join((name, child_name)) if name else child_name
        named_apply(fn=fn, module=child, name=child_name, depth_first=depth_first, include_root=True)
    if depth_first and include_root:
        fn(module=module, name=name)
    return module


def adapt_input_conv(in_chans: int, conv_weight: torch.Tensor) -> torch.Tensor:
    if conv_weight.shape[1] != in_chans:
        raise NotImplementedError(f"adapting a {conv_weight.shape[1]}-channel input convolution to {in_chans} channels")
    return conv_weight


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


def default_cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    return {"url": url, **kwargs}


def download_cached_file(url: str, *_args: Any, **_kwargs: Any) -> str:
    raise RuntimeError(f"downloading {url} is not supported here: download the checkpoint and pass its local path")
