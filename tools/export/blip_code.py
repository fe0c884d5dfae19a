"""Importing salesforce/BLIP's architecture code (`models/vit.py`, `med.py`, `blip.py`, `blip_itm.py`,
`blip_retrieval.py`) from a checkout the user points at, against our shims (shims/), with plain PyTorch.

The exporters were checked against BLIP at commit CHECKED_COMMIT; another commit is used with a warning
(the files have not changed in years, but the exporters' verification is what says whether it worked).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from shims import shimmed_imports

CHECKED_COMMIT = "056a169437371659074aa2732649d5de3bffb4a8"
REPOSITORY = "https://github.com/salesforce/BLIP"


@dataclass
class BlipCode:
    root: Path
    commit: str | None
    vit: types.ModuleType
    med: types.ModuleType
    blip: types.ModuleType
    blip_itm: types.ModuleType
    blip_retrieval: types.ModuleType


def checkout_commit(root: Path) -> str | None:
    """The checkout's commit: `git rev-parse HEAD`, else a COMMIT file written beside it, else None."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        marker = root / "COMMIT"
        return marker.read_text().strip() if marker.is_file() else None


def load_blip_code(root: str | Path) -> BlipCode:
    """Import BLIP's model modules from checkout `root` (the folder that holds `models/` and `configs/`)."""
    root = Path(root).resolve()
    if not (root / "models" / "med.py").is_file():
        raise SystemExit(f"--blip-code {root}: expected a salesforce/BLIP checkout holding models/med.py ({REPOSITORY})")
    commit = checkout_commit(root)
    if commit != CHECKED_COMMIT:
        print(f"warning: BLIP checkout {root} is at {commit or 'an unknown commit'}; these tools were checked against {CHECKED_COMMIT}", file=sys.stderr)
    # BLIP's files import each other as the package `models`; take it from this checkout only.
    saved_models = {n: m for n, m in sys.modules.items() if n == "models" or n.startswith("models.")}
    for n in saved_models:
        del sys.modules[n]
    sys.path.insert(0, str(root))
    try:
        with shimmed_imports():
            mods = {name: importlib.import_module(f"models.{name}") for name in ("vit", "med", "blip", "blip_itm", "blip_retrieval")}
    finally:
        sys.path.remove(str(root))
        for n in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
            del sys.modules[n]
        sys.modules.update(saved_models)
    return BlipCode(root=root, commit=commit, **mods)
