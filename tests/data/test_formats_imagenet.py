"""ImageNet-style class folders and the ILSVRC2012 devkit layout."""

from __future__ import annotations

import re

import numpy as np
import pytest

from diffdis.data.formats.synsets import imagenet_index, imagenet_wnids
from diffdis.errors import DiffDisError
from diffdis.eval.data import label_targets, load_eval_data
from tests.data.formats_on_disk import write_image

KIT_FOX, ENGLISH_SETTER = 278, 212  # class indices in torchvision / open_clip order (imagenet1k.txt lines 279, 213)


def test_the_shipped_synsets_are_the_1000_sorted_wnids():
    wnids = imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert (wnids[0], wnids[-1]) == ("n01440764", "n15075141")  # tench, toilet tissue
    assert imagenet_index()["n02119789"] == KIT_FOX and imagenet_index()["n02100735"] == ENGLISH_SETTER


def test_synset_folders_get_imagenet_class_indices(tmp_path):
    for wnid, count in (("n01440764", 2), ("n02119789", 1), ("n15075141", 1)):
        for i in range(count):
            write_image(tmp_path / "val" / wnid / f"ILSVRC2012_val_{i}.JPEG")
    write_image(tmp_path / "val" / "n02119789" / "nested" / "x.png")
    data = load_eval_data(str(tmp_path / "val"))
    assert [(r["file_name"], r["label"]) for r in data.rows] == [
        ("n01440764/ILSVRC2012_val_0.JPEG", 0),
        ("n01440764/ILSVRC2012_val_1.JPEG", 0),
        ("n02119789/ILSVRC2012_val_0.JPEG", KIT_FOX),
        ("n02119789/nested/x.png", KIT_FOX),
        ("n15075141/ILSVRC2012_val_0.JPEG", 999),
    ]
    assert label_targets(data, [f"c{i}" for i in range(1000)])[1:] == ([0, 0, KIT_FOX, KIT_FOX, 999], "label")
    assert data.images([2])[0].size == (16, 16)


def test_a_synset_outside_imagenet_1k_is_refused_or_dropped(tmp_path):
    write_image(tmp_path / "n01440764" / "a.jpg")
    write_image(tmp_path / "n99999999" / "b.jpg")
    with pytest.raises(
        DiffDisError, match="class folder 'n99999999' is not one of the 1000 ImageNet-1k synsets.*--drop-unknown"
    ):
        load_eval_data(str(tmp_path))
    kept = load_eval_data(str(tmp_path), drop_unknown=True)
    assert [r["file_name"] for r in kept.rows] == ["n01440764/a.jpg"]


def test_named_class_folders_match_labels_by_name(tmp_path):
    write_image(tmp_path / "cat" / "1.png")
    write_image(tmp_path / "hot_dog" / "2.jpeg")
    write_image(tmp_path / "hot_dog" / "3.webp")
    data = load_eval_data(str(tmp_path), "imagefolder")
    assert [r["label_name"] for r in data.rows] == ["cat", "hot dog", "hot dog"]
    assert label_targets(data, ["hot dog", "cat"]) == ([0, 1, 2], [1, 0, 0], "label_name")
    with pytest.raises(DiffDisError, match="has no splits"):
        load_eval_data(f"{tmp_path}@train")


def write_devkit(root, ids_and_wnids, truth):
    """An ILSVRC2012_devkit_t12/data with meta.mat in the devkit's struct layout, and the ground truth."""
    from scipy.io import savemat

    fields = [
        "ILSVRC2012_ID",
        "WNID",
        "words",
        "gloss",
        "num_children",
        "children",
        "wordnet_height",
        "num_train_images",
    ]
    synsets = np.zeros((len(ids_and_wnids), 1), dtype=[(f, "O") for f in fields])
    for k, (ident, wnid, children) in enumerate(ids_and_wnids):
        synsets[k, 0] = (
            np.array([[ident]], dtype=np.uint16),
            wnid,
            f"words of {wnid}",
            "gloss",
            np.array([[children]], dtype=np.uint8),
            np.zeros((1, children)),
            np.array([[0]]),
            np.array([[1300]]),
        )
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    savemat(data / "meta.mat", {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{t}\n" for t in truth))
    return data


def test_the_devkit_layout_maps_ground_truth_ids_through_meta_mat(tmp_path):
    val = tmp_path / "val"
    for n in (1, 2, 3):
        write_image(val / f"ILSVRC2012_val_{n:08d}.JPEG")
    # devkit IDs are not class indices: ID 1 is kit fox (class 278), ID 2 English setter (212); 1001 is no leaf
    synsets = [(1, "n02119789", 0), (2, "n02100735", 0), (3, "n01440764", 0), (1001, "n01000000", 2)]
    write_devkit(val, synsets, [2, 1, 3])
    expected = [
        ("ILSVRC2012_val_00000001.JPEG", ENGLISH_SETTER),
        ("ILSVRC2012_val_00000002.JPEG", KIT_FOX),
        ("ILSVRC2012_val_00000003.JPEG", 0),
    ]
    inside = load_eval_data(str(val))  # the devkit inside the image folder, found
    assert [(r["file_name"], r["label"]) for r in inside.rows] == expected and inside.root == val
    (val / "ILSVRC2012_devkit_t12").rename(tmp_path / "ILSVRC2012_devkit_t12")  # beside it: found too
    assert load_eval_data(str(val)).rows == inside.rows
    (tmp_path / "devkits").mkdir()
    elsewhere = (tmp_path / "ILSVRC2012_devkit_t12").rename(tmp_path / "devkits" / "ILSVRC2012_devkit_t12")
    with pytest.raises(DiffDisError, match="found no ILSVRC2012_devkit_t12/data/meta.mat"):
        load_eval_data(str(val))
    assert load_eval_data(str(elsewhere), image_root=val).rows == inside.rows  # the devkit named, images by option
    ground_truth = elsewhere / "data" / "ILSVRC2012_validation_ground_truth.txt"
    assert load_eval_data(str(ground_truth), image_root=val).rows == inside.rows
    with pytest.raises(DiffDisError, match="beside"):
        load_eval_data(str(elsewhere))


def test_devkit_ground_truth_that_is_short_or_unmapped_is_refused(tmp_path):
    write_image(tmp_path / "ILSVRC2012_val_00000001.JPEG")
    write_image(tmp_path / "ILSVRC2012_val_00000002.JPEG")
    data = write_devkit(tmp_path, [(1, "n02119789", 0), (1001, "n01000000", 1)], [1])
    with pytest.raises(DiffDisError, match="ILSVRC2012_val_00000002.JPEG has no line"):
        load_eval_data(str(tmp_path))
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("1001\n1\n")
    assert [r["label"] for r in load_eval_data(str(tmp_path), drop_unknown=True).rows] == [KIT_FOX]
    with pytest.raises(DiffDisError, match="names ILSVRC2012_ID 1001, which meta.mat does not map"):
        load_eval_data(str(tmp_path))
