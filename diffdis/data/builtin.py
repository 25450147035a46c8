"""The built-in offline datasets by name: one registry for the CLI and the library."""

from __future__ import annotations

from pathlib import Path

from diffdis.errors import UsageError

SPLITS = {"shapes": ("train",), "world": ("train", "heldout"), "digits": ("train", "test")}
DEFAULT_NUM_IMAGES = 1000


def make_dataset(
    name: str, out: Path, num_images: int | None = None, seed: int = 0, split: str = "train", size: int = 32
) -> int:
    """Write dataset `name` to `out` as an image folder with metadata.jsonl; returns the number of images.

    `num_images` defaults to 1000 for the drawn worlds; for digits it caps the split (default: all of it).
    """
    if name not in SPLITS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(SPLITS)}")
    if split not in SPLITS[name]:
        raise UsageError(f"dataset {name} has no split {split!r}; choose one of: {', '.join(SPLITS[name])}")
    out = Path(out)
    if (out / "metadata.jsonl").exists():
        raise UsageError(f"{out} already holds a dataset; choose another --out")
    if name == "digits":
        from diffdis.data.digits import make_digits

        make_digits(out, split, seed, size, limit=num_images)
    elif name == "world":
        from diffdis.data.world import make_world

        make_world(out, num_images or DEFAULT_NUM_IMAGES, seed, size, split)
    else:
        from diffdis.data.shapes import make_shapes

        make_shapes(out, num_images or DEFAULT_NUM_IMAGES, seed, size)
    return len((out / "metadata.jsonl").read_text(encoding="utf-8").splitlines())
