"""FID statistics (mean and covariance of image features) built batch by batch, merged, saved and loaded.

Images stream through the extractor a batch at a time, so no feature matrix, and no image set, is ever
held whole: each batch is folded into (n, mean, scatter) with Chan et al.'s pairwise update, which is exact
(the same numbers as `np.cov` over all rows, to float rounding) and also merges the statistics of shards.

Saved as pytorch-fid and clean-fid save reference statistics: an .npz with `mu` (D,) and `sigma` (D, D) in
float64, which both tools read back (they read only those two keys). diffdis adds `n`, `features` (what made
them, as a run names it) and `features_id` (a fingerprint of the extractor's weights), so statistics made with
one extractor are never compared with features of another.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffdis.atomic import write_atomic
from diffdis.errors import DiffDisError

Progress = Callable[[int, int], None] | None


@dataclass
class FeatureStats:
    """Running (n, mean (D,), scatter (D, D)): scatter is the sum of outer products of deviations from the mean."""

    n: int = 0
    mean: np.ndarray | None = None
    scatter: np.ndarray | None = None

    def merge(self, other: FeatureStats) -> FeatureStats:
        """The statistics of both sets together (Chan, Golub & LeVeque's pairwise update)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        if self.mean.shape != other.mean.shape:
            raise DiffDisError(
                f"feature sizes differ: {self.mean.shape[0]} vs {other.mean.shape[0]}; use one extractor"
            )
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        return FeatureStats(n, mean, scatter)

    def add(self, features: np.ndarray) -> FeatureStats:
        """These statistics with a batch of feature rows (N, D) folded in."""
        return self.merge(FeatureStats.of(features))

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or not np.isfinite(x).all():
            raise DiffDisError(f"the feature extractor must return finite (N, D) rows, got shape {x.shape}")
        if len(x) == 0:
            return cls()
        mean = x.mean(axis=0)
        centred = x - mean
        return cls(len(x), mean, centred.T @ centred)

    @classmethod
    def from_mu_sigma(cls, n: int, mu: np.ndarray, sigma: np.ndarray) -> FeatureStats:
        return cls(n, np.asarray(mu, np.float64), np.asarray(sigma, np.float64) * (n - 1))

    @property
    def sigma(self) -> np.ndarray:
        """The unbiased (n - 1) covariance, as pytorch-fid's `np.cov(rowvar=False)`."""
        if self.n < 2:
            raise DiffDisError(f"FID needs at least two images, got {self.n}")
        return self.scatter / (self.n - 1)


def stream_statistics(
    batches: Iterable[Sequence[Any]],
    extractor: Callable[[Sequence[Any]], np.ndarray],
    total: int | None = None,
    callback: Progress = None,
) -> FeatureStats:
    """Statistics of `extractor(batch)` over the batches, one batch in memory at a time."""
    stats, done = FeatureStats(), 0
    for batch in batches:
        stats = stats.add(np.asarray(extractor(batch)))
        done += len(batch)
        if callback is not None:
            callback(done, total or done)
    return stats


def data_statistics(
    data: Any, rows: Sequence[int], extractor: Callable, batch_size: int = 64, callback: Progress = None
) -> FeatureStats:
    """Statistics of the images `rows` of evaluation data (`diffdis.eval.data.EvalData`), read a batch at a time."""
    batches = (data.images(list(rows[i : i + batch_size])) for i in range(0, len(rows), batch_size))
    return stream_statistics(batches, extractor, len(rows), callback)


# ---- the .npz file ------------------------------------------------------------------------------------------


@dataclass
class Statistics:
    """What FID needs of a set of images (mu, sigma), with what made them when known: pytorch-fid's and
    clean-fid's files say neither n nor the features (None)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None
    features: str | None
    features_id: str | None
    source: str  # the file or data they came from, for messages
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # other arrays of the file


def statistics_of(stats: FeatureStats, features: str, features_id: str, source: str) -> Statistics:
    return Statistics(stats.mean, stats.sigma, stats.n, features, features_id, source)


def save_stats(path: str | Path, statistics: Statistics, **extra: Any) -> Path:
    """Write mu/sigma (float64) with n, features and features_id; `extra` arrays go in as they are.
    Atomically, so a reader never sees half a file."""
    path = Path(path)
    arrays = {
        "mu": np.asarray(statistics.mu, np.float64),
        "sigma": np.asarray(statistics.sigma, np.float64),
        "n": np.int64(-1 if statistics.n is None else statistics.n),
        "features": np.str_(statistics.features or ""),
        "features_id": np.str_(statistics.features_id or ""),
        **{k: np.asarray(v) for k, v in extra.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a name
            np.savez(f, **arrays)

    return write_atomic(path, write)


def load_stats(path: str | Path) -> Statistics:
    """An .npz with `mu` and `sigma` (pytorch-fid, clean-fid or diffdis); anything else is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise DiffDisError(f"{path}: no such file (make reference statistics with `diffdis eval fid-stats`)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DiffDisError(f"{path} is not a readable .npz file ({err})") from err
    if "mu" not in arrays or "sigma" not in arrays:
        raise DiffDisError(
            f"{path} holds no FID statistics: it needs arrays 'mu' and 'sigma' (it has {sorted(arrays)})"
        )
    mu, sigma = arrays.pop("mu").astype(np.float64), arrays.pop("sigma").astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise DiffDisError(f"{path}: mu must be (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DiffDisError(f"{path}: mu or sigma holds NaN or infinite values")
    n = int(arrays.pop("n", -1))
    features, features_id = str(arrays.pop("features", "")), str(arrays.pop("features_id", ""))
    return Statistics(mu, sigma, n if n >= 0 else None, features or None, features_id or None, str(path), arrays)


def check_same_features(stored: Statistics, features: str, features_id: str, dim: int) -> None:
    """Refuse statistics of other features than this run's: another size, or (when the file says) another extractor."""
    if len(stored.mu) != dim:
        raise DiffDisError(
            f"{stored.source} holds {len(stored.mu)}-d statistics but this run's {features} features are "
            f"{dim}-d; make the reference with the same --features / --inception-weights"
        )
    if stored.features_id is not None and stored.features_id != features_id:
        raise DiffDisError(
            f"{stored.source} was made with {stored.features} features ({stored.features_id}), this run "
            f"uses {features} ({features_id}); make the reference with the same --features / "
            "--inception-weights / --inception-style"
        )


def reference_statistics(
    reference: Any,
    features: Any,
    max_images: int | None = None,
    data_format: str | None = None,
    image_root: Path | None = None,
    batch_size: int = 64,
    callback: Progress = None,
) -> Statistics:
    """FID reference statistics from saved statistics (a path ending in .npz, checked against `features`, a
    `diffdis.eval.fid.Features`) or from images (a data spec, or `EvalData` already loaded), streamed."""
    if is_saved(reference):
        if max_images is not None:
            raise DiffDisError("--max-reference counts reference images; saved statistics cannot be cut: drop it")
        stored = load_stats(reference)
        check_same_features(stored, features.name, features.identity, features.dim)
        return stored
    from diffdis.eval.data import load_eval_data

    data = load_eval_data(str(reference), data_format, image_root) if isinstance(reference, str | Path) else reference
    rows = list(range(len(data)))[:max_images]
    stats = data_statistics(data, rows, features.extract, batch_size, callback)
    return statistics_of(stats, features.name, features.identity, data.name)


def is_saved(reference: Any) -> bool:
    """Whether a --reference names saved statistics (an .npz) rather than images."""
    return isinstance(reference, str | Path) and str(reference).endswith(".npz")
