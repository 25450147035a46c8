"""CIFAR in its python version: cifar-10-batches-py/{data_batch_1..5,test_batch} and cifar-100-python/{train,test},
pickled dicts (Python 2, protocol 2) with b'data' (N, 3072) uint8 and b'labels' or b'fine_labels' and
b'coarse_labels'. Read with a restricted unpickler (safe_pickle): nothing in the file can run code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from diffdis.data.formats.cifar import PLANES, check_labels, cifar_table, planes_to_pixels, split_files
from diffdis.data.formats.safe_pickle import load_arrays
from diffdis.data.formats.table import Options, Table
from diffdis.errors import DiffDisError

PATTERNS = {"train": ("data_batch_[0-9]", "train"), "test": ("test_batch", "test")}
NAMES = {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"}


def looks_like(path: Path) -> bool:
    if path.is_file():
        return path.name in NAMES or (path.name in ("train", "test") and (path.parent / "meta").is_file())
    return path.is_dir() and (any((path / n).is_file() for n in NAMES) or (path / "meta").is_file())


def _get(batch: dict, key: str) -> Any:
    return batch.get(key.encode(), batch.get(key))


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """((N, 32, 32, 3) pixels, fine or only labels, coarse labels or None) from one pickled batch."""
    batch = load_arrays(path)
    data = _get(batch, "data") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PLANES:
        raise DiffDisError(f"{path} is not a CIFAR python batch (a dict with b'data', an (N, {PLANES}) uint8 array)")
    labels, coarse = _get(batch, "labels"), _get(batch, "coarse_labels")
    if labels is None:
        labels = _get(batch, "fine_labels")
    try:
        arrays = [np.asarray(x, dtype=np.int64) if x is not None else None for x in (labels, coarse)]
    except (ValueError, TypeError):
        arrays = [None]
    if arrays[0] is None or any(a is not None and a.shape != (len(data),) for a in arrays):
        raise DiffDisError(f"{path} needs b'labels' or b'fine_labels', one per image ({len(data)})")
    return planes_to_pixels(data), arrays[0], arrays[1]


def read(path: Path, options: Options) -> Table:
    options.refuse("cifar-python", image_root=True)
    files, name = split_files(path, options, PATTERNS)
    pixels, fine, coarse = [], [], []
    for file in files:
        images, labels, coarse_labels = read_batch(file)
        check_labels(labels, 100 if coarse_labels is not None else 10, file)
        pixels.append(images)
        fine.append(labels)
        coarse.append(coarse_labels)
    cifar100 = all(c is not None for c in coarse)
    return cifar_table(name, pixels, fine, coarse if cifar100 else None)
