#!/usr/bin/python3
"""Write a CLIP ViT-B/32-shaped dual encoder with random weights, for the model benchmarks.

Run with Debian's interpreter (it has torch and onnx; no transformers needed):

    /usr/bin/python3 tools/make_clip_b32.py [--out bench/.cache/clip-b32] [--seed 0] [--force]

`npm run bench -- models` also runs it when `VLCURATE_BENCH_B32=1` is set and the folder is missing.
The folder (~600 MB) is not committed: bench/.cache/ is in .gitignore.

What it writes, in the split ITC layout of DESIGN.md ("Model folder layouts"), the layout optimum /
transformers.js use for `Xenova/clip-vit-base-patch32`:

* `onnx/vision_model.onnx`: `pixel_values [B,3,224,224]` -> `image_embeds [B,512]`,
  `last_hidden_state [B,50,768]`. ViT-B/32: patch 32 (a bias-free conv), class token, 50 learned
  positions, pre-LayerNorm, 12 pre-norm blocks of width 768 with 12 heads and a 3072-wide quick-GELU MLP,
  post-LayerNorm on the class token, a bias-free 768 -> 512 projection. 87.8M parameters.
* `onnx/text_model.onnx`: `input_ids [B,T]`, `attention_mask [B,T]` -> `text_embeds [B,512]`,
  `last_hidden_state [B,T,512]`. 49408-token embedding, 77 learned positions, 12 causal pre-norm blocks of
  width 512 with 8 heads and a 2048-wide quick-GELU MLP, final LayerNorm, pooled at the first highest
  token id (CLIP's `argmax(input_ids)`, the end-of-text token), bias-free 512 -> 512 projection.
  63.4M parameters.
* `config.json` (transformers' CLIPConfig fields for openai/clip-vit-base-patch32),
  `preprocessor_config.json` (CLIP's real values: shortest edge 224, center crop 224, bicubic, CLIP's
  mean and std), `tokenizer_config.json`.
* `tokenizer.json`: CLIP's tokenizer *structure* (NFC + whitespace collapse + lowercase; CLIP's split
  regex; byte-level pre-tokenizer; BPE with the `</w>` end-of-word suffix; RobertaProcessing adding
  `<|startoftext|>` 49406 and `<|endoftext|>` 49407; vocabulary of exactly 49408) but NOT CLIP's merges,
  which are not available offline. The 48,894 merges here (as many as CLIP has) are built so that
  every word of a built-in list of ~250 common caption words becomes one token, then deterministic
  pronounceable pseudo-words fill the vocabulary (see `build_bpe`). It is a real BPE that
  @huggingface/tokenizers loads and runs at CLIP's cost, and short captions come out at about one token
  per word as with CLIP, but its token ids mean nothing, as the weights are random.

The weights are drawn from a fixed seed (CLIP's init scales: std 0.02 for the patch and token embeddings,
width^-0.5 for the projections, depth-scaled for attention/MLP), so two runs write the same bytes. Export is
torch.onnx.export (TorchScript tracing, opset 17, dynamic batch and sequence axes). On the 2-vCPU
development machine the whole run takes about 20 seconds (most of it export and protobuf
serialisation) and peaks at ~2.2 GB of memory.

The folder is written to `<out>.tmp` and renamed when complete, so a half-written folder is never
mistaken for a model.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import onnx
import torch
import torch.nn as nn

OPSET = 17

VISION = dict(layers=12, width=768, heads=12, mlp=3072, patch=32, image=224)
TEXT = dict(layers=12, width=512, heads=8, mlp=2048, positions=77, vocab=49408)
PROJECTION = 512
LN_EPS = 1e-5
NEG = -1.0e9

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
BOS_ID = TEXT["vocab"] - 2  # 49406, as in CLIP
EOS_ID = TEXT["vocab"] - 1  # 49407: the highest id, so argmax(input_ids) finds it

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# ----------------------------------------------------------------------------------------------
# Model (transformers' CLIPVisionModelWithProjection / CLIPTextModelWithProjection, reimplemented).
# ----------------------------------------------------------------------------------------------

class QuickGelu(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x, bias=None):
        b, width = x.shape[0], x.shape[2]
        q = self.q_proj(x).reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)
        att = (q * (self.head_dim ** -0.5)) @ k.transpose(-1, -2)
        if bias is not None:
            att = att + bias
        out = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, width)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    def __init__(self, width: int, heads: int, mlp: int):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width, eps=LN_EPS)
        self.self_attn = Attention(width, heads)
        self.layer_norm2 = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = nn.Sequential(nn.Linear(width, mlp), QuickGelu(), nn.Linear(mlp, width))

    def forward(self, x, bias=None):
        x = x + self.self_attn(self.layer_norm1(x), bias)
        return x + self.mlp(self.layer_norm2(x))


def init_encoder_(layers: nn.ModuleList, width: int, count: int) -> None:
    """CLIP's initialisation scales (transformers' CLIPPreTrainedModel._init_weights, factor 1)."""
    attn_std = width ** -0.5 * (2 * count) ** -0.5
    out_std = width ** -0.5
    fc_std = (2 * width) ** -0.5
    for layer in layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
            nn.init.normal_(proj.weight, std=attn_std)
            nn.init.zeros_(proj.bias)
        nn.init.normal_(layer.self_attn.out_proj.weight, std=out_std)
        nn.init.zeros_(layer.self_attn.out_proj.bias)
        nn.init.normal_(layer.mlp[0].weight, std=fc_std)
        nn.init.zeros_(layer.mlp[0].bias)
        nn.init.normal_(layer.mlp[2].weight, std=attn_std)
        nn.init.zeros_(layer.mlp[2].bias)


class VisionModel(nn.Module):
    def __init__(self):
        super().__init__()
        w, p = VISION["width"], VISION["patch"]
        patches = (VISION["image"] // p) ** 2
        self.patch_embedding = nn.Conv2d(3, w, kernel_size=p, stride=p, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.position_embedding = nn.Parameter(torch.randn(patches + 1, w) * 0.02)
        self.pre_layrnorm = nn.LayerNorm(w, eps=LN_EPS)
        self.layers = nn.ModuleList(EncoderLayer(w, VISION["heads"], VISION["mlp"]) for _ in range(VISION["layers"]))
        self.post_layernorm = nn.LayerNorm(w, eps=LN_EPS)
        self.visual_projection = nn.Linear(w, PROJECTION, bias=False)
        nn.init.normal_(self.patch_embedding.weight, std=0.02)
        init_encoder_(self.layers, w, VISION["layers"])
        nn.init.normal_(self.visual_projection.weight, std=w ** -0.5)

    def forward(self, pixel_values):
        x = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.reshape(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding
        x = self.pre_layrnorm(x)
        for layer in self.layers:
            x = layer(x)
        pooled = self.post_layernorm(x[:, 0])
        return self.visual_projection(pooled), x


class TextModel(nn.Module):
    def __init__(self):
        super().__init__()
        w = TEXT["width"]
        self.token_embedding = nn.Embedding(TEXT["vocab"], w)
        self.position_embedding = nn.Parameter(torch.randn(TEXT["positions"], w) * 0.01)
        self.layers = nn.ModuleList(EncoderLayer(w, TEXT["heads"], TEXT["mlp"]) for _ in range(TEXT["layers"]))
        self.final_layer_norm = nn.LayerNorm(w, eps=LN_EPS)
        self.text_projection = nn.Linear(w, PROJECTION, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        init_encoder_(self.layers, w, TEXT["layers"])
        nn.init.normal_(self.text_projection.weight, std=w ** -0.5)

    def forward(self, input_ids, attention_mask):
        length = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.position_embedding[:length]
        idx = torch.arange(length)
        causal = (idx[None, :] > idx[:, None]).float() * NEG
        padding = (1.0 - attention_mask[:, None, None, :].float()) * NEG
        bias = causal + padding
        for layer in self.layers:
            x = layer(x, bias)
        x = self.final_layer_norm(x)
        eos = input_ids.argmax(-1)
        pooled = torch.gather(x, 1, eos[:, None, None].expand(-1, 1, x.shape[-1]))[:, 0]
        return self.text_projection(pooled), x


# ----------------------------------------------------------------------------------------------
# Tokenizer: CLIP's tokenizer.json structure with generated merges.
# ----------------------------------------------------------------------------------------------

def bytes_to_unicode() -> list[tuple[int, str]]:
    """GPT-2/CLIP's reversible byte -> printable character table, in CLIP's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


