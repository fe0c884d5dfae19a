"""Writing and checking whole BLIP folders: graphs, config.json, preprocessor_config.json, tokenizer files,
check images under reference/, reference.json with the PyTorch outputs, then the self-check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blip_caption_graphs import export_caption_graphs
from blip_itm_graphs import export_itm_graphs
from checked_folder import finish_folder
from folder_files import write_json
from references import TEXT_LENGTH, greedy_captions, itm_reference
from self_check import check_caption_folder, check_itm_folder

DEFAULT_CHECK_TEXTS = [
    "a picture of a dog",
    "a man riding a horse on a beach",
    "a red circle next to a blue square",
    "two cats sleeping on a couch",
]

CAPTION_TEXT_LENGTH = 40  # blip.py BLIP_Decoder.forward: max_length=40


def _vision_config(model: Any, image_size: int) -> dict[str, Any]:
    ve = model.visual_encoder
    return {
        "image_size": image_size,
        "patch_size": ve.patch_embed.patch_size[0],
        "hidden_size": ve.embed_dim,
        "num_hidden_layers": len(ve.blocks),
        "num_attention_heads": ve.blocks[0].attn.num_heads,
    }


def _text_config(config: Any) -> dict[str, Any]:
    keys = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings", "encoder_width"]
    return {k: getattr(config, k) for k in keys}


def export_itm_folder(model: Any, folder: Path, *, image_size: int, source: dict[str, Any], texts: list[str], user_images: list[str],
                      drawn_images: int, check: dict[str, Any] | None) -> dict[str, Any]:
    """Write an ITC + ITM folder from a BLIP_ITM model; returns reference.json's content. `check` (None to
    skip) holds `cmd` (the vlcurate command) and `tolerance`. Raises SystemExit when the check fails."""
    model.eval()
    tok = model.tokenizer
    export_itm_graphs(model, tok.enc_token_id, image_size, folder)
    write_json(folder / "config.json", {
        "model_type": "blip",
        "architectures": ["BlipForImageTextRetrieval"],
        "projection_dim": model.vision_proj.out_features,
        "text_config": _text_config(model.text_encoder.config),
        "vision_config": _vision_config(model, image_size),
        "itm_first_token": "[ENC]",
        "enc_token_id": tok.enc_token_id,
        "exported_by": source,
    })
    return finish_folder(
        folder, image_size=image_size, tokenizer=tok, max_length=TEXT_LENGTH, user_images=user_images, drawn_images=drawn_images,
        source=source, outputs=lambda pixels: {"texts": texts, **itm_reference(model, pixels, texts)},
        self_check=None if check is None else lambda ref: check_itm_folder(folder, ref, check["cmd"], check["tolerance"]))


def export_caption_folder(model: Any, folder: Path, *, image_size: int, source: dict[str, Any], prompt: str, max_new_tokens: int,
                          user_images: list[str], drawn_images: int, check: dict[str, Any] | None) -> dict[str, Any]:
    """Write a captioner folder from a BLIP_Decoder model; returns reference.json's content."""
    model.eval()
    tok = model.tokenizer
    export_caption_graphs(model, image_size, folder)
    ids = {"decoder_start_token_id": tok.bos_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.sep_token_id, "pad_token_id": tok.pad_token_id}
    write_json(folder / "config.json", {
        "model_type": "blip",
        "architectures": ["BlipForConditionalGeneration"],
        **ids,
        "decoder": _text_config(model.text_decoder.config),
        "vision_config": _vision_config(model, image_size),
        "prompt": prompt,
        "exported_by": source,
    })
    # BLIP's generate defaults; its max_length / min_length count [DEC] and the prompt too.
    write_json(folder / "generation_config.json", {**ids, "max_length": 30, "min_length": 10})
    return finish_folder(
        folder, image_size=image_size, tokenizer=tok, max_length=CAPTION_TEXT_LENGTH, user_images=user_images,
        drawn_images=drawn_images, source=source, outputs=lambda pixels: greedy_captions(model, pixels, prompt, max_new_tokens),
        self_check=None if check is None else lambda ref: check_caption_folder(folder, ref, check["cmd"]))
