"""Real handwritten digits, offline: scikit-learn's 1,797 8x8 digits (the UCI optical digits test set), upscaled
and captioned, so zero-shot classification can be checked on real, not drawn, images.

Images are white strokes on black, as in MNIST, so the `mnist` label set and templates also apply.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from diffdis.errors import DiffDisError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_FRACTION = 0.2
CAPTIONS = (
    "a handwritten digit {name}", "the number {digit}, handwritten", "a photo of the digit {name}",
    "a handwritten {digit}", "the digit {name}, written by hand", "a white handwritten number {name} on black",
    "{name}", "a scan of a handwritten {name}",
)  # fmt: skip


def _load() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DiffDisError("the digits dataset needs scikit-learn: pip install scikit-learn") from err
    bunch = load_digits()
    return bunch.images, bunch.target


def split_indices(targets: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """A stratified split: per class, a seeded shuffle puts `TEST_FRACTION` of the indices in test."""
    rng = np.random.default_rng(seed)
    test = []
    for label in range(len(DIGIT_NAMES)):
        members = np.flatnonzero(targets == label)
        test.extend(rng.permutation(members)[: round(len(members) * TEST_FRACTION)].tolist())
    is_test = np.zeros(len(targets), dtype=bool)
    is_test[test] = True
    return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


def digit_image(pixels: np.ndarray, size: int = 32) -> Image.Image:
    """An 8x8 array of 0..16 as a `size` x `size` RGB image, white on black, upscaled with BICUBIC."""
    gray = Image.fromarray(np.round(pixels * (255 / 16)).astype(np.uint8))
    return gray.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def make_digits(out_dir: Path, split: str = "train", seed: int = 0, size: int = 32, limit: int | None = None) -> Path:
    """Write the split's images (named by their index in scikit-learn's array) and metadata.jsonl (file_name,
    text, label, label_name, split, index); `limit` keeps only the first that many of the split."""
    if split not in ("train", "test"):
        raise DiffDisError(f"unknown digits split {split!r}; choose train or test")
    if size < 8:
        raise DiffDisError(f"image size {size} is smaller than the 8x8 source digits; use 8 or more")
    images, targets = _load()
    indices = split_indices(targets, seed)[split][:limit]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1 if split == "test" else 0])  # captions differ between splits
    rows = []
    for index in indices.tolist():
        label = int(targets[index])
        name = f"{index:04d}.png"
        digit_image(images[index], size).save(out / name)
        text = CAPTIONS[rng.integers(len(CAPTIONS))].format(name=DIGIT_NAMES[label], digit=label)
        rows.append({"file_name": name, "text": text, "label": label, "label_name": DIGIT_NAMES[label], "split": split,
                     "index": index})  # fmt: skip
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return out
