import contextlib

import pytest
import torch
from safetensors.torch import save_file

from diffdis.errors import DiffDisError
from diffdis.train.checkpoint import checkpoints_dir, find_checkpoint, load_checkpoint_state, save_checkpoint


def _fake_model(d):
    """The files a checkpoint's model folder is checked for: the index and safetensors weights."""
    for part in ("unet", "text_encoder", "discriminator"):
        (d / part).mkdir(parents=True)
        save_file({"w": torch.zeros(2)}, str(d / part / "model.safetensors"))
    (d / "model_index.json").write_text("{}")


class StateBackend:
    """The plain backend's checkpoint side: training_state.pt holds `state`; one process."""

    def __init__(self, state):
        self.state = state

    def save(self, directory, client, rank):
        torch.save({**self.state, **client}, directory / "training_state.pt")

    def gathered(self):
        return contextlib.nullcontext()

    def barrier(self):
        pass


def _save(out, step, limit=None):
    return save_checkpoint(out, step, _fake_model, StateBackend({"x": step}), {}, total_limit=limit)


def test_latest_pointer_and_state_round_trip(tmp_path):
    _save(tmp_path, 2)
    _save(tmp_path, 4)
    path = find_checkpoint(tmp_path, "latest")
    assert path.name == "checkpoint-4"
    assert load_checkpoint_state(path) == (4, {"x": 4})


def test_incomplete_latest_falls_back_to_an_older_checkpoint(tmp_path):
    _save(tmp_path, 2)
    newest = _save(tmp_path, 4)
    (newest / "training_state.pt").unlink()
    messages = []
    assert find_checkpoint(tmp_path, "latest", messages.append).name == "checkpoint-2"
    assert "incomplete" in messages[0]


def test_leftover_temporary_folders_are_ignored_and_limit_prunes(tmp_path):
    _save(tmp_path, 1)
    (checkpoints_dir(tmp_path) / ".checkpoint-9.tmp-x").mkdir()
    for step in (2, 3, 4):
        _save(tmp_path, step, limit=2)
    names = sorted(p.name for p in checkpoints_dir(tmp_path).glob("checkpoint-*"))
    assert names == ["checkpoint-3", "checkpoint-4"]


def test_nothing_to_resume(tmp_path):
    with pytest.raises(DiffDisError, match="nothing to resume"):
        find_checkpoint(tmp_path, "latest")


def test_a_deepspeed_checkpoint_is_not_resumed_by_the_plain_loop(tmp_path):
    path = checkpoints_dir(tmp_path) / "checkpoint-2"
    (path / "deepspeed").mkdir(parents=True)
    _fake_model(path / "model")
    (path / "trainer_state.json").write_text('{"step": 2}')
    assert find_checkpoint(tmp_path, "latest") == path
    with pytest.raises(DiffDisError, match="resume it with --deepspeed"):
        load_checkpoint_state(path)


def test_export_source_follows_latest_and_refuses_other_folders(tmp_path):
    from diffdis.train.checkpoint import LATEST, checkpoints_dir, export_source

    run = tmp_path / "run"
    (checkpoints_dir(run) / "checkpoint-7").mkdir(parents=True)
    (checkpoints_dir(run) / LATEST).write_text("checkpoint-7", encoding="utf-8")
    assert export_source(run) == checkpoints_dir(run) / "checkpoint-7"
    assert export_source(checkpoints_dir(run)) == checkpoints_dir(run) / "checkpoint-7"
    assert export_source(checkpoints_dir(run) / "checkpoint-7") == checkpoints_dir(run) / "checkpoint-7"
    with pytest.raises(DiffDisError, match="neither a checkpoint folder"):
        export_source(tmp_path)


def test_check_new_run_refuses_a_run_over_another_unless_resuming(tmp_path):
    from diffdis.train.checkpoint import LATEST, check_new_run

    check_new_run(tmp_path, resuming=False)  # an empty folder starts a run
    (checkpoints_dir(tmp_path)).mkdir()
    (checkpoints_dir(tmp_path) / LATEST).write_text("checkpoint-2", encoding="utf-8")
    with pytest.raises(DiffDisError, match="--resume-from-checkpoint latest"):
        check_new_run(tmp_path, resuming=False)
    check_new_run(tmp_path, resuming=True)
    finished = tmp_path / "done"
    finished.mkdir()
    (finished / "clip_baseline.json").write_text("{}", encoding="utf-8")
    check_new_run(finished, resuming=False)  # another kind's marker is not this run's model
    with pytest.raises(DiffDisError, match="already holds a training run"):
        check_new_run(finished, resuming=False, finished="clip_baseline.json")
