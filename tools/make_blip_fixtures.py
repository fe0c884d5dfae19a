#!/usr/bin/python3
"""Write the tiny BLIP test fixtures (tests/fixtures/models/blip-itm, blip-captioner, blip2-itm) with the export tools.

    /usr/bin/python3 tools/make_blip_fixtures.py --blip-code /path/to/salesforce/BLIP --lavis-code /path/to/salesforce/LAVIS \
        [--out tests/fixtures/models]

The models are salesforce/BLIP's own classes (`BLIP_ITM` of blip_itm.py, `BLIP_Decoder` of blip.py, with
med.py's BERT and vit.py's VisionTransformer) built at a tiny size with random weights: a 2-block ViT on
32 x 32 images (8 x 8 patches, width 24), a 2-layer BERT of width 32 with cross-attention, and a WordPiece
vocabulary of ~60 tokens written here (BLIP's `[DEC]` and `[ENC]` added after it, as init_tokenizer adds
them to bert-base-uncased). `create_vit` is the only thing replaced: BLIP's version knows only ViT-B/L.
tools/export/ exports them exactly as it exports a real checkpoint (and runs its self-check against
vlcurate's CLI, so build first: `npm run build`); the folders' reference.json hold the PyTorch outputs
that tests/models/blip-export.test.ts checks vlcurate against. Fixed seeds: the same files every run.

`blip2-itm` is LAVIS's own `Blip2ITM` (blip2_image_text_matching.py: Q-Former of Qformer.py, EVA ViT of
eva_vit.py) at a tiny size: the EVA ViT class with 2 blocks of width 24 on 32 x 32 images in place of
`create_eva_vit_g` (ViT-g), a 2-layer Q-Former of width 32 with cross-attention in layer 0 and 4 query tokens.
"""

from __future__ import annotations

import argparse
from functools import partial
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "export"))

from blip_code import load_blip_code  # noqa: E402
from blip2_folder import export_blip2_folder  # noqa: E402
from blip_folders import export_caption_folder, export_itm_folder  # noqa: E402
from lavis_code import load_lavis_code  # noqa: E402
from shims.bert_config import register_config  # noqa: E402
from self_check import vlcurate_command  # noqa: E402
from shims.bert_tokenizer import register_vocab  # noqa: E402

IMAGE = 32
PATCH = 8
VISION_WIDTH = 24
WORDS = [
    "a", "an", "the", "picture", "photo", "of", "red", "green", "blue", "circle", "square", "dog", "cat", "man",
    "horse", "on", "left", "right", "next", "to", "two", "and", "with", "is", "beach", "riding", "sleep", "couch",
    "play", ".", ",", "##s", "##ing", "##er",
]
TEXTS = [
    "a red circle",
    "two dogs playing on the beach",
    "A picture of a cat, sleeping on the couch.",
    "the blue square is right of the green circle",
    " ".join(["a red dog and a blue cat"] * 6),  # 38 words: truncated to 35 tokens
]
PROMPT = "a picture of "
MAX_NEW_TOKENS = 12


def write_vocab(folder: Path) -> Path:
    path = folder / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return path


