"""`diffdis eval classify|retrieve|generate` on data in distributed layouts (CIFAR batches, Karpathy JSON) through
`--data` and `--data-format`, on the random micro model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffdis_cli.main import app
from tests.data.formats_on_disk import cifar_planes, write_cifar_bin, write_cifar_python, write_karpathy

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, micro_model) -> Path:
    root = tmp_path_factory.mktemp("formats")
    (root / "model").symlink_to(micro_model, target_is_directory=True)
    planes, labels = cifar_planes(6, 10, 0)
    write_cifar_bin(root / "cifar-10-batches-bin" / "test_batch.bin", planes, labels)
    write_cifar_python(root / "cifar-10-batches-py" / "test_batch", planes, labels)
    (root / "coco").mkdir()
    write_karpathy(root / "coco" / "dataset_coco.json", {"test": 4, "val": 2})
    return root


def test_classify_cifar_with_the_cifar10_label_set(setup, monkeypatch):
    monkeypatch.chdir(setup)
    records = []
    for data, data_format in (("cifar-10-batches-bin", "auto"), ("cifar-10-batches-py", "cifar-python")):
        result = runner.invoke(
            app,
            [
                "eval",
                "classify",
                "--model",
                "model",
                "--data",
                data,
                "--labels",
                "cifar10",
                "--data-format",
                data_format,
                "--num-inference-steps",
                "1",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        records.append(json.loads(result.stdout)[0])
    binary, python = records
    assert binary["data"] == "cifar-10-batches-bin-test" and binary["n"] == 6 and binary["num_classes"] == 10
    assert binary["label_column"] == "label" and 0 <= binary["acc1"] <= 1
    assert binary["acc1"] == python["acc1"] and binary["acc5"] == python["acc5"]  # same pixels, same answers


def test_retrieve_karpathy_json(setup, monkeypatch):
    monkeypatch.chdir(setup)
    result = runner.invoke(
        app,
        [
            "eval",
            "retrieve",
            "--model",
            "model",
            "--data",
            "coco/dataset_coco.json",
            "--num-inference-steps",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["data"] == "coco-test" and record["n"] == 4 and record["num_texts"] == 20  # 5 captions an image
    assert record["text_to_image_R@5"] == 1.0  # k clipped to the 4 images
    result = runner.invoke(
        app,
        [
            "eval",
            "retrieve",
            "--model",
            "model",
            "--data",
            "coco/dataset_coco.json@val",
            "--max-samples",
            "1",
            "--num-inference-steps",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["data"] == "coco-val" and record["n"] == 1 and record["num_texts"] == 5
    assert record["image_to_text_R@5"] == 1.0  # one image: its 5 captions are all the texts


def test_generate_prompts_from_karpathy_with_cifar_reference(setup, monkeypatch):
    monkeypatch.chdir(setup)
    result = runner.invoke(
        app,
        [
            "eval",
            "generate",
            "--model",
            "model",
            "--prompts",
            "coco/dataset_coco.json",
            "--reference",
            "cifar-10-batches-bin",
            "--num-prompts",
            "3",
            "--features",
            "tests.eval.test_generate:colour_features",
            "--num-inference-steps",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["data"] == "coco-test" and record["reference"] == "cifar-10-batches-bin-test" and record["n"] == 3


def test_bad_data_options_are_refused_in_one_line(setup, monkeypatch):
    monkeypatch.chdir(setup)
    base = ["eval", "classify", "--model", "model", "--labels", "cifar10"]
    cases = (
        (["--data", "cifar-10-batches-bin", "--data-format", "nope"], 2, "choose auto or one of"),
        (["--data", "cifar-10-batches-bin@valid"], 1, "not 'valid'"),
        (["--data", "coco/dataset_coco.json", "--data-format", "cifar-bin"], 1, "not a whole number"),
    )
    for extra, code, message in cases:
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == code and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
