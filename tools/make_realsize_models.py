#!/usr/bin/python3
"""Write real-size random-weight models for the model benchmarks (`npm run bench -- models`, issue 15).

    /usr/bin/python3 tools/make_realsize_models.py [--out bench/.cache/realsize] [--only clip-b32,blip-itm,blip-captioner]
        [--seed 0] [--force] [--threads N]

Run with Debian's interpreter (it has torch and onnx; no transformers or BLIP checkout needed). The folders
(~2.5 GB in all) are not committed: bench/.cache/ is in .gitignore. Each is written to `<name>.tmp` and
renamed when complete, so a half-written folder is never mistaken for a model.

* `clip-b32/`: CLIP ViT-B/32 in the split ITC layout, written by tools/make_clip_b32.py (run from here).
* `blip-itm/`: BLIP-base-shaped ITM in vlcurate's split ITM layout (src/models/README.md):
  `onnx/itm_vision.onnx` (`pixel_values [B,3,384,384]` -> `image_embeds [B,577,768]`, a ViT-B/16: patch 16,
  class token, 577 learned positions, 12 pre-norm blocks of width 768, 12 heads, 3072-wide GELU MLP, final
  LayerNorm, as BLIP's vit.py) and `onnx/itm_fusion.onnx` (`image_embeds`, `input_ids`, `attention_mask` ->
  `itm_logits [B,2]`: BERT-base, 12 post-norm layers of width 768 with self-attention, cross-attention over
  the image tokens and a 3072-wide GELU feed-forward, as BLIP's med.py, `[ENC]` written over the first
  token, `itm_head` on the first state).
* `blip-captioner/`: BLIP-base-shaped captioner in the captioner layout (src/captioner/captioner-graphs.ts,
  "merged"): `onnx/encoder_model.onnx` (the same ViT-B/16 at 384 -> `last_hidden_state [B,577,768]`) and
  `onnx/decoder_model_merged.onnx`: the 12-layer BERT-base decoder with causal self-attention,
  cross-attention and the LM head over 30,524 tokens (bert-base-uncased's 30,522 plus BLIP's `[DEC]` and
  `[ENC]`), with the I/O of tools/export/blip_caption_graphs.py: self-attention caches
  `past_key_values.{i}.key|value`, cross-attention caches `past_key_values.{i}.encoder.key|value` computed
  at step 0 and read back after, `use_cache_branch` selecting which (one graph, no `If`).

The BLIP folders' tokenizer is BERT's WordPiece structure (tools/export/folder_files.py, the one the BLIP
exports write) over a stand-in vocabulary of exactly 30,522 entries: BERT's special tokens, a list of
common caption words, then pronounceable pseudo-words and `##` pieces. Token ids and weights mean nothing;
shapes, costs and file layouts are BLIP-base's. Weights come from a fixed seed, small enough (std 0.02,
BERT's init) that activations stay finite; the captioner's LM head is scaled so that its next-token
distribution is as peaked as a trained model's (nucleus sampling's cost depends on it). On the shared 2-vCPU machine the three folders take a few
minutes and peak at ~4 GB of memory.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent / "export"))

from folder_files import preprocessor_config, tokenizer_json, tokenizer_config, write_json  # noqa: E402
from blip_caption_graphs import export_merged_decoder  # noqa: E402
from onnx_io import export_graph  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGE = 384
VIT = dict(patch=16, width=768, layers=12, heads=12, mlp=3072, eps=1e-6)
BERT = dict(width=768, layers=12, heads=12, mlp=3072, positions=512, eps=1e-12)
BERT_VOCAB = 30522  # bert-base-uncased; BLIP adds [DEC] 30522 and [ENC] 30523
VOCAB = BERT_VOCAB + 2
DEC_ID, ENC_ID = BERT_VOCAB, BERT_VOCAB + 1
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 100, 101, 102, 103  # bert-base-uncased's ids
ITM_TEXT_LENGTH = 35  # BLIP's retrieval max length
CAPTION_TEXT_LENGTH = 40
PROMPT = "a picture of "
MODELS = ("clip-b32", "blip-itm", "blip-captioner")


# ----------------------------------------------------------------------------------------------
# ViT-B/16 (BLIP's vit.py VisionTransformer, reimplemented).
# ----------------------------------------------------------------------------------------------

class VitBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        w = VIT["width"]
        self.heads = VIT["heads"]
        self.norm1 = nn.LayerNorm(w, eps=VIT["eps"])
        self.qkv = nn.Linear(w, 3 * w)
        self.proj = nn.Linear(w, w)
        self.norm2 = nn.LayerNorm(w, eps=VIT["eps"])
        self.mlp = nn.Sequential(nn.Linear(w, VIT["mlp"]), nn.GELU(), nn.Linear(VIT["mlp"], w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = ((q * (w // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        w, p = VIT["width"], VIT["patch"]
        self.patch_embed = nn.Conv2d(3, w, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (IMAGE // p) ** 2 + 1, w) * 0.02)
        self.blocks = nn.ModuleList(VitBlock() for _ in range(VIT["layers"]))
        self.norm = nn.LayerNorm(w, eps=VIT["eps"])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# ----------------------------------------------------------------------------------------------
# BERT-base with cross-attention (BLIP's med.py, reimplemented). Attention takes explicit keys/values so
# that the decoder's caches are plain tensors.
# ----------------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        w = BERT["width"]
        self.heads, self.head_dim = BERT["heads"], w // BERT["heads"]
        self.query, self.key, self.value = nn.Linear(w, w), nn.Linear(w, w), nn.Linear(w, w)
        self.dense = nn.Linear(w, w)
        self.norm = nn.LayerNorm(w, eps=BERT["eps"])

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).permute(0, 2, 1, 3)  # [B,H,L,D]

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        q = self.split(self.query(x))
        att = (q @ k.transpose(-1, -2)) * self.head_dim ** -0.5
        if bias is not None:
            att = att + bias
        out = (att.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(x.shape)
        return self.norm(x + self.dense(out))


class BertLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        w = BERT["width"]
        self.attention = Attention()
        self.crossattention = Attention()
        self.intermediate = nn.Sequential(nn.Linear(w, BERT["mlp"]), nn.GELU())
        self.output = nn.Linear(BERT["mlp"], w)
        self.norm = nn.LayerNorm(w, eps=BERT["eps"])

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.output(self.intermediate(x)))


class Bert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        w = BERT["width"]
        self.word_embeddings = nn.Embedding(VOCAB, w)
        self.position_embeddings = nn.Embedding(BERT["positions"], w)
        self.embed_norm = nn.LayerNorm(w, eps=BERT["eps"])
        self.layers = nn.ModuleList(BertLayer() for _ in range(BERT["layers"]))

    def embed(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.embed_norm(self.word_embeddings(input_ids) + self.position_embeddings(positions))


def init_weights_(module: nn.Module) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding, nn.Conv2d)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------
# The graphs.
# ----------------------------------------------------------------------------------------------

class ItmFusion(nn.Module):
    """image_embeds, input_ids, attention_mask -> itm_logits: BLIP_ITM's text encoder in multimodal mode
    with `[ENC]` over the first token, and its itm_head on the first state."""

    def __init__(self) -> None:
        super().__init__()
        self.bert = Bert()
        self.itm_head = nn.Linear(BERT["width"], 2)

    def forward(self, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = torch.cat([torch.full_like(input_ids[:, :1], ENC_ID), input_ids[:, 1:]], dim=1)
        positions = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
        x = self.bert.embed(ids, positions)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.bert.layers:
            k, v = layer.attention.split(layer.attention.key(x)), layer.attention.split(layer.attention.value(x))
            x = layer.attention.attend(x, k, v, bias)
            cross = layer.crossattention
            x = cross.attend(x, cross.split(cross.key(image_embeds)), cross.split(cross.value(image_embeds)), None)
            x = layer.feed_forward(x)
        return self.itm_head(x[:, 0, :])


class MergedDecoder(nn.Module):
    """BLIP_Decoder's text decoder in the merged-decoder I/O of tools/export/blip_caption_graphs.py."""

    def __init__(self) -> None:
        super().__init__()
        w = BERT["width"]
        self.bert = Bert()
        self.transform = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.LayerNorm(w, eps=BERT["eps"]))
        self.lm_head = nn.Linear(w, VOCAB)

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        layers = BERT["layers"]
        *past, use_cache_branch = rest
        self_past, cross_past = past[: 2 * layers], past[2 * layers:]
        keep = use_cache_branch.to(torch.int64).reshape(())  # 0 at step 0, 1 after
        past_length = self_past[0].shape[2] * keep
        kept = torch.arange(past_length)
        tokens = encoder_hidden_states.shape[1]
        fresh = encoder_hidden_states.index_select(1, torch.arange(tokens * (1 - keep)))  # image tokens, step 0 only
        cached = torch.arange(cross_past[0].shape[2] * keep)
        batch, steps = input_ids.shape
        new_positions = torch.arange(steps) + past_length
        x = self.bert.embed(input_ids, new_positions.unsqueeze(0).expand(batch, steps))
        visible = torch.arange(steps + past_length).unsqueeze(0) <= new_positions.unsqueeze(1)  # [T, P+T]
        bias = (1.0 - visible.to(x.dtype))[None, None] * -10000.0
        present_self, present_cross = [], []
        for i, layer in enumerate(self.bert.layers):
            att = layer.attention
            k = torch.cat([self_past[2 * i].index_select(2, kept), att.split(att.key(x))], dim=2)
            v = torch.cat([self_past[2 * i + 1].index_select(2, kept), att.split(att.value(x))], dim=2)
            present_self += [k, v]
            x = att.attend(x, k, v, bias)
            cross = layer.crossattention
            ck = torch.cat([cross_past[2 * i].index_select(2, cached), cross.split(cross.key(fresh))], dim=2)
            cv = torch.cat([cross_past[2 * i + 1].index_select(2, cached), cross.split(cross.value(fresh))], dim=2)
            present_cross += [ck, cv]
            x = cross.attend(x, ck, cv, None)
            x = layer.feed_forward(x)
        return (self.lm_head(self.transform(x)), *present_self, *present_cross)


