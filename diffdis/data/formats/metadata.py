"""An image folder with metadata.jsonl: one JSON object per line, `file_name` plus any columns (the
Hugging Face imagefolder layout, and what diffdis writes for its built-in datasets). The one reader and writer
of that file in diffdis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffdis.atomic import write_text_atomic
from diffdis.data.formats.table import Options, Table
from diffdis.errors import DiffDisError


def looks_like(path: Path) -> bool:
    return path.name == "metadata.jsonl" or (path.is_dir() and (path / "metadata.jsonl").is_file())


def write_metadata(root: Path, rows: list[dict[str, Any]]) -> Path:
    """ROOT/metadata.jsonl, written last and whole: its presence marks a finished dataset folder."""
    return write_text_atomic(Path(root) / "metadata.jsonl", "".join(json.dumps(row) + "\n" for row in rows))


def read_metadata(root: Path) -> list[dict[str, Any]]:
    """The rows of ROOT/metadata.jsonl (blank lines skipped), each with a file_name; one error per bad line."""
    path = root / "metadata.jsonl"
    if not path.is_file():
        raise DiffDisError(f"{root} has no metadata.jsonl (one JSON object per line with file_name and columns)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DiffDisError(f"{path} line {n} is not JSON ({err})") from err
        if not isinstance(row, dict) or "file_name" not in row:
            raise DiffDisError(f"{path} line {n} needs a JSON object with a file_name")
        rows.append(row)
    if not rows:
        raise DiffDisError(f"{path} holds no rows")
    return rows


def read(path: Path, options: Options) -> Table:
    options.refuse("metadata", split=True, image_root=True)
    if path.name == "metadata.jsonl" and path.is_file():
        path = path.parent
    if not path.is_dir():
        raise DiffDisError(f"{path} is not a folder: metadata data is an image folder with metadata.jsonl")
    return Table(path.resolve().name, path, read_metadata(path))
