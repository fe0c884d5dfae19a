"""Shapes data for training: generation through the vlcurate CLI, image loading, caption negatives."""
from __future__ import annotations

import json
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ['circle', 'square', 'triangle', 'star', 'hexagon']
COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange']
SIZES = ['small', 'large']
RELATION_SWAPS = {
    'to the left of': ['to the right of', 'above', 'below'],
    'to the right of': ['to the left of', 'above', 'below'],
    'above': ['below', 'to the left of', 'to the right of', 'next to'],
    'below': ['above', 'to the left of', 'to the right of', 'next to'],
    'next to': ['above', 'below'],
}
# Model input side. Images are rendered at 128 px and resized (bicubic) to this, as preprocessor_config says.
INPUT_SIZE = 64
# CLIP's normalisation constants; the three demo models share them.
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
# Dense auxiliary target grid of the vision trunk (8 x 8 cells of 8 px at 64 px input).
GRID = 8


@dataclass
class Split:
    keys: list[str]
    images: np.ndarray  # uint8 [N, 64, 64, 3]
    objects: list[list[dict]]
    captions: list[list[str]]
    web_captions: list[str]
    noise: list[str | None]


def generate(repo: Path, out: Path, split: str, count: int, noise: float) -> None:
    """Run `vlcurate datasets shapes` unless `out` already holds this exact request."""
    stamp = out / 'request.json'
    request = {'split': split, 'count': count, 'noise': noise}
    if stamp.exists() and json.loads(stamp.read_text()) == request:
        return
    cli = repo / 'dist' / 'src' / 'cli' / 'main.js'
    if not cli.exists():
        raise SystemExit(f'{cli} is missing: run `npx tsc -p tsconfig.build.json` in {repo} first')
    subprocess.run(
        ['node', str(cli), 'datasets', 'shapes', '--out', str(out), '--count', str(count), '--split', split,
         '--noise', str(noise)],
        check=True,
    )
    for cached in out.glob('pixels-*.npy'):
        cached.unlink()
    stamp.write_text(json.dumps(request))


def to_input(img: Image.Image) -> np.ndarray:
    """128 px RGB render -> 64 x 64 uint8 (resize shortest edge bicubic; the renders are square)."""
    img = img.convert('RGB')
    if img.size != (INPUT_SIZE, INPUT_SIZE):
        img = img.resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def load(folder: Path) -> Split:
    rows = [json.loads(line) for line in (folder / 'ground_truth.jsonl').read_text().splitlines() if line]
    cache = folder / f'pixels-{INPUT_SIZE}.npy'
    if cache.exists():
        images = np.load(cache)
    else:
        images = np.stack([to_input(Image.open(folder / 'coco' / 'images' / f"{r['key']}.jpg")) for r in rows])
        np.save(cache, images)
    return Split(
        keys=[r['key'] for r in rows],
        images=images,
        objects=[r['objects'] for r in rows],
        captions=[r['captions'] for r in rows],
        web_captions=[r['web_caption'] for r in rows],
        noise=[r['noise'] for r in rows],
    )


