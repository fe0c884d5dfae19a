#!/usr/bin/python3
"""Write the tiny captioner fixtures that tests/captioner runs against.

Run with Debian's interpreter (it has torch, onnx, numpy and PIL):

    /usr/bin/python3 tools/make_captioner_fixtures.py [--out tests/fixtures/models]

One random-weight vision encoder-decoder (32x32 images, hidden size 16, a 1-block ViT-like encoder, a
2-layer GPT-2-like decoder with 2 heads of size 8 and cross-attention, 40-token word vocabulary) is
exported from the SAME weights into the three captioner layouts of DESIGN.md ("Model folder layouts"):

* `captioner-merged`:  onnx/encoder_model.onnx + onnx/decoder_model_merged.onnx, where the merged graph is
  built as optimum builds it: an `If` on `use_cache_branch` whose then-branch is the with-past decoder and
  whose else-branch is the no-past decoder. Also `_fp16` copies of both (float16 weights, float16
  pixel/hidden-state/cache/logit tensors) of fp16-rounded weights.
* `captioner-pair`:    onnx/encoder_model.onnx + onnx/decoder_model.onnx + onnx/decoder_with_past_model.onnx
* `captioner-nocache`: onnx/encoder_model.onnx + onnx/decoder_model.onnx (no cache: every step re-runs the
  whole sequence)

Each folder has `config.json` (VisionEncoderDecoder style, ids in the nested `decoder` config),
`generation_config.json`, `preprocessor_config.json`, a hand-written word-level `tokenizer.json`
(WordPiece model with whole words only, which @huggingface/tokenizers loads) and `tokenizer_config.json`.

`captioner-merged/expected.json` holds reference decodings computed here in PyTorch by a Python
implementation of the same decoding rules as src/captioner/decoding (greedy, beam search, nucleus sampling
with the same seeded xoshiro128** streams, repetition penalty, min/max length, prompt prefix), for the two
32x32 test images of tests/fixtures/models/images (no resampling, so the pixels are exact).

The decoder's declared inputs are `input_ids`, `encoder_hidden_states`, `attention_mask` (all ones; it
exercises the optional feed) and, with a cache, `past_key_values.{i}.key|value` `[B, 2, P, 8]`; outputs
`logits [B, T, 40]` and `present.{i}.key|value`. The random model is made non-degenerate by biases on the
output layer: the special tokens `[PAD]`, `[BOS]`, `[UNK]` are never likely, `[EOS]` is likely enough to end
some captions before the maximum length.

Seeds are fixed, so running the script twice writes the same numbers.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

OPSET = 17
IMAGE = 32
PATCH = 8
HIDDEN = 16
HEADS = 2
HEAD_DIM = HIDDEN // HEADS
LAYERS = 2
MAX_POSITIONS = 32
NEG = -1.0e4

SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
WORDS = [
    "a", "an", "the", "picture", "photo", "of", "red", "green", "blue", "yellow", "purple", "orange",
    "circle", "square", "triangle", "star", "small", "large", "big", "on", "left", "right", "above",
    "below", "and", "next", "to", "with", "is", "in", "cat", "dog", "there", "two", "one", ".",
]
VOCAB = SPECIALS + WORDS
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

IMAGES = ["square-a.png", "square-b.png"]
KEYS = ["img-a", "img-b"]

PREPROCESSOR = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True, "size": {"height": IMAGE, "width": IMAGE}, "resample": 2,
    "do_rescale": True, "rescale_factor": 0.00392156862745098,
    "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}


# ----------------------------------------------------------------------------------------------
# Tokenizer (word level, written as WordPiece without ## pieces) and its Python mirror.
# ----------------------------------------------------------------------------------------------

def tokenizer_json() -> dict:
    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for t in SPECIALS
        ],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[BOS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[EOS]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[BOS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[EOS]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[EOS]", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in ["[BOS]", "[EOS]"]},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


TOKENIZER_CONFIG = {"model_max_length": MAX_POSITIONS, "bos_token": "[BOS]", "eos_token": "[EOS]",
                    "pad_token": "[PAD]", "unk_token": "[UNK]", "tokenizer_class": "PreTrainedTokenizerFast"}


def encode_words(text: str) -> list[int]:
    """The prompt's ids without special tokens (every prompt word used here is in the vocabulary)."""
    return [VOCAB.index(w) for w in text.lower().split()]


