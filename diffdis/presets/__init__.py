"""Model presets as data, open_clip `model_configs/` style: one `<name>.json` per named network geometry.

A file holds ModelConfig fields (the sizes of the UNet, text encoder, autoencoder, query transformer and the
noise schedule); fields it leaves out keep ModelConfig's defaults. Adding a preset is adding a file. This
module reads files only and imports nothing of diffdis, so `config` and `query_options` can both use it.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).resolve().parent


def list_presets() -> tuple[str, ...]:
    """The names of the shipped presets: their file names, sorted."""
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.json")))


@functools.cache
def _read(name: str) -> dict[str, Any]:
    return json.loads((PRESET_DIR / f"{name}.json").read_text(encoding="utf-8"))


def preset_fields(name: str) -> dict[str, Any] | None:
    """The ModelConfig fields of a shipped preset (a fresh copy the caller may change), or None if no such file."""
    if name not in list_presets():
        return None
    return copy.deepcopy(_read(name))
