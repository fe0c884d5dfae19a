"""PyTorch reference outputs, computed through salesforce/BLIP's own model code:

- ITC: `BLIP_ITM.forward(image, texts, match_head='itc')` (blip_itm.py), the cosine matrix;
- ITM: the text encoder over the image states with `[ENC]` first and `itm_head` on its first state, as
  `evaluation()` in train_retrieval.py scores retrieval candidates; and, for comparison only,
  `BLIP_ITM.forward(..., match_head='itm')`, which keeps `[CLS]` (BLIP's demo path);
- captions: greedy decoding over `text_decoder(...)` run on the whole sequence every step (no cache), from
  the prefix `BLIP_Decoder.generate` builds: `[DEC]` + the prompt's tokens (its `[SEP]` dropped).
Texts are tokenized as BLIP does for retrieval: truncated to 35 tokens, padded to 35.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

TEXT_LENGTH = 35  # blip_itm.py / blip_retrieval.py: max_length=35


@torch.no_grad()
def itm_reference(model: Any, pixels: torch.Tensor, texts: list[str]) -> dict[str, Any]:
    model.eval()
    tok = model.tokenizer
    cosine = model(pixels, texts, match_head="itc")  # [images, texts]
    text = tok(texts, padding="max_length", truncation=True, max_length=TEXT_LENGTH, return_tensors="pt")
    enc_ids = text.input_ids.clone()
    enc_ids[:, 0] = tok.enc_token_id
    states = model.visual_encoder(pixels)
    logits, logits_cls = [], []
    for i in range(pixels.shape[0]):
        image = states[i : i + 1].repeat(len(texts), 1, 1)
        atts = torch.ones(image.shape[:-1], dtype=torch.long)
        out = model.text_encoder(enc_ids, attention_mask=text.attention_mask, encoder_hidden_states=image,
                                 encoder_attention_mask=atts, return_dict=True)
        logits.append(model.itm_head(out.last_hidden_state[:, 0, :]))
        logits_cls.append(model(pixels[i : i + 1].repeat(len(texts), 1, 1, 1), texts, match_head="itm"))
    itm = torch.stack(logits)  # [images, texts, 2]
    itm_cls = torch.stack(logits_cls)
    ids = [[int(t) for t, m in zip(row, mask) if m] for row, mask in zip(text.input_ids, text.attention_mask)]
    return {
        "token_ids": ids,
        "itc": {"cosine": cosine.tolist()},
        "itm": {
            "first_token": "[ENC]",
            "logits": itm.tolist(),
            "p_match": F.softmax(itm, dim=-1)[..., 1].tolist(),
            "p_match_with_cls_first": F.softmax(itm_cls, dim=-1)[..., 1].tolist(),
        },
    }


def caption_prefix(tokenizer: Any, prompt: str) -> list[int]:
    """BLIP_Decoder.generate's decoder input: the prompt tokenized, [CLS] replaced by [DEC], [SEP] dropped."""
    ids = tokenizer(prompt).input_ids
    return [tokenizer.bos_token_id, *ids[1:-1]]


@torch.no_grad()
def greedy_captions(model: Any, pixels: torch.Tensor, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    model.eval()
    tok = model.tokenizer
    prefix = caption_prefix(tok, prompt)
    states = model.visual_encoder(pixels)
    generated, captions, margins = [], [], []
    for i in range(pixels.shape[0]):
        image = states[i : i + 1]
        atts = torch.ones(image.shape[:-1], dtype=torch.long)
        seq = list(prefix)
        new: list[int] = []
        for _ in range(max_new_tokens):
            ids = torch.tensor([seq])
            logits = model.text_decoder(ids, attention_mask=torch.ones_like(ids), encoder_hidden_states=image,
                                        encoder_attention_mask=atts, return_dict=True).logits[0, -1]
            top2 = torch.topk(logits, 2).values
            margins.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(logits))
            new.append(nxt)
            seq.append(nxt)
            if nxt == tok.sep_token_id:
                break
        generated.append(new)
        # The generated tokens' text (BLIP_Decoder.generate instead cuts len(prompt) characters off the
        # decoded whole, which eats the first character of a caption starting with punctuation).
        captions.append(tok.decode(new, skip_special_tokens=True))
    return {
        "prompt": prompt,
        "prefix_ids": prefix,
        "max_new_tokens": max_new_tokens,
        "eos_token_id": tok.sep_token_id,
        "greedy": {"token_ids": generated, "captions": captions, "min_top2_margin": min(margins)},
    }
