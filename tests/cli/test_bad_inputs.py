"""The catalogue of bad inputs (issue #7): each answers with one line that says what is wrong and what to do,
a non-zero exit code (2 for usage errors), no traceback, and no partial output left behind. Images in odd
modes (grayscale, alpha, 16-bit, palette, CMYK) are not bad: they are converted to RGB and work.

The cases are written by command in bad_inputs_model.py and bad_inputs_train.py; this file runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffdis.config import save_config
from diffdis.data.shapes import make_shapes
from diffdis_cli.main import app
from tests.cli.bad_inputs import CLASSIFY, GOOD_ROWS, TRAIN, Case, _dataset, _with
from tests.cli.bad_inputs_model import MODEL_CASES
from tests.cli.bad_inputs_train import TRAIN_CASES
from tests.conftest import micro_config, save_untrained_micro_model

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """An untrained micro model folder (bad inputs need no trained one), its config, a small dataset, an image."""
    root = tmp_path_factory.mktemp("world")
    save_untrained_micro_model(root / "m")
    save_config(micro_config(), root / "micro.json")
    make_shapes(root / "data", 8, seed=0, size=16)
    Image.new("RGB", (20, 16), (200, 30, 30)).save(root / "ok.png")
    return root


CASES: dict[str, Case] = {**MODEL_CASES, **TRAIN_CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, world, tmp_path, monkeypatch):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir()
    real_access = __import__("os").access
    # tests run as root, which writes anywhere: a read-only folder is the one os.access says no for
    monkeypatch.setattr("os.access", lambda p, mode, **kw: Path(p).name != "ro" and real_access(p, mode, **kw))
    case.setup(tmp_path, world)
    result = runner.invoke(app, [a.replace("{w}", str(world)) for a in case.args])
    assert result.exit_code == case.code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert case.message in result.output and "Traceback" not in result.output, result.output
    if case.one_line:
        assert len(result.output.strip().splitlines()) == 1, result.output
    for path in case.absent:
        assert not (tmp_path / path).exists(), path


def test_debug_shows_the_traceback(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["--debug", "generate", "x", "--model", "nowhere"])
    assert result.exit_code != 0 and type(result.exception).__name__ == "DiffDisError"


def _mode_image(mode: str) -> Callable[[Path], object]:
    def write(path: Path) -> None:
        rng = np.random.default_rng(0)
        if mode == "I;16":
            Image.fromarray(rng.integers(0, 65535, (12, 10), dtype=np.uint16)).save(path)
        elif mode == "CMYK":
            Image.new("CMYK", (10, 12), (10, 200, 30, 5)).save(path.with_suffix(".jpg"))
            path.with_suffix(".jpg").rename(path)
        else:
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).convert(mode).save(path, format="PNG")

    return write


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "I;16", "P", "1", "CMYK"])
def test_odd_image_modes_are_converted_and_work(mode, world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _mode_image(mode)(tmp_path / "img.png")
    assert Image.open(tmp_path / "img.png").mode == mode
    result = runner.invoke(app, [*[a.replace("{w}", str(world)) for a in CLASSIFY], "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["results"][0]["predictions"]) == 2


def test_bad_rows_skip_trains_on_the_good_rows_and_says_how_many(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _dataset(tmp_path, world, [*GOOD_ROWS, {"file_name": "000004.png"}, {"file_name": "gone.png", "text": "x"}])
    result = runner.invoke(
        app, [*[a.replace("{w}", str(world)) for a in _with(TRAIN, "--data", "data")], "--bad-rows", "skip"]
    )
    assert result.exit_code == 0, result.output
    assert "skipping 2 of 6 training rows" in result.output
    assert (tmp_path / "out" / "model_index.json").is_file()


def test_the_catalogue_is_long_enough():
    assert len(CASES) >= 30
