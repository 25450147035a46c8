"""Training checkpoints: a full model folder plus optimiser / scheduler / EMA state, written atomically.

    OUTPUT/checkpoints/checkpoint-N/{model/, training_state.pt | deepspeed/, trainer_state.json, data/rank-R.pt}
    OUTPUT/checkpoints/latest          names the newest complete checkpoint, written last
A checkpoint is built under a temporary name and renamed when complete, so a kill at any moment leaves
either the old set or the new one. training_state.pt holds only tensors and numbers and is read with
torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from diffdis.atomic import write_text_atomic
from diffdis.errors import DiffDisError

LATEST = "latest"
ModelCheck = Callable[[Path], "str | None"]


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def _complete(path: Path) -> bool:
    return _problem(path) is None


def _safetensors_intact(path: Path) -> bool:
    """The header parses and the file is as long as the header says: a truncated copy fails."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + size + end
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def diffdis_model_problem(path: Path) -> str | None:
    """What a DiffDis model folder in a checkpoint lacks, or None."""
    for name in ("model/model_index.json", "model/discriminator/model.safetensors"):
        if not (path / name).is_file():
            return f"{name} is missing"
    for folder in ("unet", "text_encoder"):
        if not any((path / "model" / folder).glob("*.safetensors")):
            return f"model/{folder} has no weights"
    return None


def _problem(path: Path, model_problem: ModelCheck | None = None) -> str | None:
    """Why `path` is not a complete checkpoint (a file missing, truncated or not parseable), or None.
    Cheap: reads headers, not weights. `model_problem` checks the trainer's own model folder."""
    if not path.is_dir():
        return "it does not exist"
    state = path / "training_state.pt"
    if not state.is_file() and not (path / "deepspeed").is_dir():  # single process | DeepSpeed
        return "training_state.pt is missing"
    if state.is_file() and not zipfile.is_zipfile(state):
        return "training_state.pt is truncated"
    if not (path / "trainer_state.json").is_file():
        return "trainer_state.json is missing"
    if not (path / "model").is_dir():
        return "model/ is missing"
    problem = (model_problem or diffdis_model_problem)(path)
    if problem is not None:
        return problem
    model = path / "model"
    for file in [path / "trainer_state.json", *model.rglob("*.json")]:
        try:
            json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return f"{file.relative_to(path)} is not valid JSON"
    for file in model.rglob("*.safetensors"):
        if not _safetensors_intact(file):
            return f"{file.relative_to(path)} is truncated"
    return None


def publish(root: Path, tmp: Path, step: int, total_limit: int | None) -> Path:
    """Rename a finished checkpoint into place, then point `latest` at it, then prune old ones."""
    final = root / f"checkpoint-{step}"
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step}) + "\n")
    if final.exists():
        shutil.rmtree(final)
    # A folder, under a name every rank knows (not atomic_path's per-process one): renamed by hand.
    os.replace(tmp, final)
    write_text_atomic(root / LATEST, final.name + "\n")
    if total_limit is not None:
        for old in sorted(_all(root), key=_step)[:-total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint(
    output_dir: Path,
    step: int,
    save_model: Callable[[Path], None],
    backend: Any,
    client: dict[str, Any],
    data_state: dict | None = None,
    rank: int = 0,
    total_limit: int | None = None,
) -> Path:
    """Build checkpoint-`step` under a temporary name every rank knows, then publish it (rank 0).

    `backend.save(dir, client, rank)` writes optimiser state (training_state.pt, or DeepSpeed's shards from
    every rank); `save_model(dir)` the model folder; each rank's data position goes to data/rank-R.pt.
    """
    root = checkpoints_dir(output_dir)
    tmp = root / f".checkpoint-{step}.tmp"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".checkpoint-*.tmp*"):  # left by a run killed while writing
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    backend.barrier()
    backend.save(tmp, client, rank)
    if data_state is not None:
        (tmp / "data").mkdir(exist_ok=True)
        torch.save(data_state, tmp / "data" / f"rank-{rank}.pt")
    with backend.gathered():
        if rank == 0:
            save_model(tmp / "model")
    backend.barrier()
    if rank == 0:
        publish(root, tmp, step, total_limit)
    backend.barrier()
    return root / f"checkpoint-{step}"


def read_step(path: Path) -> int:
    return int(json.loads((path / "trainer_state.json").read_text())["step"])


def _step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def _all(root: Path) -> list[Path]:
    return [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()]


def find_checkpoint(output_dir: Path, which: str, log: Any = print, model_problem: ModelCheck | None = None) -> Path:
    """`latest` (the pointer, or the newest complete checkpoint) or a checkpoint path."""
    if which != LATEST:
        path = Path(which)
        problem = _problem(path, model_problem)
        if problem is not None:
            raise DiffDisError(f"{which} is not a complete checkpoint folder ({problem}); pass another or 'latest'")
        return path
    root = checkpoints_dir(output_dir)
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text(errors="replace").strip()
        problem = _problem(named, model_problem) if named.parent == root else "it is not in the checkpoints folder"
        if problem is None:
            return named
        log(f"checkpoint {named.name} named by 'latest' is incomplete ({problem}); looking for an older one")
    for path in sorted(_all(root), key=_step, reverse=True):
        problem = _problem(path, model_problem)
        if problem is None:
            return path
        log(f"skipping {path.name}, incomplete: {problem}")
    raise DiffDisError(f"nothing to resume in {root}: no complete checkpoint; start without --resume-from-checkpoint")


def load_checkpoint_state(path: Path) -> tuple[int, dict[str, Any]]:
    if not (path / "training_state.pt").is_file() and (path / "deepspeed").is_dir():
        raise DiffDisError(f"{path} was written by a DeepSpeed run: resume it with --deepspeed")
    step = read_step(path)
    try:
        state = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise DiffDisError(f"{path}/training_state.pt is unreadable ({err}); resume from an older checkpoint") from err
    return step, state


def check_new_run(output_dir: Path, resuming: bool, finished: str = "model_index.json") -> None:
    """Refuse to start a run over another one's checkpoints (or its finished model, `finished`) unless resuming."""
    if not resuming and ((output_dir / finished).exists() or (checkpoints_dir(output_dir) / LATEST).exists()):
        raise DiffDisError(
            f"{output_dir} already holds a training run: pass "
            "--resume-from-checkpoint latest or pick a new --output-dir"
        )


def export_source(source: Path) -> Path:
    """What `diffdis export SOURCE` consolidates: a checkpoint folder as given; a training output folder (or its
    checkpoints/): the checkpoint `latest` names there, as DeepSpeed's own tools follow `latest`."""
    if (source / "deepspeed").is_dir() or source.name.startswith("checkpoint-"):
        return source
    for root in (checkpoints_dir(source), source):
        if (root / LATEST).is_file():
            return root / (root / LATEST).read_text(encoding="utf-8", errors="replace").strip()
    raise DiffDisError(
        f"{source} is neither a checkpoint folder (checkpoint-N) nor a training output folder with checkpoints/{LATEST}"
    )
