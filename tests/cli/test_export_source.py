"""`diffdis export SOURCE`: SOURCE is a checkpoint-N folder, or a training output folder whose
checkpoints/latest names the checkpoint; anything else is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import diffdis.train.deepspeed
from diffdis_cli.main import app

runner = CliRunner()


@pytest.fixture
def exported(monkeypatch) -> list[Path]:
    """Record what export_checkpoint is asked to read instead of consolidating shards."""
    calls: list[Path] = []
    monkeypatch.setattr(
        diffdis.train.deepspeed, "export_checkpoint", lambda checkpoint, out: calls.append(Path(checkpoint))
    )
    return calls


def _run(tmp_path: Path) -> Path:
    root = tmp_path / "run" / "checkpoints"
    for step in (2, 4):
        (root / f"checkpoint-{step}" / "deepspeed").mkdir(parents=True)
    (root / "latest").write_text("checkpoint-2\n")  # latest names what was published last, not the highest number
    return tmp_path / "run"


@pytest.mark.parametrize(
    "source, expected",
    [("run", "checkpoint-2"), ("run/checkpoints", "checkpoint-2"), ("run/checkpoints/checkpoint-4", "checkpoint-4")],
)
def test_export_follows_latest_of_a_training_folder(tmp_path, exported, source, expected):
    _run(tmp_path)
    result = runner.invoke(app, ["export", str(tmp_path / source), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert exported == [tmp_path / "run" / "checkpoints" / expected]


def test_a_folder_without_checkpoints_is_refused_in_one_line(tmp_path, exported):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["export", str(tmp_path / "empty"), str(tmp_path / "out")])
    assert result.exit_code == 1 and "neither a checkpoint folder" in result.output
    assert len(result.output.strip().splitlines()) == 1 and exported == []
