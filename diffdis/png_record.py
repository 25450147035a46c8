"""What made a generated image, kept in the PNG itself: one tEXt chunk `diffdis` holding a JSON record (prompt,
negative prompt, seed, sampler, steps, guidance, model and versions), as SD web UIs keep their `parameters`.
Any PNG reader shows it (`PIL.Image.open(path).text`); `read_png_record` gives it back as a dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from diffdis.atomic import write_atomic
from diffdis.errors import DiffDisError

KEY = "diffdis"


def save_png(image: Image.Image, path: Path, record: dict[str, Any] | None = None) -> Path:
    """Write `image` to `path` with `record` in its text chunks; a temporary file is renamed over `path`, so a
    reader never sees half an image."""
    path = Path(path)
    info = PngInfo()
    if record is not None:
        info.add_text(KEY, json.dumps(record, sort_keys=True))
        if "prompt" in record:
            info.add_text("prompt", str(record["prompt"]))  # for viewers that show plain keys
    return write_atomic(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))


def read_png_record(path: Path) -> dict[str, Any]:
    """The record `save_png` wrote, or one clear error for a PNG without one."""
    with Image.open(path) as image:
        text = getattr(image, "text", {}).get(KEY)
    if text is None:
        raise DiffDisError(f"{path} holds no diffdis record (was it written by `diffdis generate`?)")
    return json.loads(text)
