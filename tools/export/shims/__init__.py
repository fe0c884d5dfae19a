"""Stand-ins for the few names salesforce/BLIP's (and LAVIS's BLIP-2) model code imports from
transformers, timm and fairscale.

BLIP's `models/med.py`, `vit.py`, `blip.py`, `blip_itm.py` and `blip_retrieval.py` import a handful of
helpers from those packages (output dataclasses, a config class, BertTokenizer, timm's PatchEmbed, ...).
This package provides our own minimal versions of exactly those names, so the original architecture code
runs with plain PyTorch. `shimmed_imports()` maps them into `sys.modules` only while BLIP's modules are
being imported and then restores whatever was there (a real `transformers` keeps working afterwards: the
BLIP modules hold references to the shim objects they imported).
"""

from __future__ import annotations

import contextlib
import sys
import types
from typing import Iterable, Iterator

from . import bert_config, bert_tokenizer, checkpointing, hf_modeling, hf_outputs, timm_parts


def _module(name: str, **attrs: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def shim_modules() -> dict[str, types.ModuleType]:
    """The module names BLIP imports from, mapped to shim modules holding the names it uses."""
    outputs = {n: getattr(hf_outputs, n) for n in hf_outputs.__all__}
    logging_mod = _module("transformers.utils.logging", get_logger=hf_modeling.get_logger)
    bert_cfg_mod = _module("transformers.models.bert.configuration_bert", BertConfig=bert_config.BertConfig)
    mods = {
        "transformers": _module(
            "transformers", BertTokenizer=bert_tokenizer.BertTokenizer, BertConfig=bert_config.BertConfig
        ),
        "transformers.activations": _module("transformers.activations", ACT2FN=hf_modeling.ACT2FN),
        "transformers.file_utils": _module("transformers.file_utils", ModelOutput=hf_outputs.ModelOutput),
        "transformers.modeling_outputs": _module("transformers.modeling_outputs", ModelOutput=hf_outputs.ModelOutput, **outputs),
        "transformers.modeling_utils": _module(
            "transformers.modeling_utils",
            PreTrainedModel=hf_modeling.PreTrainedModel,
            apply_chunking_to_forward=hf_modeling.apply_chunking_to_forward,
            find_pruneable_heads_and_indices=hf_modeling.find_pruneable_heads_and_indices,
            prune_linear_layer=hf_modeling.prune_linear_layer,
        ),
        "transformers.utils": _module("transformers.utils", logging=logging_mod),
        "transformers.utils.logging": logging_mod,
        "transformers.models": _module("transformers.models"),
        "transformers.models.bert": _module("transformers.models.bert", configuration_bert=bert_cfg_mod),
        "transformers.models.bert.configuration_bert": bert_cfg_mod,
        "timm": _module("timm"),
        "timm.models": _module("timm.models"),
        "timm.models.vision_transformer": _module(
            "timm.models.vision_transformer", _cfg=timm_parts.default_cfg, PatchEmbed=timm_parts.PatchEmbed
        ),
        "timm.models.registry": _module("timm.models.registry", register_model=timm_parts.register_model),
        "timm.models.layers": _module(
            "timm.models.layers", trunc_normal_=timm_parts.trunc_normal_, DropPath=timm_parts.DropPath,
            drop_path=timm_parts.drop_path, to_2tuple=timm_parts.to_2tuple,
        ),
        "timm.models.helpers": _module(
            "timm.models.helpers", named_apply=timm_parts.named_apply, adapt_input_conv=timm_parts.adapt_input_conv
        ),
        "timm.models.hub": _module("timm.models.hub", download_cached_file=timm_parts.download_cached_file),
        "fairscale": _module("fairscale"),
        "fairscale.nn": _module("fairscale.nn"),
        "fairscale.nn.checkpoint": _module("fairscale.nn.checkpoint"),
        "fairscale.nn.checkpoint.checkpoint_activations": _module(
            "fairscale.nn.checkpoint.checkpoint_activations", checkpoint_wrapper=checkpointing.checkpoint_wrapper
        ),
    }
    return mods


@contextlib.contextmanager
def modules_restored(names: Iterable[str]) -> Iterator[None]:
    """After the block, `sys.modules` holds for each of `names` what it held before (or nothing)."""
    saved = {name: sys.modules.get(name) for name in names}
    try:
        yield
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


@contextlib.contextmanager
def shimmed_imports() -> Iterator[None]:
    """Within the block, `import transformers` (and timm, fairscale) gives the shims; restored after."""
    mods = shim_modules()
    with modules_restored(mods):
        # Submodules of a real package that are not shimmed must not leak into the shim namespace either.
        hidden = {n: m for n, m in sys.modules.items() if n.split(".")[0] in ("transformers", "timm", "fairscale") and n not in mods}
        for n in hidden:
            del sys.modules[n]
        sys.modules.update(mods)
        try:
            yield
        finally:
            sys.modules.update(hidden)