def decode(ids: list[int]) -> str:
    """WordPiece decoder with cleanup, special tokens skipped: words joined by spaces, ' .' -> '.'."""
    text = " ".join(VOCAB[i] for i in ids if VOCAB[i] not in SPECIALS)
    return text.replace(" .", ".")


# ----------------------------------------------------------------------------------------------
# The model.
# ----------------------------------------------------------------------------------------------

def split_heads(x):
    return x.reshape(x.shape[0], x.shape[1], HEADS, HEAD_DIM).transpose(1, 2)


def merge_heads(x):
    x = x.transpose(1, 2)
    return x.reshape(x.shape[0], x.shape[1], HIDDEN)


def attend(q, k, v, bias=None):
    att = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(HEAD_DIM))
    if bias is not None:
        att = att + bias
    return torch.matmul(att.softmax(-1), v)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(HIDDEN, HIDDEN) for _ in range(4))


class Mlp(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(HIDDEN, 2 * HIDDEN), nn.GELU(), nn.Linear(2 * HIDDEN, HIDDEN))


class Encoder(nn.Module):
    """ViT-like: 8x8 patches + a class token, one pre-LN block -> last_hidden_state [B, 17, 16]."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, HIDDEN, PATCH, PATCH)
        self.cls = nn.Parameter(torch.randn(1, 1, HIDDEN) * 0.5)
        self.pos = nn.Parameter(torch.randn((IMAGE // PATCH) ** 2 + 1, HIDDEN) * 0.5)
        self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(HIDDEN), Attention(), nn.LayerNorm(HIDDEN), Mlp()
        self.ln = nn.LayerNorm(HIDDEN)

    def forward(self, pixel_values):
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        h = self.ln1(x)
        a = self.attn
        x = x + a.o(merge_heads(attend(split_heads(a.q(h)), split_heads(a.k(h)), split_heads(a.v(h)))))
        x = x + self.mlp(self.ln2(x))
        return self.ln(x)


class DecoderBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.self_attn = nn.LayerNorm(HIDDEN), Attention()
        self.ln2, self.cross_attn = nn.LayerNorm(HIDDEN), Attention()
        self.ln3, self.mlp = nn.LayerNorm(HIDDEN), Mlp()

    def forward(self, x, bias, enc, past):
        h = self.ln1(x)
        a = self.self_attn
        k, v = split_heads(a.k(h)), split_heads(a.v(h))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        x = x + a.o(merge_heads(attend(split_heads(a.q(h)), k, v, bias)))
        c = self.cross_attn
        h = self.ln2(x)
        x = x + c.o(merge_heads(attend(split_heads(c.q(h)), split_heads(c.k(enc)), split_heads(c.v(enc)))))
        return x + self.mlp(self.ln3(x)), (k, v)


class Decoder(nn.Module):
    """GPT-2-like: token + position embeddings, causal self-attention with a key/value cache,
    cross-attention to the encoder's tokens, an output layer with a bias."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(len(VOCAB), HIDDEN)
        self.pos = nn.Parameter(torch.randn(MAX_POSITIONS, HIDDEN) * 0.5)
        self.blocks = nn.ModuleList([DecoderBlock() for _ in range(LAYERS)])
        self.ln = nn.LayerNorm(HIDDEN)
        self.lm_head = nn.Linear(HIDDEN, len(VOCAB))

    def forward(self, input_ids, enc, attention_mask, past):
        t = input_ids.shape[1]
        p = past[0][0].shape[2] if past is not None else 0
        x = self.emb(input_ids) + self.pos[p:p + t]
        query_pos = torch.arange(t) + p
        key_pos = torch.arange(p + t)
        causal = (key_pos[None, :] > query_pos[:, None]).to(torch.float32) * NEG
        bias = causal[None, None] + (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * NEG
        presents = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, bias, enc, past[i] if past is not None else None)
            presents.append(kv)
        return self.lm_head(self.ln(x)), presents


