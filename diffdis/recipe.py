"""A training recipe as a JSON file (`diffdis train --config FILE`): TrainConfig fields plus the model choices
the CLI offers as flags (fusion, query_scale, query_schedule).

A model folder's training_config.json is such a file: TrainConfig records everything but those model choices,
which live in the model_config.json beside it, so they are read from there unless the file names them. Paths
inside a recipe are taken as written (relative to where `diffdis train` runs), as training_config.json records them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffdis.config import FORMAT_VERSION, ModelConfig, TrainConfig, load_config, read_json_object
from diffdis.errors import DiffDisError, UsageError
from diffdis.query_options import parse_query_scale, parse_query_schedule

MODEL_CHOICES = ("fusion", "query_scale", "query_schedule")  # the model fields `diffdis train` sets by flag
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
}


@dataclass
class Recipe:
    """What a recipe file sets: TrainConfig fields, and ModelConfig fields to apply over the preset."""

    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)


def train_defaults() -> dict[str, Any]:
    """TrainConfig's defaults by field name, so the CLI's flag defaults cannot drift from the dataclass."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def read_recipe(path: Path) -> Recipe:
    """Read and check a recipe file: one clear error for a missing file, bad JSON, unknown keys or wrong types."""
    path = Path(path)
    data = read_json_object(path)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - set(fields) - set(MODEL_CHOICES))
    if unknown:
        raise UsageError(
            f"--config {path}: unknown key(s) {', '.join(unknown)}; a recipe holds TrainConfig fields "
            f"(as in training_config.json) and {', '.join(MODEL_CHOICES)}"
        )
    train = {k: v for k, v in data.items() if k in fields}
    for name, value in train.items():
        _check_type(path, name, value, str(fields[name].type))
    if train.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise DiffDisError(f"{path} was written by a newer diffdis (format {train['format_version']}); upgrade diffdis")
    model = _model_choices(path, data)
    beside = path.parent / "model_config.json"
    if path.name == "training_config.json" and beside.is_file():  # a model folder: its model choices too
        saved = load_config(ModelConfig, beside)
        model = {**{k: getattr(saved, k) for k in MODEL_CHOICES}, **model}
    return Recipe(train, model)


def _check_type(path: Path, name: str, value: Any, annotation: str) -> None:
    if annotation == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        allowed = tuple(t for part in annotation.split("|") for t in _TYPES[part.strip()])
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok:
        raise UsageError(f"--config {path}: {name} must be {annotation}, got {value!r}")


def _model_choices(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Spelled as in model_config.json, or as the flags are ("sqrt-d", "2", a schedule's name or JSON text)."""
    model = {k: data[k] for k in MODEL_CHOICES if k in data}
    parsers = {"query_scale": parse_query_scale, "query_schedule": parse_query_schedule}
    try:
        for name, parse in parsers.items():
            if isinstance(model.get(name), str):
                model[name] = parse(model[name])
        ModelConfig(**model)  # checks fusion, query_scale and query_schedule as the flags are checked
    except UsageError as err:
        raise UsageError(f"--config {path}: {err}") from None
    return model
