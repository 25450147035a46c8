"""The FID feature networks (Inception, judge) take inputs in any dtype and memory layout, run in the network's
own dtype, and hand back fp32/fp64 numbers on the CPU: what lets them run on a GPU. Here bf16 stands in for the
device (the CPU has no second device): a bf16 network with fp32 or uint8 inputs, non-contiguous views."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from diffdis.data.world import make_world
from diffdis.eval.fid import judge_features
from diffdis.eval.inception import FIDInceptionV3, inception_features, resize_bicubic_pil
from diffdis.eval.judge import Judge, JudgeConfig, judge_accuracy, read_labelled_folder


def _images(n: int, size: tuple[int, int] = (24, 24)) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture
def inception(monkeypatch) -> FIDInceptionV3:
    """The FID network with torch's default init, fed 75x75 (its smallest input) instead of 299x299: the
    plumbing is what is tested, and this makes it ~16x cheaper."""
    monkeypatch.setattr("diffdis.eval.inception.SIZE", 75)
    torch.manual_seed(0)
    return FIDInceptionV3().eval().requires_grad_(False)


def test_inception_features_in_bf16_are_fp64_numpy_close_to_fp32(inception):
    pictures = _images(2)
    full = inception_features(inception)(pictures)
    half = inception_features(copy.deepcopy(inception).to(torch.bfloat16))(pictures)
    assert half.dtype == np.float64 and half.shape == full.shape == (2, 2048)
    assert np.isfinite(half).all()
    assert np.corrcoef(full.ravel(), half.ravel())[0, 1] > 0.95  # bf16 keeps ~3 significant digits


def test_inception_forward_takes_a_non_contiguous_uint8_batch(inception):
    pixels = torch.from_numpy(np.stack([np.asarray(im) for im in _images(2)]))  # (N, H, W, 3) uint8
    view = pixels.permute(0, 3, 1, 2)  # (N, 3, H, W), not contiguous
    assert not view.is_contiguous()
    with torch.no_grad():
        assert torch.allclose(inception(view), inception(view.contiguous()))


def test_clean_fid_resize_takes_any_dtype_and_layout():
    x = torch.rand(1, 3, 8, 10, dtype=torch.float64) * 255
    out = resize_bicubic_pil(x.transpose(2, 3).to(torch.bfloat16), 12, 12)
    assert out.shape == (1, 3, 12, 12) and out.dtype is torch.float32 and out.device == x.device


def test_judge_in_bf16_takes_tensors_and_images_and_answers_in_fp32_on_the_cpu(tmp_path):
    torch.manual_seed(0)
    judge = Judge(JudgeConfig(widths=[8, 16])).to(torch.bfloat16)
    pictures, rows = read_labelled_folder(make_world(tmp_path / "w", 4, seed=5))
    features = judge.features(pictures)
    assert features.shape == (4, 16) and features.dtype is torch.float32
    pixels = torch.rand(4, 32, 32, 3, dtype=torch.float64).permute(0, 3, 1, 2) * 2 - 1  # fp64, not contiguous
    assert judge.features(pixels).dtype is torch.float32
    extracted = judge_features(judge)(pictures)
    assert isinstance(extracted, np.ndarray) and extracted.dtype == np.float32 and extracted.shape == (4, 16)
    object_logits, colour_logits = judge.logits(pictures)
    assert object_logits.dtype is torch.float32 and object_logits.device.type == "cpu"
    assert set(judge_accuracy(judge, pictures, rows)) == {"object", "colour"}
    assert len(judge.predict(pictures)["object"]) == 4