class NoPast(nn.Module):
    def __init__(self, dec: Decoder):
        super().__init__()
        self.dec = dec

    def forward(self, input_ids, encoder_hidden_states, attention_mask):
        logits, presents = self.dec(input_ids, encoder_hidden_states, attention_mask, None)
        return (logits, *[t for kv in presents for t in kv])


class WithPast(nn.Module):
    def __init__(self, dec: Decoder):
        super().__init__()
        self.dec = dec

    def forward(self, input_ids, encoder_hidden_states, attention_mask, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(LAYERS)]
        logits, presents = self.dec(input_ids, encoder_hidden_states, attention_mask, past)
        return (logits, *[t for kv in presents for t in kv])


def build_model() -> tuple[Encoder, Decoder]:
    torch.manual_seed(606)
    enc, dec = Encoder().eval(), Decoder().eval()
    with torch.no_grad():
        # Peakier but not one-hot distributions, and an image-dependent caption: stronger cross-attention.
        dec.lm_head.weight.mul_(4.0)
        for blk in dec.blocks:
            blk.cross_attn.o.weight.mul_(3.0)
        bias = dec.lm_head.bias
        bias.zero_()
        bias[PAD_ID] = bias[BOS_ID] = bias[UNK_ID] = -8.0
        bias[EOS_ID] = EOS_BIAS
    return enc, dec


EOS_BIAS = 1.5


# ----------------------------------------------------------------------------------------------
# Export, the optimum-style merged graph, and fp16 copies.
# ----------------------------------------------------------------------------------------------

