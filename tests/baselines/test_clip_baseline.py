"""The CLIP baseline: trains with CLIPModel's own loss, saves, loads, and is scored by the same eval commands."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from diffdis.baselines.clip_baseline import ClipBaseline
from diffdis.errors import UsageError
from diffdis.model.clip import ClipBaselineConfig
from diffdis.train.clip import train_clip
from diffdis_cli.main import app

SMALL = dict(
    image_size=16,
    patch_size=4,
    vision_width=32,
    vision_layers=1,
    text_width=32,
    text_layers=1,
    heads=2,
    max_length=16,
    vocab_size=300,
    batch_size=8,
    warmup_steps=1,
    learning_rate=1e-3,
)


@pytest.fixture(scope="module")
def clip_dir(shapes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    losses: list[float] = []
    cfg = ClipBaselineConfig(data=str(shapes_dir), output_dir=str(out), max_steps=12, **SMALL)
    train_clip(cfg, lambda step, total, logs: losses.append(logs["loss"]), log=lambda m: None)
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])  # its own contrastive loss goes down
    return out


def test_baseline_round_trips_and_embeds_unit_vectors(clip_dir, shapes_dir):
    from diffdis.eval.judge import read_labelled_folder

    clip = ClipBaseline.from_pretrained(clip_dir)
    images, rows = read_labelled_folder(shapes_dir)
    queries = clip.image_queries(images[:5], num_inference_steps=25, scheduler="ddim")  # sampler args are ignored
    assert queries.shape == (5, 32) and torch.allclose(queries.norm(dim=-1), torch.ones(5), atol=1e-5)
    classifier = clip.zero_shot_classifier(["red", "blue"], ["a {} shape", "{}"])
    assert classifier.shape == (2, 32) and torch.allclose(classifier.norm(dim=-1), torch.ones(2), atol=1e-5)
    again = ClipBaseline.from_pretrained(clip_dir).image_queries(images[:5])
    assert torch.equal(queries, again)


def test_eval_commands_score_the_baseline(clip_dir, shapes_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "eval",
            "classify",
            "--method",
            "clip",
            "--model",
            str(clip_dir),
            "--data",
            str(shapes_dir),
            "--labels",
            "red,green,blue,yellow",
            "--label-column",
            "colour",
            "--drop-unknown",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)[0]
    assert record["method"] == "clip" and record["steps"] == 1 and 0.0 <= record["acc1"] <= 1.0
    result = runner.invoke(
        app, ["eval", "retrieve", "--method", "clip", "--model", str(clip_dir), "--data", str(shapes_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "image_to_text_R@1" in json.loads(result.stdout)[0]
    result = runner.invoke(
        app,
        [
            "eval",
            "classify",
            "--method",
            "clip",
            "--model",
            str(clip_dir),
            "--data",
            str(shapes_dir),
            "--labels",
            "red,blue",
            "--num-inference-steps",
            "5",
        ],
    )
    assert result.exit_code == 2 and "encodes each image once" in result.output


def test_a_diffdis_folder_is_not_a_clip_baseline(tmp_path):
    with pytest.raises(UsageError, match="not a CLIP baseline"):
        ClipBaseline.from_pretrained(tmp_path)
    with pytest.raises(UsageError, match="lr-scheduler"):
        ClipBaselineConfig(lr_scheduler="nope")


def test_train_clip_command(shapes_dir, tmp_path):
    runner = CliRunner()
    args = [
        "eval",
        "train-clip",
        "--data",
        str(shapes_dir),
        "--output-dir",
        str(tmp_path / "clip"),
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--vision-layers",
        "1",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        json.loads(result.stdout)["step"] == 2
        and ClipBaseline.from_pretrained(tmp_path / "clip").cfg.vision_layers == 1
    )
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already holds a CLIP baseline" in again.output


def test_train_clip_command_resumes_a_killed_run(shapes_dir, tmp_path):
    from diffdis.model.clip import MARKER

    runner = CliRunner()
    out = tmp_path / "clip"
    base = ["eval", "train-clip", "--data", str(shapes_dir), "--output-dir", str(out), "--batch-size", "4"]
    base += ["--vision-layers", "1", "--json"]
    first = runner.invoke(app, [*base, "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    (out / MARKER).unlink()  # as if killed after the checkpoint at step 2, before the folder was written
    refused = runner.invoke(app, [*base, "--max-steps", "3"])
    assert refused.exit_code == 1 and "--resume-from-checkpoint latest" in refused.output
    resumed = runner.invoke(app, [*base, "--max-steps", "3", "--resume-from-checkpoint", "latest"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["step"] == 3


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from tests.tiny_bert import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def test_locked_text_clip_trains_only_its_image_side_in_diffdis_own_text_space(bert_dir, shapes_dir, tmp_path):
    """With --text-encoder the baseline's captions embed exactly as a DiffDis model built on the same folder
    embeds them (the fair comparison), the text tower never moves, and the saved folder answers the same."""
    from safetensors.torch import load_file

    from diffdis.pretrained import with_text_encoder
    from tests.conftest import micro_config

    out, losses = tmp_path / "locked", []
    small = {**SMALL, "max_length": 32}
    cfg = ClipBaselineConfig(
        data=str(shapes_dir), output_dir=str(out), max_steps=12, text_encoder=str(bert_dir), **small
    )
    train_clip(cfg, lambda step, total, logs: losses.append(logs["loss"]), log=lambda m: None)
    assert sum(losses[-3:]) < sum(losses[:3])
    source, saved = (
        load_file(str(bert_dir / "model.safetensors")),
        load_file(str(out / "text_encoder" / "model.safetensors")),
    )
    assert set(source) == set(saved) and all(torch.equal(source[k], saved[k]) for k in source)

    clip = ClipBaseline.from_pretrained(out)
    assert clip.cfg.text_pooling == "mean" and clip.model.logit_scale.item() != pytest.approx(2.6592)  # it learned
    captions = ["a red circle", "a blue square on a gray background", "green cross"]
    diffdis_pipe, _ = with_text_encoder(bert_dir, micro_config())
    assert torch.allclose(clip.encode_text(captions)[1], diffdis_pipe.encode_text(captions)[1], atol=1e-5)

    from diffdis.eval.judge import read_labelled_folder

    images, _ = read_labelled_folder(shapes_dir)
    queries = clip.image_queries(images[:4])
    assert queries.shape == (4, 32) and torch.allclose(
        queries, ClipBaseline.from_pretrained(out).image_queries(images[:4])
    )


def test_locked_text_clip_resumes_with_its_pooling_and_refuses_a_missing_encoder(bert_dir, shapes_dir, tmp_path):
    from diffdis.errors import DiffDisError
    from diffdis.model.clip import MARKER

    runner = CliRunner()
    out = tmp_path / "clip"
    base = ["eval", "train-clip", "--data", str(shapes_dir), "--output-dir", str(out), "--batch-size", "4"]
    base += ["--vision-layers", "1", "--text-encoder", str(bert_dir), "--json"]
    assert runner.invoke(app, [*base, "--max-steps", "2"]).exit_code == 0
    (out / MARKER).unlink()  # killed after the step-2 checkpoint
    resumed = runner.invoke(app, [*base, "--max-steps", "3", "--resume-from-checkpoint", "latest"])
    assert resumed.exit_code == 0, resumed.output
    assert ClipBaseline.from_pretrained(out).cfg.text_pooling == "mean"
    other = [arg if arg != str(bert_dir) else str(tmp_path / "nope") for arg in base]
    missing = runner.invoke(app, [*other, "--output-dir", str(tmp_path / "other"), "--max-steps", "1"])
    assert missing.exit_code == 1 and "no such folder" in missing.output
    with pytest.raises(DiffDisError, match="no such folder"):
        train_clip(
            ClipBaselineConfig(
                data=str(shapes_dir), text_encoder=str(tmp_path / "nope"), output_dir=str(tmp_path / "x")
            )
        )
