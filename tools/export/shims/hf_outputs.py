"""Model output containers with the behaviour BLIP's med.py relies on: attribute access by field name and
integer indexing over the fields that are not None (`outputs[0]` is the first set field), as transformers'
ModelOutput behaves."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import torch


class ModelOutput:
    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]


def _output(name: str, fields: list[str]) -> type:
    return dataclasses.make_dataclass(
        name, [(f, Optional[torch.Tensor], dataclasses.field(default=None)) for f in fields], bases=(ModelOutput,)
    )


BaseModelOutputWithPastAndCrossAttentions = _output(
    "BaseModelOutputWithPastAndCrossAttentions",
    ["last_hidden_state", "past_key_values", "hidden_states", "attentions", "cross_attentions"],
)
BaseModelOutputWithPoolingAndCrossAttentions = _output(
    "BaseModelOutputWithPoolingAndCrossAttentions",
    ["last_hidden_state", "pooler_output", "hidden_states", "past_key_values", "attentions", "cross_attentions"],
)
CausalLMOutputWithCrossAttentions = _output(
    "CausalLMOutputWithCrossAttentions",
    ["loss", "logits", "past_key_values", "hidden_states", "attentions", "cross_attentions"],
)
# Imported by med.py but only used by heads BLIP's ITM/retrieval/captioner models do not build.
MaskedLMOutput = _output("MaskedLMOutput", ["loss", "logits", "hidden_states", "attentions"])
MultipleChoiceModelOutput = _output("MultipleChoiceModelOutput", ["loss", "logits", "hidden_states", "attentions"])
NextSentencePredictorOutput = _output("NextSentencePredictorOutput", ["loss", "logits", "hidden_states", "attentions"])
QuestionAnsweringModelOutput = _output(
    "QuestionAnsweringModelOutput", ["loss", "start_logits", "end_logits", "hidden_states", "attentions"]
)
SequenceClassifierOutput = _output("SequenceClassifierOutput", ["loss", "logits", "hidden_states", "attentions"])
TokenClassifierOutput = _output("TokenClassifierOutput", ["loss", "logits", "hidden_states", "attentions"])

__all__ = [
    "BaseModelOutputWithPastAndCrossAttentions",
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "MultipleChoiceModelOutput",
    "NextSentencePredictorOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
]
