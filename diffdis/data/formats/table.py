"""What every format reader returns (rows of columns, and where each row's image is), and the checks they share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffdis.errors import DiffDisError

# A row's image held in memory: an (H, W, 3) uint8 array (CIFAR) or an encoded image file's bytes (parquet).
InlineImage = np.ndarray | bytes


@dataclass
class Table:
    """Rows of columns (`file_name` relative to `root` for images on disk, `text`, `label`, ...).

    `inline`, when set, holds the images themselves, one per row, for formats that keep them inside their files.
    """

    name: str  # short name for result files
    root: Path | None
    rows: list[dict[str, Any]]
    inline: Sequence[InlineImage] | None = None


@dataclass(frozen=True)
class Options:
    """What `--data` can say beyond the path: a split (`PATH@SPLIT`), where images are, whether to drop unknowns."""

    split: str | None = None
    image_root: Path | None = None
    drop_unknown: bool = False

    def refuse(self, fmt: str, split: bool = False, image_root: bool = False) -> None:
        """Refuse the options a format has no use for, rather than ignore them silently."""
        if split and self.split is not None:
            raise DiffDisError(
                f"{fmt} data has no splits to choose from: drop '@{self.split}' and point --data at the split"
            )
        if image_root and self.image_root is not None:
            raise DiffDisError(
                f"{fmt} data does not use --image-root (only karpathy, coco-captions and imagenet-devkit do)"
            )


def require_files(rows: list[dict[str, Any]], root: Path, source: Path, what: str) -> None:
    """Refuse data that names images missing on disk, before any model is loaded."""
    missing = [row["file_name"] for row in rows if not (root / row["file_name"]).is_file()]
    if missing:
        raise DiffDisError(
            f"{source}: {len(missing)} of {len(rows)} {what} images are missing under {root} (first: {missing[0]}); "
            "pass --image-root DIR where they are"
        )


def find_image_root(source: Path, first: str, subfolders: Sequence[str] = ()) -> Path:
    """Where an annotation file's images are when --image-root is not given: its folder or the one above,
    or a usual subfolder of either (e.g. flickr30k-images/); the first that holds `first`, else its folder."""
    folders = [source.parent, source.parent.parent]
    for candidate in [f / sub for f in folders for sub in ("", *subfolders)]:
        if (candidate / first).is_file():
            return candidate
    return source.parent


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DiffDisError(f"{path} is not UTF-8 text ({err.reason})") from err
    except json.JSONDecodeError as err:
        raise DiffDisError(f"{path} is not JSON ({err})") from err
    except OSError as err:  # a folder, unreadable, ...
        raise DiffDisError(f"cannot read {path} as a JSON file: {err.strerror or err}") from err
