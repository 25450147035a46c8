import json

import pytest
import torch

from diffdis.config import InferenceConfig, ModelConfig, TrainConfig, load_config, preset, save_config
from diffdis.errors import DiffDisError
from diffdis.model.unet import DiffDisModel


def test_model_config_json_round_trip(tmp_path):
    cfg = preset("tiny", fusion="one-way", query_scale=0.5)
    save_config(cfg, tmp_path / "c.json")
    assert load_config(ModelConfig, tmp_path / "c.json") == cfg


def test_train_and_inference_configs_round_trip(tmp_path):
    for cfg in (TrainConfig(data="d", output_dir="o", ema_decay=0.99), InferenceConfig(query_steps=3)):
        save_config(cfg, tmp_path / "c.json")
        assert load_config(type(cfg), tmp_path / "c.json") == cfg


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), ('{"preset": "tiny", "bogus": 1}', "unknown keys"), ('{"format_version": 99}', "newer")],
)
def test_bad_config_files_are_refused(tmp_path, content, message):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(DiffDisError, match=message):
        load_config(ModelConfig, tmp_path / "c.json")


@pytest.mark.parametrize(
    "kwargs", [{"max_steps": 0}, {"batch_size": -1}, {"learning_rate": 0.0}, {"tasks": "all"}, {"ema_decay": 1.5}]
)
def test_train_config_validates(kwargs):
    with pytest.raises(DiffDisError):
        TrainConfig(**kwargs)


def test_model_config_validates():
    with pytest.raises(DiffDisError, match="fusion"):
        ModelConfig(fusion="both")
    with pytest.raises(DiffDisError, match="query_scale"):
        ModelConfig(query_scale=0.0)
    with pytest.raises(DiffDisError, match="unknown preset"):
        preset("sdxl")


def test_sd15_preset_builds_on_meta_with_sd_unet_size():
    with torch.device("meta"):
        model = DiffDisModel(preset("sd15"))
    unet = sum(p.numel() for p in model.unet.parameters())
    new = sum(p.numel() for p in model.discriminator.parameters())
    assert unet == 859_520_964  # SD v1.5's UNet2DConditionModel
    assert 50e6 < new < 200e6
    assert preset("sd15").latent_size == 64 and preset("sd15").query_dim == 768
    assert len(model.discriminator.fusion) == 7  # 3 down blocks x 2 layers + the middle block


def test_tiny_preset_size():
    model = DiffDisModel(preset("tiny"))
    total = sum(p.numel() for p in model.parameters())
    assert 3e6 < total < 20e6
    assert json.loads(json.dumps(preset("tiny").unet)) == preset("tiny").unet
