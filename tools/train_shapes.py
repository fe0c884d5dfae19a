#!/usr/bin/python3
"""Train, measure and export the three shapes demo models in models/.

    cd /work/main && npx tsc -p tsconfig.build.json   # the dataset generator is the vlcurate CLI
    /usr/bin/python3 tools/train_shapes.py            # Debian's python3-torch, python3-onnx

Run time on the 2-core development machine (no GPU, torch 1.13 with OpenBLAS, 2 threads), defaults,
machine otherwise idle: about 20 minutes — data 30 s (generate 8000 + 1000 scenes, decode, resize; kept
for later runs), vision trunk 1.7 min, ITC 1.5 min, ITM 2.2 + 5.5 min (two stages), captioner 8.2 min,
measurement, export and checks 20 s. Other jobs on the same cores slow it down a lot. See DEVELOPERS.md.

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

`--reuse-trunk` skips step 2's trunk and ITC training (the trunk is read back from the committed
shapes-clip graph, which stays as it is); `--weights CHECKPOINTS` exports the ITM and captioner of an
earlier run instead of training them again. See DEVELOPERS.md.

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

from shapes_models import data, export, nets, readme, reuse, train  # noqa: E402
from shapes_models import tokenizer as tok  # noqa: E402

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
    p.add_argument('--itm-object-epochs', type=int, default=6,
                   help='ITM stage 1 (objects; skipped with --warm-start itm) (default: %(default)s)')
    p.add_argument('--itm-epochs', type=int, default=12, help='ITM stage 2 (relations) (default: %(default)s)')
    p.add_argument('--captioner-epochs', type=int, default=16)
    p.add_argument('--itm-layers', type=int, default=3, help='ITM fusion blocks (default: %(default)s)')
    p.add_argument('--captioner-layers', type=int, default=3, help='captioner decoder blocks (default: %(default)s)')
    p.add_argument('--captioner-relation-weight', type=float, default=3.0,
                   help='loss weight of the words that choose a spatial relation (default: %(default)s)')
    p.add_argument('--captioner-position-weight', type=float, default=1.0,
                   help='weight of the captioner\'s training-only object and relation position losses (default: %(default)s)')
    p.add_argument('--reuse-trunk', action='store_true',
                   help='take the vision trunk from the committed models/shapes-clip graph instead of training it, '
                        'and leave shapes-clip as it is (retrains only shapes-itm and shapes-captioner)')
    p.add_argument('--warm-start', type=lambda v: set(v.split(',')), default=set(), metavar='itm,captioner',
                   help='start these models from the committed weights (needs --reuse-trunk): the ITM skips its stage 1, '
                        'blocks a model lacks start as identities')
    p.add_argument('--warm-start-lr', type=float, default=2e-3,
                   help='peak learning rate of a warm-started training (default: %(default)s)')
    p.add_argument('--keep-itm', action='store_true',
                   help='keep the committed shapes-itm weights (needs --reuse-trunk): measured and exported again, '
                        'not retrained')
    p.add_argument('--weights', type=Path,
                   help='a checkpoints.pt of an earlier run with the same settings: export its ITM and captioner '
                        'weights instead of training them again (measurement, export and README are redone)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--skip-verify', action='store_true', help='do not run tools/verify_shapes_onnx.mjs')
    return p.parse_args()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def loaded(model: torch.nn.Module, weights: dict[str, torch.Tensor], trunk: nets.VisionTrunk,
           strict: bool = True) -> torch.nn.Module:
    """`model` with `weights` and a frozen copy of `trunk`, ready to measure and export."""
    model.load_state_dict(weights, strict=strict)
    model.eval()
    train.frozen_copy(trunk, model.trunk)
    return model


def reference_picks(test: data.Split) -> list[int]:
    """The first test images with one, two and three objects."""
    return [next(i for i, o in enumerate(test.objects) if len(o) == k) for k in (1, 2, 3)]


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())


def main() -> None:
    args = parse_args()
    if args.warm_start - {'itm', 'captioner'}:
        raise SystemExit(f'--warm-start: {",".join(sorted(args.warm_start))}: expected itm, captioner or itm,captioner')
    if (args.warm_start or args.keep_itm) and not args.reuse_trunk:
        raise SystemExit('--warm-start and --keep-itm need --reuse-trunk: the committed weights go with the committed trunk')
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

    clip_folder = args.out / 'shapes-clip'
    if args.reuse_trunk:
        # The committed trunk (and so the committed shapes-clip, which is trained on it) stays; its figures
        # are the ones measured when it was trained.
        trunk = reuse.trunk_from_onnx(clip_folder / 'onnx' / 'vision_model.onnx')
        dense_head = clip = None
        feats = train.trunk_features(trunk, train_split)
        clip_q = json.loads((clip_folder / 'quality.json').read_text())
        trunk_q = clip_q['trunk']
        timings['trunk'] = clip_q['trunk_train_seconds']
        timings['clip'] = clip_q['train_seconds']
        args.trunk_epochs, args.clip_epochs = clip_q['trunk_epochs'], clip_q['epochs']
        train.log('vision trunk and shapes-clip reused from the committed models')
    else:
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

    saved = torch.load(args.weights) if args.weights else None
    t = time.time()
    if args.keep_itm:
        committed = reuse.committed_itm(args.out / 'shapes-itm')
        args.itm_layers = 1 + max(int(k.split('.')[1]) for k in committed if k.startswith('blocks.'))
        # strict=False: the training-only heads are not in the graphs.
        itm = loaded(nets.ItmModel(tok.VOCAB_SIZE, tok.MAX_LENGTH, layers=args.itm_layers), committed, trunk, strict=False)
        kept_q = json.loads((args.out / 'shapes-itm' / 'quality.json').read_text())
        timings['itm'], args.itm_epochs = kept_q['train_seconds'], kept_q['epochs']
    elif saved:
        itm = loaded(nets.ItmModel(tok.VOCAB_SIZE, tok.MAX_LENGTH, layers=args.itm_layers), saved['itm'], trunk)
        timings['itm'] = saved['train_seconds']['itm']
    else:
        warm = {'init': reuse.committed_itm(args.out / 'shapes-itm'), 'lr': args.warm_start_lr} \
            if 'itm' in args.warm_start else {}
        seed_everything(1)  # after reading committed weights, which draws random probes
        itm = train.train_itm(train_split, trunk, feats, args.itm_epochs, object_epochs=args.itm_object_epochs,
                              layers=args.itm_layers, **warm)
        timings['itm'] = time.time() - t
    itm_q = train.eval_itm(itm, test_split)
    train.log(f'itm test: {json.dumps(itm_q)}')

    t = time.time()
    if saved:
        cap = loaded(nets.Captioner(tok.VOCAB_SIZE, tok.MAX_LENGTH, layers=args.captioner_layers), saved['captioner'], trunk)
        timings['captioner'] = saved['train_seconds']['captioner']
    else:
        warm = {'init': reuse.committed_captioner(args.out / 'shapes-captioner'), 'lr': args.warm_start_lr} \
            if 'captioner' in args.warm_start else {}
        seed_everything(2)  # after reading committed weights, which draws random probes
        cap = train.train_captioner(train_split, trunk, feats, args.captioner_epochs, layers=args.captioner_layers,
                                    relation_weight=args.captioner_relation_weight,
                                    position_weight=args.captioner_position_weight, **warm)
        timings['captioner'] = time.time() - t
    cap_q = train.eval_captioner(cap, test_split)
    train.log(f'captioner test: {json.dumps(cap_q)}')

    # PyTorch weights, for looking into the models later (not committed).
    torch.save({'trunk': trunk.state_dict(), 'dense_head': dense_head and dense_head.state_dict(),
                'clip': clip and clip.state_dict(), 'itm': itm.state_dict(), 'captioner': cap.state_dict(),
                'train_seconds': {'itm': timings['itm'], 'captioner': timings['captioner']}},
               args.data / 'checkpoints.pt')

    t = time.time()
    picks = reference_picks(test_split)
    setup = {'train_images': args.train_count, 'test_images': args.test_count, 'threads': args.threads,
             'torch': torch.__version__, 'trunk_epochs': args.trunk_epochs, 'trunk_train_seconds': round(timings['trunk']),
             'trunk': trunk_q}
    if clip is not None:
        export.export_clip(clip, clip_folder, test_split, picks,
                           {**clip_q, 'train_seconds': round(timings['clip']), 'epochs': args.clip_epochs, **setup})
    export.export_itm(itm, args.out / 'shapes-itm', test_split, picks,
                      {**itm_q, 'train_seconds': round(timings['itm']), 'epochs': args.itm_epochs, **setup})
    export.export_captioner(cap, args.out / 'shapes-captioner', test_split, picks,
                            {**cap_q, 'train_seconds': round(timings['captioner']), 'epochs': args.captioner_epochs,
                             **setup})
    timings['export'] = time.time() - t
    # Total as if every part were trained in this run: a reused part counts with its own training time, and
    # the rest of this run's wall time is measurement and export.
    trained_here = sum(timings[k] for k in ('trunk', 'clip') if not args.reuse_trunk) + \
        sum(timings[k] for k in ('itm', 'captioner') if not saved and not (k == 'itm' and args.keep_itm))
    timings['total'] = timings['trunk'] + timings['clip'] + timings['itm'] + timings['captioner'] + \
        (time.time() - t0 - trained_here)
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
