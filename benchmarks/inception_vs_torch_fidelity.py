"""Check diffdis's FID Inception (diffdis/eval/inception.py) against torch-fidelity's own extractor and FID.

No real weights are needed: a random network with BatchNorm statistics calibrated on random images
(`random_fid_inception`) is saved as a .pth and loaded by both. torch-fidelity cannot be installed
beside the CPU torch wheel (it pulls torchvision), but its Inception and FID files import only torch/numpy/scipy:

    pip download torch-fidelity --no-deps -d /tmp/tf && (cd /tmp/tf && unzip -qo torch_fidelity-*.whl)
    python benchmarks/inception_vs_torch_fidelity.py /tmp/tf

Prints the largest feature difference and the two FIDs between two sets of images.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffdis.eval.fid import fid_from_features
from diffdis.eval.inception import inception_features, load_fid_inception, random_fid_inception


def torch_fidelity_modules(root: Path) -> tuple[types.ModuleType, dict]:
    """Its Inception module, and its FID functions from metric_fid.py (whose own imports pull torchvision)."""
    package = types.ModuleType("torch_fidelity")
    package.__path__ = [str(root / "torch_fidelity")]
    sys.modules["torch_fidelity"] = package
    inception = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    source = (root / "torch_fidelity" / "metric_fid.py").read_text()
    functions = re.findall(r"^def fid_.*?(?=^def |\Z)", source, flags=re.S | re.M)
    importlib.import_module("scipy.linalg")
    namespace = {
        "np": np,
        "torch": torch,
        "scipy": importlib.import_module("scipy"),
        "vprint": lambda *a: None,
        "KEY_METRIC_FID": "frechet_inception_distance",
    }
    for function in functions:
        exec(function, namespace)  # noqa: S102 - the reference's own code, run as-is
    return inception, namespace


def images(n: int, seed: int, size: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 3))
    noise = rng.integers(-60, 60, (n, size, size, 3))
    return [Image.fromarray(np.clip(b + e, 0, 255).astype(np.uint8)) for b, e in zip(base, noise)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("torch_fidelity_root", type=Path, help="folder holding the unpacked torch_fidelity/ package")
    parser.add_argument("--num-images", type=int, default=24)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    inception, fid_fns = torch_fidelity_modules(args.torch_fidelity_root)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random_inception.pth"
        torch.save(random_fid_inception(seed=0).state_dict(), weights)
        theirs = inception.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
        )
        ours = inception_features(load_fid_inception(weights, "torch-fidelity"))
    sets = [images(args.num_images, seed, args.size) for seed in (1, 2)]
    feats_ours = [ours(s) for s in sets]
    with torch.no_grad():
        feats_theirs = [
            theirs(torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in s]))[0].double() for s in sets
        ]
    diff = max(float(np.abs(o - t.numpy()).max()) for o, t in zip(feats_ours, feats_theirs))
    scale = float(np.abs(feats_theirs[0].numpy()).mean())
    stats = [fid_fns["fid_features_to_statistics"](t) for t in feats_theirs]
    fid_theirs = fid_fns["fid_statistics_to_metric"](stats[0], stats[1], False)["frechet_inception_distance"]
    fid_ours = fid_from_features(*feats_ours)
    print(
        f"features: {args.num_images} images x 2 sets, "
        f"{args.size}x{args.size}; max |ours - torch-fidelity| = {diff:.3g} "
        f"(mean |feature| {scale:.3g})"
    )
    print(f"FID: diffdis {fid_ours:.6f}  torch-fidelity {fid_theirs:.6f}  difference {abs(fid_ours - fid_theirs):.3g}")


if __name__ == "__main__":
    main()
