"""The graphs of a BLIP captioner folder, cut from one BLIP_Decoder model (salesforce/BLIP's `blip.py`),
in vlcurate's captioner layout (optimum's names):

- `onnx/encoder_model.onnx`: pixel_values [B,3,S,S] -> last_hidden_state [B,N,C] (the ViT's tokens);
- `onnx/decoder_model_merged.onnx`: input_ids [B,T], encoder_hidden_states [B,N,C],
  past_key_values.{i}.key|value [B,H,P,D] (self-attention), past_key_values.{i}.encoder.key|value
  [B,H,N,D] (cross-attention), use_cache_branch bool[1] -> logits [B,T,V], present.{i}.key|value
  [B,H,P+T,D], present.{i}.encoder.key|value [B,H,N,D].

The merged graph is one graph, not an `If`: it keeps the first P * use_cache_branch past positions (so the
zero-length or dummy caches fed at step 0 are ignored) and always concatenates, which for an empty past is
the no-past computation. Positions continue after the kept past; the self-attention mask (causal over past
+ new tokens) is built in the graph and handed to BLIP's BertModel as a 3-D mask, so no shape-dependent
branch of med.py is frozen by tracing. The cross-attention keys and values over the N image tokens are
computed once, at step 0 (from the image tokens, as med.py does every step), returned as
present.{i}.encoder.* and read back from the cache afterwards: by the same trick, the graph projects only
the first N * (1 - use_cache_branch) image tokens and takes the first N * use_cache_branch cached ones.
Recomputing them would cost 2 x N x C x C multiply-adds per layer and token (~8 GMAC for BLIP-B at 384 px).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from blip_itm_graphs import VisionStates
from onnx_io import export_graph


class _Given(nn.Module):
    """Stands in for a cross-attention key/value projection: returns projections computed beforehand."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, _states: torch.Tensor) -> torch.Tensor:
        return self.value


class MergedDecoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.text_decoder = model.text_decoder
        self.layers = model.text_decoder.config.num_hidden_layers

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *past_flat, use_cache_branch = rest
        keep = use_cache_branch.to(torch.int64).reshape(())  # 0 or 1
        self_past, cross_past = past_flat[: 2 * self.layers], past_flat[2 * self.layers :]
        past_length = self_past[0].shape[2] * keep
        idx = torch.arange(past_length)
        past = tuple((self_past[2 * i].index_select(2, idx), self_past[2 * i + 1].index_select(2, idx)) for i in range(self.layers))
        # Cross-attention projections: the cached ones (step > 0) or the image tokens projected now (step 0).
        batch, tokens, _ = encoder_hidden_states.shape
        fresh = encoder_hidden_states.index_select(1, torch.arange(tokens * (1 - keep)))
        cached = torch.arange(cross_past[0].shape[2] * keep)
        attentions = [layer.crossattention.self for layer in self.text_decoder.bert.encoder.layer]
        projections = []
        for i, att in enumerate(attentions):
            kv = []
            for j, linear in enumerate((att.key, att.value)):
                old = cross_past[2 * i + j].index_select(2, cached)  # [B, H, N or 0, D]
                # Explicit sizes: onnxruntime cannot infer a -1 next to a zero-length axis.
                old = old.permute(0, 2, 1, 3).reshape(batch, old.shape[2], att.all_head_size)
                kv.append(torch.cat([old, linear(fresh)], dim=1))  # [B, N, H*D]
            projections.append(kv)
        originals = [(att.key, att.value) for att in attentions]
        try:
            for att, (k, v) in zip(attentions, projections):
                att.key, att.value = _Given(k), _Given(v)
            out = self._decode(input_ids, encoder_hidden_states, past, past_length)
        finally:
            for att, (k, v) in zip(attentions, originals):
                att.key, att.value = k, v
        heads, head_size = attentions[0].num_attention_heads, attentions[0].attention_head_size
        cross_present = [t.reshape(batch, tokens, heads, head_size).permute(0, 2, 1, 3) for kv in projections for t in kv]
        return (*out, *cross_present)

    def _decode(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor, past: tuple, past_length: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch, steps = input_ids.shape
        new_positions = torch.arange(steps) + past_length  # [T]
        positions = new_positions.unsqueeze(0).expand(batch, steps)
        # Query t (at new_positions[t]) sees every key position up to its own.
        visible = torch.arange(steps + past_length).unsqueeze(0) <= new_positions.unsqueeze(1)  # [T, P+T]
        mask = visible.to(torch.long).unsqueeze(0).expand(batch, steps, steps + past_length)
        image_atts = torch.ones(encoder_hidden_states.shape[:-1], dtype=torch.long)
        out = self.text_decoder(input_ids, attention_mask=mask, position_ids=positions,
                                encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=image_atts,
                                past_key_values=past, use_cache=True, return_dict=True)
        return (out.logits, *[t for kv in out.past_key_values for t in kv])


def cache_names(layers: int) -> tuple[list[str], list[str]]:
    """Self-attention caches of every layer, then the cross-attention ones (optimum's `.encoder.` names)."""
    kinds = [f"{kv}" for kv in ("key", "value")] + [f"encoder.{kv}" for kv in ("key", "value")]
    self_kinds, cross_kinds = kinds[:2], kinds[2:]
    past = [f"past_key_values.{i}.{k}" for ks in (self_kinds, cross_kinds) for i in range(layers) for k in ks]
    present = [f"present.{i}.{k}" for ks in (self_kinds, cross_kinds) for i in range(layers) for k in ks]
    return past, present


def export_caption_graphs(model: nn.Module, image_size: int, folder: Path) -> None:
    onnx_dir = folder / "onnx"
    config = model.text_decoder.config
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    head_dim = config.hidden_size // heads
    pixels = torch.randn(2, 3, image_size, image_size)
    export_graph(VisionStates(model), (pixels,), onnx_dir / "encoder_model.onnx", ["pixel_values"], ["last_hidden_state"],
                 {"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}})
    with torch.no_grad():
        states = model.visual_encoder(pixels)
    export_merged_decoder(MergedDecoder(model), torch.tensor([[5, 6], [7, 8]]) % config.vocab_size, states, layers, heads,
                          head_dim, onnx_dir / "decoder_model_merged.onnx")


def export_merged_decoder(decoder: nn.Module, ids: torch.Tensor, states: torch.Tensor, layers: int, heads: int,
                          head_dim: int, path: Path) -> None:
    """Write `decoder` (inputs `input_ids`, `encoder_hidden_states`, the caches of `cache_names`,
    `use_cache_branch`) as decoder_model_merged.onnx with optimum's axis names. Traced with a non-empty past
    and two new tokens (`ids`, two rows), so that neither length is special-cased; the cross-attention caches
    hold the image's N tokens (`states`' second axis)."""
    tokens = states.shape[1]
    past = tuple(torch.randn(2, heads, 3, head_dim) for _ in range(2 * layers)) + tuple(torch.randn(2, heads, tokens, head_dim) for _ in range(2 * layers))
    past_names, present_names = cache_names(layers)
    axes = {
        "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
        "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
        "logits": {0: "batch_size", 1: "decoder_sequence_length"},
        **{n: {0: "batch_size", 2: "past_encoder_sequence_length" if ".encoder." in n else "past_decoder_sequence_length"} for n in past_names},
        **{n: {0: "batch_size", 2: "encoder_sequence_length" if ".encoder." in n else "past_decoder_sequence_length + decoder_sequence_length"}
           for n in present_names},
    }
    export_graph(decoder, (ids, states, *past, torch.tensor([True])), path,
                 ["input_ids", "encoder_hidden_states", *past_names, "use_cache_branch"], ["logits", *present_names], axes)
