"""Evaluation data: label columns mapped to a label set, built-in names, shards."""

from __future__ import annotations

import json

import pytest

from diffdis.data.spec import BuiltinSet, parse_data_spec
from diffdis.errors import DiffDisError
from diffdis.eval.data import EvalData, label_targets, load_eval_data, shard


def data(rows):
    return EvalData("toy", None, [{"file_name": f"{i}.png", **r} for i, r in enumerate(rows)])


def test_the_column_that_names_the_labels_is_found():
    toy = data([{"object": "cat", "colour": "Red"}, {"object": "dog", "colour": "blue"}])
    assert label_targets(toy, ["blue", "red"]) == ([0, 1], [1, 0], "colour")
    assert label_targets(toy, ["dog", "cat"]) == ([0, 1], [1, 0], "object")
    digits = data([{"label": 3, "label_name": "three"}, {"label": 0, "label_name": "zero"}])
    assert label_targets(digits, ["zero", "one", "two", "three"])[1] == [3, 0]
    assert label_targets(digits, ["0", "1", "2", "3"], column="label")[1] == [3, 0]  # integers index the set


def test_labels_outside_the_set_are_refused_or_dropped():
    toy = data([{"object": "cat"}, {"object": "star"}, {"object": "dog"}])
    with pytest.raises(DiffDisError, match="star.*--drop-unknown"):
        label_targets(toy, ["cat", "dog"])
    assert label_targets(toy, ["cat", "dog"], drop_unknown=True) == ([0, 2], [0, 1], "object")
    with pytest.raises(DiffDisError, match="no column"):
        label_targets(toy, ["zero", "one"])
    with pytest.raises(DiffDisError, match="no column 'colour'"):
        label_targets(toy, ["red", "blue"], column="colour")


def test_shards_are_disjoint_and_cover_everything():
    items = list(range(10))
    parts = [shard(items, 3, i) for i in range(3)]
    assert parts[1] == [1, 4, 7] and sorted(sum(parts, [])) == items
    with pytest.raises(DiffDisError):
        shard(items, 2, 2)


def test_builtin_names_and_folders(tmp_path):
    assert parse_data_spec("world").resolved("eval") == (BuiltinSet("world", "heldout"),)
    assert parse_data_spec("digits/train:100").resolved("eval") == (BuiltinSet("digits", "train", 100),)
    assert not parse_data_spec("cifar10").sets
    with pytest.raises(DiffDisError, match="no split"):
        load_eval_data("world/test")
    with pytest.raises(DiffDisError, match="image folder with metadata.jsonl"):
        load_eval_data("no-such-thing")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "x"}) + "\n\n")
    assert len(load_eval_data(str(tmp_path))) == 1
    (tmp_path / "metadata.jsonl").write_text("{not json\n")
    with pytest.raises(DiffDisError, match="line 1 is not JSON"):
        load_eval_data(str(tmp_path))


def test_builtin_splits_are_cached_under_the_generator_version(tmp_path, monkeypatch):
    from diffdis.data import builtin

    monkeypatch.setenv("DIFFDIS_CACHE", str(tmp_path))
    version = builtin.VERSIONS["digits"]
    first = load_eval_data("digits:4")
    assert len(first) == 4 and [p.name for p in (tmp_path / "datasets").iterdir()] == [f"digits-v{version}-test-4"]
    monkeypatch.setitem(builtin.VERSIONS, "digits", version + 1)  # a newer generator never reuses the older copy
    assert len(load_eval_data("digits:4")) == 4
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == [
        f"digits-v{version}-test-4",
        f"digits-v{version + 1}-test-4",
    ]
