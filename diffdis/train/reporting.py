"""Training logs a user can watch and plot: OUTPUT_DIR/logs.jsonl (one JSON object per logging step) and,
with `--report-to tensorboard`, TensorBoard event files in OUTPUT_DIR/tensorboard. Only rank 0 writes.

On resume, lines past the checkpoint's step (written by the run that was killed) are dropped, so the file
holds one curve.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

import torch

from diffdis.atomic import write_text_atomic
from diffdis.errors import DiffDisError, UsageError

REPORTERS = ("none", "tensorboard")
LOGS = "logs.jsonl"


def peak_memory_gib(device: torch.device) -> float:
    """Peak memory of this process so far: allocated CUDA memory on a GPU, resident set size on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**30 if sys.platform == "darwin" else 2**20)


def check_report_to(name: str) -> None:
    if name not in REPORTERS:
        raise UsageError(f"--report-to must be one of {', '.join(REPORTERS)}, got {name!r}")
    if name == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError as err:
            raise DiffDisError(
                "--report-to tensorboard needs the tensorboard package: pip install tensorboard"
            ) from err


def _keep_until(path: Path, step: int) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:  # a line cut by a kill
            continue
    write_text_atomic(path, "".join(line + "\n" for line in kept))


class Reporter:
    def __init__(self, output_dir: Path, report_to: str = "none", enabled: bool = True, start_step: int = 0) -> None:
        check_report_to(report_to)
        self.enabled, self.report_to, self.start_step = enabled, report_to, start_step
        self.path = Path(output_dir) / LOGS
        self.writer = None
        self.opened = False
        if enabled and self.path.is_file():
            _keep_until(self.path, start_step)

    def _open(self) -> None:
        """On the first write, so a run that fails before its first step leaves no folder behind."""
        self.opened = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=self.start_step or None)

    def write(self, step: int, logs: dict[str, Any], validation: bool = False) -> None:
        if not self.enabled or not logs:
            return
        if not self.opened:
            self._open()
        prefix = "validation/" if validation else ""
        record = {"step": step, **{prefix + k: v for k, v in logs.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(("validation/" if validation else "train/") + key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
