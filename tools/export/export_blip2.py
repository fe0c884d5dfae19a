#!/usr/bin/python3
"""Export BLIP-2's first stage (the Q-Former's ITC and ITM heads, with its ViT) to one vlcurate ITC + ITM
folder, then verify the export with vlcurate itself.

    python3 tools/export/export_blip2.py --lavis-code LAVIS/ --checkpoint blip2_finetune_coco.pth \\
        --eva-checkpoint eva_vit_g.pth --bert-vocab bert-base-uncased/vocab.txt --image-size 364 --out models/blip2-itm-coco

`--lavis-code` is a checkout of https://github.com/salesforce/LAVIS (checked against lavis_code.CHECKED_COMMIT);
its BLIP-2 model files are imported as they are (lavis_code.py), with our shims for transformers and timm.
The model is LAVIS's `Blip2ITM` with the EVA ViT-g (`vit_model eva_clip_g`, fp32), whose weights LAVIS
downloads separately (`eva_vit_g.pth`, pass it with --eva-checkpoint); the checkpoint is the first-stage
one (`blip2_pretrained.pth`, 224 px, or the COCO fine-tuned `blip2_finetune_coco.pth`, 364 px).
The self-check compares vlcurate's ITC (best cosine over the 32 queries) and ITM p(match) (logits averaged
over the queries) with `Blip2ITM.forward(match_head='itc' | 'itm')` to --tolerance.

Verified here only on a tiny random-weight Blip2ITM (tools/make_blip_fixtures.py); the ViT-g graphs are
~4 GB in fp32, over protobuf's 2 GB limit, so they need onnx's external data beside the graph: not tried here.
BLIP-2's captioners decode with OPT-2.7B/6.7B or Flan-T5-XL/XXL: far too large for this CPU captioner path
(and not a BERT decoder), so no captioner export is offered; use a VLM through `captioner: {type: openai}`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from blip2_folder import export_blip2_folder  # noqa: E402
from blip_folders import DEFAULT_CHECK_TEXTS  # noqa: E402
from lavis_code import CHECKED_COMMIT, REPOSITORY, load_lavis_code, register_download  # noqa: E402
from self_check import DEFAULT_TOLERANCE, vlcurate_command  # noqa: E402
from shims.bert_tokenizer import register_vocab  # noqa: E402


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description="Export BLIP-2's Q-Former ITC + ITM (LAVIS checkpoints) to a vlcurate model folder.")
    p.add_argument("--lavis-code", required=True, help=f"checkout of {REPOSITORY} (checked against {CHECKED_COMMIT[:12]})")
    p.add_argument("--checkpoint", required=True, help="LAVIS BLIP-2 first-stage checkpoint (.pth)")
    p.add_argument("--eva-checkpoint", required=True, help="eva_vit_g.pth (the EVA ViT-g weights LAVIS downloads)")
    p.add_argument("--bert-vocab", required=True, help="bert-base-uncased vocab.txt (or a folder holding it)")
    p.add_argument("--image-size", type=int, default=224, help="224 (pretrained) or 364 (COCO fine-tuned)")
    p.add_argument("--out", required=True)
    p.add_argument("--check-image", action="append", default=[])
    p.add_argument("--check-text", action="append", default=[])
    p.add_argument("--drawn-images", type=int, default=3)
    p.add_argument("--vlcurate", help="command that runs vlcurate's CLI (default: node <repo>/dist/src/cli/main.js)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    p.add_argument("--no-check", action="store_true")
    args = p.parse_args(argv)
    code = load_lavis_code(args.lavis_code)
    check = None if args.no_check else {"cmd": vlcurate_command(args.vlcurate), "tolerance": args.tolerance}
    register_vocab("bert-base-uncased", args.bert_vocab)
    register_download("eva_vit_g.pth", args.eva_checkpoint)
    model = code.blip2_itm.Blip2ITM(vit_model="eva_clip_g", img_size=args.image_size, vit_precision="fp32")
    msg = model.load_from_pretrained(args.checkpoint)
    missing = [k for k in msg.missing_keys if not k.startswith("visual_encoder.")]
    if missing:
        raise SystemExit(f"{args.checkpoint}: weights missing for {missing[:8]}")
    source = {
        "tool": "tools/export/export_blip2.py",
        "lavis_code": {"repository": REPOSITORY, "commit": code.commit, "checked_commit": CHECKED_COMMIT},
        "input": {"checkpoint": Path(args.checkpoint).name, "vision": Path(args.eva_checkpoint).name},
        "self_check": "skipped (--no-check)" if check is None else f"vlcurate CLI, tolerance {args.tolerance:g}",
    }
    export_blip2_folder(model, Path(args.out), image_size=args.image_size, source=source, texts=args.check_text or DEFAULT_CHECK_TEXTS,
                        user_images=args.check_image, drawn_images=args.drawn_images, check=check)
    print(f"wrote {args.out}" + ("" if check is None else " (verified with vlcurate)"))


if __name__ == "__main__":
    main(sys.argv[1:])
