"""The latent path: train a small AutoencoderKL, then a DiffDis model on its latents, and load both back."""

from __future__ import annotations

import json

import pytest
import torch

from diffdis.errors import UsageError
from diffdis.pipeline import DiffDisPipeline
from diffdis.train.autoencoder import AutoencoderTrainConfig, load_autoencoder, train_autoencoder
from diffdis.train.loop import train
from tests.conftest import micro_config, micro_train_config


@pytest.fixture(scope="module")
def autoencoder_dir(shapes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    cfg = AutoencoderTrainConfig(
        data=str(shapes_dir), output_dir=str(out), image_size=16, max_steps=6, batch_size=8, warmup_steps=1
    )
    losses: list[float] = []
    train_autoencoder(cfg, lambda step, total, logs: losses.append(logs["loss"]), log=lambda m: None)
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    return out


def test_autoencoder_folder_loads_with_unit_variance_scaling(autoencoder_dir, shapes_dir):
    vae = load_autoencoder(autoencoder_dir)
    summary = json.loads((autoencoder_dir / "autoencoder_training.json").read_text())
    assert vae.config.scaling_factor == pytest.approx(summary["scaling_factor"]) and vae.config.scaling_factor != 1.0
    assert (autoencoder_dir / "diffusion_pytorch_model.safetensors").is_file()
    from diffdis.data.captions import load_captioned
    from diffdis.data.transforms import image_to_tensor

    rows = load_captioned(str(shapes_dir), "image", "text")[:16]
    images = torch.stack([image_to_tensor(im, 16) for im in rows["image"]])
    with torch.no_grad():
        z = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
    assert z.shape == (16, 4, 4, 4)
    assert 0.5 < float(z.std()) < 2.0  # the scaling factor was measured on other rows of the same data


def test_autoencoder_training_is_repeatable(shapes_dir, tmp_path, autoencoder_dir):
    cfg = AutoencoderTrainConfig(
        data=str(shapes_dir), output_dir=str(tmp_path), image_size=16, max_steps=6, batch_size=8, warmup_steps=1
    )
    train_autoencoder(cfg, log=lambda m: None)
    a, b = load_autoencoder(autoencoder_dir).state_dict(), load_autoencoder(tmp_path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_latent_model_trains_on_the_frozen_autoencoder_and_round_trips(autoencoder_dir, shapes_dir, tmp_path):
    vae_before = load_autoencoder(autoencoder_dir).state_dict()
    out = train(micro_train_config(shapes_dir, tmp_path, vae=str(autoencoder_dir)), micro_config(), log=lambda m: None)
    pipe = DiffDisPipeline.from_pretrained(out)
    assert pipe.config.vae is not None and pipe.config.latent_size == 4 and pipe.config.clip_sample is None
    assert pipe.model.unet.config.sample_size == 4 and pipe.model.unet.config.in_channels == 4
    saved = pipe.autoencoder.vae.state_dict()
    assert all(torch.equal(vae_before[k], saved[k]) for k in vae_before)  # frozen: the weights it was given
    images = pipe.generate(["a red circle"], num_inference_steps=2, seed=0)
    assert images[0].size == (16, 16)
    assert pipe.image_queries(images, num_inference_steps=2).shape == (1, pipe.config.query_dim)


def test_tiny_latent_preset_without_an_autoencoder_is_refused(shapes_dir, tmp_path):
    from diffdis.config import preset

    with pytest.raises(UsageError, match="needs --vae"):
        train(micro_train_config(shapes_dir, tmp_path), preset("tiny-latent"), log=lambda m: None)


def test_a_folder_without_an_autoencoder_is_refused(tmp_path):
    with pytest.raises(UsageError, match="no AutoencoderKL folder"):
        load_autoencoder(tmp_path)


def test_bad_autoencoder_settings_are_refused():
    with pytest.raises(UsageError, match="multiple of 4"):
        AutoencoderTrainConfig(image_size=30)
    with pytest.raises(UsageError, match="learning-rate"):
        AutoencoderTrainConfig(learning_rate=float("nan"))


def test_cli_trains_an_autoencoder_and_refuses_bad_folders(shapes_dir, tmp_path):
    from typer.testing import CliRunner

    from diffdis_cli.main import app

    runner = CliRunner()
    out = tmp_path / "vae"
    args = [
        "train-autoencoder",
        "--data",
        str(shapes_dir),
        "--output-dir",
        str(out),
        "--image-size",
        "16",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["step"] == 2 and (out / "config.json").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already holds an autoencoder" in again.output
    missing = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(shapes_dir),
            "--output-dir",
            str(tmp_path / "m"),
            "--preset",
            "tiny-latent",
            "--vae",
            str(tmp_path / "nowhere"),
            "--max-steps",
            "1",
        ],
    )
    assert missing.exit_code == 2 and "no AutoencoderKL folder" in missing.output, missing.output
    assert len(missing.output.strip().splitlines()) == 1
