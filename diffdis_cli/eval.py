"""`diffdis eval`: benchmark sweeps that write one JSON per run, `build` to merge them into a table, `plot`.
(`generate` and `fid-stats` are in eval_generate.py, the options they share in eval_common.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from diffdis.data.label_sets import builtin_label_sets
from diffdis_cli.baselines import train_clip
from diffdis_cli.common import DEVICE, DTYPE, MODEL, command, err_console, load_pipeline, progress, resolve_placement
from diffdis_cli.eval_common import (
    BATCH,
    DATA,
    DATA_FORMAT,
    GUIDANCE,
    IMAGE_ROOT,
    JSON,
    MAX_SAMPLES,
    NUM_SHARDS,
    SCHEDULERS,
    SEED,
    SHARD_INDEX,
    STEPS,
    check_shard,
    check_sweep,
    common_fields,
    parse_list,
    report,
    save_record,
    with_guidance,
)
from diffdis_cli.eval_generate import fid_stats, generate

app = typer.Typer(help="Benchmarks: zero-shot classification, retrieval, generation; merge results into a table.",
                  no_args_is_help=True)  # fmt: skip

LABELS_HELP = f"A built-in label set ({', '.join(builtin_label_sets())}), FILE.txt (one label a line) or a,b,c."

@command
def classify(
    model: Path | None = MODEL,
    data: str = DATA,
    labels: str = typer.Option(..., "--labels", help=LABELS_HELP),
    templates: str | None = typer.Option(None, "--templates", help="Built-in template set or a file. Default: the label set's."),
    label_column: str | None = typer.Option(None, "--label-column", help="Metadata column with each image's label. Default: "
                                            "the first of label_name, label, object, colour, ... that names the labels."),
    drop_unknown: bool = typer.Option(False, "--drop-unknown", help="Skip rows whose label is not in the set (and "
                                      "class folders that are not ImageNet-1k synsets)."),
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    method: str = typer.Option("diffdis", "--method", help="diffdis | diffusion-classifier (Li et al. 2023 baseline) | "
                               "clip (a --model folder from diffdis eval train-clip)."),
    schedulers: str | None = SCHEDULERS,
    steps: str | None = STEPS,
    guidance: str | None = GUIDANCE,
    dc_timesteps: str = typer.Option("25", "--dc-timesteps", help="Diffusion classifier: timesteps per class (comma list)."),
    dc_keep: int | None = typer.Option(None, "--dc-keep", min=1, help="Diffusion classifier: keep the best N classes after "
                                       "a first round on a fifth of the timesteps (adaptive pruning)."),
    seed: int = SEED,
    batch_size: int = BATCH,
    max_samples: int | None = MAX_SAMPLES,
    num_shards: int = NUM_SHARDS,
    shard_index: int = SHARD_INDEX,
    output: str = typer.Option("results/{task}_{data}_{scheduler}_{steps}.json", "--output",
                               help="Where each run's JSON goes; fields {task} {data} {scheduler} {steps} {method} {guidance} {shard}."),
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Zero-shot classification accuracy (acc1, acc5, mean per-class recall) and seconds per image, one JSON per run."""
    import torch

    from diffdis.data.label_sets import load_labels, load_templates
    from diffdis.errors import UsageError
    from diffdis.eval import classify as evaluation
    from diffdis.eval.data import label_targets, load_eval_data, shard
    from diffdis.eval.diffusion_classifier import diffusion_classify

    if method not in ("diffdis", "diffusion-classifier", "clip"):
        raise UsageError(f"--method must be diffdis, diffusion-classifier or clip, got {method!r}")
    check_shard(num_shards, shard_index)
    if method == "diffdis":
        check_sweep(schedulers, steps, guidance)
    _no_sampler_for_clip(method, schedulers, steps, guidance)
    placement = resolve_placement(device, dtype)
    label_names, template_list = load_labels(labels), load_templates(templates, labels)
    dataset = load_eval_data(data, data_format, image_root, drop_unknown)
    rows, targets, column = label_targets(dataset, label_names, label_column, drop_unknown)
    rows, targets = rows[:max_samples], targets[:max_samples]
    mine = shard(list(range(len(rows))), num_shards, shard_index)
    rows, targets = [rows[i] for i in mine], [targets[i] for i in mine]
    if not rows:
        raise UsageError(f"shard {shard_index} of {num_shards} holds no samples: use fewer shards")
    pipe = _load(model, method, placement)
    images = dataset.images(rows)
    base = {"task": "classify", "method": method, **common_fields(pipe, model, dataset.name, seed), "labels": labels,
            "templates": templates or "default", "label_column": column, "num_classes": len(label_names),
            "max_samples": max_samples, "num_shards": num_shards, "shard_index": shard_index, "n": len(rows)}  # fmt: skip
    evaluation.warm_up(pipe, images)
    if method in ("diffdis", "clip"):
        scales = parse_list(guidance, pipe.inference.query_guidance, float, "--guidance-scale")
        runs = [(s, n, g) for s in parse_list(schedulers, pipe.inference.query_scheduler, str, "--scheduler")
                for n in parse_list(steps, pipe.inference.query_steps, int, "--num-inference-steps") for g in scales]  # fmt: skip
        records = _sweep_diffdis(pipe, images, targets, rows, label_names, template_list, runs, base,
                                 with_guidance(output, scales), batch_size, json_out)  # fmt: skip
    else:
        records = []
        for n_timesteps in parse_list(dc_timesteps, 25, int, "--dc-timesteps"):
            err_console.print(f"diffusion classifier: {n_timesteps} timesteps x {len(label_names)} classes, {len(images)} images")
            start = time.perf_counter()
            logits, passes = diffusion_classify(pipe, images, label_names, template_list, n_timesteps, dc_keep, seed, batch_size)
            seconds = time.perf_counter() - start
            record = {**base, "scheduler": "dc", "steps": n_timesteps, "guidance": None, "dc_timesteps": n_timesteps,
                      "dc_keep": dc_keep, "unet_passes_per_image": passes,
                      **evaluation.classification_metrics(logits, torch.tensor(targets)),
                      "seconds": seconds, "seconds_per_image": seconds / len(images),
                      "samples": evaluation.sample_record(logits, targets, rows)}  # fmt: skip
            records.append(save_record(record, output, "dc", n_timesteps, method, None, num_shards, shard_index))
    report(records, ["method", "scheduler", "steps", "guidance", "n", "acc1", "acc5", "mean_per_class_recall",
                      "seconds_per_image", "path"], json_out)  # fmt: skip


