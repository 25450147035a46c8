"""Crash safety: `diffdis train` killed with SIGKILL at random moments, resumed with `latest` until done,
ends with the same weights, bit for bit, as a run never interrupted; damaged checkpoints are skipped."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffdis.config import save_config
from diffdis.data.shapes import make_shapes
from diffdis.errors import DiffDisError
from diffdis.train.checkpoint import LATEST, checkpoints_dir, find_checkpoint, save_checkpoint
from tests.conftest import micro_config
from tests.train.test_checkpoint import StateBackend, _fake_model

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
}  # 1 thread: fast on a busy CPU
MAX_STEPS = 10
WEIGHTS = (
    "unet/diffusion_pytorch_model.safetensors",
    "discriminator/model.safetensors",
    "text_encoder/model.safetensors",
)


def _train(root: Path, out: str, resume: bool, data: str = "data", extra: tuple[str, ...] = ()) -> subprocess.Popen:
    args = [
        "--data",
        data,
        *extra,
        "--output-dir",
        out,
        "--preset",
        "micro.json",
        "--max-steps",
        str(MAX_STEPS),
        "--batch-size",
        "4",
        "--checkpointing-steps",
        "1",
        "--warmup-steps",
        "1",
        "--learning-rate",
        "1e-3",
        "--vocab-size",
        "300",
        "--ema-decay",
        "0.9",
        "--json",
    ]
    if resume:
        args += ["--resume-from-checkpoint", "latest"]
    cmd = [sys.executable, "-m", "diffdis_cli", "train", *args]
    return subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _latest_step(out: Path) -> int:
    try:
        return int((checkpoints_dir(out) / LATEST).read_text().strip().rsplit("-", 1)[1])
    except (OSError, ValueError, IndexError):
        return 0


def _kill_after(proc: subprocess.Popen, out: Path, step: int, delay: float) -> bool:
    """SIGKILL `proc` `delay` seconds after checkpoint `step` is published; False if it finished first."""
    deadline = time.monotonic() + 120
    while _latest_step(out) < step and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


@pytest.fixture
def root(tmp_path: Path) -> Path:
    save_config(micro_config(), tmp_path / "micro.json")
    make_shapes(tmp_path / "data", 16, seed=0, size=16)
    return tmp_path


def test_sigkill_at_random_moments_then_resume_latest_gives_the_same_weights(root):
    reference = _train(root, "a", resume=False)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-2000:]

    rng = random.Random(1234)
    kill_steps = sorted(rng.sample(range(1, MAX_STEPS), 3))  # kill 0-0.6 s after these checkpoints appear
    kills, resume = 0, False
    for step in kill_steps:
        proc = _train(root, "b", resume)
        kills += _kill_after(proc, root / "b", step, rng.uniform(0.0, 0.6))
        resume = True
    for _ in range(3):  # resume until done (a kill may have landed before checkpoint `step` of the next round)
        proc = _train(root, "b", resume=True)
        _, err = proc.communicate(timeout=300)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, err[-2000:]
    assert kills >= 2, kills
    assert not list(checkpoints_dir(root / "b").glob(".checkpoint-*.tmp*"))  # stale temporary folders are cleaned
    for part in WEIGHTS:
        a, b = load_file(root / "a" / part), load_file(root / "b" / part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part


def test_sigkill_during_a_streamed_run_then_resume_latest_gives_the_same_weights(root):
    """Tar shards, read as a stream with 2 workers: the data position comes back with the checkpoint. With
    --shuffle-buffer 1 the resumed run sees exactly the batches of an uninterrupted one."""
    from tests.data.shards import write_shards

    write_shards(root / "shards", 4, 8)
    stream = ("--shuffle-buffer", "1", "--dataloader-num-workers", "2")
    reference = _train(root, "a", False, "shards", stream)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-2000:]
    assert _kill_after(_train(root, "b", False, "shards", stream), root / "b", 4, 0.1)
    assert (checkpoints_dir(root / "b") / "checkpoint-4" / "data" / "rank-0.pt").is_file()
    resumed = _train(root, "b", True, "shards", stream)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    for part in WEIGHTS:
        a, b = load_file(root / "a" / part), load_file(root / "b" / part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part


def _three(tmp_path: Path) -> Path:
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, _fake_model, StateBackend({"x": step}), {})
    return checkpoints_dir(tmp_path)


@pytest.mark.parametrize(
    "damage, why",
    [
        (
            lambda c: (c / "model" / "unet" / "model.safetensors").write_bytes(
                (c / "model" / "unet" / "model.safetensors").read_bytes()[:-3]
            ),
            "truncated",
        ),
        (lambda c: (c / "model" / "discriminator" / "model.safetensors").unlink(), "missing"),
        (lambda c: (c / "training_state.pt").write_bytes((c / "training_state.pt").read_bytes()[:40]), "truncated"),
        (lambda c: (c / "trainer_state.json").write_text('{"step": '), "not valid JSON"),
        (lambda c: __import__("shutil").rmtree(c), "does not exist"),
    ],
    ids=["truncated-safetensors", "missing-weights", "truncated-state", "bad-json", "latest-names-a-missing-folder"],
)
def test_resume_latest_skips_a_damaged_newest_checkpoint(tmp_path, damage, why):
    root = _three(tmp_path)
    damage(root / "checkpoint-3")
    messages: list[str] = []
    assert find_checkpoint(tmp_path, LATEST, messages.append).name == "checkpoint-2"
    assert "checkpoint-3" in messages[0] and why in messages[0]


def test_latest_pointer_lost_uses_the_newest_intact_checkpoint(tmp_path):
    root = _three(tmp_path)
    (root / LATEST).unlink()
    (root / "checkpoint-3" / "training_state.pt").unlink()
    messages: list[str] = []
    assert find_checkpoint(tmp_path, LATEST, messages.append).name == "checkpoint-2"
    assert "skipping checkpoint-3" in messages[0]


def test_a_named_damaged_checkpoint_is_refused_with_the_reason(tmp_path):
    root = _three(tmp_path)
    (root / "checkpoint-2" / "model" / "model_index.json").unlink()
    with pytest.raises(DiffDisError, match="model_index.json is missing"):
        find_checkpoint(tmp_path, str(root / "checkpoint-2"))


def test_every_checkpoint_damaged_is_nothing_to_resume(tmp_path):
    root = _three(tmp_path)
    for step in (1, 2, 3):
        (root / f"checkpoint-{step}" / "training_state.pt").unlink()
    with pytest.raises(DiffDisError, match="nothing to resume"):
        find_checkpoint(tmp_path, LATEST, lambda m: None)
