#!/usr/bin/python3
"""Export BLIP to vlcurate model folders, then verify the export with vlcurate itself.

    # ITC + ITM (the CapFilt filter) from an original retrieval checkpoint:
    python3 tools/export/export_blip.py itm --blip-code BLIP/ --checkpoint model_base_retrieval_coco.pth \\
        --bert-vocab bert-base-uncased/vocab.txt --out models/blip-itm-base-coco
    # the captioner from an original captioning checkpoint:
    python3 tools/export/export_blip.py caption --blip-code BLIP/ --checkpoint model_base_caption_capfilt_large.pth \\
        --bert-vocab bert-base-uncased/vocab.txt --out models/blip-caption-base
    # or from transformers (needs `transformers`): --hf Salesforce/blip-itm-base-coco / Salesforce/blip-image-captioning-base

`--blip-code` is a checkout of https://github.com/salesforce/BLIP (checked against commit
blip_code.CHECKED_COMMIT); its model code runs with the shims in tools/export/shims, so neither
transformers nor timm nor fairscale is needed for original checkpoints. Large checkpoints: `--vit large`.

Every export writes the graphs, config.json, preprocessor_config.json, tokenizer.json,
tokenizer_config.json (and generation_config.json for the captioner), check images under reference/ and
the PyTorch outputs on them in reference.json, then runs vlcurate's CLI on the folder (build it first:
`npm run build`) and exits 1 when an ITC cosine or ITM p(match) differs by more than --tolerance
(default 1e-3) or a greedy caption differs. With --hf, BLIP's modules holding the copied weights are
first compared with transformers' own forward pass (to 1e-4, greedy ids identical).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from blip_checkpoints import load_caption_checkpoint, load_itm_checkpoint  # noqa: E402
from blip_code import CHECKED_COMMIT, REPOSITORY, load_blip_code  # noqa: E402
from blip_folders import DEFAULT_CHECK_TEXTS, export_caption_folder, export_itm_folder  # noqa: E402
from check_images import load_pixels  # noqa: E402
from self_check import DEFAULT_TOLERANCE, vlcurate_command  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Export BLIP (salesforce/BLIP checkpoints or transformers classes) to vlcurate model folders.")
    p.add_argument("kind", choices=["itm", "caption"], help="itm: ITC + ITM folder from a retrieval model; caption: captioner folder")
    p.add_argument("--blip-code", required=True, help=f"checkout of {REPOSITORY} (checked against {CHECKED_COMMIT[:12]})")
    p.add_argument("--out", required=True, help="folder to write (created; existing files are overwritten)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="original BLIP checkpoint (.pth), e.g. model_base_retrieval_coco.pth")
    src.add_argument("--hf", help="transformers model name or folder (BlipForImageTextRetrieval / BlipForConditionalGeneration)")
    p.add_argument("--bert-vocab", help="bert-base-uncased vocab.txt (or a folder holding it); needed with --checkpoint")
    p.add_argument("--vit", choices=["base", "large"], default="base", help="ViT size of --checkpoint (default base)")
    p.add_argument("--image-size", type=int, default=384, help="input size of --checkpoint (default 384, BLIP's fine-tuned models)")
    p.add_argument("--prompt", default="a picture of ", help="captioner prompt (default BLIP's 'a picture of ')")
    p.add_argument("--max-new-tokens", type=int, default=20, help="greedy caption length checked (default 20)")
    p.add_argument("--check-image", action="append", default=[], help="also check on this image (resized with PIL); repeatable")
    p.add_argument("--check-text", action="append", default=[], help="check texts (itm; default: four fixed captions); repeatable")
    p.add_argument("--drawn-images", type=int, default=3, help="synthetic check images drawn at the input size (default 3)")
    p.add_argument("--vlcurate", help="command that runs vlcurate's CLI (default: node <repo>/dist/src/cli/main.js)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="largest |difference| of ITC cosine / ITM p(match) (default 1e-3)")
    p.add_argument("--no-check", action="store_true", help="skip the vlcurate self-check (the folder is then unverified)")
    args = p.parse_args(argv)
    if args.checkpoint and not args.bert_vocab:
        p.error("--checkpoint needs --bert-vocab (bert-base-uncased's vocab.txt)")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    code = load_blip_code(args.blip_code)
    out = Path(args.out)
    check = None if args.no_check else {"cmd": vlcurate_command(args.vlcurate), "tolerance": args.tolerance}
    source = {
        "tool": "tools/export/export_blip.py",
        "blip_code": {"repository": REPOSITORY, "commit": code.commit, "checked_commit": CHECKED_COMMIT},
        "input": {"checkpoint": Path(args.checkpoint).name} if args.checkpoint else {"transformers": args.hf},
        "self_check": "skipped (--no-check)" if check is None else f"vlcurate CLI, tolerance {args.tolerance:g}",
    }
    hf = None
    if args.hf:
        from hf_blip import build_from_hf

        model, hf, size = build_from_hf(code, args.kind, args.hf, args.prompt)
    elif args.kind == "itm":
        model, size = load_itm_checkpoint(code, args.checkpoint, args.bert_vocab, args.vit, args.image_size), args.image_size
    else:
        model, size = load_caption_checkpoint(code, args.checkpoint, args.bert_vocab, args.vit, args.image_size, args.prompt), args.image_size
    if args.kind == "itm":
        texts = args.check_text or DEFAULT_CHECK_TEXTS
        if hf is not None:
            # Compare with transformers before exporting anything.
            from check_images import write_check_images
            from hf_blip import verify_itm_against_hf

            names = write_check_images(out, size, args.drawn_images, args.check_image)
            failures = verify_itm_against_hf(hf, model, load_pixels(out, names), texts)
            if failures:
                raise SystemExit("transformers check FAILED:\n  " + "\n  ".join(failures))
        export_itm_folder(model, out, image_size=size, source=source, texts=texts, user_images=args.check_image,
                          drawn_images=args.drawn_images, check=check)
    else:
        ref = export_caption_folder(model, out, image_size=size, source=source, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                                    user_images=args.check_image, drawn_images=args.drawn_images, check=None)
        if hf is not None:
            from hf_blip import verify_captions_against_hf

            failures = verify_captions_against_hf(hf, model, load_pixels(out, ref["images"]), args.prompt, args.max_new_tokens, ref["greedy"]["token_ids"])
            if failures:
                raise SystemExit("transformers check FAILED:\n  " + "\n  ".join(failures))
        if check is not None:
            from self_check import check_caption_folder

            failures = check_caption_folder(out, ref, check["cmd"])
            if failures:
                raise SystemExit("self-check FAILED:\n  " + "\n  ".join(failures))
    print(f"wrote {out}" + ("" if check is None else " (verified with vlcurate)"))


if __name__ == "__main__":
    main(sys.argv[1:])
