"""The FID Inception-v3: its module tree against the published one, its TF1 resize against the rule written as a
loop, loading (and refusing) weight files, and its features against torch-fidelity's own extractor."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffdis.errors import DiffDisError
from diffdis.eval.fid import load_extractor
from diffdis.eval.inception import (
    FIDInceptionV3,
    inception_features,
    load_fid_inception,
    random_fid_inception,
    resize_bicubic_pil,
    resize_bilinear_tf1,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(random_fid_inception(seed=0).state_dict(), path)
    return path


def images(n: int, seed: int, size: tuple[int, int] = (32, 32)) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def test_module_tree_is_the_published_one():
    model = FIDInceptionV3()
    # torchvision documents 27,161,264 parameters for Inception3 (1,000 classes, aux head of 3,326,696); the FID
    # network has no aux head and 1,008 classes: 27,161,264 - 3,326,696 + 8 * 2,048 + 8
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3) and shapes["fc.weight"] == (1008, 2048)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    assert not any(k.startswith("AuxLogits") for k in shapes) and model.Conv2d_1a_3x3.bn.eps == 1e-3
    assert model.Mixed_7c.max_pool and not model.Mixed_7b.max_pool


def test_tf1_resize_matches_the_rule_written_as_a_loop():
    x = torch.rand(1, 2, 5, 7)
    for out_h, out_w in ((11, 4), (3, 9), (5, 7)):
        expected = np.zeros((1, 2, out_h, out_w), dtype=np.float32)
        for i in range(out_h):
            for j in range(out_w):
                sy, sx = i * 5 / out_h, j * 7 / out_w  # source = target * in / out, no half-pixel shift
                y0, x0 = int(sy), int(sx)
                y1, x1 = min(y0 + 1, 4), min(x0 + 1, 6)
                dy, dx = sy - y0, sx - x0
                top = x[..., y0, x0] * (1 - dx) + x[..., y0, x1] * dx
                bottom = x[..., y1, x0] * (1 - dx) + x[..., y1, x1] * dx
                expected[..., i, j] = (top * (1 - dy) + bottom * dy).numpy()
        assert np.allclose(resize_bilinear_tf1(x, out_h, out_w).numpy(), expected, atol=1e-6)
    assert torch.equal(resize_bilinear_tf1(x, 5, 7), x)


def test_loads_a_state_dict_file_and_gives_pool3_features(weights, tmp_path):
    extract = load_extractor(None, inception_weights=str(weights))
    a, b = images(3, 1), images(2, 2, (20, 24)) + images(1, 3)  # mixed sizes share a batch
    fa = extract(a)
    assert fa.shape == (3, 2048) and np.isfinite(fa).all() and fa.std(axis=0).mean() > 0
    assert np.array_equal(extract(a), fa)  # deterministic (eval mode, no dropout)
    assert extract(b).shape == (3, 2048)
    # the same weights as safetensors, and without the BatchNorm counters older exports leave out
    from safetensors.torch import save_file

    state = {k: v for k, v in torch.load(weights, weights_only=True).items() if not k.endswith("num_batches_tracked")}
    save_file(state, tmp_path / "w.safetensors")
    assert np.allclose(inception_features(load_fid_inception(tmp_path / "w.safetensors"))(a), fa)
    for style in ("pytorch-fid", "clean-fid"):  # their own resize and scaling, the same network
        other = inception_features(load_fid_inception(weights, style))(a)
        assert other.shape == fa.shape and not np.allclose(other, fa)


def test_wrong_files_get_one_line_errors(weights, tmp_path):
    with pytest.raises(DiffDisError, match="no such file"):
        load_fid_inception(tmp_path / "missing.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(DiffDisError, match="cannot read"):
        load_fid_inception(tmp_path / "text.pth")
    state = torch.load(weights, weights_only=True)
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet head, not the FID network
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(DiffDisError, match=r"not the FID Inception.*1 missing, 0 unexpected, 1 misshapen"):
        load_fid_inception(tmp_path / "other.pth")
    with pytest.raises(DiffDisError, match="not both"):
        load_extractor("judge", inception_weights=str(weights))
    with pytest.raises(DiffDisError, match="style"):
        FIDInceptionV3("tensorflow2")


def test_clean_fid_resize_is_clean_fids_own():
    if importlib.util.find_spec("cleanfid") is None:
        pytest.skip("clean-fid is not installed (pip install --no-deps clean-fid==0.1.35)")
    from cleanfid.resize import make_resizer  # cleanfid/__init__.py is empty: no torchvision import

    (image,) = images(1, 7, (21, 17))
    expected = make_resizer("PIL", False, "bicubic", (299, 299))(np.asarray(image))  # clean-fid's "clean" mode
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
    ours = resize_bicubic_pil(pixels, 299, 299)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(ours, expected)
    model = FIDInceptionV3("clean-fid")
    assert torch.equal(model.preprocess(pixels)[0], (torch.from_numpy(expected).permute(2, 0, 1) - 128) / 128)


def torch_fidelity_inception() -> types.ModuleType:
    """torch-fidelity's Inception module (`pip install --no-deps torch-fidelity`; its package __init__ pulls
    torchvision, which does not import here, so only the file and the two it imports are loaded)."""
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("torch-fidelity is not installed (pip install --no-deps torch-fidelity==0.4.0)")
    saved = sys.modules.get("torch_fidelity")
    package = types.ModuleType("torch_fidelity")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["torch_fidelity"] = package
    try:
        return importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    finally:
        if saved is not None:
            sys.modules["torch_fidelity"] = saved


def test_features_match_torch_fidelity(weights):
    module = torch_fidelity_inception()
    theirs = module.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
    )
    batch = images(3, 5)
    with torch.no_grad():
        expected = theirs(torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in batch]))[0]
    ours = inception_features(load_fid_inception(weights))(batch)
    assert np.allclose(ours, expected.double().numpy(), rtol=1e-4, atol=1e-5 * float(expected.abs().mean()))
