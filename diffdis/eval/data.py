"""Evaluation data: a built-in dataset's evaluation split by name, or data on disk in any layout that
`diffdis.data.formats` reads (an image folder with metadata.jsonl, class folders, CIFAR, parquet, Karpathy or
COCO captions JSON, the ILSVRC2012 devkit).

`--data` follows the one grammar of `diffdis.data.spec`, as in training: `world` is the world's held-out split
(colour x object pairs never seen in training), `digits` the digits test split; `world:500` caps the number of
images; `world/train` names another split; `world:500+digits` joins sets. Built-in sets are written once to the
cache (`diffdis.data.builtin.cache_root`), like the training data. On disk, `PATH@SPLIT` chooses a split (see
`diffdis.data.formats`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from diffdis.data import formats
from diffdis.data.formats.metadata import read_metadata
from diffdis.data.formats.table import Table
from diffdis.data.images import load_image
from diffdis.data.spec import DataSpec, as_data_spec, evaluation_source
from diffdis.errors import DiffDisError

# The column a label set's names come from, when --label-column is not given.
LABEL_COLUMNS = ("label_name", "label", "object", "colour", "class", "category")

__all__ = ["EvalData", "label_targets", "load_eval_data", "read_metadata", "shard"]


@dataclass
class EvalData(Table):
    """Rows of metadata with their images: files under `root` (read when asked for: shards read only theirs),
    or held in memory (`inline`, one per row) for formats that pack them into their own files (CIFAR, parquet)."""

    def __len__(self) -> int:
        return len(self.rows)

    def images(self, indices: list[int]) -> list[Image.Image]:
        if self.inline is not None:
            return [self._inline_image(i) for i in indices]
        return [load_image(self.root / self.rows[i]["file_name"]).convert("RGB") for i in indices]

    def _inline_image(self, index: int) -> Image.Image:
        item = self.inline[index]
        if isinstance(item, np.ndarray):
            return Image.fromarray(item).convert("RGB")
        try:
            with Image.open(io.BytesIO(item)) as image:
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
            raise DiffDisError(f"{self.name} row {index} is not a readable image ({err})") from err

    def head(self, count: int | None) -> EvalData:
        """The first `count` rows (all for None), their images with them."""
        inline = None if self.inline is None else self.inline[:count]
        return EvalData(self.name, self.root, self.rows[:count], inline)

    def column(self, name: str) -> list[Any]:
        missing = [i for i, row in enumerate(self.rows) if name not in row]
        if missing:
            columns = sorted({k for row in self.rows for k in row} - {"file_name"})
            raise DiffDisError(f"{self.name}: row {missing[0]} has no column {name!r} (columns: {columns})")
        return [row[name] for row in self.rows]


def _builtin_data(spec: DataSpec) -> EvalData:
    """The sets' evaluation splits (unless named), written once to the cache; several sets are one table whose
    file names are relative to the cache folder they all live in."""
    sets, folders = spec.resolved("eval"), spec.folders("eval")
    label = "+".join(s.label for s in sets)
    if len(folders) == 1:
        return EvalData(label, folders[0], read_metadata(folders[0]))
    rows = [{**row, "file_name": f"{f.name}/{row['file_name']}"} for f in folders for row in read_metadata(f)]
    return EvalData(label, folders[0].parent, rows)


def load_eval_data(
    spec: str | DataSpec, data_format: str | None = None, image_root: Path | None = None, drop_unknown: bool = False
) -> EvalData:
    """Data on disk (PATH or PATH@SPLIT; its layout detected, or named by `data_format`), or built-in sets in the
    grammar of `diffdis.data.spec` (world, digits, shapes; /split, :N, joined by +). `image_root`: where an
    annotation file's images are; `drop_unknown`: leave out class folders that are not ImageNet classes instead
    of refusing them."""
    data_format = formats.check_format(data_format)
    source = evaluation_source(as_data_spec(spec))
    if source.sets:
        if data_format not in (None, "metadata") or image_root is not None:
            raise DiffDisError(f"{source.text} is a built-in dataset: drop --data-format and --image-root")
        return _builtin_data(source)
    table = formats.read(source.path, data_format, formats.Options(source.split, image_root, drop_unknown))
    return EvalData(table.name, table.root, table.rows, table.inline)


def _matches(value: Any, labels: list[str]) -> bool:
    return isinstance(value, str) and value.strip().lower() in labels


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def label_targets(
    data: EvalData, labels: list[str], column: str | None = None, drop_unknown: bool = False
) -> tuple[list[int], list[int], str]:
    """(row indices kept, target index into `labels` per kept row, the column used).

    Labels are matched by name, case-insensitively. Without `column`, the first of LABEL_COLUMNS whose
    values all name a label is used (so world data picks `object` or `colour` by the label set), else one
    some of whose values do, else one of integers (CIFAR's and ImageNet's `label`).
    Integer columns (digits' `label`) are read as indices into the label set.
    """
    lowered = [x.strip().lower() for x in labels]
    if column is None:
        present = [c for c in LABEL_COLUMNS if all(c in row for row in data.rows)]
        full = [c for c in present if all(_matches(row[c], lowered) for row in data.rows)]
        partial = [c for c in present if any(_matches(row[c], lowered) for row in data.rows)]
        indices = [c for c in present if all(_is_index(row[c]) for row in data.rows)]
        if not (full or partial or indices):
            raise DiffDisError(
                f"no column of {data.name} names the labels {labels[:5]}{'...' if len(labels) > 5 else ''} "
                f"(looked at {present or list(LABEL_COLUMNS)}); choose the label set that matches the data "
                "or set --label-column"
            )
        column = (full or partial or indices)[0]
    values = data.column(column)
    kept, targets, unknown = [], [], set()
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise DiffDisError(f"{data.name} column {column!r} holds {value!r}; use a column of label names")
        if isinstance(value, int):
            target = value if 0 <= value < len(labels) else None
        else:
            target = lowered.index(value.strip().lower()) if _matches(value, lowered) else None
        if target is None:
            unknown.add(str(value))
            continue
        kept.append(i)
        targets.append(target)
    if unknown and not drop_unknown:
        raise DiffDisError(
            f"{len(values) - len(kept)} rows of {data.name} have a {column!r} that is not in the label set "
            f"({', '.join(sorted(unknown)[:8])}); choose a matching label set, or pass --drop-unknown to "
            "evaluate only the rows whose label is in the set"
        )
    if not kept:
        raise DiffDisError(f"no row of {data.name} has a {column!r} in the label set")
    return kept, targets, column


def shard(indices: list[int], num_shards: int, shard_index: int) -> list[int]:
    """Every num_shards-th item, starting at shard_index: shards are disjoint and together cover all."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise DiffDisError(f"shard-index must be in [0, {num_shards}) and num-shards at least 1")
    return indices[shard_index::num_shards]
