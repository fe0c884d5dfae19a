#!/usr/bin/python3
"""Write the tiny model-folder fixtures that tests/models and tests/backends run against.

Run with Debian's interpreter (it has torch, onnx, numpy and PIL):

    /usr/bin/python3 tools/make_variant_fixtures.py [--out tests/fixtures/models]

Every folder follows one of the layouts in DESIGN.md ("Model folder layouts") and holds random-weight
graphs exported with torch.onnx.export (opset 17; 32x32 images, hidden size 16), a hand-written
`tokenizer.json` + `tokenizer_config.json`, `config.json`, `preprocessor_config.json`, and
`expected.json` with reference outputs computed here in PyTorch from inputs prepared here:

* images are preprocessed the way Hugging Face's image processors do it (PIL resize, center crop,
  rescale, normalize), and the resulting pixel arrays are written to `preprocess-expected.json`;
* texts are tokenized by small reference implementations of BPE and WordPiece written below, and the
  token ids are written to each `expected.json`, so the TypeScript side checks its tokenizer too.

The model test images are 32x32, so no resampling happens (one carries EXIF orientation 6): their model
outputs must match to 1e-4.
`wide.png` (48x40) does get resampled; the TypeScript tests compare its pixels with a looser bound
because sharp (libvips) and PIL resample slightly differently.

Seeds are fixed, so running the script twice writes the same numbers.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw, ImageOps

OPSET = 17
IMAGE = 32
PATCH = 8
HIDDEN = 16
HEADS = 2
EMBED = 12
QUERIES = 4
CLIP_MAX_LEN = 16
SIGLIP_MAX_LEN = 64
BERT_MAX_LEN = 32

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

MODEL_IMAGES = ["square-a.png", "square-b.png", "rotated.png"]
RESIZED_IMAGES = ["wide.png"]
ALL_IMAGES = MODEL_IMAGES + RESIZED_IMAGES + ["gray.png", "rgba.png"]

TEXTS = [
    "a red circle",
    "A photo of a blue square on the left.",
    "two green triangles and a yellow star next to a purple circle above the big cat",
]

WORDS = [
    "a", "an", "the", "photo", "picture", "of", "red", "green", "blue", "yellow", "purple", "orange",
    "circle", "square", "triangle", "star", "small", "large", "big", "on", "left", "right", "above",
    "below", "and", "next", "to", "with", "is", "in", "cat", "dog",
]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
DIGITS = [str(d) for d in range(10)]
PUNCT = [".", ",", "!", "?", "'", "-"]


# ----------------------------------------------------------------------------------------------
# Tokenizers: tokenizer.json written by hand, plus reference encoders that mirror it.
# ----------------------------------------------------------------------------------------------

def bpe_vocab_and_merges():
    """Character symbols (plain and with the `</w>` end-of-word suffix) plus left-to-right merges that
    build each word in WORDS into one token."""
    vocab: dict[str, int] = {}

    def add(tok: str) -> None:
        if tok not in vocab:
            vocab[tok] = len(vocab)

    for ch in LETTERS + DIGITS + PUNCT:
        add(ch)
        add(ch + "</w>")
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        symbols = list(word)
        symbols[-1] += "</w>"
        left = symbols[0]
        for sym in symbols[1:]:
            pair = (left, sym)
            if pair not in merges:
                merges.append(pair)
            left = left + sym
            add(left)
    return vocab, merges


def bpe_word(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    symbols = list(word)
    symbols[-1] += "</w>"
    while len(symbols) > 1:
        best = None
        for i in range(len(symbols) - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


class BpeReference:
    """CLIP-like: lowercase, split on `\\w+|[^\\w\\s]+`, BPE with `</w>`, template BOS $A EOS."""

    def __init__(self, specials: list[str], bos: str | None, eos: str, pad: str, max_len: int):
        self.vocab, self.merges = bpe_vocab_and_merges()
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        self.special_ids = {}
        for tok in specials:
            self.special_ids[tok] = len(self.vocab)
            self.vocab[tok] = len(self.vocab)
        self.bos, self.eos, self.pad, self.max_len = bos, eos, pad, max_len
        self.unk = eos

    def core(self, text: str) -> list[int]:
        text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).lower()
        ids = []
        for word in re.findall(r"\w+|[^\w\s]+", text):
            for tok in bpe_word(word, self.ranks):
                ids.append(self.vocab.get(tok, self.vocab[self.unk]))
        return ids

    def encode(self, text: str) -> list[int]:
        prefix = [self.vocab[self.bos]] if self.bos else []
        suffix = [self.vocab[self.eos]]
        core = self.core(text)[: self.max_len - len(prefix) - len(suffix)]
        return prefix + core + suffix

    def tokenizer_json(self) -> dict:
        added = [
            {"id": self.vocab[tok], "content": tok, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": True}
            for tok in self.special_ids
        ]
        single = []
        if self.bos:
            single.append({"SpecialToken": {"id": self.bos, "type_id": 0}})
        single.append({"Sequence": {"id": "A", "type_id": 0}})
        single.append({"SpecialToken": {"id": self.eos, "type_id": 0}})
        pair = single + [{"Sequence": {"id": "B", "type_id": 1}},
                         {"SpecialToken": {"id": self.eos, "type_id": 1}}]
        special_tokens = {
            tok: {"id": tok, "ids": [self.vocab[tok]], "tokens": [tok]}
            for tok in ([self.bos] if self.bos else []) + [self.eos]
        }
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "NFC"},
                {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
                {"type": "Lowercase"},
            ]},
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": {"type": "TemplateProcessing", "single": single, "pair": pair,
                               "special_tokens": special_tokens},
            "decoder": {"type": "BPEDecoder", "suffix": "</w>"},
            "model": {"type": "BPE", "dropout": None, "unk_token": self.unk,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "</w>", "fuse_unk": False,
                      "byte_fallback": False, "vocab": self.vocab,
                      "merges": [f"{a} {b}" for a, b in self.merges]},
        }

    def tokenizer_config(self) -> dict:
        cfg = {"model_max_length": self.max_len, "eos_token": self.eos, "pad_token": self.pad,
               "unk_token": self.unk, "tokenizer_class": "CLIPTokenizer"}
        if self.bos:
            cfg["bos_token"] = self.bos
        return cfg


class WordPieceReference:
    """BERT-like: lowercase + strip accents, split on whitespace and punctuation, greedy WordPiece,
    template [CLS] $A [SEP]."""

    def __init__(self, max_len: int):
        self.vocab: dict[str, int] = {}
        for tok in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + LETTERS + DIGITS + PUNCT:
            self.vocab.setdefault(tok, len(self.vocab))
        for ch in LETTERS + DIGITS:
            self.vocab.setdefault("##" + ch, len(self.vocab))
        for piece in ["##s", "##es", "##ing", "##ed"]:
            self.vocab.setdefault(piece, len(self.vocab))
        self.max_len = max_len

    def core(self, text: str) -> list[int]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        ids = []
        for word in re.findall(r"\w+|[^\w\s]", text):
            pieces, start = [], 0
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    sub = word[start:end] if start == 0 else "##" + word[start:end]
                    if sub in self.vocab:
                        found = sub
                        break
                    end -= 1
                if found is None:
                    pieces = ["[UNK]"]
                    break
                pieces.append(found)
                start = end
            ids.extend(self.vocab[p] for p in pieces)
        return ids

    def encode(self, text: str) -> list[int]:
        return [self.vocab["[CLS]"]] + self.core(text)[: self.max_len - 2] + [self.vocab["[SEP]"]]

    def tokenizer_json(self) -> dict:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": self.vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True} for t in specials
            ],
            "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                           "strip_accents": None, "lowercase": True},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}},
                         {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                "special_tokens": {t: {"id": t, "ids": [self.vocab[t]], "tokens": [t]}
                                   for t in ["[CLS]", "[SEP]"]},
            },
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": self.vocab},
        }

    def tokenizer_config(self) -> dict:
        return {"model_max_length": self.max_len, "cls_token": "[CLS]", "sep_token": "[SEP]",
                "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
                "do_lower_case": True, "tokenizer_class": "BertTokenizer"}


def pad_batch(rows: list[list[int]], pad_id: int, length: int | None = None):
    width = length if length is not None else max(len(r) for r in rows)
    ids = [r + [pad_id] * (width - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return ids, mask


# ----------------------------------------------------------------------------------------------
# Images and the Hugging Face-style preprocessing reference.
# ----------------------------------------------------------------------------------------------

def make_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)

    yy, xx = np.mgrid[0:IMAGE, 0:IMAGE]
    a = np.stack([xx * 8, yy * 8, (xx + yy) * 4], axis=-1).astype(np.uint8)
    img = Image.fromarray(a, "RGB")
    ImageDraw.Draw(img).ellipse([8, 6, 24, 22], fill=(220, 30, 40))
    img.save(folder / "square-a.png")

    b = rng.integers(0, 256, size=(IMAGE, IMAGE, 3), dtype=np.uint8)
    Image.fromarray(b, "RGB").save(folder / "square-b.png")

    # EXIF orientation 6 means "rotate 90 degrees clockwise to display". Square, so that no model
    # resizes it: only the orientation is tested here (wide.png covers resampling).
    yy, xx = np.mgrid[0:IMAGE, 0:IMAGE]
    r = np.stack([xx * 7, 255 - yy * 7, (xx * yy) % 256], axis=-1).astype(np.uint8)
    img = Image.fromarray(r, "RGB")
    ImageDraw.Draw(img).rectangle([2, 2, 12, 10], fill=(20, 200, 60))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(folder / "rotated.png", exif=exif.tobytes())

    yy, xx = np.mgrid[0:40, 0:48]
    w = np.stack([xx * 5, yy * 6, 128 + 0 * xx], axis=-1).astype(np.uint8)
    img = Image.fromarray(w, "RGB")
    draw = ImageDraw.Draw(img)
    draw.polygon([(24, 4), (40, 34), (8, 34)], fill=(250, 220, 10))
    draw.rectangle([30, 6, 44, 16], fill=(30, 60, 200))
    img.save(folder / "wide.png")

    yy, xx = np.mgrid[0:IMAGE, 0:IMAGE]
    g = ((xx * 7 + yy * 3) % 256).astype(np.uint8)
    Image.fromarray(g, "L").save(folder / "gray.png")

    rgba = np.concatenate([a, ((xx * 8) % 256).astype(np.uint8)[..., None]], axis=-1)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")


def resize_target(width: int, height: int, size: dict) -> tuple[int, int]:
    if "shortest_edge" in size:
        short, long = (width, height) if width <= height else (height, width)
        new_short = size["shortest_edge"]
        new_long = int(new_short * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)
    return size["width"], size["height"]


def center_crop(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = arr.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    if top >= 0 and left >= 0:
        return arr[top:top + height, left:left + width]
    new_h, new_w = max(h, height), max(w, width)
    canvas = np.zeros((new_h, new_w) + arr.shape[2:], dtype=arr.dtype)
    pad_top, pad_left = math.ceil((new_h - h) / 2), math.ceil((new_w - w) / 2)
    canvas[pad_top:pad_top + h, pad_left:pad_left + w] = arr
    top, left = top + pad_top, left + pad_left
    return canvas[max(0, top):top + height, max(0, left):left + width]


def preprocess(path: Path, cfg: dict) -> np.ndarray:
    """One image to float32 [3, H, W], the way transformers' CLIP/SigLIP/BLIP image processors do it
    (after transformers' load_image, which applies the EXIF orientation)."""
    img = ImageOps.exif_transpose(Image.open(path))
    if cfg.get("do_convert_rgb", True):
        img = img.convert("RGB")
    if cfg.get("do_resize", True):
        target = resize_target(img.width, img.height, cfg["size"])
        img = img.resize(target, resample=cfg.get("resample", 3))
    arr = np.asarray(img)
    if cfg.get("do_center_crop", False):
        arr = center_crop(arr, cfg["crop_size"]["height"], cfg["crop_size"]["width"])
    out = arr.astype(np.float32)
    if cfg.get("do_rescale", True):
        out = (arr.astype(np.float64) * cfg["rescale_factor"]).astype(np.float32)
    if cfg.get("do_normalize", True):
        mean = np.array(cfg["image_mean"], dtype=np.float32)
        std = np.array(cfg["image_std"], dtype=np.float32)
        out = (out - mean) / std
    return np.ascontiguousarray(out.transpose(2, 0, 1).astype(np.float32))


CLIP_PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True, "size": {"shortest_edge": IMAGE}, "resample": 3,
    "do_center_crop": True, "crop_size": {"height": IMAGE, "width": IMAGE},
    "do_rescale": True, "rescale_factor": 0.00392156862745098,
    "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
    "do_convert_rgb": True,
}
SIGLIP_PREPROCESSOR = {
    "image_processor_type": "SiglipImageProcessor",
    "do_resize": True, "size": {"height": IMAGE, "width": IMAGE}, "resample": 2,
    "do_rescale": True, "rescale_factor": 0.00392156862745098,
    "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "do_convert_rgb": True,
}
BLIP_PREPROCESSOR = {
    "image_processor_type": "BlipImageProcessor",
    "do_resize": True, "size": {"height": IMAGE, "width": IMAGE}, "resample": 3,
    "do_rescale": True, "rescale_factor": 0.00392156862745098,
    "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
    "do_convert_rgb": True,
}
PREPROCESSORS = {"clip": CLIP_PREPROCESSOR, "siglip": SIGLIP_PREPROCESSOR, "blip": BLIP_PREPROCESSOR}


