#!/usr/bin/python3
"""Train, measure and export the three shapes demo models in models/.

    cd /work/main && npx tsc -p tsconfig.build.json   # the dataset generator is the vlcurate CLI
    /usr/bin/python3 tools/train_shapes.py            # Debian's python3-torch, python3-onnx

Run time on the 2-core development machine (no GPU, torch 1.13 with OpenBLAS, 2 threads), defaults,
machine otherwise idle: about 9.5 minutes — data 30 s (generate 8000 + 1000 scenes, decode, resize; kept
for later runs), vision trunk 1.7 min, ITC 1.5 min, ITM 2.2 min, captioner 3.3 min, measurement, export
and checks 20 s. Other jobs on the same cores slow it down a lot (17 minutes measured under load). See
DEVELOPERS.md.

What it does:
1. generates the shapes train split (seed 1, 8000 images, --noise 0) and test split (seed 3, 1000 images,
   --noise 1 so that every web caption is a labelled mismatch / swap / boilerplate / empty) with
   `node dist/src/cli/main.js datasets shapes` into --data (kept between runs);
2. trains a small CNN vision trunk on the boxes (a dense head names the object under each cell of an 8 x 8
   grid), freezes it and caches its features, then trains on them the rest of shapes-clip (ITC dual
   encoder), shapes-itm (fusion encoder, hard negatives) and shapes-captioner (encoder-decoder);
3. measures all three on the test split, exports them to ONNX (opset 17) with their config, preprocessor,
   tokenizer and reference.json files, writes models/README.md with the figures;
4. runs tools/verify_shapes_onnx.mjs (onnxruntime-node) to check the graphs against PyTorch.

Deterministic: fixed seeds for Python, NumPy and torch, deterministic algorithms, a fixed thread count
(--threads). The same machine and thread count give the same weights; other BLAS builds or thread counts
can change the last bits and so the exported files, not the quality.
"""
from __future__ import annotations

import os

# OpenBLAS (Debian's libopenblas0-pthread) runs its own thread pool beside torch's OpenMP one; the two
# fight over the cores and small matrix products get 5 to 20 times slower, worst on a busy machine.
# torch's threads (--threads) parallelise the convolutions and element-wise work; BLAS calls stay on one
# thread. Must be set before numpy or torch load OpenBLAS.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes_models import data, export, readme, train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', type=Path, default=Path(tempfile.gettempdir()) / 'vlcurate-shapes-data',
                   help='where the generated shapes splits are kept (default: %(default)s)')
    p.add_argument('--out', type=Path, default=REPO / 'models', help='models folder (default: %(default)s)')
    p.add_argument('--train-count', type=int, default=8000)
    p.add_argument('--test-count', type=int, default=1000)
    p.add_argument('--trunk-epochs', type=int, default=8)
    p.add_argument('--clip-epochs', type=int, default=10)
    p.add_argument('--itm-epochs', type=int, default=6)
    p.add_argument('--captioner-epochs', type=int, default=8)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--skip-verify', action='store_true', help='do not run tools/verify_shapes_onnx.mjs')
    return p.parse_args()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def reference_picks(test: data.Split) -> list[int]:
    """The first test images with one, two and three objects."""
    return [next(i for i, o in enumerate(test.objects) if len(o) == k) for k in (1, 2, 3)]


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    timings: dict[str, float] = {}

    train.log('generating and loading the shapes splits')
    data.generate(REPO, args.data / 'train', 'train', args.train_count, 0.0)
    data.generate(REPO, args.data / 'test', 'test', args.test_count, 1.0)
    train_split = data.load(args.data / 'train')
    test_split = data.load(args.data / 'test')
    timings['data'] = time.time() - t0

    seed_everything(0)
    t = time.time()
    trunk, dense_head = train.pretrain_trunk(train_split, args.trunk_epochs)
    feats = train.trunk_features(trunk, train_split)
    timings['trunk'] = time.time() - t
    trunk_q = train.eval_trunk(trunk, dense_head, test_split)
    train.log(f'trunk test: {json.dumps(trunk_q)}')

    seed_everything(0)
    t = time.time()
    clip = train.train_clip(train_split, trunk, feats, args.clip_epochs)
    timings['clip'] = time.time() - t
    clip_q = train.eval_clip(clip, test_split)
    clip_q['logit_scale_exp'] = float(clip.logit_scale.detach().exp())
    train.log(f'clip test: {json.dumps(clip_q)}')

    seed_everything(1)
    t = time.time()
    itm = train.train_itm(train_split, trunk, feats, args.itm_epochs)
    timings['itm'] = time.time() - t
    itm_q = train.eval_itm(itm, test_split)
    train.log(f'itm test: {json.dumps(itm_q)}')

    seed_everything(2)
    t = time.time()
    cap = train.train_captioner(train_split, trunk, feats, args.captioner_epochs)
    timings['captioner'] = time.time() - t
    cap_q = train.eval_captioner(cap, test_split)
    train.log(f'captioner test: {json.dumps(cap_q)}')

    # PyTorch weights, for looking into the models later (not committed).
    torch.save({'trunk': trunk.state_dict(), 'dense_head': dense_head.state_dict(), 'clip': clip.state_dict(),
                'itm': itm.state_dict(), 'captioner': cap.state_dict()}, args.data / 'checkpoints.pt')

    t = time.time()
    picks = reference_picks(test_split)
    setup = {'train_images': args.train_count, 'test_images': args.test_count, 'threads': args.threads,
             'torch': torch.__version__, 'trunk_epochs': args.trunk_epochs, 'trunk_train_seconds': round(timings['trunk']),
             'trunk': trunk_q}
    export.export_clip(clip, args.out / 'shapes-clip', test_split, picks,
                       {**clip_q, 'train_seconds': round(timings['clip']), 'epochs': args.clip_epochs, **setup})
    export.export_itm(itm, args.out / 'shapes-itm', test_split, picks,
                      {**itm_q, 'train_seconds': round(timings['itm']), 'epochs': args.itm_epochs, **setup})
    export.export_captioner(cap, args.out / 'shapes-captioner', test_split, picks,
                            {**cap_q, 'train_seconds': round(timings['captioner']), 'epochs': args.captioner_epochs,
                             **setup})
    timings['export'] = time.time() - t
    timings['total'] = time.time() - t0
    sizes = {name: folder_size(args.out / name) for name in ('shapes-clip', 'shapes-itm', 'shapes-captioner')}
    dims = {'itm_dim': itm.tok.embedding_dim, 'itm_layers': len(itm.blocks), 'cap_dim': cap.dim,
            'cap_heads': cap.heads, 'cap_layers': cap.layers, 'image_tokens': 16}
    (args.out / 'README.md').write_text(readme.render(trunk_q, clip_q, itm_q, cap_q, timings, sizes, setup, dims, args))
    train.log(f'timings (s): {json.dumps({k: round(v) for k, v in timings.items()})}; sizes: {json.dumps(sizes)}')

    if not args.skip_verify:
        subprocess.run(['node', str(REPO / 'tools' / 'verify_shapes_onnx.mjs'), str(args.out)], check=True, cwd=REPO,
                       env={**os.environ})


if __name__ == '__main__':
    main()