# ----------------------------------------------------------------------------------------------
# Tokenizer: BERT's WordPiece structure over a stand-in vocabulary of bert-base-uncased's size.
# ----------------------------------------------------------------------------------------------

COMMON_WORDS = """
a an the of and on in to with is it at by for from as are this that there picture photo image view close
white black red green blue yellow purple orange pink brown gray small large big little two three many some
circle square triangle star shape object left right above below next top bottom middle center side front
man woman person people child boy girl dog cat bird horse car bus train street road city house building room
table chair bed window door water sea beach tree grass sky cloud sun snow mountain field park food plate
pizza cake cup glass bottle phone book sign sitting standing walking running holding looking playing riding
eating wearing lying flying group couple pair . , ' - !
""".split()


def stand_in_vocab(seed: int) -> dict[str, int]:
    """30,522 WordPiece entries with bert-base-uncased's special ids, then BLIP's [DEC] and [ENC]."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    seen = set(tokens)
    for w in COMMON_WORDS + list("abcdefghijklmnopqrstuvwxyz0123456789") + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]:
        if w not in seen:
            seen.add(w)
            tokens.append(w)
    rng = random.Random(seed)
    consonants = "b c d f g h j k l m n p r s t v w z br ch sh th st".split()
    vowels = "a e i o u y ai ea oo ou".split()
    while len(tokens) < BERT_VOCAB:
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.choice([1, 2, 2, 3])))
        word = "##" + word if rng.random() < 0.25 else word
        if word not in seen:
            seen.add(word)
            tokens.append(word)
    vocab = {t: i for i, t in enumerate(tokens)}
    vocab["[DEC]"], vocab["[ENC]"] = DEC_ID, ENC_ID
    assert (vocab["[PAD]"], vocab["[UNK]"], vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"]) == (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID)
    return vocab


def write_tokenizer_files(folder: Path, vocab: dict[str, int], max_length: int) -> None:
    write_json(folder / "tokenizer.json", tokenizer_json(vocab, ["[DEC]", "[ENC]"]))
    write_json(folder / "tokenizer_config.json", tokenizer_config(max_length, ["[DEC]", "[ENC]"]))


# ----------------------------------------------------------------------------------------------
# Folders.
# ----------------------------------------------------------------------------------------------

def vision_config() -> dict:
    return {"image_size": IMAGE, "patch_size": VIT["patch"], "hidden_size": VIT["width"], "num_hidden_layers": VIT["layers"],
            "num_attention_heads": VIT["heads"]}


def text_config() -> dict:
    return {"vocab_size": VOCAB, "hidden_size": BERT["width"], "num_hidden_layers": BERT["layers"], "num_attention_heads": BERT["heads"],
            "intermediate_size": BERT["mlp"], "max_position_embeddings": BERT["positions"], "encoder_width": VIT["width"]}


def readme(folder: Path, what: str, seed: int) -> None:
    (folder / "README.md").write_text(
        f"# {folder.name.removesuffix('.tmp')} (random weights)\n\n{what} with random weights (seed {seed}), written by\n"
        "`/usr/bin/python3 tools/make_realsize_models.py` for `npm run bench -- models`. Its shapes, costs and\n"
        "file layout are BLIP-base's; its outputs and token ids mean nothing.\n", encoding="utf-8")


def write_itm(tmp: Path, seed: int) -> None:
    torch.manual_seed(seed)
    vit, fusion = VisionTransformer(), ItmFusion()
    init_weights_(vit)
    init_weights_(fusion)
    pixels = torch.randn(2, 3, IMAGE, IMAGE)
    batch = {0: "batch_size"}
    export_graph(vit, (pixels,), tmp / "onnx" / "itm_vision.onnx", ["pixel_values"], ["image_embeds"], {"pixel_values": batch, "image_embeds": batch})
    with torch.no_grad():
        states = vit(pixels)
    ids = torch.tensor([[CLS_ID, 2000, 3000, SEP_ID], [CLS_ID, 4000, SEP_ID, PAD_ID]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    text_axes = {"input_ids": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "sequence_length"}}
    export_graph(fusion, (states, ids, mask), tmp / "onnx" / "itm_fusion.onnx", ["image_embeds", "input_ids", "attention_mask"], ["itm_logits"],
                 {"image_embeds": batch, **text_axes, "itm_logits": batch})
    write_json(tmp / "config.json", {
        "model_type": "blip", "architectures": ["BlipForImageTextRetrieval"], "text_config": text_config(),
        "vision_config": vision_config(), "itm_first_token": "[ENC]", "enc_token_id": ENC_ID,
        "exported_by": {"tool": "tools/make_realsize_models.py", "weights": f"random (seed {seed})"},
    })
    write_json(tmp / "preprocessor_config.json", preprocessor_config(IMAGE))
    write_tokenizer_files(tmp, stand_in_vocab(seed), ITM_TEXT_LENGTH)
    readme(tmp, "A BLIP-base-shaped ITM model (ViT-B/16 at 384 px, 12-layer BERT-base with cross-attention)", seed)


def write_captioner(tmp: Path, seed: int) -> None:
    torch.manual_seed(seed + 1)
    vit, decoder = VisionTransformer(), MergedDecoder()
    init_weights_(vit)
    init_weights_(decoder)
    # A trained captioner's next-token distribution is peaked; BERT's init gives logits of std ~0.55, near
    # uniform over 30,524 tokens, where top-p 0.9 keeps ~23,000 of them and nucleus sampling costs ~1000x
    # what it costs with real weights. Logits of std ~5 keep ~30 tokens at top-p 0.9, as real captions do.
    nn.init.normal_(decoder.lm_head.weight, std=5 / BERT["width"] ** 0.5)
    pixels = torch.randn(2, 3, IMAGE, IMAGE)
    export_graph(vit, (pixels,), tmp / "onnx" / "encoder_model.onnx", ["pixel_values"], ["last_hidden_state"],
                 {"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}})
    with torch.no_grad():
        states = vit(pixels)
    export_merged_decoder(decoder, torch.tensor([[5, 6], [7, 8]]), states, BERT["layers"], BERT["heads"],
                          BERT["width"] // BERT["heads"], tmp / "onnx" / "decoder_model_merged.onnx")
    ids = {"decoder_start_token_id": DEC_ID, "bos_token_id": DEC_ID, "eos_token_id": SEP_ID, "pad_token_id": PAD_ID}
    write_json(tmp / "config.json", {
        "model_type": "blip", "architectures": ["BlipForConditionalGeneration"], **ids, "decoder": text_config(),
        "vision_config": vision_config(), "prompt": PROMPT,
        "exported_by": {"tool": "tools/make_realsize_models.py", "weights": f"random (seed {seed})"},
    })
    write_json(tmp / "generation_config.json", {**ids, "max_length": 30, "min_length": 10})
    write_json(tmp / "preprocessor_config.json", preprocessor_config(IMAGE))
    write_tokenizer_files(tmp, stand_in_vocab(seed), CAPTION_TEXT_LENGTH)
    readme(tmp, "A BLIP-base-shaped captioner (ViT-B/16 at 384 px, 12-layer BERT-base decoder with cross-attention, vocabulary 30,524)", seed)


def log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / ".cache" / "realsize"))
    parser.add_argument("--only", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rewrite folders that exist")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    opts = parser.parse_args()
    wanted = [m.strip() for m in opts.only.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in MODELS]
    if unknown:
        parser.error(f"--only: unknown model(s) {', '.join(unknown)}; expected some of {', '.join(MODELS)}")
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in wanted:
        folder = out / name
        if folder.exists() and not opts.force:
            log(started, f"{folder} exists (pass --force to rewrite it)")
            continue
        if name == "clip-b32":
            cmd = [sys.executable, str(ROOT / "tools" / "make_clip_b32.py"), "--out", str(folder), "--seed", str(opts.seed)]
            subprocess.run(cmd + (["--force"] if opts.force else []) + (["--threads", str(opts.threads)] if opts.threads > 0 else []), check=True)
            continue
        tmp = out / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "onnx").mkdir(parents=True)
        (write_itm if name == "blip-itm" else write_captioner)(tmp, opts.seed)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        log(started, f"wrote {folder} ({total / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
