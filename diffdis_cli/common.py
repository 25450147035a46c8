"""What every command shares: error handling, quiet libraries, progress bars, JSON output.

Heavy libraries are imported inside commands, so `diffdis --help` stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape  # messages hold paths and [extras]: print them as written

from diffdis.quiet import quiet_libraries  # re-exported: every command silences the libraries the same way

err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _current_context() -> Any:
    """Click's current context; typer >= 0.2x runs on its own vendored copy of click, with its own stack."""
    import importlib

    for module in ("typer._click.globals", "click"):
        try:
            current = importlib.import_module(module).get_current_context(silent=True)
        except (ImportError, AttributeError):
            continue
        if current is not None:
            return current
    return None


def debug_enabled() -> bool:
    current = _current_context()
    root = current.find_root() if current is not None else None
    return bool(root and root.obj and root.obj.get("debug")) or os.environ.get("DIFFDIS_DEBUG") == "1"


def command(fn: F) -> F:
    """Turn library errors into one line on stderr and an exit code (2 for usage errors)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from diffdis.errors import DiffDisError

        try:
            return fn(*args, **kwargs)
        except DiffDisError as err:
            if debug_enabled():
                raise
            err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(err.exit_code) from None
        except OSError as err:  # the file system said no: permissions, disk full, a name too long ...
            if debug_enabled():
                raise
            where = f": {err.filename}" if err.filename else ""
            err_console.print(
                f"[red]error:[/red] {escape(str(err.strerror or err) + where)}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


MODEL = typer.Option(
    None, "--model", help="A model folder (the --output-dir of `diffdis train`). Default: the shipped model."
)
DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N. auto: CUDA when a GPU is visible.")
DTYPE = typer.Option(
    "auto",
    "--dtype",
    help="auto | fp32 | bf16 | fp16. auto: bf16 on GPUs that run it natively, else "
    "fp32. The VAE decodes in fp32 under fp16.",
)


def resolve_placement(device: str, dtype: str) -> tuple[Any, Any]:
    """(torch.device, torch.dtype) for --device and --dtype, checked before any data or model is loaded (a bad
    value is one line and exit code 2); TF32 is turned on where CUDA runs."""
    from diffdis.device import enable_tf32, resolve_device, resolve_dtype

    where = resolve_device(device)
    precision = resolve_dtype(dtype, where)
    enable_tf32(where)
    return where, precision


def load_pipeline(model: Any, device: Any = "cpu", dtype: Any = "fp32") -> Any:
    """The pipeline for --model, or for the model shipped with diffdis when --model is omitted, on `device` in
    `dtype` (as `resolve_placement` gives them)."""
    quiet_libraries()
    from diffdis.default_model import resolve_model
    from diffdis.pipeline import DiffDisPipeline

    return DiffDisPipeline.from_pretrained(resolve_model(model), device, dtype)


def model_fields(pipe: Any) -> dict[str, str]:
    """What JSON outputs say about the model that answered: its name and version."""
    return {"model": pipe.card.get("name", ""), "model_version": pipe.card.get("model_version", "")}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@contextmanager
def progress(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields update(done, total)."""
    if not enabled:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def step_progress(
    description: str, enabled: bool, log: Callable[[str], None], every: int
) -> Iterator[tuple[Callable[[int, int, dict[str, float]], None], dict[str, float]]]:
    """A training loop's callback: a progress bar, a log line every `every` steps, and the last step's logs."""
    last: dict[str, float] = {}
    with progress(description, enabled=enabled) as update:

        def on_step(step: int, total: int, logs: dict[str, float]) -> None:
            last.update(logs, step=step)
            update(step, total)
            if step % every == 0 or step == total:
                log(" ".join(f"{k}={v:.4g}" for k, v in {"step": step, **logs}.items()))

        yield on_step, last
