"""DiffDisPipeline on another dtype: bf16 on the CPU answers with the same shapes (and nearly the same scores) as
fp32, the VAE stays fp32 under fp16, and device/dtype strings go through the same checks as the CLI's."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from diffdis.errors import UsageError
from diffdis.model.autoencoder import LatentAutoencoder
from diffdis.pipeline import DiffDisPipeline
from tests.conftest import save_untrained_micro_model
from tests.model.test_autoencoder import latent_config

IMAGES = [Image.new("RGB", (16, 16), (200, 30, 30)), Image.new("RGB", (20, 16), (30, 60, 200))]


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory):
    return save_untrained_micro_model(tmp_path_factory.mktemp("devices") / "m")


def test_bf16_on_cpu_answers_like_fp32(micro_dir):
    full = DiffDisPipeline.from_pretrained(micro_dir)
    half = DiffDisPipeline.from_pretrained(micro_dir, device="cpu", dtype="bf16")
    assert half.dtype is torch.bfloat16 and half.device == torch.device("cpu")
    assert next(half.text_encoder.parameters()).dtype is torch.bfloat16
    images = half.generate(["a red circle"], num_images_per_prompt=2, num_inference_steps=2, guidance_scale=2.0)
    assert [im.size for im in images] == [(16, 16), (16, 16)]
    queries = half.image_queries(IMAGES, num_inference_steps=2)
    assert queries.shape == (2, half.config.query_dim) and queries.dtype is torch.float32
    assert torch.allclose(queries.norm(dim=-1), torch.ones(2), atol=1e-4)
    scores = half.classify(IMAGES, ["red", "blue", "cat"], num_inference_steps=2)
    assert scores.shape == (2, 3) and scores.dtype is torch.float32 and scores.device.type == "cpu"
    assert torch.allclose(scores, full.classify(IMAGES, ["red", "blue", "cat"], num_inference_steps=2), atol=0.03)
    assert half.retrieve(IMAGES, ["a", "b", "c", "d"], num_inference_steps=1).shape == (2, 4)
    condition, text = half.encode_text(["a red circle"])
    assert condition.dtype is torch.bfloat16 and text.dtype is torch.float32


def test_fp16_keeps_the_vae_in_fp32_and_still_decodes(tokenizer):
    pipe = DiffDisPipeline.build(latent_config(), tokenizer)
    assert isinstance(pipe.autoencoder, LatentAutoencoder)
    pipe.to(dtype=torch.bfloat16)  # bf16 has fp32's range: the VAE follows the model
    assert pipe.dtype is torch.bfloat16 and pipe.autoencoder.vae.dtype is torch.bfloat16
    pipe.to(dtype=torch.float16)  # a torch dtype is not checked: fp16 CPU kernels exist, if slow
    assert pipe.dtype is torch.float16 and pipe.autoencoder.vae.dtype is torch.float32
    image = pipe.generate(["a red circle"], num_inference_steps=1)[0]
    assert image.size == (16, 16)
    assert torch.isfinite(pipe.image_queries(IMAGES, num_inference_steps=1)).all()
    pipe.to("cpu", "fp32")
    assert pipe.dtype is torch.float32 and pipe.autoencoder.vae.dtype is torch.float32


def test_strings_are_resolved_like_the_cli_flags(micro_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pipe = DiffDisPipeline.from_pretrained(micro_dir, device="auto", dtype="auto")
    assert pipe.device == torch.device("cpu") and pipe.dtype is torch.float32
    with pytest.raises(UsageError, match="use --dtype bf16 or fp32"):
        DiffDisPipeline.from_pretrained(micro_dir, dtype="fp16")
    with pytest.raises(UsageError, match="no CUDA device is visible"):
        pipe.to("cuda")
