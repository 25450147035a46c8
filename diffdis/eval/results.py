"""Result records: one JSON file per run (or per shard of a run), merged into one table and one plot.

A record is a flat JSON object: what ran (task, method, model, data, sampler, steps, guidance, seed, shard)
and what came out (CLIP_benchmark's metric names, seconds_per_image, n). A shard keeps what its run's metrics
need, so `merge_shards` recomputes them exactly: classification each sample's target and top-5 classes,
retrieval each image's rank and each text's best images ("samples"), generation its feature statistics
(an .npz beside the record).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from diffdis import __version__
from diffdis.atomic import atomic_path, write_json_atomic
from diffdis.errors import DiffDisError
from diffdis.eval.classify import metrics_from_samples
from diffdis.eval.generate import merge_generation
from diffdis.eval.retrieve import merge_retrieval

RUN_KEYS = (
    "task",
    "method",
    "model",
    "data",
    "labels",
    "templates",
    "label_column",
    "scheduler",
    "steps",
    "guidance",
    "seed",
    "dc_timesteps",
    "dc_keep",
    "max_samples",
    "num_shards",
    "text_column",
    "num_prompts",
    "batch_size",
    "reference",
    "max_reference",
    "features",
    "clip_model",
)
FIRST_COLUMNS = ("task", "method", "model", "data", "labels", "scheduler", "steps", "guidance", "seed", "n")
HIDDEN = {"samples", "shard_index", "num_shards", "created"}
DEFAULT_OUTPUT = "results/{task}_{data}_{scheduler}_{steps}.json"

# ---- what a record holds: the keys every record of a task has, in the order its writer puts them, and the
# keys only some have. Checked against the writers (diffdis.eval.sweep, diffdis.eval.generate_run) by the tests.
RUN_FIELDS = (
    "task",
    "method",
    "model",
    "model_name",
    "model_version",
    "data",
    "seed",
    "diffdis_version",
    "device",
    "dtype",
    "created",
)
_RECALL = tuple(
    f"{name}{k}"
    for k in (1, 5, 10)
    for name in ("image_to_text_R@", "text_to_image_R@", "text_retrieval_recall@", "image_retrieval_recall@")
)
_WORLD_VIEWS = tuple(
    f"{view}_{way}_R@{k}"
    for view in ("any_true", "own_caption_ceiling")
    for k in (1, 5, 10)
    for way in ("image_to_text", "text_to_image")
)
RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "classify": (
        *RUN_FIELDS,
        "labels",
        "templates",
        "label_column",
        "num_classes",
        "max_samples",
        "num_shards",
        "shard_index",
        "n",
        "scheduler",
        "steps",
        "guidance",
        "acc1",
        "acc5",
        "mean_per_class_recall",
        "seconds",
        "seconds_per_image",
        "samples",
    ),
    "retrieve": (
        *RUN_FIELDS,
        "text_column",
        "max_samples",
        "num_shards",
        "shard_index",
        "n",
        "scheduler",
        "steps",
        "guidance",
        *_RECALL,
        "num_texts",
        "seconds",
        "seconds_per_image",
    ),
    "generate": (
        *RUN_FIELDS,
        "prompts",
        "num_prompts",
        "reference",
        "max_reference",
        "features",
        "features_id",
        "clip_model",
        "scheduler",
        "steps",
        "guidance",
        "batch_size",
        "num_shards",
        "shard_index",
        "fid",
        "diffdis_score",
        "n",
        "n_reference",
        "n_generated",
        "seconds",
        "seconds_per_image",
        "images",
        "grid",
    ),
}
OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {
    # diffdis and clip runs: the query sampler's cost; diffusion-classifier runs: its own settings and cost
    "classify": (
        "seconds_label_embeddings",
        "query_passes_per_image",
        "dc_timesteps",
        "dc_keep",
        "unet_passes_per_image",
    ),
    # a shard's per-sample results; on the built-in world only, two more views of the same scores
    "retrieve": ("samples", *_WORLD_VIEWS),
    # with --clip-model; on prompts whose rows name an object; a sharded run's feature statistics file
    "generate": ("clip_score", "judge_object_accuracy", "judge_colour_accuracy", "judge_colour_n", "features_stats"),
}


def run_fields(pipe: Any, model: str | Path | None, data: str, seed: int) -> dict[str, Any]:
    """What every record says about the run (RUN_FIELDS but task and method): model, data, seed, versions,
    device, when. `model` is what the record names as the model (the --model folder; None: "default")."""
    card = pipe.card
    return {
        "model": str(model) if model is not None else "default",
        "model_name": card.get("name", ""),
        "model_version": card.get("model_version", ""),
        "data": data,
        "seed": seed,
        "diffdis_version": __version__,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def output_path(template: str, **fields: Any) -> Path:
    """Fill {task} {data} {scheduler} {steps} {method} {guidance} {shard}; a sharded run without {shard}
    in the template gets `_shardIofK` before the suffix so shards never overwrite each other."""
    safe = {k: str(v).replace("/", "-").replace(":", "-").replace(" ", "_") for k, v in fields.items()}
    try:
        path = Path(template.format(**safe))
    except (KeyError, IndexError) as err:
        raise DiffDisError(f"--output {template!r} names an unknown field {err}; use {sorted(safe)}") from err
    if fields.get("num_shards", 1) > 1 and "{shard}" not in template:
        path = path.with_name(
            f"{path.stem}_shard{fields['shard_index']}of{fields['num_shards']}{path.suffix or '.json'}"
        )
    return path


def record_path(template: str, record: dict[str, Any]) -> Path:
    """Where the --output `template` puts `record`: its task, data, sampler, method and shard fill the fields."""
    shard = record.get("shard_index", 0)
    return output_path(
        template,
        task=record["task"],
        data=record["data"],
        scheduler=record["scheduler"],
        steps=record["steps"],
        method=record["method"],
        guidance=record["guidance"],
        shard=shard,
        num_shards=record.get("num_shards", 1),
        shard_index=shard,
    )


def write_record(record: dict[str, Any], path: Path) -> Path:
    """Write atomically: a reader (or a resumed sweep) never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, record, indent=1)