PAST_NAMES = [f"past_key_values.{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]
PRESENT_NAMES = [f"present.{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]


def export(module, args, path: Path, inputs, outputs, axes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load(str(path))
    model.producer_version = ""
    compact_names(model.graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def compact_names(graph: onnx.GraphProto) -> None:
    """Short names for every intermediate value and weight, no node names or doc strings: the graphs are
    fixtures, and torch's long scoped names would make up half of each file."""
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if name == "" or name in keep:
            return name
        if name not in names:
            names[name] = f"t{len(names)}"
        return names[name]

    for init in graph.initializer:
        init.name = short(init.name)
        init.doc_string = ""
    for node in graph.node:
        node.name = ""
        node.doc_string = ""
        for i, name in enumerate(node.input):
            node.input[i] = short(name)
        for i, name in enumerate(node.output):
            node.output[i] = short(name)
    del graph.value_info[:]


def export_all(enc: Encoder, dec: Decoder, folder: Path, suffix: str, pixels) -> dict[str, Path]:
    """encoder_model, decoder_model and decoder_with_past_model under folder/onnx; returns their paths."""
    onnx_dir = folder / "onnx"
    paths = {
        "encoder": onnx_dir / f"encoder_model{suffix}.onnx",
        "decoder": onnx_dir / f"decoder_model{suffix}.onnx",
        "with_past": onnx_dir / f"decoder_with_past_model{suffix}.onnx",
    }
    export(enc, (pixels,), paths["encoder"], ["pixel_values"], ["last_hidden_state"],
           {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch", 1: "encoder_sequence_length"}})
    with torch.no_grad():
        hidden = enc(pixels)
    ids = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 8, 9, 10]])
    mask = torch.ones_like(ids)
    seq_axes = {
        "input_ids": {0: "batch", 1: "sequence_length"},
        "encoder_hidden_states": {0: "batch", 1: "encoder_sequence_length"},
        "logits": {0: "batch", 1: "sequence_length"},
    }
    export(NoPast(dec), (ids, hidden, mask), paths["decoder"],
           ["input_ids", "encoder_hidden_states", "attention_mask"], ["logits", *PRESENT_NAMES],
           {**seq_axes, "attention_mask": {0: "batch", 1: "sequence_length"},
            **{n: {0: "batch", 2: "sequence_length"} for n in PRESENT_NAMES}})
    with torch.no_grad():
        _, presents = dec(ids, hidden, mask, None)
    past_flat = tuple(t for kv in presents for t in kv)
    step = torch.tensor([[11], [12]])
    export(WithPast(dec), (step, hidden, torch.ones(2, 5, dtype=torch.int64), *past_flat), paths["with_past"],
           ["input_ids", "encoder_hidden_states", "attention_mask", *PAST_NAMES], ["logits", *PRESENT_NAMES],
           {**seq_axes, "attention_mask": {0: "batch", 1: "past_sequence_length + 1"},
            **{n: {0: "batch", 2: "past_sequence_length"} for n in PAST_NAMES},
            **{n: {0: "batch", 2: "past_sequence_length + 1"} for n in PRESENT_NAMES}})
    return paths


def as_branch(path: Path, prefix: str, outer: set[str]) -> onnx.GraphProto:
    """The graph of `path` as an If branch: no inputs (they are the outer graph's), every other value,
    node and initializer renamed with `prefix` so the two branches never share a name."""
    graph = onnx.load(str(path)).graph

    def rename(name: str) -> str:
        return name if name == "" or name in outer else prefix + name

    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename(name)
        for i, name in enumerate(node.output):
            node.output[i] = rename(name)
    for init in graph.initializer:
        init.name = rename(init.name)
    for value in graph.output:
        value.name = rename(value.name)
    del graph.input[:]
    del graph.value_info[:]
    graph.name = prefix + "branch"
    return graph


def merge_decoders(no_past: Path, with_past: Path, out: Path) -> None:
    """decoder_model_merged: `If(use_cache_branch)` choosing the with-past graph (then) or the no-past
    graph (else), as optimum's merge_decoders does. The outer graph declares the with-past inputs plus
    `use_cache_branch` (bool [1]); at step 0 the caches are zero-length and ignored."""
    outer_model = onnx.load(str(with_past))
    outer_inputs = list(outer_model.graph.input)
    names = {v.name for v in outer_inputs}
    then_graph = as_branch(with_past, "with_past/", names)
    else_graph = as_branch(no_past, "no_past/", names)
    flag = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    outputs = []
    for value in outer_model.graph.output:
        elem = value.type.tensor_type.elem_type
        dims = ["batch", "sequence_length", len(VOCAB)] if value.name == "logits" else \
            ["batch", HEADS, "total_sequence_length", HEAD_DIM]
        outputs.append(helper.make_tensor_value_info(value.name, elem, dims))
    node = helper.make_node("If", ["use_cache_branch"], [o.name for o in outputs], name="optimum::if",
                            then_branch=then_graph, else_branch=else_graph)
    graph = helper.make_graph([node], "decoder_model_merged", outer_inputs + [flag], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=outer_model.ir_version)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def float_initializers(graph):
    return [init for init in graph.initializer if init.data_type == TensorProto.FLOAT]


def to_fp16_io(path: Path, fp16_inputs: list[str], fp16_outputs: list[str]) -> None:
    """Store float weights as float16 (Cast back to float32 inside) and make the named inputs and outputs
    float16 tensors, as fp16 exports with float16 I/O do (compute stays float32)."""
    model = onnx.load(str(path))
    graph = model.graph
    head = []
    for init in float_initializers(graph):
        arr = numpy_helper.to_array(init)
        half = arr.astype(np.float16)
        assert np.array_equal(half.astype(np.float32), arr), f"{init.name} is not on fp16 values"
        name = init.name
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(half, name + "_fp16"))
        head.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
    for value in graph.input:
        if value.name in fp16_inputs:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
            inner = value.name + "_float32"
            for node in graph.node:
                for i, name in enumerate(node.input):
                    if name == value.name:
                        node.input[i] = inner
            head.append(helper.make_node("Cast", [value.name], [inner], to=TensorProto.FLOAT))
    tail = []
    for value in graph.output:
        if value.name in fp16_outputs:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
            inner = value.name + "_float32"
            for node in graph.node:
                for i, name in enumerate(node.output):
                    if name == value.name:
                        node.output[i] = inner
                for i, name in enumerate(node.input):
                    if name == value.name:
                        node.input[i] = inner
            tail.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT16))
    rebuilt = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(rebuilt)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def round_to_fp16_(module: nn.Module) -> None:
    with torch.no_grad():
        for t in module.parameters():
            t.copy_(t.half().float())