def _no_sampler_for_clip(method: str, *sampling: str | None) -> None:
    if method == "clip" and any(v is not None for v in sampling):
        from diffdis.errors import UsageError

        raise UsageError("--method clip encodes each image once: drop --scheduler, --num-inference-steps and --guidance-scale")


def _load(model: Path | None, method: str, placement: tuple[Any, Any]) -> Any:
    """A DiffDis pipeline, or for --method clip the CLIP baseline, which answers the same calls; on
    `placement` = (device, dtype) from `resolve_placement`."""
    if method != "clip":
        return load_pipeline(model, *placement)
    from diffdis.errors import UsageError
    from diffdis.eval.clip_baseline import ClipBaseline

    if model is None:
        raise UsageError("--method clip needs --model CLIP_DIR (from diffdis eval train-clip)")
    return ClipBaseline.from_pretrained(model, *placement)


def _sweep_diffdis(pipe: Any, images: list, targets: list[int], rows: list[int], labels: list[str], templates: list[str],
                   runs: list[tuple[str, int, float]], base: dict[str, Any], output: str, batch_size: int,
                   quiet: bool) -> list[dict[str, Any]]:  # fmt: skip
    """One record per (scheduler, steps, guidance); the label embeddings are made once for all of them."""
    from diffdis.eval.classify import run_diffdis

    start = time.perf_counter()
    classifier = pipe.zero_shot_classifier(labels, templates)
    base = {**base, "seconds_label_embeddings": time.perf_counter() - start}
    records = []
    for scheduler, n_steps, scale in runs:
        with progress(f"{scheduler} {n_steps} steps s={scale}", enabled=not quiet) as update:
            result = run_diffdis(pipe, images, targets, rows, classifier, scheduler, n_steps, scale, base["seed"],
                                 batch_size, update)  # fmt: skip
        # calls of the query network (down + middle blocks and query transformer; no up path) per image
        record = {**base, "scheduler": scheduler, "steps": n_steps, "guidance": scale,
                  "query_passes_per_image": n_steps * (1 if scale == 1.0 else 2), **result}  # fmt: skip
        records.append(save_record(record, output, scheduler, n_steps, base["method"], scale, base["num_shards"], base["shard_index"]))
    return records