# Words that become single tokens first (captions of the shapes domain and common English).
COMMON_WORDS = """
a an the of and on in to with is it its at by for from as are this that there these those
photo picture image images illustration drawing painting view close up shot background plain white
black red green blue yellow purple orange pink brown gray grey gold silver
small large big little tiny huge single two three four five many several some few
circle square triangle star hexagon shape shapes object objects left right above below next top bottom
middle center side front back near far over under between behind inside outside
man woman person people child children boy girl dog cat bird horse car bus train street road city
house building room table chair bed window door water sea beach tree trees grass sky cloud clouds
sun snow mountain field park food plate pizza cake cup glass bottle phone computer book sign
sitting standing walking running holding looking playing riding eating wearing lying flying
group couple pair side stock vector free download best new old home art design logo icon
""".split()

CONSONANTS = "b c d f g h j k l m n p r s t v w z br cr dr fr gr pr tr bl cl fl gl pl sl ch sh th st sp sc".split()
VOWELS = "a e i o u y ai ea ee oo ou ie".split()
CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt", "ll"]


def pseudo_words(rng: random.Random):
    """Pronounceable words of 1-4 syllables, forever, deterministic for a given generator."""
    while True:
        syllables = rng.choice([1, 2, 2, 3, 3, 4])
        yield "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables))


