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
    [
        ("{not json", "not valid JSON"),
        ('{"preset": "tiny", "bogus": 1}', "unknown keys"),
        ('{"format_version": 99}', "newer"),
    ],
)
def test_bad_config_files_are_refused(tmp_path, content, message):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(DiffDisError, match=message):
        load_config(ModelConfig, tmp_path / "c.json")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_steps": 0},
        {"batch_size": -1},
        {"learning_rate": 0.0},
        {"tasks": "all"},
        {"ema_decay": 1.5},
        {"query_self_condition": 1.5},
        {"query_self_condition": -0.1},
    ],
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


def test_query_scale_and_schedule_round_trip(tmp_path):
    for scale, schedule in (
        (16.0, None),
        ("sqrt-d", {"num_train_timesteps": 500, "beta_schedule": "squaredcos_cap_v2"}),
    ):
        cfg = preset("tiny", query_scale=scale, query_schedule=schedule)
        save_config(cfg, tmp_path / "c.json")
        back = load_config(ModelConfig, tmp_path / "c.json")
        assert back == cfg and back.gamma == (16.0 if scale == "sqrt-d" else scale)  # d = 256
        assert back.query_noise_schedule == (schedule or cfg.schedule)


def test_gamma_sqrt_d_follows_the_text_width():
    cfg = preset("tiny", query_scale="sqrt-d", text_encoder={**preset("tiny").text_encoder, "hidden_size": 384})
    assert cfg.gamma == pytest.approx(384**0.5)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf"), float("nan"), "big", True])
def test_nonsense_query_scales_are_refused_in_one_line(scale):
    with pytest.raises(DiffDisError, match="query_scale") as err:
        ModelConfig(query_scale=scale)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "schedule, message",
    [
        ("cosine", "JSON object"),
        ({"beta_schedule": "sigmoid"}, "beta_schedule"),
        ({"num_train_timesteps": 1}, "num_train_timesteps"),
        ({"num_train_timesteps": 10.5}, "num_train_timesteps"),
        ({"beta_start": 0.5, "beta_end": 0.1}, "beta_start"),
        ({"prediction_type": "v_prediction"}, "unknown key"),
    ],
)
def test_nonsense_query_schedules_are_refused_in_one_line(schedule, message):
    with pytest.raises(DiffDisError, match=message) as err:
        ModelConfig(query_schedule=schedule)
    assert "\n" not in str(err.value)


def test_query_flags_parse_names_numbers_and_json():
    from diffdis.query_options import parse_query_scale, parse_query_schedule

    assert parse_query_scale("sqrt-d") == "sqrt-d" and parse_query_scale("4") == 4.0
    assert parse_query_schedule("image") is None
    assert parse_query_schedule("cosine")["beta_schedule"] == "squaredcos_cap_v2"
    assert parse_query_schedule('{"num_train_timesteps": 200}') == {"num_train_timesteps": 200}
    for bad in ("-2", "x"):
        with pytest.raises(DiffDisError, match="query-scale"):
            parse_query_scale(bad)
    with pytest.raises(DiffDisError, match="query-schedule"):
        parse_query_schedule("[1, 2]")