def write_med_config(folder: Path, vocab_size: int) -> Path:
    path = folder / "med_config.json"
    path.write_text(json.dumps({
        "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
        "layer_norm_eps": 1e-12, "max_position_embeddings": 64, "model_type": "bert", "num_attention_heads": 2,
        "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": vocab_size,
        "encoder_width": VISION_WIDTH, "add_cross_attention": True,
    }))
    return path


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Random weights large enough that images and texts give clearly different outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or name.endswith(("norm.weight", "norm1.weight", "norm2.weight")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def randomize_decoder(model: torch.nn.Module, seed: int) -> None:
    """Random weights for a captioner whose greedy captions differ between images and do not just repeat
    one token (fully random BERT layers forget the input token): large token and position embeddings,
    small self-attention and feed-forward weights, larger cross-attention ones (the image's say), an LM
    head reading the hidden state almost unchanged through an untied, permuted copy of the embeddings (so
    the next token depends on the current one), and special tokens other than [SEP] made unlikely."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or name.endswith(("norm.weight", "norm1.weight", "norm2.weight")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.startswith("visual_encoder"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(0.9 * torch.randn(p.shape, generator=g))
            elif "crossattention" in name:
                p.copy_(0.6 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        head = model.text_decoder.cls.predictions
        width = head.transform.dense.weight.shape[0]
        head.transform.dense.weight.copy_(3 * torch.eye(width) + 0.05 * torch.randn(width, width, generator=g))
        embeddings = model.text_decoder.bert.embeddings.word_embeddings.weight
        perm = torch.randperm(embeddings.shape[0], generator=g)
        head.decoder.weight = torch.nn.Parameter(embeddings[perm].clone())
        head.bias.zero_()
        tok = model.tokenizer
        for t in ("[PAD]", "[UNK]", "[CLS]", "[MASK]", "[DEC]", "[ENC]"):
            head.bias[tok.vocab[t]] = -30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blip-code", required=True, help="salesforce/BLIP checkout")
    parser.add_argument("--lavis-code", required=True, help="salesforce/LAVIS checkout (BLIP-2)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"))
    parser.add_argument("--vlcurate", help="command running vlcurate's CLI (default: node dist/src/cli/main.js)")
    args = parser.parse_args()
    code = load_blip_code(args.blip_code)
    out = Path(args.out)
    check = {"cmd": vlcurate_command(args.vlcurate), "tolerance": 1e-4}

    def tiny_vit(vit: str, image_size: int, *_a: object, **_k: object) -> tuple[torch.nn.Module, int]:
        return code.vit.VisionTransformer(img_size=IMAGE, patch_size=PATCH, embed_dim=VISION_WIDTH, depth=2, num_heads=2), VISION_WIDTH

    code.blip_itm.create_vit = tiny_vit
    code.blip.create_vit = tiny_vit
    source = {
        "tool": "tools/make_blip_fixtures.py (tools/export)",
        "blip_code": {"repository": "https://github.com/salesforce/BLIP", "commit": code.commit},
        "weights": "random (tiny test model)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        vocab = write_vocab(Path(tmp))
        register_vocab("bert-base-uncased", str(vocab))
        med = write_med_config(Path(tmp), len(WORDS) + 5 + 2)

        torch.manual_seed(0)
        itm = code.blip_itm.BLIP_ITM(med_config=str(med), image_size=IMAGE, embed_dim=16)
        randomize(itm, 1)
        folder = out / "blip-itm"
        shutil.rmtree(folder, ignore_errors=True)
        export_itm_folder(itm, folder, image_size=IMAGE, source=source, texts=TEXTS, user_images=[], drawn_images=3, check=check)

        torch.manual_seed(0)
        cap = code.blip.BLIP_Decoder(med_config=str(med), image_size=IMAGE, prompt=PROMPT)
        randomize_decoder(cap, 2)
        folder = out / "blip-captioner"
        shutil.rmtree(folder, ignore_errors=True)
        ref = export_caption_folder(cap, folder, image_size=IMAGE, source=source, prompt=PROMPT, max_new_tokens=MAX_NEW_TOKENS,
                                    user_images=[], drawn_images=3, check=check)
        print("greedy captions:", ref["greedy"]["captions"], "smallest top-2 margin", ref["greedy"]["min_top2_margin"])

        lavis = load_lavis_code(args.lavis_code)

        def tiny_eva(img_size: int = 224, drop_path_rate: float = 0.0, use_checkpoint: bool = False, precision: str = "fp32") -> torch.nn.Module:
            return lavis.eva_vit.VisionTransformer(
                img_size=IMAGE, patch_size=PATCH, use_mean_pooling=False, embed_dim=VISION_WIDTH, depth=2, num_heads=2,
                mlp_ratio=4.3637, qkv_bias=True, drop_path_rate=0.0, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_checkpoint=False)

        lavis.blip2.create_eva_vit_g = tiny_eva
        register_config("bert-base-uncased", {**json.loads(med.read_text()), "vocab_size": len(WORDS) + 5})
        torch.manual_seed(0)
        blip2 = lavis.blip2_itm.Blip2ITM(vit_model="eva_clip_g", img_size=IMAGE, vit_precision="fp32", num_query_token=4,
                                         cross_attention_freq=2, embed_dim=16, max_txt_len=32)
        randomize(blip2, 3)
        folder = out / "blip2-itm"
        shutil.rmtree(folder, ignore_errors=True)
        source2 = {**source, "lavis_code": {"repository": "https://github.com/salesforce/LAVIS", "commit": lavis.commit}}
        export_blip2_folder(blip2, folder, image_size=IMAGE, source=source2, texts=TEXTS, user_images=[], drawn_images=3, check=check)


if __name__ == "__main__":
    main()
