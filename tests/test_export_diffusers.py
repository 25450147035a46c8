"""`diffdis export MODEL --format diffusers`: the generation half as a stock StableDiffusionPipeline folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from diffdis.errors import DiffDisError
from diffdis.export_diffusers import export_diffusers
from diffdis.pipeline import DiffDisPipeline
from diffdis.pretrained import init_from_sd
from diffdis_cli.main import app
from tests.conftest import micro_config
from tests.tiny_sd import SMALL_NEW, make_tiny_sd


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A DiffDis model folder started from a tiny SD folder."""
    root = tmp_path_factory.mktemp("export")
    pipe, _ = init_from_sd(make_tiny_sd(root / "sd"), micro_config(**SMALL_NEW))
    pipe.save_pretrained(root / "model")
    return root / "model"


def test_exported_folder_loads_offline_and_generates_as_diffdis(model_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    result = CliRunner().invoke(
        app, ["export", str(model_dir), "--format", "diffusers", "--output-dir", str(tmp_path / "sd")]
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "sd").iterdir()} >= {
        "unet",
        "vae",
        "text_encoder",
        "tokenizer",
        "scheduler",
        "model_index.json",
    }
    sd = StableDiffusionPipeline.from_pretrained(tmp_path / "sd", local_files_only=True)
    assert sd.safety_checker is None
    ours = DiffDisPipeline.from_pretrained(model_dir)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    image = sd("a red car", num_inference_steps=1, guidance_scale=7.5, latents=noise, output_type="np").images[0]
    assert image.shape == (16, 16, 3)
    # same UNet, VAE, text encoder, tokenizer and sampler: the same picture as `diffdis generate --seed 0`
    expected = np.asarray(ours.generate(["a red car"], num_inference_steps=1, guidance_scale=7.5, seed=0)[0]) / 255.0
    assert np.abs(image - expected).max() <= 2 / 255


def test_pixel_space_models_are_refused_clearly(tokenizer, tmp_path):
    pipe = DiffDisPipeline.build(micro_config(), tokenizer)
    with pytest.raises(DiffDisError, match="pixel-space model \\(no VAE\\)"):
        export_diffusers(pipe, tmp_path / "out", "tiny")
    assert not (tmp_path / "out").exists()


def test_cli_export_refuses_an_existing_folder_and_two_outputs(model_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "model_index.json").write_text("{}")
    taken = CliRunner().invoke(app, ["export", str(model_dir), "--format", "diffusers", "-o", str(tmp_path / "taken")])
    assert taken.exit_code == 2 and "--overwrite" in taken.output
    both = CliRunner().invoke(app, ["export", str(model_dir), str(tmp_path / "a"), "--output-dir", str(tmp_path / "b")])
    assert both.exit_code == 2 and "two output folders" in both.output
    old_and_new = CliRunner().invoke(
        app, ["export", str(model_dir), "--output", str(tmp_path / "a"), "--output-dir", str(tmp_path / "b")]
    )
    assert old_and_new.exit_code == 2 and "two output folders" in old_and_new.output
