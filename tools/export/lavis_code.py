"""Importing salesforce/LAVIS's BLIP-2 first-stage code (`lavis/models/blip2_models/Qformer.py`,
`blip2.py`, `blip2_qformer.py`, `blip2_image_text_matching.py`, `lavis/models/eva_vit.py`,
`lavis/models/blip_models/blip_outputs.py`) from a checkout, file by file, with plain PyTorch.

Those files are imported as they are. LAVIS's package `__init__`s (which pull in datasets, tasks, runners
and omegaconf) are not run: `lavis`, `lavis.models` and friends are empty packages here, and the few
LAVIS helpers the model files name (registry, logger, dist utilities, BaseModel, the CLIP ViT-L factory)
are our own stand-ins below; transformers and timm are the shims of shims/. LAVIS downloads the EVA
ViT-g weights inside `create_eva_vit_g`; `register_download` maps that URL to a local file.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from blip_code import checkout_commit
from shims import modules_restored, shimmed_imports

CHECKED_COMMIT = "506965b9c4a18c1e565bd32acaccabe0198433f7"
REPOSITORY = "https://github.com/salesforce/LAVIS"

_DOWNLOADS: dict[str, str] = {}


def register_download(url_basename: str, local_file: str) -> None:
    """Serve LAVIS's download of `.../<url_basename>` from `local_file` (e.g. eva_vit_g.pth)."""
    _DOWNLOADS[url_basename] = local_file


def _download_cached_file(url: str, *_args: Any, **_kwargs: Any) -> str:
    name = url.rsplit("/", 1)[-1]
    if name in _DOWNLOADS:
        return _DOWNLOADS[name]
    raise RuntimeError(f"LAVIS wants to download {url}: download it yourself and pass the local file (e.g. --eva-checkpoint)")


class _Registry:
    def register_model(self, _name: str) -> Any:
        return lambda cls: cls


class _BaseModel(nn.Module):
    """LAVIS's BaseModel, for inference: an nn.Module that knows its device."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def _not_for_inference(*_args: Any, **_kwargs: Any) -> Any:
    raise NotImplementedError("distributed training helpers are not needed to run or export BLIP-2")


def _stub_modules() -> dict[str, types.ModuleType]:
    def mod(name: str, **attrs: Any) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__path__ = []  # a package, so submodules can be registered under it
        m.__dict__.update(attrs)
        return m

    dist_utils = mod("lavis.common.dist_utils", download_cached_file=_download_cached_file,
                     is_dist_avail_and_initialized=lambda: False, get_rank=lambda: 0, get_world_size=lambda: 1,
                     is_main_process=lambda: True)
    return {
        "lavis": mod("lavis"),
        "lavis.common": mod("lavis.common"),
        "lavis.common.dist_utils": dist_utils,
        "lavis.common.utils": mod("lavis.common.utils", is_url=lambda s: str(s).startswith(("http://", "https://")),
                                  get_abs_path=lambda p: os.path.abspath(p)),
        "lavis.common.logger": mod("lavis.common.logger", MetricLogger=_not_for_inference),
        "lavis.common.registry": mod("lavis.common.registry", registry=_Registry()),
        "lavis.models": mod("lavis.models"),
        "lavis.models.base_model": mod("lavis.models.base_model", BaseModel=_BaseModel,
                                       all_gather_with_grad=_not_for_inference, concat_all_gather=_not_for_inference),
        "lavis.models.clip_vit": mod("lavis.models.clip_vit", create_clip_vit_L=_not_for_inference),
        "lavis.models.blip_models": mod("lavis.models.blip_models"),
        "lavis.models.blip2_models": mod("lavis.models.blip2_models"),
    }


# The LAVIS files imported as they are, in dependency order.
FILES = {
    "lavis.models.blip_models.blip_outputs": "lavis/models/blip_models/blip_outputs.py",
    "lavis.models.eva_vit": "lavis/models/eva_vit.py",
    "lavis.models.blip2_models.Qformer": "lavis/models/blip2_models/Qformer.py",
    "lavis.models.blip2_models.blip2": "lavis/models/blip2_models/blip2.py",
    "lavis.models.blip2_models.blip2_qformer": "lavis/models/blip2_models/blip2_qformer.py",
    "lavis.models.blip2_models.blip2_image_text_matching": "lavis/models/blip2_models/blip2_image_text_matching.py",
}


@dataclass
class LavisCode:
    root: Path
    commit: str | None
    eva_vit: types.ModuleType
    qformer: types.ModuleType
    blip2: types.ModuleType
    blip2_qformer: types.ModuleType
    blip2_itm: types.ModuleType


def load_lavis_code(root: str | Path) -> LavisCode:
    root = Path(root).resolve()
    missing = [f for f in FILES.values() if not (root / f).is_file()]
    if missing:
        raise SystemExit(f"--lavis-code {root}: expected a salesforce/LAVIS checkout ({REPOSITORY}); missing {', '.join(missing)}")
    commit = checkout_commit(root)
    if commit != CHECKED_COMMIT:
        print(f"warning: LAVIS checkout {root} is at {commit or 'an unknown commit'}; these tools were checked against {CHECKED_COMMIT}", file=sys.stderr)
    stubs = _stub_modules()
    loaded: dict[str, types.ModuleType] = {}
    with modules_restored([*stubs, *FILES]), shimmed_imports():
        sys.modules.update(stubs)
        for name, rel in FILES.items():
            spec = importlib.util.spec_from_file_location(name, root / rel)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            loaded[name] = module
    return LavisCode(
        root=root, commit=commit,
        eva_vit=loaded["lavis.models.eva_vit"], qformer=loaded["lavis.models.blip2_models.Qformer"],
        blip2=loaded["lavis.models.blip2_models.blip2"], blip2_qformer=loaded["lavis.models.blip2_models.blip2_qformer"],
        blip2_itm=loaded["lavis.models.blip2_models.blip2_image_text_matching"],
    )