def normalise(images_u8: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW pixel_values, exactly as preprocessor_config.json describes."""
    x = images_u8.astype(np.float32) * np.float32(1 / 255)
    x = (x - np.asarray(IMAGE_MEAN, np.float32)) / np.asarray(IMAGE_STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def signature(objects: list[dict]) -> str:
    """Order-free description of a scene's objects; equal signatures may share captions."""
    return '|'.join(sorted(f"{o['size']} {o['color']} {o['shape']}" for o in objects))


def pair_index(color: str, shape: str) -> int:
    return COLORS.index(color) * len(SHAPES) + shape_index(shape)


def shape_index(shape: str) -> int:
    return SHAPES.index(shape)


def dense_targets(objects: list[dict], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of the 8 x 8 grid: colour-shape class (30 = background) and size (-1 where background).

    A cell takes the object whose box contains the cell centre; the cell holding an object's box centre
    always takes that object, so small objects are never missed.
    """
    cls = np.full((GRID, GRID), len(COLORS) * len(SHAPES), np.int64)
    size = np.full((GRID, GRID), -1, np.int64)
    cell = width / GRID
    for o in objects:
        x1, y1, x2, y2 = o['box']
        c, s = pair_index(o['color'], o['shape']), SIZES.index(o['size'])
        for gy in range(GRID):
            for gx in range(GRID):
                cx, cy = (gx + 0.5) * cell, (gy + 0.5) * cell
                if x1 <= cx < x2 and y1 <= cy < y2:
                    cls[gy, gx], size[gy, gx] = c, s
        gx, gy = min(GRID - 1, int((x1 + x2) / 2 / cell)), min(GRID - 1, int((y1 + y2) / 2 / cell))
        cls[gy, gx], size[gy, gx] = c, s
    return cls, size


# ---- caption negatives -------------------------------------------------------------------------------

def _phrase(o: dict) -> str:
    return f"{o['size']} {o['color']} {o['shape']}"


def _replace_object(caption: str, old: dict, new: dict) -> str | None:
    before = _phrase(old)
    if caption.count(before) != 1:
        return None
    return caption.replace(before, _phrase(new))


def colour_swap(rng: random.Random, caption: str, objects: list[dict]) -> str | None:
    """One object's colour changed to one that no object of that shape has (the demo's swap noise)."""
    own = {(o['color'], o['shape']) for o in objects}
    o = rng.choice(objects)
    options = [c for c in COLORS if (c, o['shape']) not in own]
    return _replace_object(caption, o, {**o, 'color': rng.choice(options)}) if options else None


def shape_swap(rng: random.Random, caption: str, objects: list[dict]) -> str | None:
    own = {(o['color'], o['shape']) for o in objects}
    o = rng.choice(objects)
    options = [s for s in SHAPES if (o['color'], s) not in own]
    return _replace_object(caption, o, {**o, 'shape': rng.choice(options)}) if options else None


def size_swap(rng: random.Random, caption: str, objects: list[dict]) -> str | None:
    o = rng.choice(objects)
    return _replace_object(caption, o, {**o, 'size': 'large' if o['size'] == 'small' else 'small'})


def exchange_swap(rng: random.Random, caption: str, objects: list[dict]) -> str | None:
    """Two objects trade colours (binding error): both named objects are then absent from the scene."""
    if len(objects) < 2:
        return None
    a, b = rng.sample(objects, 2)
    if a['color'] == b['color'] or a['shape'] == b['shape']:
        return None
    own = {(o['color'], o['shape']) for o in objects}
    if (b['color'], a['shape']) in own or (a['color'], b['shape']) in own:
        return None
    if caption.count(_phrase(a)) != 1 or caption.count(_phrase(b)) != 1:
        return None
    marker = '\u0000'
    out = caption.replace(_phrase(a), marker).replace(_phrase(b), _phrase({**b, 'color': a['color']}))
    return out.replace(marker, _phrase({**a, 'color': b['color']}))


def relation_swap(rng: random.Random, caption: str, objects: list[dict]) -> str | None:
    """One spatial relation replaced by a false one (the dominant axis decides the true one)."""
    found = [r for r in RELATION_SWAPS if f' {r} ' in f' {caption} ']
    # "to the left of" contains no other relation, so at most one phrase per position matches.
    if not found:
        return None
    r = rng.choice(found)
    padded = f' {caption} '
    hits = [i for i in range(len(padded)) if padded.startswith(f' {r} ', i)]
    at = rng.choice(hits)
    out = padded[:at] + f' {rng.choice(RELATION_SWAPS[r])} ' + padded[at + len(r) + 2:]
    return out.strip()


def _two_named_once(rng: random.Random, caption: str, objects: list[dict]) -> tuple[dict, dict] | None:
    """Two objects of the scene that the caption names exactly once each, or None."""
    named = [o for o in objects if caption.count(_phrase(o)) == 1]
    return tuple(rng.sample(named, 2)) if len(named) >= 2 else None


def order_swap(rng: random.Random, caption: str, objects: list[dict]) -> str | None:
    """Two named objects trade places in the sentence ("A above B" -> "B above A"): the same words, a false
    relation. None when the result is still true (e.g. "next to" both ways)."""
    pair = _two_named_once(rng, caption, objects)
    if pair is None:
        return None
    a, b = pair
    marker = '\u0000'
    out = caption.replace(_phrase(a), marker).replace(_phrase(b), _phrase(a)).replace(marker, _phrase(b))
    return out if relations_correct(out, objects) is False else None


def duplicate_swap(rng: random.Random, caption: str, objects: list[dict]) -> str | None:
    """One named object replaced by another object of the scene, which is then named twice (a captioner's
    repetition: "a green hexagon next to a green square and a green hexagon next to it")."""
    pair = _two_named_once(rng, caption, objects)
    if pair is None:
        return None
    a, b = pair
    return caption.replace(_phrase(a), _phrase(b))


SWAPS = {
    'colour': colour_swap,
    'shape': shape_swap,
    'size': size_swap,
    'exchange': exchange_swap,
    'relation': relation_swap,
    'order': order_swap,
    'duplicate': duplicate_swap,
}

BOILERPLATE = [
    'IMG_{d4}.JPG', 'DSC{d5}.jpg', 'image', 'photo', 'stock photo', 'click to buy', 'click here to enlarge',
    'untitled', 'thumbnail', 'product image {d1} of 5', 'free shipping on all orders', 'a photo',
    'download high resolution image', 'see more at our online store', 'view full size', 'best price',
]


def boilerplate(rng: random.Random) -> str:
    text = rng.choice(BOILERPLATE)
    for n in (1, 4, 5):
        text = text.replace(f'{{d{n}}}', ''.join(str(rng.randint(0, 9)) for _ in range(n)))
    return text


def negative(rng: random.Random, split: Split, i: int, kind: str) -> str | None:
    """A caption that is false for image `i`, of the given kind; None when the kind does not apply."""
    caption = rng.choice(split.captions[i])
    if kind == 'mismatch':
        own = signature(split.objects[i])
        for _ in range(20):
            j = rng.randrange(len(split.keys))
            if signature(split.objects[j]) != own:
                return rng.choice(split.captions[j])
        return None
    if kind == 'empty':
        return ''
    if kind == 'boilerplate':
        return boilerplate(rng)
    return SWAPS[kind](rng, caption, split.objects[i])


_OBJECT = re.compile(r'\b(small|large) (' + '|'.join(COLORS) + r') (' + '|'.join(SHAPES) + r')\b')


def parse_objects(text: str) -> list[tuple[str, str, str]]:
    """The `(size, colour, shape)` phrases a caption names, in order."""
    return [m.groups() for m in _OBJECT.finditer(text.lower())]


def text_signature(text: str) -> str:
    return '|'.join(sorted(' '.join(o) for o in parse_objects(text)))


# ---- every true caption of a scene (mirrors datasets/shapes/captions.ts) -------------------------------

def _relation(a: dict, b: dict, next_to: bool) -> str:
    ax, ay = (a['box'][0] + a['box'][2]) / 2, (a['box'][1] + a['box'][3]) / 2
    bx, by = (b['box'][0] + b['box'][2]) / 2, (b['box'][1] + b['box'][3]) / 2
    dx, dy = ax - bx, ay - by
    if abs(dx) >= abs(dy):
        return 'next to' if next_to else ('to the left of' if dx < 0 else 'to the right of')
    return 'above' if dy < 0 else 'below'


_TEMPLATES = {
    1: ['{a0}', '{a0} on a plain background', 'a picture of {a0}', 'an image of {a0}',
        'there is {a0} in the picture', 'a single {b0}', 'a photo of {a0}'],
    2: ['{a0} {r01} {a1}', 'there is {a0} {r01} {a1}', '{a0} with {a1} {r10} it',
        'a picture of {a0} and {a1}', 'an image of {a0} and {a1}', '{a0} and {a1} on a plain background'],
    3: ['{a0} {r01} {a1} and {a2} {r21} it', '{a0} with {a1} {r10} it and {a2} {r20} it',
        '{a0}, {a1} and {a2}', 'a picture of {a0}, {a1} and {a2}', 'an image of {a0}, {a1} and {a2}',
        '{a0}, {a1} and {a2} on a plain background'],
}


def true_captions(objects: list[dict]) -> set[str]:
    """Every caption the dataset's templates can write for this scene (all object orders, with and
    without "next to"): a generated caption in this set is fully right, relations included."""
    from itertools import permutations
    out = set()
    for order in permutations(range(len(objects))):
        objs = [objects[i] for i in order]
        for next_to in (False, True):
            fields = {f'a{i}': f"a {_phrase(o)}" for i, o in enumerate(objs)}
            fields.update({f'b{i}': _phrase(o) for i, o in enumerate(objs)})
            fields.update({f'r{i}{j}': _relation(objs[i], objs[j], next_to)
                           for i in range(len(objs)) for j in range(len(objs)) if i != j})
            out.update(t.format(**fields) for t in _TEMPLATES[len(objs)])
    return out


# ---- the relations a caption states (mirrors datasets/shapes/relation-judge.ts) -------------------------

RELATIONS = ['to the left of', 'to the right of', 'above', 'below', 'next to']
_RELATION_WORDS = [(r, r.split(' ')) for r in RELATIONS]


def relation_holds(relation: str, a: dict, b: dict) -> bool:
    return _relation(a, b, relation == 'next to') == relation


def relation_parts(words: list[str], objects: list[dict]) -> list[tuple[int, str, int, int]]:
    """The relations `words` (the tokenizer's words, punctuation included) state, as
    `(index of the phrase's last word, relation, subject object, object object)`; an object is an index
    into `objects`, -1 when the caption's phrase names no object of the scene or none can be found ("it" is
    the object a "with" clause hangs on, else the previous relation's object)."""
    items: list[tuple[str, int, object]] = []  # (kind, last word index, object index or relation)
    i = 0
    while i < len(words):
        w = words[i]
        if w in COLORS and i + 1 < len(words) and words[i + 1] in SHAPES:
            at = next((k for k, o in enumerate(objects) if o['color'] == w and o['shape'] == words[i + 1]), -1)
            items.append(('object', i + 1, at))
            i += 2
            continue
        phrase = next((r for r, rw in _RELATION_WORDS if words[i:i + len(rw)] == rw), None)
        if phrase is not None:
            n = len(phrase.split(' '))
            items.append(('relation', i + n - 1, phrase))
            i += n
            continue
        if w in ('it', 'with'):
            items.append((w, i, None))
        i += 1
    with_at = next((k for k, it in enumerate(items) if it[0] == 'with'), -1)
    host = items[with_at - 1] if with_at > 0 else None
    last_object = None
    out = []
    for k, (kind, pos, rel) in enumerate(items):
        if kind != 'relation':
            continue
        subject = items[k - 1] if k > 0 else None
        obj = items[k + 1] if k + 1 < len(items) else None
        if obj is not None and obj[0] == 'it':
            obj = host if 0 <= with_at < k else last_object
        last_object = obj
        out.append((pos, rel, subject[2] if subject is not None and subject[0] == 'object' else -1,
                    obj[2] if obj is not None and obj[0] == 'object' else -1))
    return out


def stated_relations(words: list[str], objects: list[dict]) -> list[tuple[int, bool]]:
    """Per relation phrase `words` state, the index of its last word and whether it holds for the scene, by
    the generator's rule. Unresolvable (an object missing or the same on both sides) = False."""
    return [(pos, subject >= 0 and obj >= 0 and subject != obj and relation_holds(rel, objects[subject], objects[obj]))
            for pos, rel, subject, obj in relation_parts(words, objects)]


def caption_is_correct(text: str, objects: list[dict]) -> bool:
    """The right objects, each once, nothing else; sizes, where given, right (datasets/shapes/judge.ts)."""
    words = re.findall(r'[a-z]+', text.lower())
    named = [(words[i - 1] if i > 0 and words[i - 1] in SIZES else None, words[i], words[i + 1])
             for i in range(len(words) - 1) if words[i] in COLORS and words[i + 1] in SHAPES]
    if len(named) != len(objects):
        return False
    remaining = list(objects)
    for size, color, shape in named:
        at = next((k for k, o in enumerate(remaining)
                   if o['color'] == color and o['shape'] == shape and (size is None or o['size'] == size)), -1)
        if at < 0:
            return False
        remaining.pop(at)
    return True


def relations_correct(text: str, objects: list[dict]) -> bool | None:
    """None when the caption states no relation; else every relation right and the objects right."""
    stated = stated_relations(re.findall(r'[a-z]+', text.lower()), objects)
    if not stated:
        return None
    return all(ok for _, ok in stated) and caption_is_correct(text, objects)
