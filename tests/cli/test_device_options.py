"""--device / --dtype on every command that runs a network: a device that is not there is one line, exit code 2,
before anything is loaded or written; bf16 on the CPU runs and answers with the right shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from diffdis.data.world import make_world
from diffdis_cli.main import app
from tests.conftest import save_untrained_micro_model

runner = CliRunner()

COMMANDS = {
    "generate": ["generate", "a red circle", "--model", "{w}/m", "--num-inference-steps", "1", "--output", "o.png"],
    "classify": ["classify", "{w}/img.png", "--model", "{w}/m", "--labels", "a,b", "--num-inference-steps", "1"],
    "retrieve": ["retrieve", "--model", "{w}/m", "--images", "{w}/world", "--query", "a red circle"],
    "eval-classify": ["eval", "classify", "--model", "{w}/m", "--data", "{w}/world", "--labels", "world_colours"],
    "eval-retrieve": ["eval", "retrieve", "--model", "{w}/m", "--data", "{w}/world"],
    "eval-generate": ["eval", "generate", "--model", "{w}/m", "--prompts", "{w}/world", "--num-prompts", "2"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("devices")
    save_untrained_micro_model(root / "m")
    make_world(root / "world", 4, seed=0, size=16)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(root / "img.png")
    return root


def _run(args: list[str], world: Path, *extra: str):
    return runner.invoke(app, [*(a.replace("{w}", str(world)) for a in args), *extra])


NO_CUDA, UNKNOWN = "no CUDA device is visible", "choose auto, cpu, cuda or cuda:N"


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize("device, message", [("cuda", NO_CUDA), ("cuda:1", NO_CUDA), ("gpu", UNKNOWN)])
def test_a_missing_device_is_one_line_and_exit_2_before_any_work(name, device, message, world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine that has a GPU
    loaded = []
    monkeypatch.setattr("diffdis.pipeline.DiffDisPipeline.from_pretrained", lambda *a, **k: loaded.append(a))
    result = _run(COMMANDS[name], world, "--device", device)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not loaded and list(tmp_path.iterdir()) == []  # no model loaded, nothing written


@pytest.mark.parametrize("name", ["generate", "classify", "eval-retrieve"])
def test_fp16_on_cpu_is_refused_in_one_line(name, world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(COMMANDS[name], world, "--device", "cpu", "--dtype", "fp16")
    assert result.exit_code == 2 and "use --dtype bf16 or fp32" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_generate_in_bf16_on_cpu(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(COMMANDS["generate"], world, "--num-images", "2", "--device", "cpu", "--dtype", "bf16", "--json")
    assert result.exit_code == 0, result.output
    paths = json.loads(result.stdout)["images"]
    assert [Image.open(p).size for p in paths] == [(16, 16), (16, 16)]


def test_classify_in_bf16_on_cpu(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    two_images = [*COMMANDS["classify"], str(world / "img.png")]
    result = _run(two_images, world, "--dtype", "bf16", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert len(results) == 2 and all(len(r["predictions"]) == 2 for r in results)


def test_eval_records_say_where_they_ran(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(COMMANDS["eval-classify"], world, "--num-inference-steps", "1", "--dtype", "bf16", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)[0]
    assert record["device"] == "cpu" and record["dtype"] == "bfloat16" and record["n"] == 4
