"""The CLI end to end in subprocesses, as a user runs it; error paths in-process with typer's runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffdis_cli.main import app

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def diffdis(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "diffdis_cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    """`diffdis data make` + `diffdis train` (tiny preset, a few steps) through the real command."""
    root = tmp_path_factory.mktemp("cli")
    made = diffdis("data", "make", "shapes", "--output-dir", "data", "--num-images", "40", cwd=root)
    assert made.returncode == 0, made.stderr
    trained = diffdis(
        "train",
        "--data",
        "data",
        "--output-dir",
        "run",
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        "--checkpointing-steps",
        "2",
        "--warmup-steps",
        "1",
        "--json",
        cwd=root,
    )
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["steps"] == 3 and {"loss", "loss_generative", "loss_alignment"} <= set(summary)
    assert (root / "run" / "checkpoints" / "latest").read_text().strip() == "checkpoint-3"
    return root


def test_generate_writes_the_same_png_for_the_same_seed(cli_run):
    for name in ("a.png", "b.png"):
        out = diffdis(
            "generate", "a red circle", "--model", "run", "--num-inference-steps", "3", "--output", name, cwd=cli_run
        )
        assert out.returncode == 0, out.stderr
    assert (cli_run / "a.png").read_bytes() == (cli_run / "b.png").read_bytes()
    again = diffdis("generate", "a red circle", "--model", "run", "--output", "a.png", cwd=cli_run)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    many = diffdis(
        "generate",
        "a cross",
        "--model",
        "run",
        "--num-images",
        "2",
        "--output",
        "m.png",
        "--json",
        "--num-inference-steps",
        "2",
        cwd=cli_run,
    )
    assert (
        json.loads(many.stdout)["images"] == ["m-0.png", "m-1.png"] and json.loads(many.stdout)["grid"] == "m-grid.png"
    )
    from diffdis.png_record import read_png_record

    records = [read_png_record(cli_run / name) for name in ("m-0.png", "m-1.png", "m-grid.png")]
    assert [r.get("index") for r in records] == [0, 1, None]
    assert all(
        r["prompt"] == "a cross" and r["steps"] == 2 and r["seed"] == 0 and r["scheduler"] == "ddpm" for r in records
    )
    assert records[0]["negative_prompt"] == "" and records[0]["diffdis_version"]
    negative = diffdis(
        "generate",
        "a cross",
        "--model",
        "run",
        "--num-inference-steps",
        "2",
        "--output",
        "n.png",
        "--negative-prompt",
        "a red circle",
        cwd=cli_run,
    )
    assert negative.returncode == 0, negative.stderr
    assert read_png_record(cli_run / "n.png")["negative_prompt"] == "a red circle"


def test_classify_json(cli_run):
    out = diffdis(
        "classify",
        "data/000000.png",
        "data/000001.png",
        "--model",
        "run",
        "--labels",
        "red circle,blue square,green cross",
        "--num-inference-steps",
        "2",
        "--top-k",
        "2",
        "--json",
        cwd=cli_run,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["model"] == "run"  # a trained folder without a card is named after itself
    results = answer["results"]
    assert [r["image"] for r in results] == ["data/000000.png", "data/000001.png"]
    for r in results:
        scores = [p["score"] for p in r["predictions"]]
        assert len(scores) == 2 and scores == sorted(scores, reverse=True)


def test_retrieve_json_both_directions(cli_run):
    (cli_run / "texts.txt").write_text("a red circle\na blue square\na green cross\n")
    out = diffdis(
        "retrieve",
        "--model",
        "run",
        "--images",
        "data",
        "--texts",
        "texts.txt",
        "--top-k",
        "2",
        "--num-inference-steps",
        "1",
        "--json",
        cwd=cli_run,
    )
    assert out.returncode == 0, out.stderr
    per_image = json.loads(out.stdout)["results"]
    assert len(per_image) == 40 and len(per_image[0]["matches"]) == 2
    out = diffdis(
        "retrieve",
        "--model",
        "run",
        "--images",
        "data",
        "--query",
        "a red circle",
        "--top-k",
        "3",
        "--num-inference-steps",
        "1",
        "--json",
        cwd=cli_run,
    )
    ranked = json.loads(out.stdout)["results"][0]["matches"]
    assert len(ranked) == 3 and all(m["image"].endswith(".png") for m in ranked)


def test_resume_latest_and_refuse_to_overwrite_a_run(cli_run):
    again = diffdis(
        "train", "--data", "data", "--output-dir", "run", "--max-steps", "3", "--batch-size", "8", cwd=cli_run
    )
    assert again.returncode == 1 and "resume-from-checkpoint" in again.stderr
    more = diffdis(
        "train",
        "--data",
        "data",
        "--output-dir",
        "run",
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--resume-from-checkpoint",
        "latest",
        "--json",
        cwd=cli_run,
    )
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["step"] == 4


runner = CliRunner()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["generate", "x", "--model", "nowhere"], 1, "does not exist"),
        (["generate", "x", "--model", "m", "--output", "no/such/dir/x.png"], 2, "does not exist"),
        (["generate", "x", "--model", "m", "--output", "x.jpg"], 2, "must end in .png"),
        (["classify", "missing.png", "--model", "m", "--labels", "a,b"], 1, "does not exist"),
        (["classify", "x.png", "--model", "m", "--labels", "cifar11"], 1, "unknown label set"),
        (["retrieve", "--model", "m", "--images", "."], 2, "exactly one of"),
        (["data", "make", "mnist-world", "--output-dir", "d"], 2, "unknown dataset"),
        (["train", "--data", "nowhere", "--output-dir", "o", "--batch-size", "0"], 2, "batch-size must be positive"),
        (["train", "--data", "nowhere.txt", "--output-dir", "o"], 1, "cannot use"),
    ],
)
def test_bad_inputs_give_one_line_and_an_exit_code(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.png").write_bytes(b"not a png")
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_version_and_env():
    assert runner.invoke(app, ["--version"]).output.startswith("diffdis ")
    info = json.loads(runner.invoke(app, ["env", "--json"]).stdout)
    assert {"diffdis", "torch", "diffusers", "transformers", "default_model", "default_model_version"} <= set(info)


def test_deepspeed_single_process_json_and_export(cli_run):
    pytest.importorskip("deepspeed")
    trained = diffdis(
        "train",
        "--data",
        "data",
        "--output-dir",
        "ds",
        "--max-steps",
        "1",
        "--batch-size",
        "4",
        "--deepspeed",
        "zero2",
        "--json",
        cwd=cli_run,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert json.loads(trained.stdout)["step"] == 1  # DeepSpeed's own prints went to stderr
    exported = diffdis("export", "ds/checkpoints/checkpoint-1", "exported", cwd=cli_run)
    assert exported.returncode == 0, exported.stderr[-2000:]
    out = diffdis(
        "generate",
        "a red circle",
        "--model",
        "exported",
        "--num-inference-steps",
        "2",
        "--output",
        "e.png",
        cwd=cli_run,
    )
    assert out.returncode == 0 and (cli_run / "e.png").is_file()
    refused = diffdis("export", "ds/checkpoints/checkpoint-1", "exported", cwd=cli_run)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    latest = diffdis("export", "ds", "exported-latest", cwd=cli_run)  # the run folder: its checkpoints/latest
    assert latest.returncode == 0 and "checkpoint-1" in latest.stderr, latest.stderr[-2000:]
    assert (cli_run / "exported-latest" / "model_index.json").is_file()


def test_train_saves_the_query_scale_and_schedule_flags(tmp_path):
    """--query-scale sqrt-d and --query-schedule land in model_config.json and the model trains with them."""
    from diffdis.config import ModelConfig, load_config, save_config
    from diffdis.data.shapes import make_shapes
    from tests.conftest import micro_config

    save_config(micro_config(), tmp_path / "micro.json")
    make_shapes(tmp_path / "data", 8, seed=0, size=16)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / "run"),
            "--preset",
            str(tmp_path / "micro.json"),
            "--max-steps",
            "1",
            "--batch-size",
            "4",
            "--vocab-size",
            "300",
            "--warmup-steps",
            "0",
            "--query-scale",
            "sqrt-d",
            "--query-schedule",
            '{"num_train_timesteps": 200, "beta_schedule": "squaredcos_cap_v2"}',
        ],
    )
    assert result.exit_code == 0, result.output
    saved = load_config(ModelConfig, tmp_path / "run" / "model_config.json")
    assert saved.query_scale == "sqrt-d" and saved.gamma == saved.query_dim**0.5
    assert saved.query_schedule == {"num_train_timesteps": 200, "beta_schedule": "squaredcos_cap_v2"}


def _command_paths(group, prefix=()):
    """Every command of the Typer app as its words, e.g. ("eval", "classify")."""
    import typer.main

    click_group = typer.main.get_command(group) if not hasattr(group, "commands") else group
    for name, command in click_group.commands.items():
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("words", sorted(_command_paths(app)), ids=" ".join)
def test_every_command_help_renders(words):
    """Help texts are rich markup: a bracket such as [/SPLIT] would break --help with a MarkupError."""
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