# ----------------------------------------------------------------------------------------------
# Reference decoding: the rules of src/captioner/decoding, in Python.
# ----------------------------------------------------------------------------------------------

MASK32 = 0xFFFFFFFF


def rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & MASK32


class Rng:
    """xoshiro128** seeded with the first 16 bytes (four little-endian uint32) of
    sha256(f"{seed}:{key}:{sample}"); uniform() = 53 bits from two outputs, in [0, 1)."""

    def __init__(self, seed: int, key: str, sample: int):
        digest = hashlib.sha256(f"{seed}:{key}:{sample}".encode("utf-8")).digest()
        self.s = list(struct.unpack("<4I", digest[:16]))
        if not any(self.s):
            self.s[0] = 1

    def next32(self) -> int:
        s = self.s
        result = (rotl((s[1] * 5) & MASK32, 7) * 9) & MASK32
        t = (s[1] << 9) & MASK32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
        return result

    def uniform(self) -> float:
        a = self.next32() >> 5
        b = self.next32() >> 6
        return (a * 67108864 + b) / 9007199254740992


class Stepper:
    """Next-token logits for a batch of equally long sequences, through the torch model with a cache.
    With fp16=True, the tensors an fp16 graph passes in and out (pixels, encoder states, caches, logits)
    are rounded to float16 as the graph does."""

    def __init__(self, enc: Encoder, dec: Decoder, pixels: torch.Tensor, rows: list[int], fp16: bool):
        self.dec, self.fp16 = dec, fp16
        with torch.no_grad():
            px = pixels.half().float() if fp16 else pixels
            hidden = self.round(enc(px))
        self.hidden = hidden[torch.tensor(rows)]
        self.past = None
        self.done = 0

    def round(self, t):
        return t.half().float() if self.fp16 else t

    def next(self, seqs: list[list[int]]) -> list[list[float]]:
        ids = torch.tensor([s[self.done:] for s in seqs])
        mask = torch.ones(len(seqs), len(seqs[0]), dtype=torch.int64)
        with torch.no_grad():
            logits, presents = self.dec(ids, self.hidden, mask, self.past)
        self.past = [(self.round(k), self.round(v)) for k, v in presents]
        self.done = len(seqs[0])
        return self.round(logits[:, -1]).double().tolist()

    def select(self, rows: list[int]) -> None:
        idx = torch.tensor(rows, dtype=torch.int64)
        self.hidden = self.hidden[idx]
        self.past = [(k[idx], v[idx]) for k, v in self.past]


def processed(logits: list[float], seq: list[int], generated: int, opt: dict) -> list[float]:
    """Repetition penalty (CTRL rule) over every token of the sequence so far, then EOS blocked while
    fewer than minLength tokens were generated."""
    x = list(logits)
    rp = opt["repetitionPenalty"]
    if rp != 1.0:
        for t in sorted(set(seq)):
            x[t] = x[t] / rp if x[t] > 0 else x[t] * rp
    if generated < opt["minLength"]:
        x[EOS_ID] = -math.inf
    return x


def log_softmax(x: list[float]) -> list[float]:
    m = max(x)
    total = 0.0
    for v in x:
        total += math.exp(v - m)
    lse = m + math.log(total)
    return [v - lse for v in x]


def argmax(x: list[float]) -> int:
    best = 0
    for i in range(1, len(x)):
        if x[i] > x[best]:
            best = i
    return best


