"""The one `--data` grammar: every spelling and what training and evaluation read for it.

The table was written against the two parsers diffdis had before they were unified (training's
`parse_builtin`, evaluation's `_parse_builtin` + `formats.locate`); rows marked NEW were errors on one side then.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ERROR = "error"

# spelling -> (what training reads, what evaluation reads): built-in sets as (name, split, count), data on disk
# as (path, split). Paths are relative to the `on_disk` folder: folder/metadata.jsonl, table.csv,
# shards/000.tar, shards/001.tar, a file named `digits:5` and a folder named `a@b`.
TABLE: list[tuple[str, object, object]] = [
    # built-in sets: name[/split][:N] joined by +; without /split each command reads its own default split
    ("world", [("world", "train", None)], [("world", "heldout", None)]),
    ("shapes", [("shapes", "train", None)], [("shapes", "train", None)]),
    ("world:5000", [("world", "train", 5000)], [("world", "heldout", 5000)]),
    ("world:", [("world", "train", None)], [("world", "heldout", None)]),
    ("world:0", [("world", "train", None)], [("world", "heldout", None)]),  # was 0, read as the default
    ("digits/train:100", [("digits", "train", 100)], [("digits", "train", 100)]),  # NEW for training
    ("digits/test", [("digits", "test", None)], [("digits", "test", None)]),  # NEW for training
    (
        "shapes:12+digits:5",
        [("shapes", "train", 12), ("digits", "train", 5)],
        [("shapes", "train", 12), ("digits", "test", 5)],
    ),  # NEW for evaluation
    (
        "world/heldout:500+digits/test",
        [("world", "heldout", 500), ("digits", "test", None)],
        [("world", "heldout", 500), ("digits", "test", None)],
    ),  # NEW for both
    ("world/test", ERROR, ERROR),
    ("world:many", ERROR, ERROR),
    ("World", ERROR, ERROR),
    ("world+", ERROR, ERROR),
    ("+world", ERROR, ERROR),
    ("cifar10", ERROR, ERROR),
    ("digits:4/train", ERROR, ERROR),
    ("world@heldout", ERROR, ERROR),
    ("world:²", ERROR, ERROR),  # was a ValueError from int() on both sides
    # data on disk: PATH, or PATH@SPLIT for formats with splits (training reads no split of data on disk)
    ("folder", ("folder", None), ("folder", None)),
    ("folder/metadata.jsonl", ("folder/metadata.jsonl", None), ("folder/metadata.jsonl", None)),
    ("table.csv", ("table.csv", None), ("table.csv", None)),
    ("folder@train", ERROR, ("folder", "train")),
    ("folder@", ERROR, ERROR),
    ("a@b@val", ERROR, ("a@b", "val")),
    ("a@b", ("a@b", None), ("a@b", None)),
    ("world:5", [("world", "train", 5)], [("world", "heldout", 5)]),
    ("digits:5", ("digits:5", None), ("digits:5", None)),  # a file of that name wins over the built-in
    ("missing", ERROR, ERROR),
    # tar / parquet shards: a folder, a glob or a brace pattern, streamed in training
    ("shards", ("shards", None), ("shards", None)),
    ("shards/*.tar", ("shards/*.tar", None), ERROR),
    ("shards/{000..001}.tar", ("shards/{000..001}.tar", None), ERROR),
]


@pytest.fixture
def on_disk(tmp_path, monkeypatch):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n')
    (tmp_path / "table.csv").write_text("image,text\na.png,x\n")
    (tmp_path / "shards").mkdir()
    for name in ("000.tar", "001.tar"):
        (tmp_path / "shards" / name).write_bytes(b"\0" * 1024)
    (tmp_path / "digits:5").write_text("")
    (tmp_path / "a@b").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def meaning(text: str, use: str) -> object:
    """What `use` ("train" or "eval") reads for `text`, or ERROR."""
    from diffdis.data.spec import evaluation_source, parse_data_spec, training_source
    from diffdis.errors import DiffDisError

    try:
        spec = (training_source if use == "train" else evaluation_source)(parse_data_spec(text))
    except DiffDisError:
        return ERROR
    if spec.sets:
        return [(s.name, s.split, s.count) for s in spec.resolved(use)]
    return str(spec.path), spec.split


@pytest.mark.parametrize("text, train, evaluation", TABLE, ids=[row[0] for row in TABLE])
def test_every_spelling_means_what_it_meant(on_disk, text, train, evaluation):
    assert meaning(text, "train") == train
    assert meaning(text, "eval") == evaluation


def test_a_folder_named_like_a_builtin_set_is_that_folder(on_disk):
    (on_disk / "world").mkdir()
    assert meaning("world", "train") == meaning("world", "eval") == ("world", None)


def test_the_parse_itself(on_disk):
    from diffdis.data.spec import BuiltinSet, DataSpec, parse_data_spec

    assert parse_data_spec("world/heldout:500+digits") == DataSpec(
        "world/heldout:500+digits", sets=(BuiltinSet("world", "heldout", 500), BuiltinSet("digits"))
    )
    assert parse_data_spec("folder@train") == DataSpec("folder@train", Path("folder"), "train")
    assert parse_data_spec("shards/*.tar").path.name == "*.tar"
    assert BuiltinSet("world", "heldout", 500).label == "world-heldout-500"


def test_a_named_split_is_read_in_training_and_sets_join_in_evaluation(tmp_path, monkeypatch):
    from diffdis.data.builtin import VERSIONS
    from diffdis.data.captions import load_captioned
    from diffdis.errors import DiffDisError
    from diffdis.eval.data import load_eval_data

    monkeypatch.setenv("DIFFDIS_CACHE", str(tmp_path))
    assert len(load_captioned("digits/test:3")) == 3
    both = load_eval_data("shapes:3+digits:3")  # digits:3 is the test split here, the one written above
    assert both.name == "shapes-train-3+digits-test-3" and len(both) == 6
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == [
        f"digits-v{VERSIONS['digits']}-test-3",
        f"shapes-v{VERSIONS['shapes']}-train-3",
    ]
    assert [image.size for image in both.images([0, 5])] == [(32, 32), (32, 32)]
    (tmp_path / "cifar").mkdir()
    with pytest.raises(DiffDisError, match="training reads no split"):
        load_captioned(f"{tmp_path / 'cifar'}@train")
