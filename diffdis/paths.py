"""Output paths checked before any work starts: a run must not fail hours in because it cannot write."""

from __future__ import annotations

import os
from pathlib import Path

from diffdis.errors import UsageError


def check_writable_folder(folder: Path, flag: str) -> None:
    """`folder` (created later if missing) can be written: it, or its nearest existing parent, is a writable folder.
    Creates nothing, so a refused command leaves nothing behind. `flag` names the option in the message."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == Path(os.path.abspath(folder)) else f" ({existing} is a file)"
        raise UsageError(f"{flag} {folder} is not a folder{where}; choose a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {existing} ({flag} {folder}); choose a folder you can write to")