def bpe_encode(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE as the tokenizers library applies it: merge the lowest-ranked adjacent pair until none is left."""
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


def build_bpe(seed: int) -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merges in CLIP's shape: 256 byte symbols, the same with `</w>`, merged tokens, then
    the two special tokens, 49408 in all.

    Words are added one at a time: the word is encoded with the merges so far, and merges joining its
    pieces left to right are appended. Every later merge ranks after every earlier one, so each word added
    before stays one token and the new word becomes one token too (unless the vocabulary fills up first).
    A merge may produce a string that is already a token (reached through other pieces); then only the
    merge is added, so there can be slightly more merges than new tokens, as in CLIP's own merges.txt.
    """
    alphabet = [c for _, c in bytes_to_unicode()]
    vocab: dict[str, int] = {}
    for c in alphabet:
        vocab[c] = len(vocab)
    for c in alphabet:
        vocab[c + "</w>"] = len(vocab)
    target = TEXT["vocab"] - 2  # tokens before the two special ones
    merges: list[str] = []
    ranks: dict[tuple[str, str], int] = {}
    seen_words: set[str] = set()

    def add_word(word: str) -> None:
        if word in seen_words:
            return
        seen_words.add(word)
        pieces = bpe_encode(word, ranks)
        left = pieces[0]
        for piece in pieces[1:]:
            if len(vocab) >= target:
                return
            ranks[(left, piece)] = len(merges)
            merges.append(f"{left} {piece}")
            left = left + piece
            if left not in vocab:
                vocab[left] = len(vocab)

    for word in COMMON_WORDS:
        add_word(word)
    # Numbers and punctuation runs as the pre-tokenizer cuts them ("2", "...", "'s").
    for word in [str(n) for n in range(10)] + ["..", "...", "'s", "'t", "'re", "'ll"]:
        add_word(word)
    gen = pseudo_words(random.Random(seed))
    while len(vocab) < target:
        add_word(next(gen))
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)
    assert len(vocab) == TEXT["vocab"] and vocab[BOS_TOKEN] == BOS_ID and vocab[EOS_TOKEN] == EOS_ID
    assert all(len(bpe_encode(w, ranks)) == 1 for w in COMMON_WORDS)
    return vocab, merges


def tokenizer_json(seed: int) -> dict:
    vocab, merges = build_bpe(seed)
    special = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": BOS_ID, "content": BOS_TOKEN, **special},
            {"id": EOS_ID, "content": EOS_TOKEN, **special},
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split",
             "pattern": {"Regex": "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOS_TOKEN, EOS_ID], "cls": [BOS_TOKEN, BOS_ID],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": EOS_TOKEN, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }


# ----------------------------------------------------------------------------------------------
# Config files.
# ----------------------------------------------------------------------------------------------

