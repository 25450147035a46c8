"""Real handwritten digits, offline: scikit-learn's 1,797 8x8 digits (the UCI optical digits test set), upscaled
and captioned, so zero-shot classification can be checked on real, not drawn, images.

Images are white strokes on black, as in MNIST, so the `mnist` label set and templates also apply.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from diffdis.data.formats.metadata import write_metadata
from diffdis.data.variation import STYLES, vary_digit
from diffdis.errors import DiffDisError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_FRACTION = 0.2
CAPTIONS = (
    "a handwritten digit {name}",
    "the number {digit}, handwritten",
    "a photo of the digit {name}",
    "a handwritten {digit}",
    "the digit {name}, written by hand",
    "a white handwritten number {name} on black",
    "{name}",
    "a scan of a handwritten {name}",
)


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


def digit_image(pixels: np.ndarray, size: int = 32, rng: np.random.Generator | None = None) -> Image.Image:
    """An 8x8 array of 0..16 as a `size` x `size` RGB image, white on black, upscaled with BICUBIC to fill the
    frame; with `rng`, varied as people write and scan digits (`diffdis.data.variation.vary_digit`)."""
    gray = Image.fromarray(np.round(pixels * (255 / 16)).astype(np.uint8))
    if rng is not None:
        return vary_digit(gray, rng, size)
    return gray.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def make_digits(
    out_dir: Path,
    split: str = "train",
    seed: int = 0,
    size: int = 32,
    limit: int | None = None,
    style: str | None = None,
) -> Path:
    """Write the split's images (named by their index in scikit-learn's array) and metadata.jsonl (file_name,
    text, label, label_name, split, index); `limit` keeps only the first that many of the split.

    `style`: "varied" (the train split's default) draws each digit smaller, off centre, slanted, with thinner or
    thicker strokes; "plain" (the test split's default: the digits as scanned) fills the frame."""
    if split not in ("train", "test"):
        raise DiffDisError(f"unknown digits split {split!r}; choose train or test")
    style = style or ("varied" if split == "train" else "plain")
    if style not in STYLES:
        raise DiffDisError(f"unknown digits style {style!r}; choose one of: {', '.join(STYLES)}")
    if size < 8:
        raise DiffDisError(f"image size {size} is smaller than the 8x8 source digits; use 8 or more")
    images, targets = _load()
    indices = split_indices(targets, seed)[split][:limit]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1 if split == "test" else 0])  # captions differ between splits
    draw = np.random.default_rng([seed, 2]) if style == "varied" else None  # its own stream: captions stay put
    rows = []
    for index in indices.tolist():
        label = int(targets[index])
        name = f"{index:04d}.png"
        digit_image(images[index], size, draw).save(out / name)
        text = CAPTIONS[rng.integers(len(CAPTIONS))].format(name=DIGIT_NAMES[label], digit=label)
        rows.append(
            {
                "file_name": name,
                "text": text,
                "label": label,
                "label_name": DIGIT_NAMES[label],
                "split": split,
                "index": index,
            }
        )
    write_metadata(out, rows)
    return out
