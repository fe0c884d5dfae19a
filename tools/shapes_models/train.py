"""Training loops and test-split measurements for the shapes demo models."""
from __future__ import annotations

import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import data, nets, reuse, targets
from . import tokenizer as tok


def log(msg: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def pixels(split: data.Split, idx) -> torch.Tensor:
    return torch.from_numpy(data.normalise(split.images[idx]))


def text_batch(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = tok.batch(texts)
    return torch.tensor(ids, dtype=torch.int64), torch.tensor(mask, dtype=torch.int64)


def length_chunks(texts: list[str], chunk: int = 64) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Texts sorted by token count and cut into chunks, each padded only to its own longest:
    `(positions in texts, input_ids, attention_mask)`. Saves the compute that padding to the longest text of
    a whole batch would waste (shapes captions run from 6 to 26 tokens)."""
    encoded = [tok.encode(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    out = []
    for s in range(0, len(order), chunk):
        part = order[s:s + chunk]
        width = max(len(encoded[i]) for i in part)
        ids = [encoded[i] + [tok.PAD_ID] * (width - len(encoded[i])) for i in part]
        mask = [[1] * len(encoded[i]) + [0] * (width - len(encoded[i])) for i in part]
        out.append((torch.tensor(part), torch.tensor(ids, dtype=torch.int64), torch.tensor(mask, dtype=torch.int64)))
    return out


def schedule(opt: torch.optim.Optimizer, base_lr: float, step: int, total: int, warmup: int) -> None:
    lr = base_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))
    for g in opt.param_groups:
        g['lr'] = lr


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': other, 'weight_decay': 0.0}], lr=lr)


# ---- shared vision trunk ----------------------------------------------------------------------------

def pretrain_trunk(train: data.Split, epochs: int, batch: int = 128, lr: float = 3e-3,
                   seed: int = 0) -> tuple[nets.VisionTrunk, nets.DenseHead]:
    """The shared CNN trunk, trained alone on the boxes: per 8 x 8 grid cell, the colour-shape pair under it
    (or background) and its size. Object cells weigh 5 times a background cell, so the few cells that
    carry an object are not drowned out."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    trunk, head = nets.VisionTrunk(), nets.DenseHead()
    opt = make_optimizer([*trunk.parameters(), *head.parameters()], lr)
    dense = [data.dense_targets(o, 128) for o in train.objects]
    dense_cls = torch.from_numpy(np.stack([d[0] for d in dense]))
    dense_size = torch.from_numpy(np.stack([d[1] for d in dense]))
    background = len(data.COLORS) * len(data.SHAPES)
    n = len(train.keys)
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    step = 0
    start = time.time()
    trunk.train()
    for epoch in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        loss_sum = 0.0
        for s in range(steps_per_epoch):
            idx = np.array(order[s * batch:(s + 1) * batch])
            cls_logits, size_logits = head(trunk(pixels(train, idx)))
            target = dense_cls[idx]
            weight = torch.where(target == background, 1.0, 5.0)
            loss = (F.cross_entropy(cls_logits, target, reduction='none') * weight).sum() / weight.sum()
            loss = loss + 0.5 * F.cross_entropy(size_logits, dense_size[idx], ignore_index=-1)
            schedule(opt, lr, step, total, warmup=30)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item()
        log(f'trunk epoch {epoch + 1}/{epochs}: loss {loss_sum / steps_per_epoch:.4f} ({time.time() - start:.0f} s)')
    trunk.eval()
    head.eval()
    for p in [*trunk.parameters(), *head.parameters()]:
        p.requires_grad_(False)
    return trunk, head


@torch.no_grad()
def eval_trunk(trunk: nets.VisionTrunk, head: nets.DenseHead, test: data.Split) -> dict:
    """How well the frozen trunk knows each test object: the dense head's answer at the cell holding the
    object's box centre (colour-shape pair; shape alone; size), by object size."""
    cls, size = head(trunk_features(trunk, test))
    cls, size = cls.argmax(1).numpy(), size.argmax(1).numpy()
    counts: dict[str, list[int]] = {}
    cell = 128 / data.GRID
    for i, objects in enumerate(test.objects):
        for o in objects:
            x1, y1, x2, y2 = o['box']
            gx, gy = min(data.GRID - 1, int((x1 + x2) / 2 / cell)), min(data.GRID - 1, int((y1 + y2) / 2 / cell))
            want, got = data.pair_index(o['color'], o['shape']), int(cls[i, gy, gx])
            c = counts.setdefault(o['size'], [0, 0, 0, 0])
            c[0] += 1
            c[1] += got == want
            c[2] += got < 30 and got % len(data.SHAPES) == want % len(data.SHAPES)
            c[3] += int(size[i, gy, gx]) == data.SIZES.index(o['size'])
    return {f'{k}_objects': {'count': n, 'pair_accuracy': a / n, 'shape_accuracy': b / n, 'size_accuracy': z / n}
            for k, (n, a, b, z) in sorted(counts.items())}


@torch.no_grad()
def trunk_features(trunk: nets.VisionTrunk, split: data.Split, batch: int = 250) -> torch.Tensor:
    trunk.eval()
    return torch.cat([trunk(pixels(split, np.arange(s, min(s + batch, len(split.keys)))))
                      for s in range(0, len(split.keys), batch)])


def frozen_copy(trunk: nets.VisionTrunk, into: nets.VisionTrunk) -> None:
    into.load_state_dict(trunk.state_dict())
    into.eval()
    for p in into.parameters():
        p.requires_grad_(False)


# ---- ITC -----------------------------------------------------------------------------------------------

HARD_KINDS = ['colour', 'shape', 'size', 'exchange', 'relation']


def hard_negative(rng: random.Random, split: data.Split, i: int) -> str:
    for _ in range(8):
        text = data.negative(rng, split, i, rng.choice(HARD_KINDS))
        if text is not None:
            return text
    return data.negative(rng, split, i, 'mismatch') or ''


def train_clip(train: data.Split, trunk: nets.VisionTrunk, feats: torch.Tensor, epochs: int, batch: int = 128,
               lr: float = 2e-3, seed: int = 0) -> nets.ClipModel:
    """Contrastive loss over the batch (both directions) with one attribute-swap caption per image as an
    extra, hard negative text; captions whose objects equal another image's are not counted as negatives
    for it. The trunk is frozen (its features `feats` are computed once)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = nets.ClipModel(tok.VOCAB_SIZE, tok.MAX_LENGTH)
    frozen_copy(trunk, model.trunk)
    opt = make_optimizer(model.parameters(), lr)
    n = len(train.keys)
    sigs = [data.signature(o) for o in train.objects]
    sig_id = {s: k for k, s in enumerate(sorted(set(sigs)))}
    image_sig = np.array([sig_id[s] for s in sigs])
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    step = 0
    model.train()
    model.trunk.eval()
    start = time.time()
    for epoch in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        sums = np.zeros(2)
        for s in range(steps_per_epoch):
            idx = np.array(order[s * batch:(s + 1) * batch])
            pos = [rng.choice(train.captions[i]) for i in idx]
            neg = [hard_negative(rng, train, i) for i in idx]
            img = F.normalize(model.image_head(feats[idx]), dim=-1)
            parts = length_chunks(pos + neg)
            where = torch.cat([p for p, _, _ in parts])
            txt = torch.cat([model.text(ids, mask) for _, ids, mask in parts])
            txt = F.normalize(txt[torch.argsort(where)], dim=-1)
            scale = model.logit_scale.exp().clamp(max=100)
            logits = scale * img @ txt.t()  # [B, 2B]
            # Positives of other images with the same objects are not negatives; nor are swaps that happen
            # to name exactly another image's objects.
            neg_sig = np.array([sig_id.get(data.text_signature(t), -1) for t in neg])
            same = np.concatenate([image_sig[idx][:, None] == image_sig[idx][None, :],
                                   image_sig[idx][:, None] == neg_sig[None, :]], axis=1)
            np.fill_diagonal(same[:, :batch], False)
            for r in range(batch):  # a swap is always a negative for its own image
                same[r, batch + r] = False
            blocked = torch.from_numpy(same)
            labels = torch.arange(batch)
            i2t = F.cross_entropy(logits.masked_fill(blocked, -1e4), labels)
            t2i = F.cross_entropy(logits[:, :batch].t().masked_fill(blocked[:, :batch].t(), -1e4), labels)
            loss = (i2t + t2i) / 2
            schedule(opt, lr, step, total, warmup=50)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            sums += [i2t.item(), t2i.item()]
        sums /= steps_per_epoch
        log(f'clip epoch {epoch + 1}/{epochs}: i2t {sums[0]:.3f} t2i {sums[1]:.3f} '
            f'scale {model.logit_scale.exp().item():.1f} ({time.time() - start:.0f} s)')
    model.eval()
    return model


@torch.no_grad()
def clip_embed_images(model: nets.ClipModel, split: data.Split, batch: int = 250) -> torch.Tensor:
    return torch.cat([model.encode_image(pixels(split, np.arange(s, min(s + batch, len(split.keys)))))
                      for s in range(0, len(split.keys), batch)])


@torch.no_grad()
def clip_embed_texts(model: nets.ClipModel, texts: list[str], batch: int = 500) -> torch.Tensor:
    out = []
    for s in range(0, len(texts), batch):
        ids, mask = text_batch(texts[s:s + batch])
        out.append(model.text(ids, mask))
    return torch.cat(out)


@torch.no_grad()
def eval_clip(model: nets.ClipModel, test: data.Split) -> dict:
    """Image-to-text recall@1 among 100 candidates: the test images in blocks of 100, each image against
    the first ground-truth caption of every image in its block. Also text-to-image, and the mean cosine of
    true, swapped and mismatched captions."""
    img = F.normalize(clip_embed_images(model, test), dim=-1)
    n = (len(test.keys) // 100) * 100
    hits_i2t = hits_t2i = hits_i2t_any = 0
    for c in range(5):
        txt = F.normalize(clip_embed_texts(model, [caps[c] for caps in test.captions]), dim=-1)
        for s in range(0, n, 100):
            sim = img[s:s + 100] @ txt[s:s + 100].t()
            hits_i2t += int((sim.argmax(1) == torch.arange(100)).sum())
            hits_t2i += int((sim.argmax(0) == torch.arange(100)).sum())
            # Lenient variant: the top caption names exactly this image's objects.
            top = sim.argmax(1)
            hits_i2t_any += sum(
                data.signature(test.objects[s + int(top[r])]) == data.signature(test.objects[s + r]) for r in range(100))
    # Distinct distractors: image i against its own caption c and caption c of the next 99 images (cyclic)
    # whose objects differ from image i's, so that every distractor is false for the image.
    sigs = [data.signature(o) for o in test.objects]
    hits_distinct = 0
    for c in range(5):
        txt = F.normalize(clip_embed_texts(model, [caps[c] for caps in test.captions]), dim=-1)
        sim = img @ txt.t()
        for i in range(len(sigs)):
            others = [j % len(sigs) for j in range(i + 1, i + len(sigs)) if sigs[j % len(sigs)] != sigs[i]][:99]
            hits_distinct += bool(sim[i, i] > sim[i, others].max())
    rng = random.Random(7)
    true_t, swap_t, mis_t = [], [], []
    for i in range(len(test.keys)):
        true_t.append(test.captions[i][0])
        swap_t.append(data.negative(rng, test, i, rng.choice(['colour', 'shape'])) or '')
        mis_t.append(data.negative(rng, test, i, 'mismatch') or '')
    cos = {}
    for name, texts in [('true', true_t), ('swap', swap_t), ('mismatch', mis_t)]:
        t = F.normalize(clip_embed_texts(model, texts), dim=-1)
        cos[name] = (img * t).sum(1)
    swap_auc = auc(torch.cat([cos['true'], cos['swap']]).numpy(), np.r_[np.ones(len(true_t)), np.zeros(len(swap_t))])
    return {
        'i2t_recall_at_1_of_100': hits_i2t / (5 * n),
        'i2t_recall_at_1_of_100_same_objects': hits_i2t_any / (5 * n),
        'i2t_recall_at_1_of_100_distinct_distractors': hits_distinct / (5 * len(sigs)),
        't2i_recall_at_1_of_100': hits_t2i / (5 * n),
        'mean_cosine_true': float(cos['true'].mean()),
        'mean_cosine_swap': float(cos['swap'].mean()),
        'mean_cosine_mismatch': float(cos['mismatch'].mean()),
        'auc_true_vs_swap': swap_auc,
    }


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula (ties get average ranks)."""
    order = np.argsort(scores, kind='mergesort')
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---- ITM -----------------------------------------------------------------------------------------------

# Stage 1 ("objects", the first shapes-itm's recipe) and stage 2 ("relations") negatives. kind: weight
ITM_OBJECT_NEGATIVES = {
    'mismatch': 0.1, 'colour': 0.2, 'shape': 0.2, 'size': 0.1, 'exchange': 0.1, 'relation': 0.25,
    'boilerplate': 0.03, 'empty': 0.02,
}
ITM_NEGATIVES = {
    'mismatch': 0.1, 'colour': 0.15, 'shape': 0.15, 'size': 0.1, 'exchange': 0.1, 'relation': 0.25, 'order': 0.15,
    'duplicate': 0.05, 'boilerplate': 0.03, 'empty': 0.02,
}
# Weights of the training-only losses (targets.py) beside the match loss in stage 2 (stage 1: presence only).
ITM_AUX_WEIGHTS = {'presence': 1.0, 'centre': targets.COORDINATE_WEIGHTS['centre'], 'holds': 1.0,
                   'route': targets.COORDINATE_WEIGHTS['route']}
ITM_OBJECT_STAGE_LAYERS = 2


def itm_negative(rng: random.Random, split: data.Split, i: int, negatives: dict[str, float]) -> str:
    kinds, weights = zip(*negatives.items())
    for _ in range(8):
        text = data.negative(rng, split, i, rng.choices(kinds, weights)[0])
        if text is not None:
            return text
    return data.negative(rng, split, i, 'mismatch') or ''


def train_itm(train: data.Split, trunk: nets.VisionTrunk, feats: torch.Tensor, epochs: int, object_epochs: int = 6,
              batch: int = 64, lr: float = 2e-3, seed: int = 1, layers: int = 3,
              init: dict[str, torch.Tensor] | None = None) -> nets.ItmModel:
    """Two stages, each binary match / no-match over pairs, true and false weighted equally, per image 1 true
    caption and 3 negatives, on cached trunk features (the trunk is frozen).

    1. Objects (`object_epochs`, skipped when `init` gives the weights to start from): a 2-block model learns
       which objects a caption names, with negatives from ITM_OBJECT_NEGATIVES and a training-only head that
       says, at each object phrase, whether the object is in the image.
    2. Relations (`epochs`): the model grows to `layers` blocks (the new ones start as identities) and
       learns where things are and whether relations hold: ITM_NEGATIVES adds objects trading places around
       a relation, and training-only heads learn, per token, each named object's position and each
       relation's verdict, subject and object positions (targets.py).
    Trained from scratch with every loss at once, the ITM learned relations but lost colour (a colour swap
    scored as the true caption); learning objects first keeps them (issue 17)."""
    if init is None:
        log(f'itm stage 1 (objects): {object_epochs} epochs, {ITM_OBJECT_STAGE_LAYERS} blocks')
        first = nets.ItmModel(tok.VOCAB_SIZE, tok.MAX_LENGTH, layers=ITM_OBJECT_STAGE_LAYERS)
        _train_itm_stage(first, train, trunk, feats, object_epochs, batch, lr, seed, ITM_OBJECT_NEGATIVES,
                         {'presence': 1.0})
        init = {k: v for k, v in first.state_dict().items() if not k.startswith('trunk.')}
    model = nets.ItmModel(tok.VOCAB_SIZE, tok.MAX_LENGTH, layers=layers)
    log(f'itm stage 2 (relations): {epochs} epochs, {layers} blocks; fresh: '
        f'{", ".join(reuse.warm_start(model, init)) or "nothing"}')
    _train_itm_stage(model, train, trunk, feats, epochs, batch, lr, seed, ITM_NEGATIVES, ITM_AUX_WEIGHTS)
    return model


def _train_itm_stage(model: nets.ItmModel, train: data.Split, trunk: nets.VisionTrunk, feats: torch.Tensor,
                     epochs: int, batch: int, lr: float, seed: int, negatives: dict[str, float],
                     aux_weights: dict[str, float], per_image: int = 4) -> None:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    frozen_copy(trunk, model.trunk)
    opt = make_optimizer(model.parameters(), lr)
    n = len(train.keys)
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    step = 0
    model.train()
    model.trunk.eval()
    # Per TokenTargets field: the head that predicts it and its loss.
    heads = {'presence': (model.phrase_head, targets.class_loss), 'centre': (model.centre_head, targets.coordinate_loss),
             'holds': (model.holds_head, targets.class_loss), 'route': (model.route_head, targets.coordinate_loss)}
    start = time.time()
    for epoch in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        sums = {'loss': 0.0, 'acc': 0.0, **{k: 0.0 for k in aux_weights}}
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            texts, labels, rows = [], [], []
            for r, i in enumerate(idx):
                for k in range(per_image):
                    match = k == 0
                    texts.append(rng.choice(train.captions[i]) if match else itm_negative(rng, train, i, negatives))
                    labels.append(1 if match else 0)
                    rows.append(r)
            image = model.image(feats[idx])
            rows_t, y = torch.tensor(rows), torch.tensor(labels)
            # Equal total weight for true and false captions whatever their counts.
            weight = torch.where(y == 1, 0.5 * len(y) / max(1, int(y.sum())), 0.5 * len(y) / max(1, int((1 - y).sum())))
            loss = torch.zeros(())
            correct = 0
            aux = {k: [torch.zeros(()), 0] for k in aux_weights}
            for part, ids, mask in length_chunks(texts):
                states = model.fuse_states(image, ids, mask, rows_t[part])
                logits = model.head(states[:, 0])
                loss = loss + (F.cross_entropy(logits, y[part], reduction='none') * weight[part]).sum()
                correct += int((logits.argmax(1) == y[part]).sum())
                want = targets.token_targets([texts[k] for k in part.tolist()],
                                             [train.objects[idx[rows[k]]] for k in part.tolist()], ids.shape[1])
                for key in aux_weights:
                    head, loss_fn = heads[key]
                    value, count = loss_fn(head(states), getattr(want, key))
                    aux[key][0] = aux[key][0] + value
                    aux[key][1] += count
            aux_mean = {k: v / max(1, c) for k, (v, c) in aux.items()}
            loss = loss / len(texts) + sum(aux_weights[k] * v for k, v in aux_mean.items())
            schedule(opt, lr, step, total, warmup=100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            sums['loss'] += loss.item()
            sums['acc'] += correct / len(texts)
            for k, v in aux_mean.items():
                sums[k] += float(v)
        log(f'itm epoch {epoch + 1}/{epochs}: ' + ' '.join(f'{k} {v / steps_per_epoch:.4f}' for k, v in sums.items())
            + f' ({time.time() - start:.0f} s)')
    model.eval()


@torch.no_grad()
def itm_scores(model: nets.ItmModel, feats: torch.Tensor, rows: list[int], texts: list[str], batch: int = 500):
    out = []
    for s in range(0, len(texts), batch):
        r = torch.tensor(rows[s:s + batch])
        ids, mask = text_batch(texts[s:s + batch])
        out.append(torch.softmax(model.fuse(model.image(feats[r]), ids, mask), dim=-1)[:, 1])
    return torch.cat(out).numpy()


@torch.no_grad()
def eval_itm(model: nets.ItmModel, test: data.Split) -> dict:
    """ROC-AUC of p(match): every ground-truth caption of every test image (positives) against, per image,
    one negative of each kind (our own swaps and mismatches), and separately the test split's own noisy web
    captions (built by the dataset generator with --noise 1: mismatch, swap, boilerplate, empty)."""
    feats = trunk_features(model.trunk, test)
    rng = random.Random(11)
    pos_rows, pos_texts = [], []
    for i, caps in enumerate(test.captions):
        pos_rows += [i] * len(caps)
        pos_texts += caps
    p_pos = itm_scores(model, feats, pos_rows, pos_texts)
    result = {'positives': len(pos_texts), 'mean_p_true': float(p_pos.mean()),
              'accuracy_true_at_0.5': float((p_pos >= 0.5).mean())}
    negatives: dict[str, np.ndarray] = {}
    per_kind = {}
    for kind in ['mismatch', 'colour', 'shape', 'size', 'exchange', 'relation', 'order', 'duplicate', 'boilerplate', 'empty']:
        rows, texts = [], []
        for i in range(len(test.keys)):
            t = data.negative(rng, test, i, kind)
            if t is not None:
                rows.append(i)
                texts.append(t)
        p = itm_scores(model, feats, rows, texts)
        negatives[kind] = p
        per_kind[kind] = {'count': len(texts), 'auc': auc(np.r_[p_pos, p], np.r_[np.ones(len(p_pos)), np.zeros(len(p))]),
                          'rejected_at_0.5': float((p < 0.5).mean())}
    # Relations: the true captions that state one against the relation and order swaps (the same sentence
    # forms, so the score cannot tell them apart by length or template).
    stating = np.array([data.relations_correct(t, test.objects[r]) is not None for r, t in zip(pos_rows, pos_texts)])
    p_rel = p_pos[stating]
    result['relation_positives'] = int(stating.sum())
    for kind in ('relation', 'order'):
        p = negatives[kind]
        per_kind[kind]['auc_vs_true_with_relation'] = auc(np.r_[p_rel, p], np.r_[np.ones(len(p_rel)), np.zeros(len(p))])
    result['accuracy_true_with_relation_at_0.5'] = float((p_rel >= 0.5).mean())
    neg = np.concatenate(list(negatives.values()))
    result['auc_all_negatives'] = auc(np.r_[p_pos, neg], np.r_[np.ones(len(p_pos)), np.zeros(len(neg))])
    core = np.concatenate([negatives['mismatch'], negatives['colour'], negatives['shape']])
    result['auc_mismatch_colour_shape'] = auc(np.r_[p_pos, core], np.r_[np.ones(len(p_pos)), np.zeros(len(core))])
    result['per_kind'] = per_kind
    web_rows = [i for i, k in enumerate(test.noise) if k is not None]
    web = itm_scores(model, feats, web_rows, [test.web_captions[i] for i in web_rows])
    web_kinds = np.array([test.noise[i] for i in web_rows])
    web_result = {}
    for kind in ['mismatch', 'swap', 'relation', 'boilerplate', 'empty']:
        p = web[web_kinds == kind]
        if len(p):
            web_result[kind] = {'count': int(len(p)),
                                'auc': auc(np.r_[p_pos, p], np.r_[np.ones(len(p_pos)), np.zeros(len(p))]),
                                'auc_vs_true_with_relation': auc(np.r_[p_rel, p], np.r_[np.ones(len(p_rel)), np.zeros(len(p))]),
                                'rejected_at_0.5': float((p < 0.5).mean())}
    ms = web[np.isin(web_kinds, ['mismatch', 'swap'])]
    web_result['auc_mismatch_and_swap'] = auc(np.r_[p_pos, ms], np.r_[np.ones(len(p_pos)), np.zeros(len(ms))])
    result['dataset_noise'] = web_result
    return result


# ---- captioner -----------------------------------------------------------------------------------------

RELATION_TOKENS = torch.tensor([tok.TOKEN_ID[w] for w in ('left', 'right', 'above', 'below', 'next', 'to')])


def train_captioner(train: data.Split, trunk: nets.VisionTrunk, feats: torch.Tensor, epochs: int, batch: int = 64,
                    lr: float = 2e-3, seed: int = 2, layers: int = 2, relation_weight: float = 1.0,
                    position_weight: float = 1.0, init: dict[str, torch.Tensor] | None = None) -> nets.Captioner:
    """Teacher forcing on all five captions of each image: [BOS] words [EOS], loss on every next token;
    the words that choose a spatial relation ("to"/"above"/"below"/"next", then "left"/"right") weigh
    `relation_weight` times the others, as they are few and decide whether a caption is right. Training-only
    heads learn where each object it has named is and, at a relation, where its subject and the object it is
    about to name are (targets.py; `position_weight` times their weighted squared errors)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = nets.Captioner(tok.VOCAB_SIZE, tok.MAX_LENGTH, layers=layers)
    if init is not None:
        log(f'captioner: warm start, fresh: {", ".join(reuse.warm_start(model, init)) or "nothing"}')
    frozen_copy(trunk, model.trunk)
    opt = make_optimizer(model.parameters(), lr)
    n = len(train.keys)
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    step = 0
    model.train()
    model.trunk.eval()
    start = time.time()
    for epoch in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        loss_sum = position_sum = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            texts = [c for i in idx for c in train.captions[i]]
            rows = torch.tensor([r for r, i in enumerate(idx) for _ in train.captions[i]])
            image = model.image(feats[idx])
            loss = torch.zeros(())
            count = 0
            position = torch.zeros(())
            positions = 0
            for part, ids, mask in length_chunks(texts, 80):
                states, _ = model.decode_states(ids[:, :-1], image, None, rows[part])
                logits = model.lm_head(states)
                target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
                weight = torch.where(torch.isin(target, RELATION_TOKENS), relation_weight, 1.0)
                token_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100, reduction='none')
                loss = loss + (token_loss * weight.reshape(-1)).sum()
                count += int((target != -100).sum())
                # State t has read token t (the input is the caption without its last token).
                want = targets.token_targets([texts[k] for k in part.tolist()],
                                             [train.objects[idx[int(rows[k])]] for k in part.tolist()], ids.shape[1] - 1)
                centre, centres = targets.coordinate_loss(model.centre_head(states), want.centre)
                route, _ = targets.coordinate_loss(model.route_head(states), want.route)
                position = position + targets.COORDINATE_WEIGHTS['centre'] * centre + targets.COORDINATE_WEIGHTS['route'] * route
                positions += centres
            position = position / max(1, positions)
            loss = loss / count + position_weight * position
            schedule(opt, lr, step, total, warmup=100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item()
            position_sum += float(position)
        log(f'captioner epoch {epoch + 1}/{epochs}: loss {loss_sum / steps_per_epoch:.4f} '
            f'position {position_sum / steps_per_epoch:.4f} ({time.time() - start:.0f} s)')
    model.eval()
    return model


def _decode(model: nets.Captioner, enc: torch.Tensor, steps: int, choose) -> list[list[int]]:
    """Decoding with the key/value cache, all rows in lockstep: `choose(last_logits, ids_so_far, step)` gives
    each row's next token; ids start with BOS and end with EOS (if produced)."""
    b = enc.shape[0]
    ids = torch.full((b, 1), tok.BOS_ID, dtype=torch.int64)
    out = ids.clone()
    past = [(torch.zeros(b, model.heads, 0, model.dim // model.heads),) * 2 for _ in range(model.layers)]
    done = torch.zeros(b, dtype=torch.bool)
    for step in range(steps):
        logits, past = model.decode(ids, enc, past)
        nxt = choose(logits[:, -1], out, step)
        nxt = torch.where(done, torch.full_like(nxt, tok.PAD_ID), nxt)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == tok.EOS_ID
        ids = nxt[:, None]
        if bool(done.all()):
            break
    return [[int(t) for t in row if t != tok.PAD_ID] for row in out]


@torch.no_grad()
def greedy(model: nets.Captioner, enc: torch.Tensor, max_length: int = tok.MAX_LENGTH) -> list[list[int]]:
    """Greedy decoding, at most `max_length` tokens with BOS."""
    return _decode(model, enc, max_length - 1, lambda logits, out, step: logits.argmax(-1))


@torch.no_grad()
def nucleus(model: nets.Captioner, enc: torch.Tensor, gen: torch.Generator, top_p: float = 0.9,
            repetition_penalty: float = 1.1, min_length: int = 3, max_length: int = 24) -> list[list[int]]:
    """Nucleus sampling as the demo recipe runs it (vlcurate's captioner: top-p 0.9, the CTRL repetition
    penalty over every token so far, the start token included, no EOS before `min_length` tokens)."""

    def choose(logits: torch.Tensor, out: torch.Tensor, step: int) -> torch.Tensor:
        logits = logits.clone()
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, out, True)
        penalised = torch.where(logits > 0, logits / repetition_penalty, logits * repetition_penalty)
        logits = torch.where(seen, penalised, logits)
        if step < min_length:
            logits[:, tok.EOS_ID] = -float('inf')
        probs = torch.softmax(logits, -1)
        sorted_p, order = probs.sort(-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p
        sorted_p = torch.where(before < top_p, sorted_p, torch.zeros_like(sorted_p))
        pick = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1, generator=gen)[:, 0]
        return order.gather(1, pick[:, None])[:, 0]

    return _decode(model, enc, max_length, choose)


def relation_accuracy(captions: list[str], objects: list[list[dict]]) -> dict:
    """Of the captions that state a spatial relation, the share that state every one right (and name the
    right objects), judged as datasets/shapes/relation-judge.ts judges them."""
    judged = [data.relations_correct(c, o) for c, o in zip(captions, objects)]
    stating = [j for j in judged if j is not None]
    return {'stating_a_relation': len(stating), 'correct': sum(stating),
            'accuracy': sum(stating) / len(stating) if stating else 0.0}


def sample_captions(model: nets.Captioner, feats: torch.Tensor, samples: int, seed: int = 0) -> list[list[str]]:
    """`samples` nucleus captions per image."""
    gen = torch.Generator().manual_seed(seed)
    out: list[list[str]] = [[] for _ in range(feats.shape[0])]
    for s in range(0, feats.shape[0], 250):
        enc = model.image(feats[s:s + 250])
        for _ in range(samples):
            for r, ids in enumerate(nucleus(model, enc, gen)):
                out[s + r].append(tok.decode(ids))
    return out


@torch.no_grad()
def eval_captioner(model: nets.Captioner, test: data.Split) -> dict:
    """Share of greedy captions that name exactly the image's objects: the set of (colour, shape) pairs
    parsed from the caption equals the ground truth's, each named once. Also with sizes; fully correct
    (one of the captions the dataset's templates can write for the scene, so relations are right too); and
    word for word one of the image's five references."""
    feats = trunk_features(model.trunk, test)
    captions = []
    for s in range(0, len(test.keys), 250):
        captions += [tok.decode(ids) for ids in greedy(model, model.image(feats[s:s + 250]))]
    exact = exact_sizes = verbatim = correct = 0
    for caption, objects, refs in zip(captions, test.objects, test.captions):
        correct += caption in data.true_captions(objects)
        named = data.parse_objects(caption)
        truth = sorted((o['color'], o['shape']) for o in objects)
        exact += sorted((c, s) for _, c, s in named) == truth
        exact_sizes += sorted(named) == sorted((o['size'], o['color'], o['shape']) for o in objects)
        verbatim += caption in refs
    n = len(captions)
    sampled = sample_captions(model, feats, 3)
    return {'objects_exact': exact / n, 'objects_exact_with_size': exact_sizes / n, 'fully_correct': correct / n,
            'verbatim_reference': verbatim / n, 'relations_greedy': relation_accuracy(captions, test.objects),
            'relations_nucleus': relation_accuracy([c for caps in sampled for c in caps],
                                                   [o for o, caps in zip(test.objects, sampled) for _ in caps]),
            'examples': captions[:5]}