def config_json(seed: int) -> dict:
    return {
        "_comment": ("CLIP ViT-B/32-shaped model with RANDOM weights for benchmarks, written by "
                     f"tools/make_clip_b32.py (seed {seed}); its embeddings mean nothing."),
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": PROJECTION,
        "logit_scale_init_value": 2.6592,
        "initializer_factor": 1.0,
        "text_config": {
            "model_type": "clip_text_model",
            "vocab_size": TEXT["vocab"],
            "hidden_size": TEXT["width"],
            "intermediate_size": TEXT["mlp"],
            "num_hidden_layers": TEXT["layers"],
            "num_attention_heads": TEXT["heads"],
            "max_position_embeddings": TEXT["positions"],
            "hidden_act": "quick_gelu",
            "layer_norm_eps": LN_EPS,
            "projection_dim": PROJECTION,
            "bos_token_id": BOS_ID,
            "eos_token_id": EOS_ID,
            "pad_token_id": 1,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": VISION["width"],
            "intermediate_size": VISION["mlp"],
            "num_hidden_layers": VISION["layers"],
            "num_attention_heads": VISION["heads"],
            "image_size": VISION["image"],
            "patch_size": VISION["patch"],
            "num_channels": 3,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": LN_EPS,
            "projection_dim": PROJECTION,
        },
    }


PREPROCESSOR_CONFIG = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": CLIP_MEAN,
    "image_processor_type": "CLIPImageProcessor",
    "image_std": CLIP_STD,
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}

TOKENIZER_CONFIG = {
    "tokenizer_class": "CLIPTokenizer",
    "model_max_length": TEXT["positions"],
    "bos_token": BOS_TOKEN,
    "eos_token": EOS_TOKEN,
    "pad_token": EOS_TOKEN,
    "unk_token": EOS_TOKEN,
    "do_lower_case": True,
    "add_prefix_space": False,
    "errors": "replace",
}


# ----------------------------------------------------------------------------------------------
# Export.
# ----------------------------------------------------------------------------------------------

def export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load(str(path))
    model.producer_version = ""  # the same bytes whatever the torch build
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "bench" / ".cache" / "clip-b32"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing folder")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    opts = parser.parse_args()

    out = Path(opts.out)
    if out.exists() and not opts.force:
        print(f"{out} exists; pass --force to rewrite it", file=sys.stderr)
        return
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    started = time.perf_counter()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "onnx").mkdir(parents=True)

    torch.manual_seed(opts.seed)
    vision = VisionModel()
    text = TextModel()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    log(started, f"built random weights: vision {count(vision) / 1e6:.1f}M, text {count(text) / 1e6:.1f}M parameters")

    size = VISION["image"]
    export(vision, (torch.randn(2, 3, size, size),), tmp / "onnx" / "vision_model.onnx",
           ["pixel_values"], ["image_embeds", "last_hidden_state"],
           {"pixel_values": {0: "batch_size"}, "image_embeds": {0: "batch_size"},
            "last_hidden_state": {0: "batch_size"}})
    log(started, "exported onnx/vision_model.onnx")

    ids = torch.tensor([[BOS_ID, 320, 1000, 2000, EOS_ID, EOS_ID], [BOS_ID, 320, 1000, 2000, 3000, EOS_ID]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    export(text, (ids, mask), tmp / "onnx" / "text_model.onnx",
           ["input_ids", "attention_mask"], ["text_embeds", "last_hidden_state"],
           {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "sequence_length"},
            "text_embeds": {0: "batch_size"},
            "last_hidden_state": {0: "batch_size", 1: "sequence_length"}})
    log(started, "exported onnx/text_model.onnx")

    write_json(tmp / "config.json", config_json(opts.seed))
    write_json(tmp / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    write_json(tmp / "tokenizer_config.json", TOKENIZER_CONFIG)
    write_json(tmp / "tokenizer.json", tokenizer_json(opts.seed))
    write_json(tmp / "special_tokens_map.json", {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN,
                                                 "pad_token": EOS_TOKEN, "unk_token": EOS_TOKEN})
    (tmp / "README.md").write_text(
        "# clip-b32 (random weights)\n\n"
        "A CLIP ViT-B/32-shaped dual encoder with random weights and a generated BPE tokenizer, written by\n"
        f"`/usr/bin/python3 tools/make_clip_b32.py` (seed {opts.seed}) for `npm run bench -- models`.\n"
        "Its shapes, costs and file layout are CLIP's; its embeddings and token ids mean nothing.\n",
        encoding="utf-8",
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(started, f"wrote {out} ({total / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
