"""`diffdis eval classify` / `retrieve` / `build` end to end on a random micro model and a few world images."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffdis.data.world import make_world
from diffdis_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, micro_model) -> Path:
    root = tmp_path_factory.mktemp("eval")
    (root / "model").symlink_to(micro_model, target_is_directory=True)
    make_world(root / "world", 8, seed=0, size=16)
    return root


def test_classify_shards_build_and_plot(setup, monkeypatch):
    monkeypatch.chdir(setup)
    common = [
        "eval",
        "classify",
        "--model",
        "model",
        "--data",
        "world",
        "--labels",
        "world_colours",
        "--scheduler",
        "ddim,dpm++",
        "--num-inference-steps",
        "1",
        "--guidance-scale",
        "1,2",
        "--num-shards",
        "2",
        "--json",
    ]
    for shard in ("0", "1"):
        result = runner.invoke(app, [*common, "--shard-index", shard])
        assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 4 and {(r["scheduler"], r["guidance"]) for r in records} == {
        (s, g) for s in ("ddim", "dpm++") for g in (1.0, 2.0)
    }
    first = records[0]
    assert first["label_column"] == "colour" and first["n"] == 4 and first["num_classes"] == 11
    assert {"acc1", "acc5", "mean_per_class_recall", "seconds_per_image", "model", "seed"} <= set(first)
    files = sorted(Path("results").glob("*.json"))
    assert len(files) == 8  # (2 schedulers x 2 guidance scales) x 2 shards, each its own file
    assert [f.name for f in files][:2] == [
        "classify_world_ddim_1_g1.0_shard0of2.json",
        "classify_world_ddim_1_g1.0_shard1of2.json",
    ]

    result = runner.invoke(app, ["eval", "build", *map(str, files), "--output", "table.csv", "--plot", "plot.png"])
    if importlib.util.find_spec("matplotlib") is None:  # the optional extra diffdis[eval]
        assert result.exit_code == 1 and "pip install 'diffdis[eval]'" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert Path("plot.png").stat().st_size > 1000
    rows = list(csv.DictReader(Path("table.csv").read_text().splitlines()))
    assert len(rows) == 4 and all(r["n"] == "8" and r["shards"] == "2/2" for r in rows)
    assert sorted((r["scheduler"], r["guidance"]) for r in rows) == [
        ("ddim", "1"),
        ("ddim", "2"),
        ("dpm++", "1"),
        ("dpm++", "2"),
    ]

    result = runner.invoke(app, ["eval", "build", str(files[0]), "--output", "t.csv"])
    assert result.exit_code == 1 and "shards [1] of 2 are missing" in result.output


def test_diffusion_classifier_method(setup, monkeypatch):
    monkeypatch.chdir(setup)
    result = runner.invoke(
        app,
        [
            "eval",
            "classify",
            "--model",
            "model",
            "--data",
            "world",
            "--labels",
            "red,green,blue",
            "--method",
            "diffusion-classifier",
            "--dc-timesteps",
            "3",
            "--max-samples",
            "2",
            "--drop-unknown",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["method"] == "diffusion-classifier" and record["unet_passes_per_image"] == 3 * 3


def test_unmatched_labels_are_refused(setup, monkeypatch):
    monkeypatch.chdir(setup)
    result = runner.invoke(
        app,
        ["eval", "classify", "--model", "model", "--data", "world", "--labels", "cat,dog", "--label-column", "object"],
    )
    assert result.exit_code == 1 and "not in the label set" in result.output and "--drop-unknown" in result.output


def test_retrieve(setup, monkeypatch):
    monkeypatch.chdir(setup)
    result = runner.invoke(
        app, ["eval", "retrieve", "--model", "model", "--data", "world", "--num-inference-steps", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    for k in (1, 5, 10):
        assert 0 <= record[f"image_to_text_R@{k}"] <= 1
        assert record[f"text_retrieval_recall@{k}"] == record[f"image_to_text_R@{k}"]
    assert record["image_to_text_R@10"] == 1.0  # 8 images, 8 captions: everything is in the top 10
    assert record["n"] == 8 and record["num_texts"] == 8
    for way in ("image_to_text", "text_to_image"):  # the world's own captions are among the true ones
        for k in (1, 5):
            assert record[f"own_caption_ceiling_{way}_R@{k}"] <= 1
            assert record[f"any_true_{way}_R@{k}"] >= record[f"{way}_R@{k}"]


def test_bad_sampler_options_are_refused_before_anything_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for flag, value, message in (
        ("--scheduler", "ddim,nope", "unknown scheduler"),
        ("--num-inference-steps", "5,0", "at least 1"),
        ("--num-inference-steps", "5,x", "comma-separated"),
    ):
        result = runner.invoke(
            app, ["eval", "classify", "--model", "nowhere", "--data", "nowhere", "--labels", "a,b", flag, value]
        )
        assert result.exit_code == 2 and message in result.output, result.output


def test_retrieve_shards_and_build(setup, monkeypatch):
    monkeypatch.chdir(setup)
    common = [
        "eval",
        "retrieve",
        "--model",
        "model",
        "--data",
        "world",
        "--num-inference-steps",
        "1",
        "--num-shards",
        "3",
        "--output",
        "shards/r.json",
        "--json",
    ]
    for shard in ("0", "1", "2"):
        result = runner.invoke(app, [*common, "--shard-index", shard])
        assert result.exit_code == 0, result.output
        (record,) = json.loads(result.stdout)
        assert record["n"] == len(range(int(shard), 8, 3)) and record["num_texts"] == 8
    files = [f"shards/r_shard{i}of3.json" for i in range(3)]
    from diffdis.eval.results import merge_shards, read_records
    from diffdis.eval.retrieve import recall_from_samples

    (merged,) = merge_shards(read_records([Path(f) for f in files]))
    samples = [json.loads(Path(f).read_text())["samples"] for f in files]
    assert merged["n"] == 8 and merged["shards"] == "3/3" and merged["image_to_text_R@10"] == 1.0
    assert {k: merged[k] for k in recall_from_samples(samples)} == recall_from_samples(samples)
    assert not any(k.startswith(("any_true_", "own_caption_ceiling_")) for k in merged)  # per-run views only
    result = runner.invoke(app, ["eval", "build", *files, "--output", "shards/t.csv"])
    assert result.exit_code == 0 and "1 runs from 3 files" in result.output, result.output
    result = runner.invoke(
        app, ["eval", "retrieve", "--model", "model", "--data", "world", "--num-shards", "9", "--shard-index", "8"]
    )
    assert result.exit_code == 2 and "holds no images" in result.output


def test_plot_command(setup, monkeypatch, tmp_path):
    monkeypatch.chdir(setup)
    files = sorted(str(f) for f in Path("results").glob("classify_*.json"))
    if not files:  # on its own: make two runs to draw
        for steps in ("1", "2"):
            result = runner.invoke(
                app,
                [
                    "eval",
                    "classify",
                    "--model",
                    "model",
                    "--data",
                    "world",
                    "--labels",
                    "world_colours",
                    "--num-inference-steps",
                    steps,
                    "--json",
                ],
            )
            assert result.exit_code == 0, result.output
        files = sorted(str(f) for f in Path("results").glob("classify_*.json"))
    out = tmp_path / "plots" / "sweep.png"
    result = runner.invoke(app, ["eval", "plot", *files, "--output", str(out), "--allow-partial"])
    if importlib.util.find_spec("matplotlib") is None:  # the optional extra diffdis[eval]
        assert result.exit_code == 1 and "pip install 'diffdis[eval]'" in result.output
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    else:
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 1000 and [p.name for p in out.parent.iterdir()] == ["sweep.png"]
        result = runner.invoke(app, ["eval", "plot", *files, "--output", str(out), "--metric", "nope"])
        assert result.exit_code == 1 and "no results with 'nope'" in result.output
