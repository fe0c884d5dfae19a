"""Building salesforce/BLIP models from the original checkpoints through BLIP's own constructors:
`blip_itm(pretrained=...)` (blip_itm.py; retrieval checkpoints such as model_base_retrieval_coco.pth,
or the pretraining ones such as model_base_capfilt_large.pth, whose extra keys it ignores) and
`blip_decoder(pretrained=...)` (blip.py; captioning checkpoints such as model_base_caption_capfilt_large.pth).
BLIP's tokenizer is bert-base-uncased's vocab.txt plus `[DEC]` and `[ENC]` (init_tokenizer)."""

from __future__ import annotations

from typing import Any

from blip_code import BlipCode
from shims.bert_tokenizer import register_vocab


def load_itm_checkpoint(code: BlipCode, checkpoint: str, vocab: str, vit: str, image_size: int) -> Any:
    register_vocab("bert-base-uncased", vocab)
    med = code.root / "configs" / "med_config.json"
    return code.blip_itm.blip_itm(pretrained=checkpoint, image_size=image_size, vit=vit, med_config=str(med)).eval()


def load_caption_checkpoint(code: BlipCode, checkpoint: str, vocab: str, vit: str, image_size: int, prompt: str) -> Any:
    register_vocab("bert-base-uncased", vocab)
    med = code.root / "configs" / "med_config.json"
    return code.blip.blip_decoder(pretrained=checkpoint, image_size=image_size, vit=vit, med_config=str(med), prompt=prompt).eval()
