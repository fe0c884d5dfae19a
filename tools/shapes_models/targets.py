"""Per-token training targets read from the boxes, for the ITM's and the captioner's training-only heads.

Token t of a caption is the tokenizer's word t - 1 (`<|startoftext|>` is token 0). The targets teach the two
steps a spatial relation needs, which the match / next-word losses alone taught too slowly or not at all
(issue 17: the first ITM scored "A above B" and "B above A" alike):
- at the shape word of every "<size> <colour> <shape>" phrase: is that object in the image (`presence`), and
  where its box centre is (`centre`, x and y in 0..1) when it is;
- at the last word of every relation phrase: whether the relation holds by the generator's rule (`holds`),
  and where its subject and its object are (`route`: subject x, y, object x, y), when both are in the image.
Elsewhere: -100 (labels) or NaN (coordinates).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import data
from . import tokenizer as tok


# Loss weights of the coordinate targets: coordinates are in 0..1, so their squared errors are small beside a
# cross-entropy. The ITM and the captioner use the same ones.
COORDINATE_WEIGHTS = {'centre': 20.0, 'route': 10.0}


@dataclass
class TokenTargets:
    presence: torch.Tensor  # int64 [B,T]
    centre: torch.Tensor  # float32 [B,T,2]
    holds: torch.Tensor  # int64 [B,T]
    route: torch.Tensor  # float32 [B,T,4]


def centre(o: dict, side: int = 128) -> list[float]:
    x1, y1, x2, y2 = o['box']
    return [(x1 + x2) / (2 * side), (y1 + y2) / (2 * side)]


def token_targets(texts: list[str], objects: list[list[dict]], width: int) -> TokenTargets:
    """Targets for `texts` (row b describes a claim about the scene `objects[b]`), `width` tokens each."""
    n = len(texts)
    out = TokenTargets(torch.full((n, width), -100, dtype=torch.int64), torch.full((n, width, 2), float('nan')),
                       torch.full((n, width), -100, dtype=torch.int64), torch.full((n, width, 4), float('nan')))
    for b, (text, scene) in enumerate(zip(texts, objects)):
        words = tok.words_of(text)[:tok.MAX_LENGTH - 2]
        for i in range(2, len(words)):
            t = i + 1
            if t >= width or not (words[i] in data.SHAPES and words[i - 1] in data.COLORS and words[i - 2] in data.SIZES):
                continue
            named = (words[i - 2], words[i - 1], words[i])
            hit = next((o for o in scene if (o['size'], o['color'], o['shape']) == named), None)
            out.presence[b, t] = int(hit is not None)
            if hit is not None:
                out.centre[b, t] = torch.tensor(centre(hit))
        for i, ok in data.stated_relations(words, scene):
            if i + 1 < width:
                out.holds[b, i + 1] = int(ok)
        for i, _, subject, obj in data.relation_parts(words, scene):
            if i + 1 < width and subject >= 0 and obj >= 0:
                out.route[b, i + 1] = torch.tensor(centre(scene[subject]) + centre(scene[obj]))
    return out


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the labelled tokens, and their count."""
    return (torch.nn.functional.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1), ignore_index=-100, reduction='sum'),
            int((labels != -100).sum()))


def coordinate_loss(predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed squared error of sigmoid(predicted) over the tokens with coordinates, and their count."""
    ok = ~torch.isnan(target[..., 0])
    if not bool(ok.any()):
        return torch.zeros(()), 0
    return ((torch.sigmoid(predicted[ok]) - target[ok]) ** 2).sum(), int(ok.sum())
