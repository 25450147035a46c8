import pytest

from diffdis.errors import DiffDisError
from diffdis.train.checkpoint import checkpoints_dir, find_checkpoint, load_checkpoint_state, save_checkpoint


def _save(out, step, limit=None):
    def save_model(d):
        d.mkdir(parents=True)
        (d / "model_index.json").write_text("{}")

    return save_checkpoint(out, step, save_model, {"x": step}, limit)


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
    (path / "model").mkdir()
    (path / "model" / "model_index.json").write_text("{}")
    (path / "trainer_state.json").write_text('{"step": 2}')
    assert find_checkpoint(tmp_path, "latest") == path
    with pytest.raises(DiffDisError, match="resume it with --deepspeed"):
        load_checkpoint_state(path)
