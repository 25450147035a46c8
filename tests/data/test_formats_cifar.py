"""CIFAR-10/100 as distributed (binary, python pickles, Hub parquet): the readers agree, pickles cannot run code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from diffdis.errors import DiffDisError
from diffdis.eval.data import label_targets, load_eval_data
from tests.data.formats_on_disk import (
    cifar_planes,
    planes_pixel,
    write_cifar_bin,
    write_cifar_parquet,
    write_cifar_python,
)


def pixels_of(data) -> np.ndarray:
    return np.stack([np.asarray(image) for image in data.images(list(range(len(data))))])


@pytest.fixture
def cifar10(tmp_path):
    """The same random records as cifar-10-batches-bin, cifar-10-batches-py and a parquet folder."""
    splits = {
        "test_batch": cifar_planes(6, 10, 0),
        "data_batch_1": cifar_planes(4, 10, 1),
        "data_batch_2": cifar_planes(3, 10, 2),
    }
    for name, (planes, labels) in splits.items():
        write_cifar_bin(tmp_path / "cifar-10-batches-bin" / f"{name}.bin", planes, labels)
        write_cifar_python(tmp_path / "cifar-10-batches-py" / name, planes, labels)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}, protocol=2))
    write_cifar_parquet(tmp_path / "cifar10" / "plain_text" / "test-00000-of-00001.parquet", *splits["test_batch"])
    write_cifar_parquet(tmp_path / "cifar10" / "plain_text" / "train-00000-of-00001.parquet", *splits["data_batch_1"])
    return tmp_path, splits


def test_binary_python_and_parquet_give_the_same_images_and_labels(cifar10):
    root, splits = cifar10
    planes, labels = splits["test_batch"]
    readers = {
        folder: load_eval_data(str(root / folder))
        for folder in ("cifar-10-batches-bin", "cifar-10-batches-py", "cifar10")
    }
    for name, data in readers.items():
        assert len(data) == 6 and [r["label"] for r in data.rows] == labels.tolist(), name
        assert data.name.endswith("-test") and data.images([0])[0].size == (32, 32)
    binary = pixels_of(readers["cifar-10-batches-bin"])
    assert np.array_equal(binary, pixels_of(readers["cifar-10-batches-py"]))
    assert np.array_equal(binary, pixels_of(readers["cifar10"]))
    # the planar layout, read by hand: R plane, G plane, B plane, each 32x32 row-major
    for image, row, col in ((0, 0, 0), (2, 5, 17), (5, 31, 30)):
        assert tuple(binary[image, row, col]) == planes_pixel(planes, image, row, col)


def test_splits_by_suffix_or_file(cifar10):
    root, splits = cifar10
    train_labels = np.concatenate([splits["data_batch_1"][1], splits["data_batch_2"][1]]).tolist()
    for folder in ("cifar-10-batches-bin", "cifar-10-batches-py"):
        train = load_eval_data(f"{root / folder}@train")
        assert [r["label"] for r in train.rows] == train_labels and train.name == f"{folder}-train"
    one = load_eval_data(str(root / "cifar-10-batches-bin" / "data_batch_2.bin"))
    assert [r["label"] for r in one.rows] == splits["data_batch_2"][1].tolist()
    assert len(load_eval_data(f"{root / 'cifar10'}@train")) == 4
    with pytest.raises(DiffDisError, match="splits train and test, not 'valid'"):
        load_eval_data(f"{root / 'cifar-10-batches-py'}@valid")
    with pytest.raises(DiffDisError, match="no parquet files of the 'val' split"):
        load_eval_data(f"{root / 'cifar10'}@val")


def test_cifar100_coarse_and_fine_labels_agree_between_versions(tmp_path):
    planes, fine = cifar_planes(5, 100, 3)
    coarse = fine // 5
    write_cifar_bin(tmp_path / "cifar-100-binary" / "test.bin", planes, fine, coarse)
    write_cifar_python(tmp_path / "cifar-100-python" / "test", planes, fine, coarse)
    (tmp_path / "cifar-100-python" / "meta").write_bytes(b"")
    binary, python = (load_eval_data(str(tmp_path / f)) for f in ("cifar-100-binary", "cifar-100-python"))
    assert binary.rows == python.rows == [{"label": int(f), "coarse_label": int(c)} for f, c in zip(fine, coarse)]
    assert np.array_equal(pixels_of(binary), pixels_of(python))


def test_labels_index_the_cifar_label_set(cifar10):
    data = load_eval_data(str(cifar10[0] / "cifar-10-batches-bin"))
    names = [f"class {i}" for i in range(10)]
    assert label_targets(data, names) == (list(range(6)), cifar10[1]["test_batch"][1].tolist(), "label")
    assert data.head(2).rows == data.rows[:2] and len(data.head(2).images([0, 1])) == 2


def test_a_binary_file_of_the_wrong_length_is_refused(tmp_path):
    planes, labels = cifar_planes(10, 10, 0)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin"
    write_cifar_bin(path, planes, labels)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DiffDisError, match=r"data_batch_1.bin: 30729 bytes is not a whole number of 3073-byte records"):
        load_eval_data(str(path))


def test_pickles_as_python_2_and_python_3_wrote_them_are_read(tmp_path):
    planes, labels = cifar_planes(3, 10, 4)
    picklers = {"py2": None, "p2": lambda o: pickle.dumps(o, protocol=2), "p5": lambda o: pickle.dumps(o, protocol=5)}
    for name, pickler in picklers.items():
        path = tmp_path / name / "test_batch"
        write_cifar_python(path, planes, labels, **({"pickler": pickler} if pickler else {}))
        data = load_eval_data(str(path), "cifar-python")
        assert [r["label"] for r in data.rows] == labels.tolist()
    assert b"cnumpy.core.multiarray\n_reconstruct" in (tmp_path / "py2" / "test_batch").read_bytes()


class Hostile:
    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize("function, protocol, refused", [(os.system, 2, "system"), (eval, 4, "builtins.eval")])
def test_a_hostile_pickle_runs_nothing(tmp_path, function, protocol, refused):
    marker = tmp_path / "ran"
    command = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({b"data": Hostile(function, command), b"labels": [0]}, protocol=protocol))
    with pytest.raises(DiffDisError, match=rf"refusing to unpickle the global \S*{refused}") as err:
        load_eval_data(str(path.parent))
    assert "\n" not in str(err.value) and not marker.exists()


def test_a_file_that_is_no_batch_is_refused(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": [1, 2], b"labels": [0]}, protocol=2))
    with pytest.raises(DiffDisError, match="is not a CIFAR python batch"):
        load_eval_data(str(path), "cifar-python")
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DiffDisError, match="is not a readable CIFAR python batch"):
        load_eval_data(str(path), "cifar-python")
