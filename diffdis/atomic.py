"""Write a file so that a crash never leaves half of it: write a hidden sibling, then rename it over the target.

Every writer in diffdis (records, model folders, logs, PNGs, caches) goes through here, so a killed run leaves
either the old file or the new one, never a truncated one that a later resume would trust.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; on success it replaces `path`, on error it is removed.
    The sibling keeps the suffix (matplotlib and PIL read the format from it) and names the process, so two
    writers never share one."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` and move the result onto `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """JSON with a final newline, as every record and config diffdis writes."""
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")
