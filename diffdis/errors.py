"""The one exception type users can cause; the CLI turns it into one line and an exit code."""

from __future__ import annotations


class DiffDisError(Exception):
    """A problem with the user's input, files or settings. The message says what to do."""

    exit_code: int = 1


class UsageError(DiffDisError):
    """A bad command-line value (exit code 2, like Click's usage errors)."""

    exit_code = 2
