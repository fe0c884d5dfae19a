"""A BertConfig with transformers' field names and defaults, read from BLIP's `med_config.json`-style
files. Only plain attributes: the model code reads them, nothing else is needed."""

from __future__ import annotations

import json
from typing import Any

_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "use_cache": True,
    # PretrainedConfig's generic fields med.py reads.
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict": True,
    "chunk_size_feed_forward": 0,
    "is_decoder": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}


_NAMED: dict[str, dict[str, Any]] = {}


def register_config(name: str, values: dict[str, Any]) -> None:
    """Make `BertConfig.from_pretrained(name)` return these values (LAVIS asks for 'bert-base-uncased')."""
    _NAMED[name] = dict(values)


class BertConfig:
    model_type = "bert"

    def __init__(self, **kwargs: Any) -> None:
        for key, value in {**_DEFAULTS, **kwargs}.items():
            setattr(self, key, value)

    @property
    def use_return_dict(self) -> bool:
        return bool(self.return_dict)

    @classmethod
    def from_json_file(cls, path: str) -> "BertConfig":
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> "BertConfig":
        """A registered config, else transformers' defaults (which are bert-base-uncased's)."""
        return cls(**{**_NAMED.get(name, {}), **kwargs})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BertConfig":
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))
