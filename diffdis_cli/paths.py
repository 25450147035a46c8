"""Output paths checked before any work starts; the check lives in the library (`diffdis.paths`), which the
library's own writers use too."""

from __future__ import annotations

from diffdis.paths import check_writable_folder

__all__ = ["check_writable_folder"]