def save_record(record: dict[str, Any], template: str = DEFAULT_OUTPUT) -> dict[str, Any]:
    """Write `record` where `template` puts it; the record with its "path" (which the file itself leaves out)."""
    path = write_record(record, record_path(template, record))
    return {**record, "path": str(path)}


def read_records(paths: list[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DiffDisError(f"cannot read result {path}: {err}") from err
        if not isinstance(record, dict) or "task" not in record:
            raise DiffDisError(f"{path} is not a diffdis eval result (no 'task' key)")
        records.append({**record, "_path": str(path)})
    if not records:
        raise DiffDisError("no result files given")
    return records


def _merge(shards: list[dict[str, Any]], allow_partial: bool) -> dict[str, Any]:
    first = shards[0]
    total = int(first.get("num_shards", 1))
    seen = sorted({int(r.get("shard_index", 0)) for r in shards})
    if len(seen) != len(shards):
        raise DiffDisError(
            f"the same run (or shard) is in several files, {[r['_path'] for r in shards]}; give each once"
        )
    missing = sorted(set(range(total)) - set(seen))
    if missing and not allow_partial:
        raise DiffDisError(
            f"{first['_path']}: shards {missing} of {total} are "
            "missing; run them (--shard-index) or pass --allow-partial"
        )
    if total == 1:
        return first
    merged = _MERGERS.get(first["task"], _merge_classification)(shards)
    return {**merged, "shards": f"{len(seen)}/{total}", "_path": ", ".join(r["_path"] for r in shards)}


def _merge_classification(shards: list[dict[str, Any]]) -> dict[str, Any]:
    first = shards[0]
    samples: dict[str, list] = {"index": [], "target": [], "top": []}
    for r in shards:
        if "samples" not in r:
            raise DiffDisError(f"{r['_path']} is a shard without per-sample results; it cannot be merged")
        for key, values in samples.items():
            values.extend(r["samples"][key])
    n = len(samples["target"])
    seconds = sum(float(r.get("seconds", 0.0)) for r in shards)
    merged = {
        **first,
        **metrics_from_samples(samples, int(first["num_classes"])),
        "n": n,
        "seconds": seconds,
        "seconds_per_image": seconds / n,
    }
    if "unet_passes_per_image" in first:
        merged["unet_passes_per_image"] = sum(r["unet_passes_per_image"] * r["n"] for r in shards) / n
    return merged


_MERGERS = {"generate": merge_generation, "retrieve": merge_retrieval}


def merge_shards(records: list[dict[str, Any]], allow_partial: bool = False) -> list[dict[str, Any]]:
    """One record per run: the shards of a run (same RUN_KEYS) are merged, their metrics recomputed."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(json.dumps(r.get(k), sort_keys=True) for k in RUN_KEYS)].append(r)
    return [_merge(group, allow_partial) for group in groups.values()]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def write_table(rows: list[dict[str, Any]], path: Path) -> list[str]:
    """CSV with the run's settings first, then every metric any row has; returns the columns."""
    keys = {k for r in rows for k in r if k not in HIDDEN and not k.startswith("_")}
    columns = [c for c in FIRST_COLUMNS if c in keys] + sorted(keys - set(FIRST_COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    order = sorted(
        rows,
        key=lambda r: (
            tuple(str(r.get(c, "")) for c in ("task", "method", "data", "scheduler")) + (float(r.get("steps") or 0),)
        ),
    )
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in order:
            writer.writerow({c: _cell(r.get(c, "")) for c in columns})
    return columns


def plot_accuracy(rows: list[dict[str, Any]], path: Path, metric: str = "acc1") -> None:
    """Two panels: `metric` against sampler steps and against seconds per image, one line per scheduler
    (and per guidance / data / labels / model where those vary); Diffusion Classifier runs as points in the
    second. Any record with `metric` is drawn (acc1 of classify, image_to_text_R@1 of retrieve, ...)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise DiffDisError("plotting needs matplotlib: pip install 'diffdis[eval]'") from err
    runs = [r for r in rows if isinstance(r.get(metric), int | float) and r.get("steps") is not None]
    if not runs:
        raise DiffDisError(
            f"no results with {metric!r} to plot (classify: acc1, acc5; retrieve: image_to_text_R@1, ...)"
        )
    diffdis_runs = [r for r in runs if r.get("method", "diffdis") == "diffdis"]
    varying = [k for k in ("data", "labels", "guidance", "model") if len({str(r.get(k)) for r in diffdis_runs}) > 1]
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        dc = r.get("method", "diffdis") != "diffdis"
        keys = [k for k in varying if not (dc and k == "guidance")]
        lines[" ".join([str(r["method"] if dc else r.get("scheduler"))] + [f"{k}={r.get(k)}" for k in keys])].append(r)
    percent = all(0 <= r[metric] <= 1 for r in runs)  # accuracies and recalls in %, FID as it is
    ylabel = f"{metric} (%)" if percent else metric
    fig, (by_steps, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps_seen: set[int] = set()
    for colour, (label, points) in enumerate(sorted(lines.items())):
        points.sort(key=lambda r: float(r.get("steps") or 0))
        ys = [(100 if percent else 1) * r[metric] for r in points]
        dc = points[0].get("method", "diffdis") != "diffdis"
        style = {"color": f"C{colour}", "marker": "s" if dc else "o", "linestyle": ":" if dc else "-", "label": label}
        if not dc:
            by_steps.plot([r["steps"] for r in points], ys, **style)
            steps_seen.update(int(r["steps"]) for r in points)
        timed = [(r["seconds_per_image"], y) for r, y in zip(points, ys) if r.get("seconds_per_image")]
        by_time.plot([t for t, _ in timed], [y for _, y in timed], **style)
    by_steps.set(xscale="log", xlabel="sampler steps", ylabel=ylabel, title=f"{metric} vs steps")
    by_steps.set_xticks(sorted(steps_seen), [str(s) for s in sorted(steps_seen)])
    by_steps.minorticks_off()
    by_time.set(xscale="log", xlabel="seconds per image", ylabel=ylabel, title=f"{metric} vs time")
    for ax in (by_steps, by_time):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:  # the sibling keeps the suffix, which tells matplotlib the format
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
