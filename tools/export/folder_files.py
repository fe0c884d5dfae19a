"""The non-ONNX files of an exported BLIP folder: preprocessor_config.json (BLIP's transform: resize to a
square with bicubic, rescale, CLIP's mean and std), tokenizer.json + tokenizer_config.json (BERT
WordPiece with BLIP's added `[DEC]` and `[ENC]`), and JSON writing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# BLIP's transforms.Normalize (the CLIP statistics), data/__init__.py of salesforce/BLIP.
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def preprocessor_config(image_size: int) -> dict[str, Any]:
    """BLIP's eval transform: Resize((S, S), bicubic), ToTensor, Normalize (transformers' BlipImageProcessor form)."""
    return {
        "image_processor_type": "BlipImageProcessor",
        "do_resize": True,
        "size": {"height": image_size, "width": image_size},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": IMAGE_MEAN,
        "image_std": IMAGE_STD,
        "do_convert_rgb": True,
    }


def tokenizer_json(vocab: dict[str, int], added: list[str]) -> dict[str, Any]:
    """A Hugging Face tokenizers JSON equivalent to BertTokenizer(do_lower_case=True) over `vocab`
    (token -> id, BLIP's added tokens included), with `[CLS] text [SEP]` added around every text."""
    special = [t for t in BERT_SPECIALS + added if t in vocab]
    ids = {t: vocab[t] for t in special}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": ids[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t in sorted(special, key=lambda t: ids[t])
        ],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": dict(sorted(vocab.items(), key=lambda kv: kv[1])),
        },
    }


def tokenizer_config(model_max_length: int, added: list[str]) -> dict[str, Any]:
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": model_max_length,
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "mask_token": "[MASK]",
    }
    if "[DEC]" in added:
        config["bos_token"] = "[DEC]"
    if "[ENC]" in added:
        config["additional_special_tokens"] = ["[ENC]"]
    return config


def write_tokenizer(folder: Path, tokenizer: Any, model_max_length: int) -> None:
    """tokenizer.json and tokenizer_config.json of a BLIP tokenizer (the shim BertTokenizer after init_tokenizer)."""
    added = [t for t in ("[DEC]", "[ENC]") if t in tokenizer.vocab]
    write_json(folder / "tokenizer.json", tokenizer_json(tokenizer.vocab, added))
    write_json(folder / "tokenizer_config.json", tokenizer_config(model_max_length, added))
