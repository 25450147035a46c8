"""How a bad-input case is written: `Case`, the command lines cases start from, and the builders of bad files
they write. The catalogue itself is split by command (`bad_inputs_model`, `bad_inputs_train`); the test that
runs each case is in test_bad_inputs.py.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


# ---- builders of bad files ------------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:700])


def _bomb(path: Path) -> None:
    """A valid 1x1 PNG whose header claims 100000 x 100000 pixels (a decompression bomb)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into(">II", data, 16, 100_000, 100_000)  # IHDR width, height
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _truncated_png(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])


def _copy_model(w: Path, d: Path) -> Path:
    shutil.copytree(w / "m", d / "m")
    return d / "m"


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))


def _dataset(d: Path, w: Path, rows: list[dict]) -> None:
    shutil.copytree(w / "data", d / "data", ignore=shutil.ignore_patterns("metadata.jsonl"))
    (d / "data" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


GOOD_ROWS = [{"file_name": f"{i:06d}.png", "text": "a red circle"} for i in range(4)]
TRAIN = [
    "train",
    "--data",
    "{w}/data",
    "--output-dir",
    "out",
    "--preset",
    "{w}/micro.json",
    "--max-steps",
    "1",
    "--batch-size",
    "2",
    "--vocab-size",
    "300",
    "--warmup-steps",
    "0",
]
CLASSIFY = ["classify", "img.png", "--model", "{w}/m", "--labels", "a,b", "--num-inference-steps", "1"]
GENERATE = ["generate", "a red circle", "--model", "{w}/m", "--num-inference-steps", "1", "--output", "o.png"]


def _with(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


@dataclass
class Case:
    args: list[str]
    code: int
    message: str
    setup: Callable[[Path, Path], object] = lambda d, w: None  # (test folder, world)
    absent: list[str] = field(default_factory=lambda: ["out", "o.png"])  # nothing partial left behind
    one_line: bool = True  # our errors are one line; Click's own usage errors print a short box


def img(write: Callable[[Path], object]) -> Callable[[Path, Path], object]:
    return lambda d, w: write(d / "img.png")
