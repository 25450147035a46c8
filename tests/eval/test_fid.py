"""FID against the closed form for Gaussians, and the feature-extractor plumbing."""

from __future__ import annotations

import numpy as np
import pytest

from diffdis.errors import DiffDisError
from diffdis.eval.fid import fid_from_features, frechet_distance, load_extractor, statistics


def test_closed_form_for_commuting_gaussians():
    # diagonal covariances commute: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_closed_form_for_general_covariances():
    # S2 = R S1 R^T with R a rotation: sqrt(S1 S2) has the same trace as computed by eigenvalues of S1^1/2 S2 S1^1/2
    rng = np.random.default_rng(0)
    m = rng.normal(size=(4, 4))
    s1, s2 = m @ m.T + np.eye(4), np.diag([1.0, 2.0, 3.0, 4.0])
    root1 = np.linalg.cholesky(s1)  # S1^1/2 S2 S1^1/2 and L^T S2 L have the same eigenvalues
    trace_root = np.sum(np.sqrt(np.linalg.eigvalsh(root1.T @ s2 @ root1)))
    expected = np.trace(s1) + np.trace(s2) - 2 * trace_root
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(expected, rel=1e-6)


def test_samples_of_known_gaussians():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, size=(20000, 2))
    y = rng.normal(0.0, 2.0, size=(20000, 2)) + np.array([3.0, 0.0])
    # ||mu||^2 = 9, Tr = 2 * (1 - 2)^2 = 2
    assert fid_from_features(x, y) == pytest.approx(11.0, abs=0.2)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-6)


def test_singular_covariances_and_bad_inputs():
    x = np.zeros((5, 3))
    x[:, 0] = np.arange(5)  # rank-one covariance: sqrtm of a singular product
    assert np.isfinite(fid_from_features(x, x + 1.0))
    with pytest.raises(DiffDisError, match="two feature rows"):
        statistics(np.zeros((1, 3)))
    with pytest.raises(DiffDisError, match="feature sizes differ"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_extractor_specs():
    with pytest.raises(DiffDisError, match="--features"):
        load_extractor("not_a_module_anywhere:f")
    with pytest.raises(DiffDisError, match="no such file"):  # the network itself: tests/eval/test_inception.py
        load_extractor(None, inception_weights="pt_inception-2015-12-05.pth")
    assert load_extractor("numpy:asarray") is np.asarray
