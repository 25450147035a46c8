"""Image-caption datasets through Hugging Face `datasets`: an image folder with metadata.jsonl
(`file_name`, `text`), or a parquet / CSV file with image and caption columns."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import datasets
import PIL.Image
from datasets import Dataset, Image

from diffdis.data.spec import DataSpec, as_data_spec, training_source
from diffdis.errors import DiffDisError


def _resolve_paths(ds: Dataset, column: str, root: Path) -> Dataset:
    """Relative image paths in a table are relative to the table's folder."""
    return ds.map(lambda row: {column: str(root / row[column]) if not os.path.isabs(row[column]) else row[column]})


def load_captioned(data: str | DataSpec, image_column: str = "image", caption_column: str = "text") -> Dataset:
    """A `datasets.Dataset` with columns `image` (decoded to PIL) and `text`.

    `data` may also name built-in datasets (see `diffdis.data.spec`), e.g. 'world:20000+digits', written once to
    the cache; without a /split, their train split.
    """
    spec = training_source(as_data_spec(data))
    if spec.sets:
        parts = [load_captioned(str(folder)) for folder in spec.folders("train")]
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    path, source = spec.text, spec.path
    datasets.disable_progress_bars()
    if source.is_dir():
        if not (source / "metadata.jsonl").is_file():
            raise DiffDisError(f'{source} has no metadata.jsonl (rows of {{"file_name": ..., "text": ...}})')
        if not (source / "metadata.jsonl").read_text(encoding="utf-8", errors="replace").strip():
            raise DiffDisError(
                f'{source}/metadata.jsonl holds no rows; add one {{"file_name": ..., "text": ...}} per line'
            )
        try:
            ds = datasets.load_dataset("imagefolder", data_dir=str(source), split="train")
        except Exception as err:  # datasets raises many types for a malformed folder
            raise DiffDisError(f"cannot read image folder {source}: {err}") from err
        image_column = "image"
    elif source.suffix in (".parquet", ".csv"):
        if not source.is_file():
            raise DiffDisError(f"data file {source} does not exist")
        try:
            ds = datasets.load_dataset(source.suffix[1:], data_files=str(source), split="train")
        except Exception as err:
            raise DiffDisError(f"cannot read {source}: {err}") from err
    else:
        raise DiffDisError(
            f"cannot use {path!r} as data: give an image folder with metadata.jsonl, a .parquet or a .csv file, "
            "or built-in datasets such as 'world:20000+digits'"
        )
    for column, flag in ((image_column, "--image-column"), (caption_column, "--caption-column")):
        if column not in ds.column_names:
            raise DiffDisError(f"{path} has no column {column!r} (columns: {ds.column_names}); set {flag}")
    if len(ds) == 0:
        raise DiffDisError(f"{path} holds no rows")
    if not isinstance(ds.features[image_column], Image):
        if getattr(ds.features[image_column], "dtype", None) in ("string", "large_string"):
            ds = _resolve_paths(ds, image_column, source.parent.resolve())
        ds = ds.cast_column(image_column, Image())
    ds = ds.select_columns([image_column, caption_column])
    if image_column != "image":
        ds = ds.rename_column(image_column, "image")
    if caption_column != "text":
        ds = ds.rename_column(caption_column, "text")
    return ds


def _row_problem(row: dict) -> str | None:
    """Why a training row cannot be used (no caption, image missing or unreadable), or None."""
    text, image = row["text"], row["image"] or {}
    if not isinstance(text, str) or not text.strip():
        return "has no caption"
    where = image.get("path") or "its image"
    try:
        source = io.BytesIO(image["bytes"]) if image.get("bytes") else image.get("path")
        if source is None:
            return "has no image"
        with PIL.Image.open(source) as picture:
            picture.load()
    except FileNotFoundError:
        return f"names {where}, which does not exist"
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as err:
        return f"has an unreadable image {where} ({err})"
    return None


def check_rows(ds: Dataset, bad_rows: str = "error", log: Callable[[str], None] = print) -> Dataset:
    """Read every row once before training: a bad row stops here (`error`) or is dropped (`skip`), never hours in."""
    raw = ds.cast_column("image", Image(decode=False))
    bad: list[tuple[int, str]] = []
    for i, row in enumerate(raw):
        problem = _row_problem(row)
        if problem is not None:
            bad.append((i, problem))
            if bad_rows == "error":
                raise DiffDisError(
                    f"training row {i} {problem}; fix it, or pass --bad-rows skip to train without such rows"
                )
    if not bad:
        return ds
    if len(bad) == len(ds):
        raise DiffDisError(f"none of the {len(ds)} training rows is usable (row {bad[0][0]} {bad[0][1]})")
    log(
        f"skipping {len(bad)} of {len(ds)} training rows without a "
        f"caption or a readable image (row {bad[0][0]} {bad[0][1]})"
    )
    skipped = {i for i, _ in bad}
    return ds.select([i for i in range(len(ds)) if i not in skipped])
