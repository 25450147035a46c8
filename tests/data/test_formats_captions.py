"""Retrieval data: Karpathy split JSON (COCO, Flickr30k) and COCO caption annotations; format detection."""

from __future__ import annotations

import json

import pytest

from diffdis.data.formats import detect
from diffdis.errors import DiffDisError, UsageError
from diffdis.eval.data import load_eval_data
from diffdis.eval.retrieve import captions
from tests.data.formats_on_disk import cifar_planes, write_cifar_bin, write_image, write_karpathy


def test_karpathy_json_gives_the_test_split_with_five_captions_each(tmp_path):
    path = tmp_path / "coco" / "dataset_coco.json"
    path.parent.mkdir()
    write_karpathy(path, {"train": 2, "test": 3, "val": 1}, filepath="val2014")
    data = load_eval_data(str(path))
    assert data.name == "coco-test" and data.root == path.parent and len(data) == 3
    assert data.rows[0]["file_name"] == "val2014/test_0.jpg"
    assert data.rows[0]["text"] == [f"photo test 0 caption {k}" for k in range(5)]
    texts, text_image = captions(data)  # every caption of an image counts for it (retrieval's "any of its captions")
    assert len(texts) == 15 and text_image == [i for i in range(3) for _ in range(5)]
    assert data.images([2])[0].size == (16, 16)
    assert [r["file_name"] for r in load_eval_data(f"{path}@val").rows] == ["val2014/val_0.jpg"]
    with pytest.raises(DiffDisError, match=r"no images in the 'restval' split \(splits: test, train, val\)"):
        load_eval_data(f"{path}@restval")


def test_karpathy_json_naming_missing_images_is_refused(tmp_path):
    path = tmp_path / "dataset_flickr30k.json"
    write_karpathy(path, {"test": 4})
    (tmp_path / "test_2.jpg").unlink()
    with pytest.raises(
        DiffDisError, match=r"1 of 4 test-split images are missing under .* \(first: test_2.jpg\); pass --image-root"
    ):
        load_eval_data(str(path))


def test_flickr_images_are_found_in_their_usual_folder_or_given(tmp_path):
    path = tmp_path / "dataset_flickr30k.json"
    write_karpathy(path, {"test": 2})
    (tmp_path / "flickr30k-images").mkdir()
    for name in ("test_0.jpg", "test_1.jpg"):
        (tmp_path / name).rename(tmp_path / "flickr30k-images" / name)
    assert load_eval_data(str(path)).root == tmp_path / "flickr30k-images"
    (tmp_path / "flickr30k-images").rename(tmp_path / "elsewhere")
    assert load_eval_data(str(path), image_root=tmp_path / "elsewhere").root == tmp_path / "elsewhere"


def test_coco_caption_annotations_give_one_row_per_image(tmp_path):
    (tmp_path / "annotations").mkdir()
    for name in ("COCO_val2014_000000000042.jpg", "COCO_val2014_000000000073.jpg", "COCO_val2014_000000000074.jpg"):
        write_image(tmp_path / "val2014" / name)
    doc = {
        "images": [
            {"id": 42, "file_name": "COCO_val2014_000000000042.jpg"},
            {"id": 73, "file_name": "COCO_val2014_000000000073.jpg"},
            {"id": 74, "file_name": "COCO_val2014_000000000074.jpg"},
        ],
        "annotations": [
            {"id": 1, "image_id": 73, "caption": "A dog. "},
            {"id": 2, "image_id": 42, "caption": "A cat."},
            {"id": 3, "image_id": 73, "caption": "A brown dog."},
        ],
    }
    path = tmp_path / "annotations" / "captions_val2014.json"
    path.write_text(json.dumps(doc))
    data = load_eval_data(str(path))
    assert data.root == tmp_path / "val2014"  # ../val2014 found from the file's name
    assert data.rows == [
        {"file_name": "COCO_val2014_000000000042.jpg", "text": ["A cat."], "image_id": 42},
        {"file_name": "COCO_val2014_000000000073.jpg", "text": ["A dog.", "A brown dog."], "image_id": 73},
    ]
    with pytest.raises(DiffDisError, match="no splits"):
        load_eval_data(f"{path}@test")


def test_formats_are_detected_and_named_explicitly(tmp_path):
    write_image(tmp_path / "classes" / "cat" / "a.png")
    (tmp_path / "classes" / "metadata.jsonl").write_text(json.dumps({"file_name": "cat/a.png", "text": "a cat"}) + "\n")
    assert detect(tmp_path / "classes") == "metadata"  # metadata.jsonl first: existing folders read as before
    assert load_eval_data(str(tmp_path / "classes")).rows == [{"file_name": "cat/a.png", "text": "a cat"}]
    assert load_eval_data(str(tmp_path / "classes"), "imagefolder").rows == [
        {"file_name": "cat/a.png", "label_name": "cat"}
    ]
    write_karpathy(tmp_path / "k.json", {"test": 1})
    (tmp_path / "other.json").write_text('{"hello": 1}')
    write_cifar_bin(tmp_path / "c" / "test_batch.bin", *cifar_planes(1, 10, 0))
    assert [detect(tmp_path / p) for p in ("k.json", "c", "c/test_batch.bin")] == ["karpathy", "cifar-bin", "cifar-bin"]
    with pytest.raises(DiffDisError, match="neither a Karpathy split JSON .* nor COCO captions"):
        load_eval_data(str(tmp_path / "other.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiffDisError, match="has no metadata.jsonl .*--data-format"):
        load_eval_data(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="--data-format 'cifar': choose auto or one of"):
        load_eval_data(str(tmp_path / "c"), "cifar")
    with pytest.raises(DiffDisError, match="does not use --image-root"):
        load_eval_data(str(tmp_path / "c"), image_root=tmp_path)
    with pytest.raises(DiffDisError, match="built-in dataset: drop --data-format"):
        load_eval_data("world", "karpathy")