def sample_token(x: list[float], opt: dict, rng: Rng) -> int:
    """Temperature, top-k (ties at the k-th value kept), softmax, top-p (the smallest set, in order of
    decreasing probability with ties by id, whose mass reaches topP), then one uniform draw scaled by the
    kept mass (summed in that order; with topP 1, over all tokens in id order) walks the kept tokens."""
    t = opt["temperature"]
    z = [v / t for v in x] if t != 1.0 else list(x)
    k = opt["topK"]
    if 0 < k < len(z):
        kth = sorted(z, reverse=True)[k - 1]
        z = [v if v >= kth else -math.inf for v in z]
    m = max(z)
    weights = [math.exp(v - m) if v != -math.inf else 0.0 for v in z]
    total = 0.0
    for w in weights:
        total += w
    probs = [w / total for w in weights]
    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    order = [i for i in order if probs[i] > 0]
    p = opt["topP"]
    if p < 1.0:
        kept, mass = [], 0.0
        for i in order:
            kept.append(i)
            mass += probs[i]
            if mass >= p:
                break
        order = kept
    mass = 0.0
    for i in (order if p < 1.0 else range(len(probs))):
        mass += probs[i]
    u = rng.uniform() * mass
    acc = 0.0
    for i in order:
        acc += probs[i]
        if u < acc:
            return i
    return order[-1]


def independent(stepper: Stepper, prefix: list[int], n_rows: int, opt: dict, choose) -> list[dict]:
    """Greedy / sampling: every row on its own; finished rows leave the batch."""
    seqs = [list(prefix) for _ in range(n_rows)]
    logp = [0.0] * n_rows
    active = list(range(n_rows))
    for step in range(opt["maxLength"]):
        rows = stepper.next([seqs[r] for r in active])
        still = []
        for j, r in enumerate(active):
            x = processed(rows[j], seqs[r], step, opt)
            tok = choose(r, x)
            logp[r] += log_softmax(x)[tok]
            seqs[r].append(tok)
            if tok != EOS_ID:
                still.append(j)
        if len(still) < len(active):
            if still:
                stepper.select(still)
            active = [active[j] for j in still]
        if not active:
            break
    return [result(seqs[r], prefix, logp[r]) for r in range(n_rows)]


def result(seq: list[int], prefix: list[int], logp: float) -> dict:
    gen = seq[len(prefix):]
    ids = gen[:-1] if gen and gen[-1] == EOS_ID else gen
    text = decode(prefix[1:] + ids)
    prompt_text = decode(prefix[1:])
    if prefix[1:] and text.startswith(prompt_text):
        text = text[len(prompt_text):]
    return {"token_ids": ids, "log_prob": logp, "text": text.strip()}


def beam(stepper: Stepper, prefix: list[int], n_images: int, opt: dict) -> list[list[dict]]:
    nb, lp, k = opt["numBeams"], opt["lengthPenalty"], opt["k"]
    beams = [[{"seq": list(prefix), "score": 0.0 if j == 0 else -1e9} for j in range(nb)] for _ in range(n_images)]
    hyps: list[list[tuple[float, list[int], float]]] = [[] for _ in range(n_images)]
    done = [False] * n_images

    def add(b: int, seq: list[int], score: float, length: int) -> None:
        penalized = score / (length ** lp)
        h = hyps[b]
        if len(h) < nb or penalized > min(x[0] for x in h):
            h.append((penalized, seq, score))
            if len(h) > nb:
                worst = min(range(len(h)), key=lambda i: (h[i][0], -i))
                h.pop(worst)

    for step in range(opt["maxLength"]):
        active = [b for b in range(n_images) if not done[b]]
        rows = stepper.next([bm["seq"] for b in active for bm in beams[b]])
        keep_rows = []
        for a, b in enumerate(active):
            cands = []
            for j, bm in enumerate(beams[b]):
                x = processed(rows[a * nb + j], bm["seq"], step, opt)
                lsm = log_softmax(x)
                for v, l in enumerate(lsm):
                    cands.append((bm["score"] + l, j * len(lsm) + v, j, v))
            cands.sort(key=lambda c: (-c[0], c[1]))
            nxt = []
            for rank, (score, _, j, v) in enumerate(cands[: 2 * nb]):
                if v == EOS_ID:
                    if rank >= nb:
                        continue
                    add(b, beams[b][j]["seq"] + [EOS_ID], score, step + 1)
                else:
                    nxt.append({"seq": beams[b][j]["seq"] + [v], "score": score, "src": j})
                    if len(nxt) == nb:
                        break
            length = step + 1
            if length == opt["maxLength"]:
                for bm in nxt:
                    add(b, bm["seq"], bm["score"], length)
                done[b] = True
            elif len(hyps[b]) >= nb:
                if opt["earlyStopping"]:
                    done[b] = True
                else:
                    best = max(bm["score"] for bm in nxt)
                    done[b] = min(h[0] for h in hyps[b]) >= best / (length ** lp)
            if not done[b]:
                keep_rows += [a * nb + bm["src"] for bm in nxt]
            beams[b] = nxt
        if not any(not d for d in done):
            break
        stepper.select(keep_rows)
    out = []
    for b in range(n_images):
        ranked = sorted(enumerate(hyps[b]), key=lambda e: (-e[1][0], e[0]))
        out.append([result(seq, prefix, score) for _, (_, seq, score) in ranked[:k]])
    return out


