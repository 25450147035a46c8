"""Presets as data files: each one must give the very ModelConfig (and model_config.json bytes) the Python
presets gave before they moved to diffdis/presets/*.json (fixtures captured from that code)."""

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest

import diffdis.query_options
from diffdis.config import PRESETS, ModelConfig, list_presets, preset, save_config
from diffdis.errors import DiffDisError
from diffdis.presets import PRESET_DIR
from diffdis.query_options import parse_query_schedule

FIXTURES = Path(__file__).parent / "fixtures" / "presets"


def test_list_presets_names_the_files():
    assert set(list_presets()) == {"tiny", "tiny-patch2", "tiny-latent", "sd15"}
    assert PRESETS == list_presets()


@pytest.mark.parametrize("name", ["tiny", "tiny-patch2", "tiny-latent", "sd15"])
def test_preset_writes_the_same_model_config_json_as_before(tmp_path, name):
    save_config(preset(name), tmp_path / "model_config.json")
    assert (tmp_path / "model_config.json").read_bytes() == (FIXTURES / f"{name}.model_config.json").read_bytes()


def test_preset_files_hold_only_model_config_fields():
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    for path in PRESET_DIR.glob("*.json"):
        assert set(json.loads(path.read_text())) <= names - {"preset", "format_version"}, path.name


def test_model_config_defaults_are_the_tiny_preset():
    assert ModelConfig() == preset("tiny")


def test_overrides_replace_fields_and_copies_are_fresh():
    cfg = preset("sd15", fusion="one-way", image_size=256)
    assert (cfg.fusion, cfg.image_size, cfg.preset) == ("one-way", 256, "sd15")
    cfg.unet["block_out_channels"].append(1)
    assert preset("sd15").unet["block_out_channels"] == [320, 640, 1280, 1280]


def test_unknown_preset_lists_the_files():
    with pytest.raises(DiffDisError, match="tiny-latent") as err:
        preset("sdxl")
    assert "\n" not in str(err.value)


def test_named_query_schedules_come_from_the_presets():
    assert parse_query_schedule("linear") == preset("tiny").schedule
    assert parse_query_schedule("scaled-linear") == preset("sd15").schedule


def test_query_options_does_not_import_config():  # config imports query_options: no circle
    tree = ast.parse(inspect.getsource(diffdis.query_options))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "diffdis.config" not in imported
