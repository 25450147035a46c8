"""Generation benchmark: FID against reference statistics, the DiffDis score, CLIPScore, the judge's accuracy.

The images are PNG files (`diffdis.eval.generated`); scoring reads them back one block at a time, so memory
does not grow with the number of images. FID comes from the running feature statistics
(`diffdis.eval.fid_stats`), which a sharded run saves so `merge_generation` can pool the shards exactly.

DiffDis score: the model's own text-image agreement, like CLIPScore without CLIP. The generated image is
read back by the discriminative branch (its diffused e0, `pipeline.image_queries`) and compared by cosine
with the prompt's text embedding e. It says how well the image matches the prompt *as this model reads it*,
so it rewards a model that agrees with itself; the judge's accuracy, CLIPScore and FID are the independent
checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffdis.data.transforms import image_grid
from diffdis.errors import DiffDisError
from diffdis.eval.fid import Features, frechet_distance
from diffdis.eval.fid_stats import FeatureStats, Statistics, load_stats, save_stats
from diffdis.eval.generated import read_images

MEANS = ("diffdis_score", "clip_score", "judge_object_accuracy")  # per-image means: shards pool them by n


@torch.no_grad()
def diffdis_scores(pipe: Any, images: Sequence[Image.Image], prompts: Sequence[str], seed: int = 0) -> torch.Tensor:
    """(N,) cosine between each image's diffused e0 (the model's default query sampler) and its prompt's e."""
    _, text = pipe.encode_text(list(prompts))
    queries = pipe.image_queries(list(images), seed=seed).to(text.device)
    return (queries.float() * text.float()).sum(dim=-1).cpu()


def judge_counts(judge: Any, images: Sequence[Image.Image], rows: Sequence[dict] | None) -> dict[str, float]:
    """Judge hits on prompts whose rows name an object (world and digits data): {object, colour, colour_n}."""
    if judge is None or not rows or not all("object" in r or "label_name" in r for r in rows):
        return {}
    from diffdis.eval.judge import judge_accuracy

    accuracy = judge_accuracy(judge, list(images), list(rows))
    colour_n = sum("colour" in r for r in rows)
    return {
        "object": accuracy["object"] * len(rows),
        **({"colour": accuracy["colour"] * colour_n} if colour_n else {}),
        "colour_n": colour_n,
    }


def score_images(
    pipe: Any,
    folder: Path,
    prompts: Sequence[str],
    my_blocks: Sequence[range],
    features: Features,
    rows: Sequence[dict] | None = None,
    clip: Any = None,
    seed: int = 0,
    batch_size: int = 16,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], FeatureStats]:
    """(per-image metrics, feature statistics) over the images of `my_blocks` on disk, a block at a time.
    Block b's DiffDis score uses seed + b, so an image scores the same in a sharded run."""
    stats, n, sums = FeatureStats(), 0, {"diffdis": 0.0, "clip": 0.0, "object": 0.0, "colour": 0.0, "colour_n": 0}
    total = sum(len(b) for b in my_blocks)
    for block in my_blocks:
        images = read_images(folder, block, len(prompts))
        texts = [prompts[i] for i in block]
        stats = stats.add(features.extract(images))
        sums["diffdis"] += float(diffdis_scores(pipe, images, texts, seed + block.start // batch_size).sum())
        if clip is not None:
            sums["clip"] += float(clip.scores(images, texts).sum())
        for key, value in judge_counts(
            features.judge, images, None if rows is None else [rows[i] for i in block]
        ).items():
            sums[key] += value
        n += len(block)
        if callback is not None:
            callback(n, total)
    metrics: dict[str, Any] = {"diffdis_score": sums["diffdis"] / n}
    if clip is not None:
        metrics["clip_score"] = sums["clip"] / n
    if features.judge is not None and rows is not None and all("object" in r or "label_name" in r for r in rows):
        metrics["judge_object_accuracy"] = sums["object"] / n
        if sums["colour_n"]:
            metrics["judge_colour_accuracy"] = sums["colour"] / sums["colour_n"]
            metrics["judge_colour_n"] = sums["colour_n"]
    return metrics, stats


def fid(generated: FeatureStats, reference: Statistics) -> float:
    return frechet_distance(generated.mean, generated.sigma, reference.mu, reference.sigma)


def save_shard_stats(path: Path, generated: Statistics, reference: Statistics) -> Path:
    """A shard's generated-image statistics (a pytorch-fid .npz of its own) with the reference it was scored against."""
    n = -1 if reference.n is None else reference.n
    return save_stats(path, generated, reference_mu=reference.mu, reference_sigma=reference.sigma, reference_n=n)


def sample_grid(folder: Path, my_blocks: Sequence[range], count: int, limit: int = 64) -> Image.Image:
    """The first `limit` images of this run, tiled."""
    indices = [i for block in my_blocks for i in block][:limit]
    return image_grid(read_images(folder, indices, count))


# ---- shards -------------------------------------------------------------------------------------------------


def merge_generation(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from a generation run's shards: FID from the pooled feature statistics each shard saved
    (`features_stats`, beside its record), per-image means weighted by each shard's n. Exact: pooling (n, mean,
    covariance) of disjoint sets gives the statistics of their union."""
    generated, reference = FeatureStats(), None
    for r in shards:
        stored = _shard_stats(r)
        generated = generated.merge(FeatureStats.from_mu_sigma(stored.n, stored.mu, stored.sigma))
        ref = stored.extra
        if reference is None:
            reference = Statistics(ref["reference_mu"], ref["reference_sigma"], None, None, None, stored.source)
        elif not (
            np.array_equal(ref["reference_mu"], reference.mu)
            and np.array_equal(ref["reference_sigma"], reference.sigma)
        ):
            raise DiffDisError(f"{r['_path']} was scored against other reference statistics than {shards[0]['_path']}")
    n = generated.n
    merged = {**shards[0], "fid": fid(generated, reference), "n": n}
    for key in MEANS:
        if all(key in r for r in shards):
            merged[key] = sum(r[key] * r["n"] for r in shards) / n
    if all("judge_colour_n" in r for r in shards):
        colour_n = sum(r["judge_colour_n"] for r in shards)
        merged["judge_colour_accuracy"] = (
            sum(r["judge_colour_accuracy"] * r["judge_colour_n"] for r in shards) / colour_n
        )
        merged["judge_colour_n"] = colour_n
    made, seconds = sum(r.get("n_generated", 0) for r in shards), sum(r.get("seconds", 0.0) for r in shards)
    merged.update(n_generated=made, seconds=seconds, seconds_per_image=seconds / made if made else None)
    merged.pop("features_stats", None)
    return merged


def _shard_stats(record: dict[str, Any]) -> Statistics:
    if "features_stats" not in record:
        raise DiffDisError(f"{record['_path']} is a generation shard without feature statistics; it cannot be merged")
    stored = load_stats(Path(record["_path"]).parent / record["features_stats"])
    if stored.n is None or not {"reference_mu", "reference_sigma"} <= set(stored.extra) or stored.n != record.get("n"):
        raise DiffDisError(f"{stored.source} does not hold the feature statistics of {record['_path']}")
    return stored
