"""Silence the libraries diffdis drives: their progress bars and advisory warnings would drown a command's own
output (the CLI's, a benchmark's, a notebook's). A plain function, no UI library: callers print as they like."""

from __future__ import annotations

import os


def quiet_libraries() -> None:
    """diffusers and transformers log errors only and draw no progress bars (they stay so for the process)."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