def reference(enc, dec, pixels, opt: dict, fp16: bool) -> list[list[dict]]:
    prompt = opt.get("prompt")
    prefix = [BOS_ID] + (encode_words(prompt) if prompt else [])
    n = pixels.shape[0]
    if opt["strategy"] == "beam":
        rows = [b for b in range(n) for _ in range(opt["numBeams"])]
        return beam(Stepper(enc, dec, pixels, rows, fp16), prefix, n, opt)
    k = opt["k"]
    rows = [b for b in range(n) for _ in range(k)]
    stepper = Stepper(enc, dec, pixels, rows, fp16)
    if opt["strategy"] == "greedy":
        flat = independent(stepper, prefix, n * k, opt, lambda r, x: argmax(x))
    else:
        rngs = [Rng(opt["seed"], KEYS[b], s) for b in range(n) for s in range(k)]
        flat = independent(stepper, prefix, n * k, opt, lambda r, x: sample_token(x, opt, rngs[r]))
    return [flat[b * k:(b + 1) * k] for b in range(n)]


BASE = {"k": 1, "topP": 1.0, "topK": 0, "temperature": 1.0, "repetitionPenalty": 1.0, "minLength": 0,
        "maxLength": 12, "numBeams": 1, "lengthPenalty": 1.0, "earlyStopping": False, "seed": 0}

CASES = [
    ("greedy", {"strategy": "greedy"}),
    ("greedy-prompt-penalty-min", {"strategy": "greedy", "prompt": "a picture of ", "repetitionPenalty": 1.3,
                                   "minLength": 9, "maxLength": 14}),
    ("beam-3", {"strategy": "beam", "numBeams": 3, "k": 3}),
    ("beam-4-early-lp", {"strategy": "beam", "numBeams": 4, "k": 2, "lengthPenalty": 0.6,
                         "earlyStopping": True, "repetitionPenalty": 1.2}),
    ("beam-prompt-min", {"strategy": "beam", "numBeams": 2, "k": 2, "prompt": "a photo of", "minLength": 4,
                         "maxLength": 10}),
    ("nucleus", {"strategy": "nucleus", "topP": 0.9, "repetitionPenalty": 1.1, "k": 3, "seed": 7}),
    ("nucleus-topk-temp-prompt", {"strategy": "nucleus", "topP": 0.8, "topK": 5, "temperature": 0.7,
                                  "repetitionPenalty": 1.1, "k": 2, "seed": 42, "prompt": "a picture of ",
                                  "minLength": 3}),
]


# ----------------------------------------------------------------------------------------------
# Folders.
# ----------------------------------------------------------------------------------------------

