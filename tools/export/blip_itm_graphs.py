"""The four graphs of a BLIP ITC + ITM folder, cut from one BLIP_ITM model (salesforce/BLIP's
`blip_itm.py`, loaded from a retrieval or pretraining checkpoint):

- `onnx/vision_model.onnx`: pixel_values [B,3,S,S] -> image_embeds [B,E] = vision_proj(ViT(x)[:, 0]);
- `onnx/text_model.onnx`: input_ids, attention_mask [B,T] -> text_embeds [B,E] = text_proj of the text
  encoder's [CLS] state (mode 'text', no cross-attention). vlcurate L2-normalises both, as BLIP does;
- `onnx/itm_vision.onnx`: pixel_values -> image_embeds [B,N,C], the ViT's token states;
- `onnx/itm_fusion.onnx`: image_embeds [B,N,C], input_ids, attention_mask -> itm_logits [B,2].

BLIP trained and evaluates ITM with `[ENC]` in place of the first token (blip_retrieval.py,
train_retrieval.py `evaluation`); the fusion graph puts it there itself, so the folder's tokenizer
(`[CLS] ... [SEP]`, shared with ITC) is fed unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from itc_itm_graphs import export_itc_itm_graphs


class VisionEmbedding(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.visual_encoder = model.visual_encoder
        self.vision_proj = model.vision_proj

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision_proj(self.visual_encoder(pixel_values)[:, 0, :])


class TextEmbedding(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.text_encoder = model.text_encoder
        self.text_proj = model.text_proj

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text_encoder(input_ids, attention_mask=attention_mask, return_dict=True, mode="text")
        return self.text_proj(out.last_hidden_state[:, 0, :])


class VisionStates(nn.Module):
    """pixel_values -> the ViT's token states [B,N,C]: `itm_vision.onnx` here, the captioner's
    `encoder_model.onnx` (blip_caption_graphs.py)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.visual_encoder = model.visual_encoder

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual_encoder(pixel_values)


class ItmFusion(nn.Module):
    def __init__(self, model: nn.Module, enc_token_id: int) -> None:
        super().__init__()
        self.text_encoder = model.text_encoder
        self.itm_head = model.itm_head
        self.enc_token_id = enc_token_id

    def forward(self, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # The tokenizer's [CLS] becomes [ENC], as in BLIP's retrieval training and evaluation.
        enc = torch.full_like(input_ids[:, :1], self.enc_token_id)
        ids = torch.cat([enc, input_ids[:, 1:]], dim=1)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
        out = self.text_encoder(ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
                                encoder_attention_mask=image_atts, return_dict=True)
        return self.itm_head(out.last_hidden_state[:, 0, :])


def export_itm_graphs(model: nn.Module, enc_token_id: int, image_size: int, folder: Path) -> None:
    export_itc_itm_graphs(folder, image_size, model.text_encoder.config.vocab_size, vision=VisionEmbedding(model),
                          text=TextEmbedding(model), itm_vision=VisionStates(model), itm_fusion=ItmFusion(model, enc_token_id))
