import json

import numpy as np
import pytest
from PIL import Image

from diffdis.data.captions import load_captioned
from diffdis.data.digits import DIGIT_NAMES, make_digits, split_indices
from diffdis.data.label_sets import load_labels, load_templates
from diffdis.errors import DiffDisError


def rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def targets() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().target


def test_split_is_a_stratified_partition_that_depends_on_the_seed(targets):
    split = split_indices(targets, seed=0)
    train, test = set(split["train"].tolist()), set(split["test"].tolist())
    assert len(train) + len(test) == 1797 and not train & test
    for label in range(10):
        share = np.mean(targets[split["test"]] == label) / np.mean(targets == label)
        assert 0.95 < share < 1.05  # each digit is ~20% test, like the whole
    assert np.array_equal(split_indices(targets, seed=0)["test"], split["test"])
    assert not np.array_equal(split_indices(targets, seed=1)["test"], split["test"])


def test_test_folder_holds_the_split_with_right_captions(targets, tmp_path):
    folder = make_digits(tmp_path / "test", split="test")
    metadata = rows(folder)
    assert [r["index"] for r in metadata] == split_indices(targets)["test"].tolist()
    for r in metadata:
        assert r["label"] == targets[r["index"]] and r["label_name"] == DIGIT_NAMES[r["label"]]
        assert r["split"] == "test"
        others = [name for name in DIGIT_NAMES if name != r["label_name"]]
        assert (r["label_name"] in r["text"] or str(r["label"]) in r["text"]) and not any(
            o in r["text"] for o in others
        )
    image = Image.open(folder / metadata[0]["file_name"])
    assert image.size == (32, 32) and image.mode == "RGB"
    assert np.asarray(image)[0, 0].tolist() == [0, 0, 0] and np.asarray(image).max() > 200  # white on black


def test_same_seed_gives_identical_files(tmp_path):
    a, b = make_digits(tmp_path / "a", limit=8, seed=3), make_digits(tmp_path / "b", limit=8, seed=3)
    assert (a / "metadata.jsonl").read_bytes() == (b / "metadata.jsonl").read_bytes() and len(rows(a)) == 8
    assert all((a / r["file_name"]).read_bytes() == (b / r["file_name"]).read_bytes() for r in rows(a))
    with pytest.raises(DiffDisError, match="train or test"):
        make_digits(tmp_path / "c", split="heldout")


def test_label_set_and_templates():
    assert load_labels("digits") == list(DIGIT_NAMES)
    templates = load_templates(None, "digits")
    assert templates == load_templates("digits") and all(t.count("{}") == 1 for t in templates)


def test_folder_loads_as_a_captioned_dataset(tmp_path):
    ds = load_captioned(str(make_digits(tmp_path / "d", limit=5, size=16)))
    assert len(ds) == 5 and ds.column_names == ["image", "text"] and ds[0]["image"].size == (16, 16)
