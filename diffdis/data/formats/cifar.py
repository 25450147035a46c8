"""What CIFAR-10 and CIFAR-100 share however they are packed: 32x32 RGB images stored as three colour planes,
a train and a test split (test by default: the evaluation split), `label` the class index (CIFAR-100: the fine
label, with `coarse_label` beside it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffdis.data.formats.table import Options, Table
from diffdis.errors import DiffDisError

SIDE = 32
PLANES = 3 * SIDE * SIDE  # 3072 bytes a record: the R plane, then G, then B, each 32x32 row-major
DEFAULT_SPLIT = "test"


def planes_to_pixels(data: np.ndarray) -> np.ndarray:
    """(N, 3072) colour planes -> (N, 32, 32, 3) uint8 pixels."""
    return np.ascontiguousarray(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))


def split_files(path: Path, options: Options, patterns: dict[str, tuple[str, ...]]) -> tuple[list[Path], str]:
    """(the files of the chosen split, a name for results). A file path is its own split; a folder gives the
    files that match the split's patterns (`patterns[split]`: CIFAR-10's names, then CIFAR-100's)."""
    if path.is_file():
        options.refuse("a single CIFAR file", split=True)
        return [path], f"{path.parent.resolve().name}-{path.name.removesuffix('.bin')}"
    split = options.split or DEFAULT_SPLIT
    if split not in patterns:
        raise DiffDisError(f"CIFAR has the splits {' and '.join(patterns)}, not {split!r}")
    for pattern in patterns[split]:
        files = sorted(path.glob(pattern))
        if files:
            return files, f"{path.resolve().name}-{split}"
    raise DiffDisError(f"{path} has no {split} split files ({' or '.join(patterns[split])})")


def check_labels(labels: np.ndarray, classes: int, source: Path) -> None:
    """A label out of range means the file is not the CIFAR it was taken for (10 vs 100 classes)."""
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DiffDisError(f"{source}: label {int(labels.max())} is outside CIFAR's {classes} classes")


def cifar_table(
    name: str, pixels: list[np.ndarray], labels: list[np.ndarray], coarse: list[np.ndarray] | None
) -> Table:
    """One table from the files of a split: `label` per row, and `coarse_label` for CIFAR-100."""
    fine = np.concatenate(labels).tolist()
    rows = [{"label": int(y)} for y in fine]
    if coarse is not None:
        for row, c in zip(rows, np.concatenate(coarse).tolist()):
            row["coarse_label"] = int(c)
    return Table(name, None, rows, np.concatenate(pixels))