# ----------------------------------------------------------------------------------------------
# Tiny transformer pieces (pre-LayerNorm blocks, additive attention biases).
# ----------------------------------------------------------------------------------------------

NEG = -1.0e4


class Attention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, context=None, bias=None):
        ctx = x if context is None else context
        d = HIDDEN // HEADS
        q = self.q(x).reshape(x.shape[0], -1, HEADS, d).transpose(1, 2)
        k = self.k(ctx).reshape(ctx.shape[0], -1, HEADS, d).transpose(1, 2)
        v = self.v(ctx).reshape(ctx.shape[0], -1, HEADS, d).transpose(1, 2)
        att = q @ k.transpose(-1, -2) / math.sqrt(d)
        if bias is not None:
            att = att + bias
        out = (att.softmax(-1) @ v).transpose(1, 2).reshape(x.shape[0], -1, HIDDEN)
        return self.o(out)


class Block(nn.Module):
    def __init__(self, cross: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(HIDDEN)
        self.attn = Attention(HIDDEN)
        self.cross = cross
        if cross:
            self.ln_x = nn.LayerNorm(HIDDEN)
            self.xattn = Attention(HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN)
        self.mlp = nn.Sequential(nn.Linear(HIDDEN, 2 * HIDDEN), nn.GELU(), nn.Linear(2 * HIDDEN, HIDDEN))

    def forward(self, x, bias=None, context=None):
        x = x + self.attn(self.ln1(x), bias=bias)
        if self.cross:
            x = x + self.xattn(self.ln_x(x), context=context)
        return x + self.mlp(self.ln2(x))


def padding_bias(mask):
    return (1.0 - mask[:, None, None, :].float()) * NEG


def causal_bias(length_of):
    idx = torch.arange(length_of.shape[1])
    return (idx[None, :] > idx[:, None]).float() * NEG


class VisionTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, HIDDEN, PATCH, PATCH)
        self.cls = nn.Parameter(torch.randn(1, 1, HIDDEN) * 0.5)
        self.pos = nn.Parameter(torch.randn((IMAGE // PATCH) ** 2 + 1, HIDDEN) * 0.5)
        self.block = Block()
        self.ln = nn.LayerNorm(HIDDEN)

    def forward(self, pixel_values):
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.ln(self.block(x))


class TextTower(nn.Module):
    def __init__(self, vocab: int, max_len: int, cross: bool = False):
        super().__init__()
        self.emb = nn.Embedding(vocab, HIDDEN)
        self.pos = nn.Parameter(torch.randn(max_len, HIDDEN) * 0.5)
        self.block = Block(cross=cross)
        self.ln = nn.LayerNorm(HIDDEN)

    def forward(self, input_ids, bias=None, context=None, prefix=None):
        x = self.emb(input_ids) + self.pos[: input_ids.shape[1]]
        if prefix is not None:
            x = torch.cat([prefix.expand(x.shape[0], -1, -1), x], dim=1)
        return self.ln(self.block(x, bias=bias, context=context))


def gather_at(hidden, index):
    """hidden[b, index[b], :] for each b."""
    idx = index[:, None, None].expand(-1, 1, hidden.shape[-1])
    return torch.gather(hidden, 1, idx)[:, 0]


class ClipVision(nn.Module):
    def __init__(self):
        super().__init__()
        self.tower = VisionTower()
        self.proj = nn.Linear(HIDDEN, EMBED, bias=False)

    def forward(self, pixel_values):
        hidden = self.tower(pixel_values)
        return self.proj(hidden[:, 0]), hidden


class ClipText(nn.Module):
    """Causal text tower pooled at the EOS token (the highest id, found with argmax, as CLIP does)."""

    def __init__(self, vocab: int, use_mask: bool):
        super().__init__()
        self.tower = TextTower(vocab, CLIP_MAX_LEN)
        self.proj = nn.Linear(HIDDEN, EMBED, bias=False)
        self.use_mask = use_mask

    def forward(self, input_ids, attention_mask=None):
        bias = causal_bias(input_ids)
        if self.use_mask and attention_mask is not None:
            bias = bias + padding_bias(attention_mask)
        hidden = self.tower(input_ids, bias=bias)
        return self.proj(gather_at(hidden, input_ids.argmax(-1))), hidden


class ClipSingle(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vision = ClipVision()
        self.text = ClipText(vocab, use_mask=True)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, input_ids, pixel_values, attention_mask):
        image = self.vision(pixel_values)[0]
        text = self.text(input_ids, attention_mask)[0]
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        logits_per_text = text @ image.t() * self.logit_scale.exp()
        return logits_per_text.t(), logits_per_text, text, image


class SiglipVision(nn.Module):
    def __init__(self):
        super().__init__()
        self.tower = VisionTower()
        self.head = nn.Linear(HIDDEN, EMBED)

    def forward(self, pixel_values):
        hidden = self.tower(pixel_values)
        return hidden, self.head(hidden.mean(1))


class SiglipText(nn.Module):
    """Bidirectional, no attention mask, pooled at the last position: padding to 64 matters."""

    def __init__(self, vocab: int):
        super().__init__()
        self.tower = TextTower(vocab, SIGLIP_MAX_LEN)
        self.head = nn.Linear(HIDDEN, EMBED)

    def forward(self, input_ids):
        hidden = self.tower(input_ids)
        return hidden, self.head(hidden[:, -1])


class QFormerVision(nn.Module):
    """Learned queries cross-attend to the patch tokens: image_embeds [B, Q, D]."""

    def __init__(self):
        super().__init__()
        self.tower = VisionTower()
        self.queries = nn.Parameter(torch.randn(1, QUERIES, HIDDEN) * 0.5)
        self.xattn = Attention(HIDDEN)
        self.proj = nn.Linear(HIDDEN, EMBED)

    def forward(self, pixel_values):
        hidden = self.tower(pixel_values)
        q = self.queries.expand(hidden.shape[0], -1, -1)
        q = q + self.xattn(q, context=hidden)
        return self.proj(q), hidden


class BertText(nn.Module):
    """Bidirectional with a padding mask, pooled at [CLS]."""

    def __init__(self, vocab: int):
        super().__init__()
        self.tower = TextTower(vocab, BERT_MAX_LEN)
        self.proj = nn.Linear(HIDDEN, EMBED)

    def forward(self, input_ids, attention_mask):
        hidden = self.tower(input_ids, bias=padding_bias(attention_mask))
        return self.proj(hidden[:, 0]), hidden


class ItmFusion(nn.Module):
    """Text tokens self-attend (masked) and cross-attend to image tokens. With queries, learned query
    tokens are put in front of the text (as BLIP-2's Q-Former does for ITM) and each gives 2 logits."""

    def __init__(self, vocab: int, queries: int):
        super().__init__()
        self.text = TextTower(vocab, BERT_MAX_LEN, cross=True)
        self.nq = queries
        if queries:
            self.queries = nn.Parameter(torch.randn(1, queries, HIDDEN) * 0.5)
        self.head = nn.Linear(HIDDEN, 2)

    def forward(self, image_embeds, input_ids, attention_mask):
        if self.nq:
            ones = torch.ones_like(attention_mask[:, :1]).expand(-1, self.nq)
            mask = torch.cat([ones, attention_mask], dim=1)
            hidden = self.text(input_ids, bias=padding_bias(mask), context=image_embeds, prefix=self.queries)
            return self.head(hidden[:, : self.nq])
        hidden = self.text(input_ids, bias=padding_bias(attention_mask), context=image_embeds)
        return self.head(hidden[:, 0])


class ItmVision(nn.Module):
    def __init__(self):
        super().__init__()
        self.tower = VisionTower()

    def forward(self, pixel_values):
        return self.tower(pixel_values)


class ItmModel(nn.Module):
    def __init__(self, vocab: int, queries: int):
        super().__init__()
        self.vision = ItmVision()
        self.fusion = ItmFusion(vocab, queries)

    def forward(self, pixel_values, input_ids, attention_mask):
        return self.fusion(self.vision(pixel_values), input_ids, attention_mask)


# ----------------------------------------------------------------------------------------------
# Export and ONNX-level variant conversion.
# ----------------------------------------------------------------------------------------------

def export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load(str(path))
    model.producer_version = ""  # keep files identical across torch builds
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def float_initializers(graph):
    return [init for init in graph.initializer if init.data_type == TensorProto.FLOAT]


# The `_quantized` fixture stores weights as int8 but uses only the levels -7..7, so that it differs from
# the fp32 graph by far more than onnxruntime's own int8 arithmetic does: with graph optimizations on,
# onnxruntime fuses DequantizeLinear + MatMul into MatMulNBits, which also quantizes the activations
# (session.qdq_matmulnbits_accuracy_level defaults to 4, int8), an error of a few 1e-3 on the outputs.
QUANT_LEVELS = 7


def fake_quantize_(module: nn.Module) -> None:
    """Round every weight with 2+ dims to symmetric per-tensor levels -QUANT_LEVELS..QUANT_LEVELS."""
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() >= 2:
                scale = p.abs().max() / QUANT_LEVELS
                p.copy_(torch.round(p / scale) * scale)


def round_to_fp16_(module: nn.Module) -> None:
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.dtype == torch.float32:
                t.copy_(t.half().float())


def quantize_initializers(path: Path) -> None:
    """Store every 2+-dim float weight (already on quantized levels) as int8 + scale -> DequantizeLinear."""
    model = onnx.load(str(path))
    graph = model.graph
    nodes = []
    for init in float_initializers(graph):
        arr = numpy_helper.to_array(init)
        if arr.ndim < 2 or not np.any(arr):
            continue
        top = np.float32(np.abs(arr).max() / np.float32(QUANT_LEVELS))
        found = None
        for scale in (top, np.nextafter(top, np.float32(0)), np.nextafter(top, np.float32(1))):
            q = np.round(arr / scale)
            if np.abs(q).max() <= QUANT_LEVELS and np.array_equal((q.astype(np.float32) * scale).astype(np.float32), arr):
                found = (q.astype(np.int8), np.float32(scale))
                break
        if found is None:
            continue
        q, scale = found
        name = init.name
        graph.initializer.remove(init)
        graph.initializer.extend([
            numpy_helper.from_array(q, name + "_quantized"),
            numpy_helper.from_array(np.array(scale, dtype=np.float32), name + "_scale"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), name + "_zero_point"),
        ])
        nodes.append(helper.make_node("DequantizeLinear", [name + "_quantized", name + "_scale",
                                                           name + "_zero_point"], [name]))
    assert nodes, f"nothing quantized in {path}"
    rebuilt = nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(rebuilt)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def fp16_initializers(path: Path, fp16_inputs: list[str], fp16_outputs: list[str]) -> None:
    """Store float weights as float16 (Cast back to float32 inside), and make the named graph inputs and
    outputs float16 tensors, as fp16 exports with float16 I/O do."""
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


# ----------------------------------------------------------------------------------------------
# Reference outputs.
# ----------------------------------------------------------------------------------------------

def l2(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def tolist(x) -> list:
    return np.asarray(x, dtype=np.float64).tolist()


def pixel_batch(images_dir: Path, cfg: dict, names: list[str]) -> torch.Tensor:
    return torch.from_numpy(np.stack([preprocess(images_dir / n, cfg) for n in names]))


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_folder_files(folder: Path, config: dict, preprocessor: dict, tok) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", config)
    write_json(folder / "preprocessor_config.json", preprocessor)
    write_json(folder / "tokenizer.json", tok.tokenizer_json())
    write_json(folder / "tokenizer_config.json", tok.tokenizer_config())


def batch_axes(names: list[str], seq: list[str] = ()) -> dict:
    axes = {n: {0: "batch"} for n in names}
    for n in seq:
        axes[n] = {0: "batch", 1: "sequence"}
    return axes


def clip_tokenizer() -> BpeReference:
    return BpeReference(["<|startoftext|>", "<|endoftext|>"], "<|startoftext|>", "<|endoftext|>",
                        "<|endoftext|>", CLIP_MAX_LEN)


def itc_expected(image_embeds: np.ndarray, text_embeds: np.ndarray) -> dict:
    img, txt = l2(image_embeds), l2(text_embeds)
    if img.ndim == 3:
        cos = np.einsum("iqd,td->itq", img, txt).max(-1)
    else:
        cos = img @ txt.T
    return {"image_embeds": tolist(img), "text_embeds": tolist(txt), "cosine": tolist(cos)}


def make_clip_split(out: Path, images: Path) -> None:
    folder = out / "clip-split"
    tok = clip_tokenizer()
    config = {"model_type": "clip", "projection_dim": EMBED,
              "text_config": {"max_position_embeddings": CLIP_MAX_LEN, "hidden_size": HIDDEN},
              "vision_config": {"image_size": IMAGE, "patch_size": PATCH, "hidden_size": HIDDEN}}
    write_folder_files(folder, config, CLIP_PREPROCESSOR, tok)
    torch.manual_seed(101)
    vision = ClipVision().eval()
    text = ClipText(len(tok.vocab), use_mask=False).eval()

    rows = [tok.encode(t) for t in TEXTS]
    ids, mask = pad_batch(rows, tok.vocab[tok.pad])
    pixels = pixel_batch(images, CLIP_PREPROCESSOR, MODEL_IMAGES)
    wide = pixel_batch(images, CLIP_PREPROCESSOR, RESIZED_IMAGES)
    input_ids = torch.tensor(ids)

    variants = {}
    for variant in ["fp32", "quantized", "fp16"]:
        v, t = copy.deepcopy(vision), copy.deepcopy(text)
        suffix = "" if variant == "fp32" else f"_{variant}"
        if variant == "quantized":
            fake_quantize_(v)
            fake_quantize_(t)
        if variant == "fp16":
            round_to_fp16_(v)
            round_to_fp16_(t)
        vpath = folder / "onnx" / f"vision_model{suffix}.onnx"
        tpath = folder / "onnx" / f"text_model{suffix}.onnx"
        export(v, (pixels[:2],), vpath, ["pixel_values"], ["image_embeds", "last_hidden_state"],
               batch_axes(["pixel_values", "image_embeds", "last_hidden_state"]))
        export(t, (input_ids[:2, :7],), tpath, ["input_ids"], ["text_embeds", "last_hidden_state"],
               batch_axes(["text_embeds"], ["input_ids", "last_hidden_state"]))
        if variant == "quantized":
            quantize_initializers(vpath)
            quantize_initializers(tpath)
        with torch.no_grad():
            px = pixels.half().float() if variant == "fp16" else pixels
            img = v(px)[0].numpy()
            txt = t(input_ids)[0].numpy()
            wide_img = v(wide.half().float() if variant == "fp16" else wide)[0].numpy()
        if variant == "fp16":
            fp16_initializers(vpath, ["pixel_values"], ["image_embeds", "last_hidden_state"])
            fp16_initializers(tpath, [], ["text_embeds", "last_hidden_state"])
            img, txt = img.astype(np.float16).astype(np.float32), txt.astype(np.float16).astype(np.float32)
            wide_img = wide_img.astype(np.float16).astype(np.float32)
        variants[variant] = itc_expected(img, txt)
        variants[variant]["wide_image_embeds"] = tolist(l2(wide_img))
    write_json(folder / "expected.json", {
        "images": MODEL_IMAGES, "resized_images": RESIZED_IMAGES, "texts": TEXTS,
        "input_ids": ids, "attention_mask": mask, "variants": variants,
    })


def make_clip_single(out: Path, images: Path) -> None:
    folder = out / "clip-single"
    tok = clip_tokenizer()
    config = {"model_type": "clip", "projection_dim": EMBED,
              "text_config": {"max_position_embeddings": CLIP_MAX_LEN, "hidden_size": HIDDEN},
              "vision_config": {"image_size": IMAGE, "patch_size": PATCH, "hidden_size": HIDDEN}}
    write_folder_files(folder, config, CLIP_PREPROCESSOR, tok)
    torch.manual_seed(202)
    model = ClipSingle(len(tok.vocab)).eval()
    rows = [tok.encode(t) for t in TEXTS]
    ids, mask = pad_batch(rows, tok.vocab[tok.pad])
    pixels = pixel_batch(images, CLIP_PREPROCESSOR, MODEL_IMAGES)
    input_ids, attention_mask = torch.tensor(ids), torch.tensor(mask)
    export(model, (input_ids[:2, :7], pixels[:2], attention_mask[:2, :7]), folder / "onnx" / "model.onnx",
           ["input_ids", "pixel_values", "attention_mask"],
           ["logits_per_image", "logits_per_text", "text_embeds", "image_embeds"],
           {"input_ids": {0: "text_batch", 1: "sequence"}, "attention_mask": {0: "text_batch", 1: "sequence"},
            "pixel_values": {0: "image_batch"}, "logits_per_image": {0: "image_batch", 1: "text_batch"},
            "logits_per_text": {0: "text_batch", 1: "image_batch"}, "text_embeds": {0: "text_batch"},
            "image_embeds": {0: "image_batch"}})
    with torch.no_grad():
        _, _, txt, img = model(input_ids, pixels, attention_mask)
    write_json(folder / "expected.json", {
        "images": MODEL_IMAGES, "texts": TEXTS, "input_ids": ids, "attention_mask": mask,
        "variants": {"fp32": itc_expected(img.numpy(), txt.numpy())},
    })


def make_siglip(out: Path, images: Path) -> None:
    folder = out / "siglip"
    tok = BpeReference(["<pad>", "</s>", "<unk>"], None, "</s>", "<pad>", SIGLIP_MAX_LEN)
    tok.unk = "<unk>"
    logit_scale, logit_bias = math.log(10.0), -2.5
    config = {
        "model_type": "siglip",
        "logit_scale": logit_scale,
        "logit_bias": logit_bias,
        "_logit_source": "logit_scale and logit_bias copied from the checkpoint's parameters of the same "
                         "names (SigLIP keeps them only in the weights / model.onnx)",
        "text_config": {"max_position_embeddings": SIGLIP_MAX_LEN, "hidden_size": HIDDEN},
        "vision_config": {"image_size": IMAGE, "patch_size": PATCH, "hidden_size": HIDDEN},
    }
    write_folder_files(folder, config, SIGLIP_PREPROCESSOR, tok)
    torch.manual_seed(303)
    vision, text = SiglipVision().eval(), SiglipText(len(tok.vocab)).eval()
    rows = [tok.encode(t) for t in TEXTS]
    ids, mask = pad_batch(rows, tok.vocab[tok.pad], SIGLIP_MAX_LEN)
    pixels = pixel_batch(images, SIGLIP_PREPROCESSOR, MODEL_IMAGES)
    input_ids = torch.tensor(ids)
    export(vision, (pixels[:2],), folder / "onnx" / "vision_model.onnx", ["pixel_values"],
           ["last_hidden_state", "pooler_output"], batch_axes(["pixel_values", "last_hidden_state",
                                                               "pooler_output"]))
    export(text, (input_ids[:2],), folder / "onnx" / "text_model.onnx", ["input_ids"],
           ["last_hidden_state", "pooler_output"], batch_axes(["pooler_output"], ["input_ids",
                                                                                  "last_hidden_state"]))
    with torch.no_grad():
        img, txt = vision(pixels)[1].numpy(), text(input_ids)[1].numpy()
    expected = itc_expected(img, txt)
    cos = np.array(expected["cosine"])
    expected["probability"] = tolist(1.0 / (1.0 + np.exp(-(math.exp(logit_scale) * cos + logit_bias))))
    write_json(folder / "expected.json", {
        "images": MODEL_IMAGES, "texts": TEXTS, "input_ids": ids, "attention_mask": mask,
        "variants": {"fp32": expected},
    })


def make_qformer(out: Path, images: Path) -> None:
    folder = out / "qformer"
    tok = WordPieceReference(BERT_MAX_LEN)
    config = {"model_type": "blip-2", "num_query_tokens": QUERIES,
              "text_config": {"max_position_embeddings": BERT_MAX_LEN}}
    write_folder_files(folder, config, BLIP_PREPROCESSOR, tok)
    torch.manual_seed(404)
    vision, text = QFormerVision().eval(), BertText(len(tok.vocab)).eval()
    rows = [tok.encode(t) for t in TEXTS]
    ids, mask = pad_batch(rows, tok.vocab["[PAD]"])
    pixels = pixel_batch(images, BLIP_PREPROCESSOR, MODEL_IMAGES)
    input_ids, attention_mask = torch.tensor(ids), torch.tensor(mask)
    export(vision, (pixels[:2],), folder / "onnx" / "vision_model.onnx", ["pixel_values"],
           ["image_embeds", "last_hidden_state"], batch_axes(["pixel_values", "image_embeds",
                                                              "last_hidden_state"]))
    export(text, (input_ids[:2, :6], attention_mask[:2, :6]), folder / "onnx" / "text_model.onnx",
           ["input_ids", "attention_mask"], ["text_embeds", "last_hidden_state"],
           batch_axes(["text_embeds"], ["input_ids", "attention_mask", "last_hidden_state"]))
    with torch.no_grad():
        img, txt = vision(pixels)[0].numpy(), text(input_ids, attention_mask)[0].numpy()
    write_json(folder / "expected.json", {
        "images": MODEL_IMAGES, "texts": TEXTS, "input_ids": ids, "attention_mask": mask,
        "variants": {"fp32": itc_expected(img, txt)},
    })


def itm_expected(model: ItmModel, pixels: torch.Tensor, input_ids, attention_mask) -> dict:
    logits, p_match = [], []
    with torch.no_grad():
        for i in range(pixels.shape[0]):
            px = pixels[i:i + 1].expand(input_ids.shape[0], -1, -1, -1)
            out = model(px, input_ids, attention_mask)
            if out.dim() == 3:
                out_mean = out.mean(1)
            else:
                out_mean = out
            logits.append(tolist(out.numpy()))
            p_match.append(tolist(out_mean.softmax(-1)[:, 1].numpy()))
    return {"itm_logits": logits, "p_match": p_match}


def make_itm(out: Path, images: Path, name: str, queries: int, split: bool) -> None:
    folder = out / name
    tok = WordPieceReference(BERT_MAX_LEN)
    config = {"model_type": "blip", "itm_queries": queries,
              "text_config": {"max_position_embeddings": BERT_MAX_LEN}}
    write_folder_files(folder, config, BLIP_PREPROCESSOR, tok)
    torch.manual_seed(500 + queries + (7 if split else 0))
    model = ItmModel(len(tok.vocab), queries).eval()
    rows = [tok.encode(t) for t in TEXTS]
    ids, mask = pad_batch(rows, tok.vocab["[PAD]"])
    pixels = pixel_batch(images, BLIP_PREPROCESSOR, MODEL_IMAGES)
    input_ids, attention_mask = torch.tensor(ids), torch.tensor(mask)
    logit_axes = {0: "batch", 1: "queries"} if queries else {0: "batch"}
    if split:
        export(model.vision, (pixels[:2],), folder / "onnx" / "itm_vision.onnx", ["pixel_values"],
               ["image_embeds"], batch_axes(["pixel_values", "image_embeds"]))
        with torch.no_grad():
            embeds = model.vision(pixels[:2])
        export(model.fusion, (embeds, input_ids[:2, :6], attention_mask[:2, :6]),
               folder / "onnx" / "itm_fusion.onnx", ["image_embeds", "input_ids", "attention_mask"],
               ["itm_logits"], {**batch_axes(["image_embeds"], ["input_ids", "attention_mask"]),
                                "itm_logits": logit_axes})
    else:
        export(model, (pixels[:2], input_ids[:2, :6], attention_mask[:2, :6]), folder / "onnx" / "itm_model.onnx",
               ["pixel_values", "input_ids", "attention_mask"], ["itm_logits"],
               {**batch_axes(["pixel_values"], ["input_ids", "attention_mask"]), "itm_logits": logit_axes})
    write_json(folder / "expected.json", {
        "images": MODEL_IMAGES, "texts": TEXTS, "input_ids": ids, "attention_mask": mask,
        "variants": {"fp32": itm_expected(model, pixels, input_ids, attention_mask)},
    })


# ----------------------------------------------------------------------------------------------
# Plain graphs for the session tests.
# ----------------------------------------------------------------------------------------------

def make_session_graphs(out: Path) -> None:
    folder = out / "session"
    folder.mkdir(parents=True, exist_ok=True)

    # sum = a + b (float32 [N, 3]); scaled = a * 2; declares exactly a and b.
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 3])
    s = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n", 3])
    d = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["n", 3])
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"]),
                               helper.make_node("Mul", ["a", "two"], ["scaled"])],
                              "add", [a, b], [s, d], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "add.onnx"))

    # Each input of a different element type comes back: +1 for f32/i64/i32, unchanged for f16, negated
    # for bool.
    specs = [("f32", TensorProto.FLOAT), ("f16", TensorProto.FLOAT16), ("i64", TensorProto.INT64),
             ("i32", TensorProto.INT32), ("flag", TensorProto.BOOL)]
    inputs, outputs, nodes, inits = [], [], [], []
    for name, dtype in specs:
        inputs.append(helper.make_tensor_value_info(name, dtype, ["n"]))
        outputs.append(helper.make_tensor_value_info(name + "_out", dtype, ["n"]))
        if dtype == TensorProto.BOOL:
            nodes.append(helper.make_node("Not", [name], [name + "_out"]))
        elif dtype == TensorProto.FLOAT16:
            nodes.append(helper.make_node("Identity", [name], [name + "_out"]))
        else:
            np_type = onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[dtype]
            inits.append(numpy_helper.from_array(np.array(1, dtype=np_type), name + "_one"))
            nodes.append(helper.make_node("Add", [name, name + "_one"], [name + "_out"]))
    graph = helper.make_graph(nodes, "types", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "types.onnx"))

    # A fixed-shape input, to check shape errors: x float32 [2, 4] -> y = x * 2.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "fixed", [x], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "fixed.onnx"))

    # Work without weights, for checking that a run leaves the main thread free: x [n, n] multiplied by
    # itself eight times (n chosen by the test).
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "n"])
    nodes, prev = [], "x"
    for i in range(8):
        out_name = "y" if i == 7 else f"p{i}"
        nodes.append(helper.make_node("MatMul", [prev, "x"], [out_name]))
        prev = out_name
    graph = helper.make_graph(nodes, "slow", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "slow.onnx"))

    (folder / "broken.onnx").write_bytes(b"this is not an onnx protobuf\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/fixtures/models"))
    out = Path(parser.parse_args().out)
    for child in ["clip-split", "clip-single", "siglip", "qformer", "itm", "itm-queries", "itm-split",
                  "session", "preprocess", "images"]:
        shutil.rmtree(out / child, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    images = out / "images"
    make_images(images)

    pre_dir = out / "preprocess"
    pre_dir.mkdir(parents=True, exist_ok=True)
    pre_expected = {}
    for name, cfg in PREPROCESSORS.items():
        write_json(pre_dir / f"{name}.json", cfg)
        pre_expected[name] = {
            img: {"dims": [3, IMAGE, IMAGE],
                  "f32le": base64.b64encode(preprocess(images / img, cfg).astype("<f4").tobytes()).decode()}
            for img in ALL_IMAGES
        }
    write_json(out / "preprocess-expected.json", pre_expected)

    make_clip_split(out, images)
    make_clip_single(out, images)
    make_siglip(out, images)
    make_qformer(out, images)
    make_itm(out, images, "itm", 0, split=False)
    make_itm(out, images, "itm-queries", QUERIES, split=False)
    make_itm(out, images, "itm-split", 0, split=True)
    make_session_graphs(out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote fixtures under {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
