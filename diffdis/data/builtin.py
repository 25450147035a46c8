"""The built-in offline datasets by name: one registry for the CLI and the library."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from diffdis.atomic import atomic_path
from diffdis.errors import UsageError

SPLITS = {"shapes": ("train",), "world": ("train", "heldout"), "digits": ("train", "test")}
# The split a command reads when --data names none: training the train split, evaluation the held-out one
# (world: colour x object pairs never seen in training; digits: the test split).
DEFAULT_SPLITS = {
    "train": dict.fromkeys(SPLITS, "train"),
    "eval": {"world": "heldout", "digits": "test", "shapes": "train"},
}
# Bump a generator's version when it writes different images or captions for the same seed: the cache folder
# is named with it, so a copy made by an older diffdis is never reused by mistake.
VERSIONS = {"shapes": 1, "world": 2, "digits": 2}  # 2: varied scale, slant, stroke, clutter (issue #17)
DEFAULT_NUM_IMAGES = 1000


def make_dataset(
    name: str,
    output_dir: Path,
    num_images: int | None = None,
    seed: int = 0,
    split: str = "train",
    size: int = 32,
    style: str | None = None,
) -> int:
    """Write dataset `name` to `output_dir` as an image folder with metadata.jsonl; returns the number of images.

    `num_images` defaults to 1000 for the drawn worlds; for digits it caps the split (default: all of it).
    `style` (world, digits): "varied" or "plain" (version 1); None: the generator's default.
    """
    if style is not None and name == "shapes":
        raise UsageError("--style applies to world and digits; shapes has one style")
    if name not in SPLITS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(SPLITS)}")
    if split not in SPLITS[name]:
        raise UsageError(f"dataset {name} has no split {split!r}; choose one of: {', '.join(SPLITS[name])}")
    out = Path(output_dir)
    if (out / "metadata.jsonl").exists():
        raise UsageError(f"{out} already holds a dataset; choose another --output-dir")
    if name == "digits":
        from diffdis.data.digits import make_digits

        make_digits(out, split, seed, size, limit=num_images, style=style)
    elif name == "world":
        from diffdis.data.world import make_world

        make_world(out, num_images or DEFAULT_NUM_IMAGES, seed, size, split, style or "varied")
    else:
        from diffdis.data.shapes import make_shapes

        make_shapes(out, num_images or DEFAULT_NUM_IMAGES, seed, size)
    return len((out / "metadata.jsonl").read_text(encoding="utf-8").splitlines())


def cache_root() -> Path:
    """Where built-in datasets named by --data are written once: $DIFFDIS_CACHE or ~/.cache/diffdis."""
    return Path(os.environ.get("DIFFDIS_CACHE", Path.home() / ".cache" / "diffdis")) / "datasets"


def materialise(name: str, num_images: int | None, split: str = "train") -> Path:
    """A split of a built-in dataset in the cache (seed 0), written on first use; concurrent writers do not
    collide (each builds under its own name and renames)."""
    folder = cache_root() / f"{name}-v{VERSIONS[name]}-{split}-{num_images or 'default'}"
    if not (folder / "metadata.jsonl").exists():
        with atomic_path(folder) as tmp:
            shutil.rmtree(tmp, ignore_errors=True)  # left by a killed process of the same id
            make_dataset(name, tmp, num_images, split=split)
            shutil.rmtree(folder, ignore_errors=True)  # a folder cannot be renamed over a non-empty one
    return folder