@command
def retrieve(
    model: Path | None = MODEL,
    data: str = DATA,
    text_column: str = typer.Option("text", "--text-column", help="Metadata column with each image's caption(s)."),
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    method: str = typer.Option("diffdis", "--method", help="diffdis | clip (a --model folder from diffdis eval train-clip)."),
    schedulers: str | None = SCHEDULERS,
    steps: str | None = STEPS,
    guidance: str | None = GUIDANCE,
    seed: int = SEED,
    batch_size: int = BATCH,
    max_samples: int | None = MAX_SAMPLES,
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Split the images into K shards (each still ranked "
                                   "against every caption) ..."),
    shard_index: int = SHARD_INDEX,
    output: str = typer.Option("results/{task}_{data}_{scheduler}_{steps}.json", "--output", help="Where each run's JSON goes."),
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Image-text retrieval Recall@1/5/10 both ways (CLIP_benchmark's names too), one JSON per run."""
    from diffdis.errors import UsageError
    from diffdis.eval.classify import warm_up
    from diffdis.eval.data import load_eval_data, shard
    from diffdis.eval.retrieve import run_retrieval

    if method not in ("diffdis", "clip"):
        raise UsageError(f"--method must be diffdis or clip, got {method!r}")
    check_shard(num_shards, shard_index)
    check_sweep(schedulers, steps, guidance)
    _no_sampler_for_clip(method, schedulers, steps, guidance)
    placement = resolve_placement(device, dtype)
    dataset = load_eval_data(data, data_format, image_root).head(max_samples)
    mine = shard(list(range(len(dataset))), num_shards, shard_index)
    if not mine:
        raise UsageError(f"shard {shard_index} of {num_shards} holds no images: use fewer shards")
    pipe = _load(model, method, placement)
    warm_up(pipe, dataset.images(mine[:1]))
    inf = pipe.inference
    base = {"task": "retrieve", "method": method, **common_fields(pipe, model, dataset.name, seed),
            "text_column": text_column, "max_samples": max_samples, "num_shards": num_shards,
            "shard_index": shard_index, "n": len(mine)}  # fmt: skip
    records = []
    scales = parse_list(guidance, inf.query_guidance, float, "--guidance-scale")
    output = with_guidance(output, scales)
    for scheduler in parse_list(schedulers, inf.query_scheduler, str, "--scheduler"):
        for n_steps in parse_list(steps, inf.query_steps, int, "--num-inference-steps"):
            for scale in scales:
                with progress(f"{scheduler} {n_steps} steps s={scale}", enabled=not json_out) as update:
                    result = run_retrieval(pipe, dataset, scheduler, n_steps, scale, seed, batch_size, text_column,
                                           callback=update, indices=mine if num_shards > 1 else None)  # fmt: skip
                record = {**base, "scheduler": scheduler, "steps": n_steps, "guidance": scale, **result}
                records.append(save_record(record, output, scheduler, n_steps, method, scale, num_shards, shard_index))
    report(records, ["scheduler", "steps", "guidance", "n", "num_texts", "image_to_text_R@1", "image_to_text_R@5",
                      "text_to_image_R@1", "text_to_image_R@5", "seconds_per_image", "path"], json_out)  # fmt: skip


RESULTS = typer.Argument(..., help="Result JSON files (runs and shards).")
TABLE = typer.Option(Path("table.csv"), "--output", help="The merged table (CSV).")
PLOT = typer.Option(None, "--plot", help="PNG: accuracy vs steps and vs seconds per image, per scheduler.")


@command
def build(
    results: list[Path] = RESULTS,
    output: Path = TABLE,
    plot: Path | None = PLOT,
    metric: str = typer.Option("acc1", "--metric", help="What --plot draws."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Merge runs with missing shards anyway."),
) -> None:
    """Merge result JSONs (shards of a run are combined and their metrics recomputed) into a CSV table."""
    from diffdis.eval.results import merge_shards, plot_accuracy, read_records, write_table

    rows = merge_shards(read_records(results), allow_partial)
    columns = write_table(rows, output)
    typer.echo(f"{len(rows)} runs from {len(results)} files -> {output} ({len(columns)} columns)")
    if plot is not None:
        plot_accuracy(rows, plot, metric)
        typer.echo(f"plot -> {plot}")


SWEEP_RESULTS = typer.Argument(..., help="Result JSON files of a sweep (runs and shards).")
PLOT_OUTPUT = typer.Option(Path("plot.png"), "--output", help="The PNG (or .pdf / .svg).")


@command
def plot(
    results: list[Path] = SWEEP_RESULTS,
    output: Path = PLOT_OUTPUT,
    metric: str = typer.Option("acc1", "--metric", help="What to draw: acc1, acc5, image_to_text_R@1, ..."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Merge runs with missing shards anyway."),
) -> None:
    """Accuracy vs sampler steps and vs seconds per image, one line per scheduler (and model, guidance, labels, data
    where those vary); needs matplotlib, diffdis's eval extra."""
    from diffdis.eval.results import merge_shards, plot_accuracy, read_records

    plot_accuracy(merge_shards(read_records(results), allow_partial), output, metric)
    typer.echo(f"plot -> {output}")


app.command("classify")(classify)
app.command("retrieve")(retrieve)
app.command("generate")(generate)
app.command("fid-stats")(fid_stats)
app.command("build")(build)
app.command("plot")(plot)
app.command("train-clip")(train_clip)
