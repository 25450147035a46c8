"""A random micro model folder for the eval command tests (random weights: the tests check plumbing, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffdis.pipeline import DiffDisPipeline
from tests.conftest import micro_config


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory, tokenizer) -> Path:
    folder = tmp_path_factory.mktemp("eval_model") / "model"
    torch.manual_seed(0)
    DiffDisPipeline.build(micro_config(), tokenizer).save_pretrained(folder)
    return folder
