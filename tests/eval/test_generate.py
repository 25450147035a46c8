"""`diffdis eval generate`: FID, DiffDis score, judge accuracy and a grid from a random micro model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffdis.data.world import make_world
from diffdis.eval.generate import image_grid
from diffdis.eval.judge import Judge, save_judge
from diffdis_cli.main import app

runner = CliRunner()


def colour_features(images) -> np.ndarray:
    """A pluggable extractor for the test: mean and spread of each colour channel (N, 6)."""
    pixels = np.stack([np.asarray(im.convert("RGB"), dtype=np.float64) / 255 for im in images])
    return np.concatenate([pixels.mean(axis=(1, 2)), pixels.std(axis=(1, 2))], axis=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, micro_model) -> Path:
    root = tmp_path_factory.mktemp("gen")
    (root / "model").symlink_to(micro_model, target_is_directory=True)
    make_world(root / "world", 6, seed=0, size=16)
    save_judge(Judge(), root / "judge")  # untrained: enough to exercise the path
    (root / "prompts.txt").write_text("a red circle\na blue square\na green star\n")
    return root


def test_generate_with_judge_features(setup, monkeypatch):
    monkeypatch.chdir(setup)
    result = runner.invoke(
        app,
        [
            "eval",
            "generate",
            "--model",
            "model",
            "--prompts",
            "world",
            "--features",
            "judge:judge",
            "--num-inference-steps",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["n"] == 6 and record["n_reference"] == 6 and np.isfinite(record["fid"])
    assert -1 <= record["diffdis_score"] <= 1
    assert 0 <= record["judge_object_accuracy"] <= 1 and 0 <= record["judge_colour_accuracy"] <= 1
    assert Image.open(record["grid"]).size == (3 * 16, 2 * 16)


def test_generate_from_a_prompt_file_with_pluggable_features(setup, monkeypatch):
    monkeypatch.chdir(setup)
    result = runner.invoke(
        app,
        [
            "eval",
            "generate",
            "--model",
            "model",
            "--prompts",
            "prompts.txt",
            "--reference",
            "world",
            "--features",
            "tests.eval.test_generate:colour_features",
            "--num-inference-steps",
            "1",
            "--output",
            "out/gen.json",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["n"] == 3 and "judge_object_accuracy" not in record and record["fid"] >= -1e-6
    assert Path("out/gen.png").is_file()
    result = runner.invoke(app, ["eval", "generate", "--model", "model", "--prompts", "prompts.txt"])
    assert result.exit_code == 2 and "--reference" in result.output
    result = runner.invoke(app, ["eval", "generate", "--prompts", "world", "--inception-weights", "x.pth"])
    assert result.exit_code == 1 and "no such file" in result.output
    result = runner.invoke(
        app, ["eval", "generate", "--prompts", "world", "--inception-weights", "x.pth", "--features", "judge"]
    )
    assert result.exit_code == 2 and "not both" in result.output


def test_grid_layout():
    images = [Image.new("RGB", (4, 4), c) for c in ("red", "green", "blue", "white", "black")]
    grid = image_grid(images)
    assert grid.size == (12, 8) and grid.getpixel((9, 1)) == (0, 0, 255) and grid.getpixel((9, 5)) == (255, 255, 255)


def test_list_valued_captions_prompt_with_their_first_caption(setup, tmp_path):
    """A row whose caption is a list (COCO-style) prompts with its first caption, not the list's repr."""
    import shutil

    from diffdis.eval.generate_run import load_prompts

    data = tmp_path / "coco_like"
    shutil.copytree(setup / "world", data)
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    for row in rows:
        row["text"] = [row["text"], "another caption of it"]
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts, kept, _ = load_prompts(str(data), 4)
    assert prompts == [r["text"][0] for r in rows[:4]] and len(kept) == 4
    rows[1]["text"] = []
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(Exception, match="needs a caption or a list of captions"):
        load_prompts(str(data), 4)
