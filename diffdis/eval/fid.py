"""Fréchet distance between two sets of image features, the way pytorch-fid and clean-fid compute it.

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

in float64 with scipy's `sqrtm`; a singular product is retried with eps * I added to both covariances, and
an imaginary part left by numerical error is dropped (an error if it is not small), as pytorch-fid does.

The feature extractor is pluggable: any callable images -> (N, D). The default is the diffdis judge's
penultimate layer (`diffdis.eval.judge`), a small CNN trained on the built-in worlds, so the number is
comparable between diffdis models but not with published FIDs. Those use Inception v3's pool3 features:
`--inception-weights` loads the standard FID network (`diffdis.eval.inception`) from a file the user has.
"""

from __future__ import annotations

import hashlib
import importlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import linalg

from diffdis.errors import DiffDisError

FeatureExtractor = Callable[[Sequence], "np.ndarray"]


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) with the unbiased (N - 1) covariance, as pytorch-fid."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise DiffDisError(f"FID needs at least two feature rows (N, D), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise DiffDisError(f"feature sizes differ: {mu1.shape} vs {mu2.shape}; use one extractor for both sets")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product warns; the finiteness check below handles it
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise DiffDisError(
                f"FID: the covariance square root has an imaginary part {np.max(np.abs(covmean.imag)):.3g}"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    return frechet_distance(*statistics(features1), *statistics(features2))


def judge_features(judge) -> FeatureExtractor:
    """A `diffdis.eval.judge.Judge`'s penultimate layer as an extractor (numpy on the CPU, whatever its device)."""
    return lambda images: judge.features(list(images)).float().cpu().numpy()


def load_extractor(
    spec: str | None = None,
    inception_weights: str | None = None,
    inception_style: str = "torch-fidelity",
    device: Any = "cpu",
) -> FeatureExtractor:
    """None or "judge": the shipped judge's features; "judge:DIR" a judge saved in DIR; "module:function" any
    callable images -> (N, D) you provide. `inception_weights`: the standard FID Inception-v3 pool3 features
    from pytorch-fid's pt_inception-2015-12-05 file (`diffdis.eval.inception`), fed as `inception_style` does.
    The judge and the Inception run on `device` in fp32 (a user's own function chooses its own device)."""
    if inception_weights is not None:
        if spec is not None:
            raise DiffDisError("pass --features or --inception-weights, not both: each chooses the FID features")
        from diffdis.eval.inception import inception_features, load_fid_inception

        return inception_features(load_fid_inception(inception_weights, inception_style, device))
    if spec is None or spec == "judge" or spec.startswith("judge:"):
        from diffdis.eval.judge import load_judge

        return judge_features(load_judge(judge_dir(spec), device))
    module_name, _, function = spec.partition(":")
    if not function:
        raise DiffDisError(f"--features {spec!r}: give 'judge', 'judge:DIR' or 'module:function'")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as err:
        raise DiffDisError(f"--features {spec!r}: cannot import {function} from {module_name} ({err})") from err


def judge_dir(spec: str | None) -> str | None:
    """The judge folder a --features spec names (None: the shipped judge); only for judge specs."""
    return spec.partition(":")[2] or None if spec else None


def is_judge(spec: str | None) -> bool:
    return spec is None or spec == "judge" or spec.startswith("judge:")


@dataclass
class Features:
    """The FID feature space a run uses: the extractor, how records name it, and an identity that reference
    statistics must share (the weights' fingerprint, so a path written another way still matches)."""

    extract: FeatureExtractor
    name: str  # judge, judge:DIR, inception:STYLE or module:function
    identity: str
    dim: int
    judge: Any = None  # the judge, when the features are its own: it also checks the prompts


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256 (about 0.2 s for the 95 MB Inception file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def choose_features(
    spec: str | None = None,
    inception_weights: str | Path | None = None,
    inception_style: str = "torch-fidelity",
    device: Any = "cpu",
) -> Features:
    """`load_extractor`'s choice, named and fingerprinted; its feature size is found by extracting one blank image."""
    if inception_weights is not None:
        extract = load_extractor(spec, str(inception_weights), inception_style, device)
        name, identity = f"inception:{inception_style}", f"inception:{inception_style}:{file_digest(inception_weights)}"
        judge = None
    elif is_judge(spec):
        from diffdis.eval.judge import SHIPPED_DIR, load_judge

        judge = load_judge(judge_dir(spec), device)
        extract, name = judge_features(judge), spec or "judge"
        identity = f"judge:{file_digest(Path(judge_dir(spec) or SHIPPED_DIR) / 'model.safetensors')}"
    else:
        extract, name, identity, judge = load_extractor(spec), str(spec), str(spec), None
    probe = np.asarray(extract([Image.new("RGB", (32, 32), (127, 127, 127))] * 2))
    if probe.ndim != 2 or len(probe) != 2:
        raise DiffDisError(
            f"--features {name}: the extractor must map N images to an (N, D) array, got shape {probe.shape}"
        )
    return Features(extract, name, identity, probe.shape[1], judge)
