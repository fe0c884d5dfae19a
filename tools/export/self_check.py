"""The export's self-check: vlcurate itself (its CLI, `vlcurate score` and `vlcurate caption`, from the
repository this tool lives in, built with `npm run build`) loads the exported folder and must reproduce
the PyTorch references written to the folder's reference.json:

- ITC cosine and ITM p(match) of every (image, text) pair within `tolerance` (absolute);
- the greedy caption of every image, compared as text with whitespace removed (the CLI prints text, not
  token ids; the CI fixture tests compare the ids).
Returns the list of failures (empty when everything matched) and prints one line per check.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOLERANCE = 1e-3


def vlcurate_command(explicit: str | None) -> list[str]:
    if explicit:
        return shlex.split(explicit)
    main = REPO / "dist" / "src" / "cli" / "main.js"
    if not main.is_file():
        raise SystemExit(f"self-check: {main} does not exist; run `npm run build` in {REPO} (or pass --vlcurate CMD, or --no-check)")
    return ["node", str(main)]


def _run(cmd: list[str]) -> Any:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def check_itm_folder(folder: Path, ref: dict[str, Any], cmd: list[str], tolerance: float) -> list[str]:
    failures: list[str] = []
    texts = ref["texts"]
    worst_itc = worst_itm = 0.0
    for i, image in enumerate(ref["images"]):
        args = [*cmd, "score", "--itc", str(folder), "--itm", str(folder), "--image", str(folder / image), "--json"]
        for t in texts:
            args += ["--text", t]
        out = _run(args)
        rows = out if isinstance(out, list) else [out]
        for j, row in enumerate(rows):
            d_itc = abs(row["itc"] - ref["itc"]["cosine"][i][j])
            d_itm = abs(row["itm"] - ref["itm"]["p_match"][i][j])
            worst_itc, worst_itm = max(worst_itc, d_itc), max(worst_itm, d_itm)
            if d_itc > tolerance or d_itm > tolerance:
                failures.append(f"{image} / {texts[j]!r}: vlcurate itc {row['itc']:.6f} itm {row['itm']:.6f}, "
                                f"PyTorch itc {ref['itc']['cosine'][i][j]:.6f} itm {ref['itm']['p_match'][i][j]:.6f}")
    pairs = len(ref["images"]) * len(texts)
    print(f"self-check: {pairs} pairs, largest |ITC cosine diff| {worst_itc:.2e}, largest |ITM p diff| {worst_itm:.2e} (tolerance {tolerance:g})")
    return failures


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def check_caption_folder(folder: Path, ref: dict[str, Any], cmd: list[str]) -> list[str]:
    failures: list[str] = []
    greedy = ref["greedy"]
    for i, image in enumerate(ref["images"]):
        args = [*cmd, "caption", "--model", str(folder), "--image", str(folder / image), "--strategy", "greedy",
                "--min-length", "0", "--max-length", str(ref["max_new_tokens"]), "--json"]
        if ref["prompt"].strip():
            args += ["--prompt", ref["prompt"]]
        got = _run(args)["captions"][0]
        want = greedy["captions"][i]
        same = _squeeze(got) == _squeeze(want)
        print(f"self-check: {image}: {'same' if same else 'DIFFERENT'} greedy caption: vlcurate {got!r}, PyTorch {want.strip()!r}")
        if not same:
            failures.append(f"{image}: greedy caption {got!r} from vlcurate, {want.strip()!r} from PyTorch")
    return failures
