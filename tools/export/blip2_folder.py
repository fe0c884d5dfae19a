"""Writing and checking a BLIP-2 (Q-Former) ITC + ITM folder from a LAVIS `Blip2ITM` model, with PyTorch
references from LAVIS's own `Blip2ITM.forward(samples, match_head='itc' | 'itm')`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from blip2_graphs import export_blip2_graphs
from checked_folder import finish_folder
from folder_files import write_json
from self_check import check_itm_folder


@torch.no_grad()
def blip2_reference(model: Any, pixels: torch.Tensor, texts: list[str]) -> dict[str, Any]:
    """Per (image, text): ITC from forward(match_head='itc') (max cosine over queries), ITM p(match) from
    forward(match_head='itm') (logits averaged over queries), and the per-query ITM logits behind it."""
    model.eval()
    tok = model.tokenizer
    cosine, p_match, logits = [], [], []
    for i in range(pixels.shape[0]):
        row_c, row_p, row_l = [], [], []
        for text in texts:
            samples = {"image": pixels[i : i + 1], "text_input": [text]}
            row_c.append(float(model(samples, match_head="itc").reshape(())))
            mean_logits = model(samples, match_head="itm")
            row_p.append(float(F.softmax(mean_logits, dim=-1)[0, 1]))
            # The per-query logits forward() averages (the same computation, without the mean).
            states = model.ln_vision(model.visual_encoder(pixels[i : i + 1]))
            enc = tok([text], truncation=True, max_length=model.max_txt_len, return_tensors="pt")
            queries = model.query_tokens.expand(1, -1, -1)
            out = model.Qformer.bert(enc.input_ids, query_embeds=queries,
                                     attention_mask=torch.cat([torch.ones(queries.shape[:-1], dtype=torch.long), enc.attention_mask], dim=1),
                                     encoder_hidden_states=states, encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long),
                                     return_dict=True)
            per_query = model.itm_head(out.last_hidden_state[:, : queries.shape[1], :])[0]
            assert torch.allclose(per_query.mean(0), mean_logits[0], atol=1e-5), "per-query ITM logits do not average to forward()'s"
            row_l.append(per_query.tolist())
        cosine.append(row_c)
        p_match.append(row_p)
        logits.append(row_l)
    ids = [tok(t, truncation=True, max_length=model.max_txt_len).input_ids for t in texts]
    return {"token_ids": ids, "itc": {"cosine": cosine}, "itm": {"first_token": "[CLS]", "logits": logits, "p_match": p_match}}


def export_blip2_folder(model: Any, folder: Path, *, image_size: int, source: dict[str, Any], texts: list[str], user_images: list[str],
                        drawn_images: int, check: dict[str, Any] | None) -> dict[str, Any]:
    model.eval()
    export_blip2_graphs(model, image_size, folder)
    cfg = model.Qformer.config
    write_json(folder / "config.json", {
        "model_type": "blip-2",
        "architectures": ["Blip2ForImageTextRetrieval"],
        "num_query_tokens": model.query_tokens.shape[1],
        "projection_dim": model.vision_proj.out_features,
        "qformer_config": {k: getattr(cfg, k) for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                                        "max_position_embeddings", "encoder_width", "cross_attention_freq")},
        "vision_config": {"image_size": image_size, "hidden_size": model.visual_encoder.num_features},
        "text_config": {"max_position_embeddings": cfg.max_position_embeddings},
        "exported_by": source,
    })
    return finish_folder(
        folder, image_size=image_size, tokenizer=model.tokenizer, max_length=model.max_txt_len, user_images=user_images,
        drawn_images=drawn_images, source=source, outputs=lambda pixels: {"texts": texts, **blip2_reference(model, pixels, texts)},
        self_check=None if check is None else lambda ref: check_itm_folder(folder, ref, check["cmd"], check["tolerance"]))
