import json

import pytest

from diffdis.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_write_replaces_and_leaves_no_sibling(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old", encoding="utf-8")
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 1}
    assert target.read_text(encoding="utf-8").endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "log.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("killed")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt"]


def test_the_sibling_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "plot.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
