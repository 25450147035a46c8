"""Readers for the evaluation datasets researchers already have on disk, each in its own file, detected from
what a path holds or named explicitly (`--data-format`). Nothing here downloads anything.

`--data PATH@SPLIT` (parsed with every other `--data` in `diffdis.data.spec`) chooses a split where a format has
several (CIFAR: test by default, or train; Karpathy: test, val, train, restval); pointing PATH at one split's file
(test_batch.bin, a .parquet) does the same.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from diffdis.data.formats import (
    cifar_binary,
    cifar_python,
    coco_captions,
    imagefolder,
    imagenet_devkit,
    karpathy,
    metadata,
    parquet,
)
from diffdis.data.formats.table import Options, Table
from diffdis.errors import DiffDisError, UsageError

# In the order `auto` tries them: the cheap and specific before the general.
FORMATS: dict[str, ModuleType] = {
    "metadata": metadata,
    "cifar-bin": cifar_binary,
    "cifar-python": cifar_python,
    "parquet": parquet,
    "karpathy": karpathy,
    "coco-captions": coco_captions,
    "imagenet-devkit": imagenet_devkit,
    "imagefolder": imagefolder,
}
ALIASES = {"cifar-parquet": "parquet"}

__all__ = ["FORMATS", "Options", "Table", "check_format", "detect", "read"]


def check_format(name: str | None) -> str | None:
    """The format a name stands for; None for auto-detection. An unknown name is a usage error."""
    if name is None or name == "auto":
        return None
    name = ALIASES.get(name, name)
    if name not in FORMATS:
        raise UsageError(f"--data-format {name!r}: choose auto or one of {', '.join(FORMATS)}")
    return name


def detect(path: Path) -> str | None:
    """The first format whose layout `path` has, or None."""
    return next((name for name, reader in FORMATS.items() if reader.looks_like(path)), None)


def read(path: Path, data_format: str | None = None, options: Options | None = None) -> Table:
    """Read `path` in the named format, or the one detected from what it holds."""
    options = options or Options()
    name = check_format(data_format) or detect(path)
    if name is None:
        if path.is_dir():
            raise DiffDisError(
                f"{path} has no metadata.jsonl (one JSON object per line with file_name and columns), nor class "
                "folders of images, CIFAR batches, parquet files or ILSVRC2012 val images; "
                "name its layout with --data-format"
            )
        raise DiffDisError(
            f"cannot tell what {path} holds (not a CIFAR batch, .parquet, Karpathy or COCO captions .json, or "
            "ILSVRC2012 ground truth); name its layout with --data-format"
        )
    return FORMATS[name].read(path, options)
