"""A Hugging Face parquet folder, CIFAR as the Hub ships it: plain_text/{train,test}-00000-of-00001.parquet with
`img` {bytes, path} and `label` (CIFAR-100: `fine_label`, `coarse_label`). Any parquet whose images are in `img`
or `image` works: the other columns become row columns, and `fine_label` is also `label`.

A folder's split is chosen by file name (`test-*.parquet`, `test.parquet`) or folder (`test/*.parquet`):
`test` unless `PATH@SPLIT` names another; a folder whose files name no split is read whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from diffdis.data.formats.cifar import DEFAULT_SPLIT
from diffdis.data.formats.table import Options, Table
from diffdis.errors import DiffDisError

IMAGE_COLUMNS = ("img", "image")
DEPTHS = ("*.parquet", "*/*.parquet", "*/*/*.parquet")  # root, config/, config/split/


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(f for pattern in DEPTHS for f in folder.glob(pattern))


def looks_like(path: Path) -> bool:
    return path.suffix == ".parquet" if path.is_file() else path.is_dir() and bool(_parquet_files(path))


def _split_of(file: Path) -> str | None:
    named = re.match(r"([A-Za-z]+)(?:[-_.]|$)", file.stem)
    if named and named[1] in ("train", "test", "validation", "val", "valid"):
        return named[1]
    return file.parent.name if file.parent.name in ("train", "test", "validation", "val", "valid") else None


def _files(path: Path, options: Options) -> tuple[list[Path], str]:
    if path.is_file():
        options.refuse("a single parquet file", split=True)
        return [path], f"{path.parent.resolve().name}-{path.stem}"
    files = _parquet_files(path)
    if not files:
        raise DiffDisError(f"{path} holds no .parquet files")
    splits = {f: _split_of(f) for f in files}
    if options.split is None and not any(splits.values()):
        return files, path.resolve().name
    split = options.split or DEFAULT_SPLIT
    chosen = [f for f in files if splits[f] == split]
    if not chosen:
        found = sorted({s for s in splits.values() if s})
        raise DiffDisError(f"{path} has no parquet files of the {split!r} split (splits: {', '.join(found) or 'none'})")
    return chosen, f"{path.resolve().name}-{split}"


def _image_bytes(cell: object, index: int, source: Path) -> bytes:
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if not isinstance(data, bytes):
        raise DiffDisError(f"{source}: row {index} holds no image bytes (got {type(data).__name__})")
    return data


def read(path: Path, options: Options) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    options.refuse("parquet", image_root=True)
    files, name = _files(path, options)
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files])
    except (pa.ArrowException, OSError) as err:
        raise DiffDisError(f"cannot read the parquet files of {path}: {err}") from err
    column = next((c for c in IMAGE_COLUMNS if c in table.column_names), None)
    if column is None:
        raise DiffDisError(f"{path}: no image column ({' or '.join(IMAGE_COLUMNS)}) among {table.column_names}")
    images = [_image_bytes(cell, i, path) for i, cell in enumerate(table.column(column).to_pylist())]
    rows = table.drop_columns([column]).to_pylist()
    for row in rows:
        if "label" not in row and "fine_label" in row:
            row["label"] = row["fine_label"]
    if not rows:
        raise DiffDisError(f"{path}: the parquet files hold no rows")
    return Table(name, None, rows, images)