def preprocess(path: Path) -> np.ndarray:
    """32x32 RGB images need no resampling: rescale and normalise only (as ViTImageProcessor)."""
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert arr.shape == (IMAGE, IMAGE, 3)
    out = (arr.astype(np.float64) * PREPROCESSOR["rescale_factor"]).astype(np.float32)
    out = (out - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(out.transpose(2, 0, 1).astype(np.float32))


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "vision-encoder-decoder",
        "is_encoder_decoder": True,
        "encoder": {"model_type": "vit", "image_size": IMAGE, "patch_size": PATCH, "hidden_size": HIDDEN},
        "decoder": {"model_type": "gpt2", "vocab_size": len(VOCAB), "n_embd": HIDDEN, "n_head": HEADS,
                    "n_layer": LAYERS, "n_positions": MAX_POSITIONS, "add_cross_attention": True,
                    "bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID,
                    "decoder_start_token_id": BOS_ID},
    }
    write_json(folder / "config.json", config)
    write_json(folder / "generation_config.json",
               {"decoder_start_token_id": BOS_ID, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID,
                "pad_token_id": PAD_ID, "max_length": 20})
    write_json(folder / "preprocessor_config.json", PREPROCESSOR)
    write_json(folder / "tokenizer.json", tokenizer_json())
    write_json(folder / "tokenizer_config.json", TOKENIZER_CONFIG)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/fixtures/models"))
    out = Path(parser.parse_args().out)
    images = out / "images"
    for name in IMAGES:
        assert (images / name).exists(), f"{images / name} is missing: run tools/make_variant_fixtures.py first"
    folders = {name: out / f"captioner-{name}" for name in ("merged", "pair", "nocache")}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
        write_folder(folder)

    enc, dec = build_model()
    pixels = torch.from_numpy(np.stack([preprocess(images / n) for n in IMAGES]))

    tmp = out / "captioner-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    paths = export_all(enc, dec, tmp, "", pixels)
    merged = folders["merged"] / "onnx"
    merged.mkdir(parents=True, exist_ok=True)
    shutil.copy(paths["encoder"], merged / "encoder_model.onnx")
    merge_decoders(paths["decoder"], paths["with_past"], merged / "decoder_model_merged.onnx")
    for name in ("pair", "nocache"):
        (folders[name] / "onnx").mkdir(parents=True, exist_ok=True)
        shutil.copy(paths["encoder"], folders[name] / "onnx" / "encoder_model.onnx")
        shutil.copy(paths["decoder"], folders[name] / "onnx" / "decoder_model.onnx")
    shutil.copy(paths["with_past"], folders["pair"] / "onnx" / "decoder_with_past_model.onnx")

    enc16, dec16 = copy.deepcopy(enc), copy.deepcopy(dec)
    round_to_fp16_(enc16)
    round_to_fp16_(dec16)
    paths16 = export_all(enc16, dec16, tmp, "_fp16", pixels)
    to_fp16_io(paths16["encoder"], ["pixel_values"], ["last_hidden_state"])
    to_fp16_io(paths16["decoder"], ["encoder_hidden_states"], ["logits", *PRESENT_NAMES])
    to_fp16_io(paths16["with_past"], ["encoder_hidden_states", *PAST_NAMES], ["logits", *PRESENT_NAMES])
    shutil.copy(paths16["encoder"], merged / "encoder_model_fp16.onnx")
    merge_decoders(paths16["decoder"], paths16["with_past"], merged / "decoder_model_merged_fp16.onnx")
    shutil.rmtree(tmp)

    cases = []
    for name, overrides in CASES:
        opt = {**BASE, **overrides}
        results = reference(enc, dec, pixels, opt, fp16=False)
        cases.append({"name": name, "options": opt, "results": results})
    fp16_cases = []
    for name, overrides in CASES[:1] + CASES[2:3]:
        opt = {**BASE, **overrides}
        fp16_cases.append({"name": name, "options": opt, "results": reference(enc16, dec16, pixels, opt, fp16=True)})
    write_json(folders["merged"] / "expected.json", {
        "images": IMAGES, "keys": KEYS, "vocab": VOCAB,
        "start_id": BOS_ID, "eos_id": EOS_ID, "pad_id": PAD_ID,
        "layers": LAYERS, "heads": HEADS, "head_dim": HEAD_DIM,
        "cases": cases, "fp16_cases": fp16_cases,
    })
    for name, opt, res in [(c["name"], c["options"], c["results"]) for c in cases]:
        print(name, [[(r["text"], round(r["log_prob"], 3)) for r in per] for per in res])
    total = sum(p.stat().st_size for f in folders.values() for p in f.rglob("*") if p.is_file())
    print(f"wrote {', '.join(str(f) for f in folders.values())} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
