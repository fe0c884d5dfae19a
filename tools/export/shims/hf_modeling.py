"""The PreTrainedModel base and helpers BLIP's med.py takes from transformers (as of v4.15, the version
BLIP was written against): weight init and tying, head masks, the inverted cross-attention mask,
feed-forward chunking, activations and a logger. Pruning is not needed to run or export a model."""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

# transformers' "gelu" is the exact (erf) GELU, as is torch's default.
ACT2FN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "tanh": torch.tanh,
    "silu": F.silu,
}


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def apply_chunking_to_forward(forward_fn: Callable[..., torch.Tensor], chunk_size: int, chunk_dim: int, *inputs: torch.Tensor) -> torch.Tensor:
    """`forward_fn(*inputs)`, computed in chunks of `chunk_size` along `chunk_dim` when chunk_size > 0."""
    if chunk_size > 0:
        chunks = zip(*(t.chunk(t.shape[chunk_dim] // chunk_size, dim=chunk_dim) for t in inputs))
        return torch.cat([forward_fn(*c) for c in chunks], dim=chunk_dim)
    return forward_fn(*inputs)


def find_pruneable_heads_and_indices(*_args: Any, **_kwargs: Any) -> Any:
    raise NotImplementedError("head pruning is not supported by the export shims")


def prune_linear_layer(*_args: Any, **_kwargs: Any) -> Any:
    raise NotImplementedError("head pruning is not supported by the export shims")


class PreTrainedModel(nn.Module):
    config_class: Any = None
    base_model_prefix = ""

    def __init__(self, config: Any, *_args: Any, **_kwargs: Any) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def from_pretrained(cls, _name: str, config: Any = None, **_kwargs: Any) -> "PreTrainedModel":
        """The architecture only: LAVIS builds the Q-Former this way and then loads its own checkpoint."""
        return cls(config)

    def resize_token_embeddings(self, count: int) -> nn.Embedding:
        """Grow (or cut) the word embeddings to `count` rows, keeping the existing rows; retie the LM head."""
        old = self.get_input_embeddings()
        new = nn.Embedding(count, old.weight.shape[1], padding_idx=old.padding_idx)
        self._init_weights(new)
        rows = min(count, old.weight.shape[0])
        with torch.no_grad():
            new.weight[:rows] = old.weight[:rows]
        base = getattr(self, self.base_model_prefix, self)
        base.set_input_embeddings(new)
        output = self.get_output_embeddings()
        if output is not None:
            head = nn.Linear(old.weight.shape[1], count, bias=False)
            with torch.no_grad():
                head.weight[:rows] = output.weight[:rows]
            if getattr(output, "bias", None) is not None:
                bias = torch.zeros(count)
                bias[:rows] = output.bias.data[:rows]
                head.bias = nn.Parameter(bias)
                # BERT's prediction head keeps the same Parameter as `bias` beside `decoder.bias`.
                for module in self.modules():
                    if module.__dict__.get("_parameters", {}).get("bias") is output.bias and module is not output:
                        module.bias = head.bias
            self.set_output_embeddings(head)
            self.tie_weights()
        self.config.vocab_size = count
        return new

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _init_weights(self, module: nn.Module) -> None:  # overridden by BertPreTrainedModel
        pass

    def get_output_embeddings(self) -> nn.Module | None:
        return None

    def get_input_embeddings(self) -> nn.Module:
        base = getattr(self, self.base_model_prefix, None)
        if base is None or base is self:
            raise NotImplementedError
        return base.get_input_embeddings()

    def init_weights(self) -> None:
        self.apply(self._init_weights)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Share the LM head's weight with the input word embeddings (config.tie_word_embeddings, default on)."""
        output = self.get_output_embeddings()
        if output is not None and getattr(self.config, "tie_word_embeddings", True):
            output.weight = self.get_input_embeddings().weight

    def get_head_mask(self, head_mask: torch.Tensor | None, num_hidden_layers: int) -> Any:
        if head_mask is not None:
            raise NotImplementedError("head masks are not supported by the export shims")
        return [None] * num_hidden_layers

    def invert_attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """[B, S] or [B, T, S] with 1 = attend into an additive mask broadcastable over heads."""
        extended = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
        extended = extended.to(dtype=self.dtype)
        return (1.0 - extended) * -10000.0
