"""Training checkpoints: a full model folder plus optimiser / scheduler / EMA state, written atomically.

    OUTPUT/checkpoints/checkpoint-N/{model/, training_state.pt, trainer_state.json}
    OUTPUT/checkpoints/latest          names the newest complete checkpoint, written last
A checkpoint is built under a temporary name and renamed when complete, so a kill at any moment leaves
either the old set or the new one. training_state.pt holds only tensors and numbers and is read with
torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from diffdis.errors import DiffDisError

LATEST = "latest"


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def _complete(path: Path) -> bool:
    state = (path / "training_state.pt").is_file() or (path / "deepspeed").is_dir()  # single process | DeepSpeed
    return (path / "trainer_state.json").is_file() and state and (path / "model" / "model_index.json").is_file()


def publish(root: Path, tmp: Path, step: int, total_limit: int | None) -> Path:
    """Rename a finished checkpoint into place, then point `latest` at it, then prune old ones."""
    final = root / f"checkpoint-{step}"
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step}) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, root / LATEST)
    if total_limit is not None:
        for old in sorted(_all(root), key=_step)[:-total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint(
    output_dir: Path, step: int, save_model: Any, state: dict[str, Any], total_limit: int | None = None
) -> Path:
    """`save_model(dir)` writes the model folder; `state` is torch-serialisable (tensors, numbers, dicts)."""
    root = checkpoints_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".checkpoint-{step}.tmp-", dir=root))
    try:
        save_model(tmp / "model")
        torch.save(state, tmp / "training_state.pt")
        return publish(root, tmp, step, total_limit)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def _all(root: Path) -> list[Path]:
    return [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()]


def find_checkpoint(output_dir: Path, which: str, log: Any = print) -> Path:
    """`latest` (the pointer, or the newest complete checkpoint) or a checkpoint path."""
    if which != LATEST:
        path = Path(which)
        if not _complete(path):
            raise DiffDisError(f"{which} is not a complete checkpoint folder")
        return path
    root = checkpoints_dir(output_dir)
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if _complete(named):
            return named
        log(f"checkpoint {named.name} named by 'latest' is incomplete; looking for an older one")
    candidates = sorted((p for p in _all(root) if _complete(p)), key=_step)
    if not candidates:
        raise DiffDisError(f"nothing to resume in {root}: no complete checkpoint; start without --resume-from-checkpoint")
    return candidates[-1]


def load_checkpoint_state(path: Path) -> tuple[int, dict[str, Any]]:
    if not (path / "training_state.pt").is_file() and (path / "deepspeed").is_dir():
        raise DiffDisError(f"{path} was written by a DeepSpeed run: resume it with --deepspeed")
    step = int(json.loads((path / "trainer_state.json").read_text())["step"])
    try:
        state = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise DiffDisError(f"{path}/training_state.pt is unreadable ({err}); resume from an older checkpoint") from err
    return step, state
