"""The four graphs of a BLIP-2 (Q-Former) ITC + ITM folder, cut from one LAVIS `Blip2ITM` model
(`blip2_image_text_matching.py`; first-stage `Blip2Qformer` weights):

- `onnx/vision_model.onnx`: pixel_values -> image_embeds [B,Q,E] = vision_proj of the Q-Former's query
  outputs over the ViT's (ln_vision) states; vlcurate normalises each query vector and scores ITC as the
  highest cosine over the Q queries, as `Blip2ITM.forward(match_head='itc')` does;
- `onnx/text_model.onnx`: input_ids, attention_mask -> text_embeds [B,E] = text_proj of the Q-Former's
  [CLS] state on the text alone;
- `onnx/itm_vision.onnx`: pixel_values -> image_embeds [B,N,C] = ln_vision(ViT(x));
- `onnx/itm_fusion.onnx`: image_embeds, input_ids, attention_mask -> itm_logits [B,Q,2]: the Q-Former
  over query tokens + text with cross-attention to the image, `itm_head` on each query output. vlcurate
  averages the logits over Q before the softmax, as `Blip2ITM.forward(match_head='itm')` does.
BLIP-2's ITM keeps the tokenizer's `[CLS]` (no `[ENC]`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from itc_itm_graphs import export_itc_itm_graphs


class QueryEmbedding(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.visual_encoder, self.ln_vision = model.visual_encoder, model.ln_vision
        self.Qformer, self.query_tokens, self.vision_proj = model.Qformer, model.query_tokens, model.vision_proj

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        states = self.ln_vision(self.visual_encoder(pixel_values))
        queries = self.query_tokens.expand(states.shape[0], -1, -1)
        atts = torch.ones(states.shape[:-1], dtype=torch.long)
        out = self.Qformer.bert(query_embeds=queries, encoder_hidden_states=states, encoder_attention_mask=atts, return_dict=True)
        return self.vision_proj(out.last_hidden_state)


class TextEmbedding(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.Qformer, self.text_proj = model.Qformer, model.text_proj

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.Qformer.bert(input_ids, attention_mask=attention_mask, return_dict=True)
        return self.text_proj(out.last_hidden_state[:, 0, :])


class ItmVision(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.visual_encoder, self.ln_vision = model.visual_encoder, model.ln_vision

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.ln_vision(self.visual_encoder(pixel_values))


class ItmFusion(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.Qformer, self.query_tokens, self.itm_head = model.Qformer, model.query_tokens, model.itm_head

    def forward(self, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        query_atts = torch.ones(queries.shape[:-1], dtype=torch.long)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
        out = self.Qformer.bert(input_ids, query_embeds=queries, attention_mask=torch.cat([query_atts, attention_mask], dim=1),
                                encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts, return_dict=True)
        return self.itm_head(out.last_hidden_state[:, : queries.shape[1], :])


def export_blip2_graphs(model: nn.Module, image_size: int, folder: Path) -> None:
    export_itc_itm_graphs(folder, image_size, model.Qformer.config.vocab_size, vision=QueryEmbedding(model),
                          text=TextEmbedding(model), itm_vision=ItmVision(model), itm_fusion=ItmFusion(model))
