"""CIFAR in its binary version: cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, records of 1 label byte
+ 3072 pixel bytes; cifar-100-binary/{train,test}.bin, records of 2 label bytes (coarse, fine) + 3072."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffdis.data.formats.cifar import PLANES, check_labels, cifar_table, planes_to_pixels, split_files
from diffdis.data.formats.table import Options, Table
from diffdis.errors import DiffDisError

PATTERNS = {"train": ("data_batch_*.bin", "train.bin"), "test": ("test_batch.bin", "test.bin")}


def looks_like(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".bin"
    return path.is_dir() and any(any(path.glob(p)) for pats in PATTERNS.values() for p in pats)


def _is_cifar100(file: Path) -> bool:
    return file.name in ("train.bin", "test.bin") or (file.parent / "fine_label_names.txt").is_file()


def read_records(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """((N, 32, 32, 3) pixels, (N, label_bytes) labels) from one binary batch, whose length must fit."""
    raw = np.fromfile(path, dtype=np.uint8)
    size = label_bytes + PLANES
    if raw.size == 0 or raw.size % size:
        raise DiffDisError(f"{path}: {raw.size} bytes is not a whole number of {size}-byte records")
    records = raw.reshape(-1, size)
    return planes_to_pixels(records[:, label_bytes:]), records[:, :label_bytes]


def read(path: Path, options: Options) -> Table:
    options.refuse("cifar-bin", image_root=True)
    files, name = split_files(path, options, PATTERNS)
    cifar100 = _is_cifar100(files[0])
    pixels, fine, coarse = [], [], []
    for file in files:
        images, labels = read_records(file, 2 if cifar100 else 1)
        check_labels(labels[:, -1], 100 if cifar100 else 10, file)
        pixels.append(images)
        fine.append(labels[:, -1])
        coarse.append(labels[:, 0])
    return cifar_table(name, pixels, fine, coarse if cifar100 else None)
