"""Benchmark sweeps as library calls: zero-shot classification and image-text retrieval over a grid of query
samplers (schedulers x steps x guidance), one record per run, written where an --output template puts it.

`diffdis eval classify|retrieve` are these functions behind flags, so a Python caller gets the same records
(`diffdis.eval.results.RECORD_KEYS` says what they hold):

    data = load_classify_data("world", "world_colours")
    records = classify_sweep(pipe, data, SamplerGrid(schedulers=["ddim", "dpm++"], steps=[1, 2, 5]), model=folder)

Loading is kept apart from the sweep so a bad data spec fails before a slow model load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffdis.errors import UsageError
from diffdis.eval.classify import classification_metrics, run_diffdis, sample_record, warm_up
from diffdis.eval.data import EvalData, label_targets, load_eval_data, shard
from diffdis.eval.results import DEFAULT_OUTPUT, run_fields, save_record
from diffdis.eval.retrieve import run_retrieval

Update = Callable[[int, int], None]  # update(done, total)
Progress = Callable[[str], AbstractContextManager[Update]]  # progress(description) -> a bar, as a context
METHODS = {"classify": ("diffdis", "diffusion-classifier", "clip"), "retrieve": ("diffdis", "clip")}


@contextmanager
def no_progress(description: str) -> Iterator[Update]:
    """The default `progress` of every sweep: no bar (the CLI passes rich bars)."""
    yield lambda done, total: None


def parse_list(value: str | None, cast: type, flag: str) -> list | None:
    """A comma-list option as `cast` values; None when it is not given (the model's default)."""
    if value is None:
        return None
    try:
        items = [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError as err:
        raise UsageError(f"{flag} {value!r}: give a comma-separated list ({err})") from None
    if not items:
        raise UsageError(f"{flag} is empty")
    return items


@dataclass
class SamplerGrid:
    """The query samplers a sweep runs: every scheduler x steps x guidance scale. None: the model's default."""

    schedulers: list[str] | None = None
    steps: list[int] | None = None
    guidance: list[float] | None = None

    @classmethod
    def parse(cls, schedulers: str | None, steps: str | None, guidance: str | None) -> SamplerGrid:
        """From comma lists as the flags give them; a bad scheduler, step count or scale is refused here, before
        data and model load."""
        from diffdis.pipeline import check_sampling_options

        grid = cls(parse_list(schedulers, str, "--scheduler"))
        for scheduler in grid.schedulers or []:
            check_sampling_options(None, None, scheduler)
        grid.steps = parse_list(steps, int, "--num-inference-steps")
        for n in grid.steps or []:
            check_sampling_options(n, None, None)
        grid.guidance = parse_list(guidance, float, "--guidance-scale")
        for scale in grid.guidance or []:
            check_sampling_options(None, scale, None)
        return grid

    def scales(self, inference: Any) -> list[float]:
        return self.guidance or [inference.query_guidance]

    def runs(self, inference: Any) -> list[tuple[str, int, float]]:
        """(scheduler, steps, guidance) of every run, schedulers outermost; defaults from `inference`."""
        return [
            (s, n, g)
            for s in self.schedulers or [inference.query_scheduler]
            for n in self.steps or [inference.query_steps]
            for g in self.scales(inference)
        ]


def check_shard(num_shards: int, shard_index: int) -> None:
    if shard_index >= num_shards:
        raise UsageError(f"--shard-index {shard_index} must be below --num-shards {num_shards}")


def check_options(
    task: str,
    method: str,
    num_shards: int,
    shard_index: int,
    schedulers: str | None = None,
    steps: str | None = None,
    guidance: str | None = None,
) -> SamplerGrid:
    """Refuse a bad method, shard or sampler option before anything loads; the parsed grid. The Diffusion
    Classifier has no query sampler (its options are ignored) and CLIP takes none (they are refused)."""
    methods = METHODS[task]
    if method not in methods:
        raise UsageError(f"--method must be {', '.join(methods[:-1])} or {methods[-1]}, got {method!r}")
    check_shard(num_shards, shard_index)
    grid = (
        SamplerGrid.parse(schedulers, steps, guidance) if task == "retrieve" or method == "diffdis" else SamplerGrid()
    )
    _no_sampler_for_clip(method, (schedulers, steps, guidance))
    return grid


def _no_sampler_for_clip(method: str, sampling: Sequence[Any]) -> None:
    if method == "clip" and any(v is not None for v in sampling):
        raise UsageError(
            "--method clip encodes each image once: drop --scheduler, --num-inference-steps and --guidance-scale"
        )


def with_guidance(template: str, scales: Sequence[float]) -> str:
    """A sweep over guidance scales needs {guidance} in the file name, or runs would overwrite each other."""
    if len(scales) < 2 or "{guidance}" in template:
        return template
    path = Path(template)
    return str(path.with_name(f"{path.stem}_g{{guidance}}{path.suffix}"))


# ---- classification -----------------------------------------------------------------------------------------


@dataclass
class ClassifyData:
    """One classification run's labelled images (this shard's), and the settings its records repeat."""

    dataset: EvalData
    rows: list[int]  # this shard's rows of `dataset`
    targets: list[int]  # each row's class index in `labels`
    labels: list[str]
    templates: list[str]
    label_column: str
    label_set: str  # --labels and --templates as given, for the record
    template_set: str | None
    max_samples: int | None = None
    num_shards: int = 1
    shard_index: int = 0


def load_classify_data(
    data: str | EvalData,
    labels: str,
    templates: str | None = None,
    label_column: str | None = None,
    drop_unknown: bool = False,
    data_format: str = "auto",
    image_root: Path | None = None,
    max_samples: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
) -> ClassifyData:
    """Labels, templates and the labelled rows of shard `shard_index` of the first `max_samples` rows.
    `labels`: a built-in label set, FILE.txt or a,b,c; `templates`: a built-in set or a file (None: the label set's)."""
    from diffdis.data.label_sets import load_labels, load_templates

    check_shard(num_shards, shard_index)
    label_names, template_list = load_labels(labels), load_templates(templates, labels)
    dataset = data if isinstance(data, EvalData) else load_eval_data(data, data_format, image_root, drop_unknown)
    rows, targets, column = label_targets(dataset, label_names, label_column, drop_unknown)
    rows, targets = rows[:max_samples], targets[:max_samples]
    mine = shard(list(range(len(rows))), num_shards, shard_index)
    if not mine:
        raise UsageError(f"shard {shard_index} of {num_shards} holds no samples: use fewer shards")
    return ClassifyData(
        dataset,
        [rows[i] for i in mine],
        [targets[i] for i in mine],
        label_names,
        template_list,
        column,
        labels,
        templates,
        max_samples,
        num_shards,
        shard_index,
    )


def classify_sweep(
    pipe: Any,
    data: ClassifyData,
    grid: SamplerGrid | None = None,
    *,
    model: str | Path | None = None,
    method: str = "diffdis",
    dc_timesteps: Sequence[int] | None = None,
    dc_keep: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    output: str = DEFAULT_OUTPUT,
    progress: Progress = no_progress,
    log: Callable[[str], None] = lambda message: None,
) -> list[dict[str, Any]]:
    """Zero-shot classification records, each written where `output` puts it (with its "path" added): one per
    sampler of `grid` (diffdis; clip: one run), or per timestep count of `dc_timesteps` (diffusion-classifier,
    None: 25; pruned to the `dc_keep` best classes after a first round). `pipe`: a DiffDisPipeline, or a
    ClipBaseline for method clip; `model`: what the records name as the model (None: "default"); `log`: the
    Diffusion Classifier's one line per run (it draws no bar)."""
    grid = grid or SamplerGrid()
    check_options("classify", method, data.num_shards, data.shard_index)
    _no_sampler_for_clip(method, (grid.schedulers, grid.steps, grid.guidance))
    images = data.dataset.images(data.rows)
    base = {
        "task": "classify",
        "method": method,
        **run_fields(pipe, model, data.dataset.name, seed),
        "labels": data.label_set,
        "templates": data.template_set or "default",
        "label_column": data.label_column,
        "num_classes": len(data.labels),
        "max_samples": data.max_samples,
        "num_shards": data.num_shards,
        "shard_index": data.shard_index,
        "n": len(data.rows),
    }
    warm_up(pipe, images)
    if method == "diffusion-classifier":
        return [
            _diffusion_classifier_run(pipe, images, data, base, n, dc_keep, batch_size, output, log)
            for n in dc_timesteps or [25]
        ]
    output = with_guidance(output, grid.scales(pipe.inference))
    start = time.perf_counter()
    classifier = pipe.zero_shot_classifier(data.labels, data.templates)  # made once for every sampler
    base = {**base, "seconds_label_embeddings": time.perf_counter() - start}
    records = []
    for scheduler, n_steps, scale in grid.runs(pipe.inference):
        with progress(f"{scheduler} {n_steps} steps s={scale}") as update:
            result = run_diffdis(
                pipe, images, data.targets, data.rows, classifier, scheduler, n_steps, scale, seed, batch_size, update
            )
        # calls of the query network (down + middle blocks and query transformer; no up path) per image
        record = {
            **base,
            "scheduler": scheduler,
            "steps": n_steps,
            "guidance": scale,
            "query_passes_per_image": n_steps * (1 if scale == 1.0 else 2),
            **result,
        }
        records.append(save_record(record, output))
    return records


def _diffusion_classifier_run(
    pipe: Any,
    images: list,
    data: ClassifyData,
    base: dict[str, Any],
    n_timesteps: int,
    keep: int | None,
    batch_size: int,
    output: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """One Diffusion Classifier record: `n_timesteps` UNet passes per class and image (fewer with pruning)."""
    from diffdis.baselines.diffusion_classifier import diffusion_classify

    log(f"diffusion classifier: {n_timesteps} timesteps x {len(data.labels)} classes, {len(images)} images")
    start = time.perf_counter()
    logits, passes = diffusion_classify(
        pipe, images, data.labels, data.templates, n_timesteps, keep, base["seed"], batch_size
    )
    seconds = time.perf_counter() - start
    record = {
        **base,
        "scheduler": "dc",
        "steps": n_timesteps,
        "guidance": None,
        "dc_timesteps": n_timesteps,
        "dc_keep": keep,
        "unet_passes_per_image": passes,
        **classification_metrics(logits, torch.tensor(data.targets)),
        "seconds": seconds,
        "seconds_per_image": seconds / len(images),
        "samples": sample_record(logits, data.targets, data.rows),
    }
    return save_record(record, output)


# ---- retrieval ----------------------------------------------------------------------------------------------


@dataclass
class RetrieveData:
    """One retrieval run's images (this shard's, each still ranked against every caption) and its settings."""

    dataset: EvalData  # the first max_samples rows: their captions are the texts
    indices: list[int]  # this shard's images
    max_samples: int | None = None
    num_shards: int = 1
    shard_index: int = 0


def load_retrieve_data(
    data: str | EvalData,
    data_format: str = "auto",
    image_root: Path | None = None,
    max_samples: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
) -> RetrieveData:
    check_shard(num_shards, shard_index)
    dataset = (data if isinstance(data, EvalData) else load_eval_data(data, data_format, image_root)).head(max_samples)
    mine = shard(list(range(len(dataset))), num_shards, shard_index)
    if not mine:
        raise UsageError(f"shard {shard_index} of {num_shards} holds no images: use fewer shards")
    return RetrieveData(dataset, mine, max_samples, num_shards, shard_index)


def retrieve_sweep(
    pipe: Any,
    data: RetrieveData,
    grid: SamplerGrid | None = None,
    *,
    model: str | Path | None = None,
    method: str = "diffdis",
    text_column: str = "text",
    seed: int = 0,
    batch_size: int = 64,
    output: str = DEFAULT_OUTPUT,
    progress: Progress = no_progress,
) -> list[dict[str, Any]]:
    """Image-text retrieval records (Recall@1/5/10 both ways), one per sampler of `grid`, each written where
    `output` puts it (with its "path" added). `pipe`, `model`: as for `classify_sweep`."""
    grid = grid or SamplerGrid()
    check_options("retrieve", method, data.num_shards, data.shard_index)
    _no_sampler_for_clip(method, (grid.schedulers, grid.steps, grid.guidance))
    warm_up(pipe, data.dataset.images(data.indices[:1]))
    base = {
        "task": "retrieve",
        "method": method,
        **run_fields(pipe, model, data.dataset.name, seed),
        "text_column": text_column,
        "max_samples": data.max_samples,
        "num_shards": data.num_shards,
        "shard_index": data.shard_index,
        "n": len(data.indices),
    }
    output = with_guidance(output, grid.scales(pipe.inference))
    records = []
    for scheduler, n_steps, scale in grid.runs(pipe.inference):
        with progress(f"{scheduler} {n_steps} steps s={scale}") as update:
            result = run_retrieval(
                pipe,
                data.dataset,
                scheduler,
                n_steps,
                scale,
                seed,
                batch_size,
                text_column,
                callback=update,
                indices=data.indices if data.num_shards > 1 else None,
            )
        records.append(
            save_record({**base, "scheduler": scheduler, "steps": n_steps, "guidance": scale, **result}, output)
        )
    return records
