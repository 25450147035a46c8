"""FID statistics built batch by batch: equal to np.cov over all rows, merged across shards, saved as pytorch-fid
and clean-fid read them, and refused when they belong to other features."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from diffdis.errors import DiffDisError
from diffdis.eval.fid import Features, fid_from_features, frechet_distance, statistics
from diffdis.eval.fid_stats import (
    FeatureStats,
    Statistics,
    check_same_features,
    load_stats,
    save_stats,
    statistics_of,
    stream_statistics,
)


def rows(n: int, d: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(3.0, 2.0, size=(n, d)) @ rng.normal(size=(d, d))  # a correlated, off-centre cloud


def test_streamed_statistics_equal_the_whole_matrix():
    x = rows(103)
    mu, sigma = statistics(x)  # np.mean and np.cov over all rows, as pytorch-fid
    streamed = stream_statistics([x[i : i + 16] for i in range(0, 103, 16)], lambda batch: batch)
    assert streamed.n == 103
    np.testing.assert_allclose(streamed.mean, mu, rtol=1e-12)
    np.testing.assert_allclose(streamed.sigma, sigma, rtol=1e-10, atol=1e-12)
    one_by_one = FeatureStats()
    for row in x:  # batches of one row, and an empty batch, change nothing
        one_by_one = one_by_one.add(row[None]).add(np.zeros((0, 5)))
    np.testing.assert_allclose(one_by_one.sigma, sigma, rtol=1e-10, atol=1e-12)


def test_shards_merge_into_the_statistics_of_their_union():
    x, y = rows(60), rows(40, seed=1) + 1.0
    shards = [FeatureStats.of(x[i::3]) for i in range(3)]
    merged = shards[0].merge(shards[1]).merge(shards[2])
    np.testing.assert_allclose(merged.sigma, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    again = FeatureStats()  # the same through (n, mu, sigma) as a shard's .npz keeps them
    for s in shards:
        again = again.merge(FeatureStats.from_mu_sigma(s.n, s.mean, s.sigma))
    fid = frechet_distance(again.mean, again.sigma, *statistics(y))
    assert fid == pytest.approx(fid_from_features(x, y), rel=1e-9)
    with pytest.raises(DiffDisError, match="feature sizes differ"):
        merged.merge(FeatureStats.of(rows(4, d=3)))
    with pytest.raises(DiffDisError, match="at least two images"):
        _ = FeatureStats.of(x[:1]).sigma


def test_npz_round_trip_in_pytorch_fid_layout(tmp_path):
    x = rows(30)
    path = save_stats(
        tmp_path / "ref.npz", statistics_of(FeatureStats.of(x), "judge", "judge:abc", "world"), data="world"
    )
    with np.load(path) as f:  # what pytorch-fid's and clean-fid's loaders do
        mu, sigma = f["mu"][:], f["sigma"][:]
    assert mu.dtype == sigma.dtype == np.float64 and mu.shape == (5,) and sigma.shape == (5, 5)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-10)
    stored = load_stats(path)
    assert (stored.n, stored.features, stored.features_id, str(stored.extra["data"])) == (
        30,
        "judge",
        "judge:abc",
        "world",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]  # the temporary file is gone
    np.savez(tmp_path / "theirs.npz", mu=mu, sigma=sigma)  # pytorch-fid's own files say nothing else
    theirs = load_stats(tmp_path / "theirs.npz")
    assert theirs.n is None and theirs.features is None and np.array_equal(theirs.sigma, sigma)


def test_bad_files_are_refused_in_one_line(tmp_path):
    (tmp_path / "text.npz").write_text("no zip")
    np.savez(tmp_path / "other.npz", mean=np.zeros(3))
    np.savez(tmp_path / "shapes.npz", mu=np.zeros(3), sigma=np.eye(2))
    np.savez(tmp_path / "nan.npz", mu=np.full(2, np.nan), sigma=np.eye(2))
    cases = (
        ("missing.npz", "no such file"),
        ("text.npz", "not a readable .npz"),
        ("other.npz", "'mu' and 'sigma'"),
        ("shapes.npz", r"mu must be \(D,\)"),
        ("nan.npz", "NaN"),
    )
    for name, message in cases:
        with pytest.raises(DiffDisError, match=message) as err:
            load_stats(tmp_path / name)
        assert "\n" not in str(err.value)
    assert not zipfile.is_zipfile(tmp_path / "text.npz")


def test_statistics_of_other_features_are_refused():
    stored = Statistics(np.zeros(128), np.eye(128), 10, "judge", "judge:aaaa", "ref.npz")
    features = Features(lambda images: None, "inception:torch-fidelity", "inception:torch-fidelity:bbbb", 2048)
    with pytest.raises(
        DiffDisError, match="128-d statistics but this run's inception:torch-fidelity features are 2048-d"
    ):
        check_same_features(stored, features.name, features.identity, features.dim)
    with pytest.raises(DiffDisError, match=r"made with judge features \(judge:aaaa\), this run uses judge:other"):
        check_same_features(stored, "judge:other", "judge:cccc", 128)
    check_same_features(stored, "judge:judge", "judge:aaaa", 128)  # the same weights, named another way
    check_same_features(Statistics(np.zeros(128), np.eye(128), None, None, None, "theirs.npz"), "judge", "judge:x", 128)
