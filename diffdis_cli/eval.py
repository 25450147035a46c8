"""`diffdis eval`: benchmark sweeps that write one JSON per run, `build` to merge them into a table, `plot`.
(`generate` and `fid-stats` are in eval_generate.py, the options they share in eval_common.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from diffdis.data.label_sets import builtin_label_sets
from diffdis_cli.baselines import train_clip
from diffdis_cli.common import (
    DEVICE,
    DTYPE,
    MODEL,
    command,
    err_console,
    load_pipeline,
    quiet_libraries,
    resolve_placement,
)
from diffdis_cli.eval_common import (
    BATCH,
    DATA,
    DATA_FORMAT,
    DEFAULT_OUTPUT,
    GUIDANCE,
    IMAGE_ROOT,
    JSON,
    MAX_SAMPLES,
    NUM_SHARDS,
    SCHEDULERS,
    SEED,
    SHARD_INDEX,
    STEPS,
    bars,
    report,
)
from diffdis_cli.eval_generate import fid_stats, generate

app = typer.Typer(
    help="Benchmarks: zero-shot classification, retrieval, generation; merge results into a table.",
    no_args_is_help=True,
)

LABELS_HELP = f"A built-in label set ({', '.join(builtin_label_sets())}), FILE.txt (one label a line) or a,b,c."


@command
def classify(
    model: Path | None = MODEL,
    data: str = DATA,
    labels: str = typer.Option(..., "--labels", help=LABELS_HELP),
    templates: str | None = typer.Option(
        None, "--templates", help="Built-in template set or a file. Default: the label set's."
    ),
    label_column: str | None = typer.Option(
        None,
        "--label-column",
        help="Metadata column with each image's label. Default: "
        "the first of label_name, label, object, colour, ... that names the labels.",
    ),
    drop_unknown: bool = typer.Option(
        False,
        "--drop-unknown",
        help="Skip rows whose label is not in the set (and class folders that are not ImageNet-1k synsets).",
    ),
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    method: str = typer.Option(
        "diffdis",
        "--method",
        help="diffdis | diffusion-classifier (Li et al. 2023 baseline) | "
        "clip (a --model folder from diffdis eval train-clip).",
    ),
    schedulers: str | None = SCHEDULERS,
    steps: str | None = STEPS,
    guidance: str | None = GUIDANCE,
    dc_timesteps: str = typer.Option(
        "25", "--dc-timesteps", help="Diffusion classifier: timesteps per class (comma list)."
    ),
    dc_keep: int | None = typer.Option(
        None,
        "--dc-keep",
        min=1,
        help="Diffusion classifier: keep the best N classes after "
        "a first round on a fifth of the timesteps (adaptive pruning).",
    ),
    seed: int = SEED,
    batch_size: int = BATCH,
    max_samples: int | None = MAX_SAMPLES,
    num_shards: int = NUM_SHARDS,
    shard_index: int = SHARD_INDEX,
    output: str = typer.Option(
        DEFAULT_OUTPUT,
        "--output",
        help="Where each run's JSON goes; fields {task} {data} {scheduler} {steps} {method} {guidance} {shard}.",
    ),
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Zero-shot classification accuracy (acc1, acc5, mean per-class recall) and seconds per image, one JSON per run."""
    from diffdis.eval.sweep import check_options, classify_sweep, load_classify_data, parse_list

    grid = check_options("classify", method, num_shards, shard_index, schedulers, steps, guidance)
    placement = resolve_placement(device, dtype)
    run_data = load_classify_data(
        data,
        labels,
        templates,
        label_column,
        drop_unknown,
        data_format,
        image_root,
        max_samples,
        num_shards,
        shard_index,
    )
    pipe = _load(model, method, placement)
    timesteps = parse_list(dc_timesteps, int, "--dc-timesteps") if method == "diffusion-classifier" else None
    records = classify_sweep(
        pipe,
        run_data,
        grid,
        model=model,
        method=method,
        dc_timesteps=timesteps,
        dc_keep=dc_keep,
        seed=seed,
        batch_size=batch_size,
        output=output,
        progress=bars(json_out),
        log=err_console.print,
    )
    report(
        records,
        [
            "method",
            "scheduler",
            "steps",
            "guidance",
            "n",
            "acc1",
            "acc5",
            "mean_per_class_recall",
            "seconds_per_image",
            "path",
        ],
        json_out,
    )


def _load(model: Path | None, method: str, placement: tuple[Any, Any]) -> Any:
    """A DiffDis pipeline, or for --method clip the CLIP baseline, which answers the same calls; on
    `placement` = (device, dtype) from `resolve_placement`."""
    quiet_libraries()  # before either model loads: transformers draws a bar per folder
    if method != "clip":
        return load_pipeline(model, *placement)
    from diffdis.baselines.clip_baseline import ClipBaseline
    from diffdis.errors import UsageError

    if model is None:
        raise UsageError("--method clip needs --model CLIP_DIR (from diffdis eval train-clip)")
    return ClipBaseline.from_pretrained(model, *placement)


@command
def retrieve(
    model: Path | None = MODEL,
    data: str = DATA,
    text_column: str = typer.Option("text", "--text-column", help="Metadata column with each image's caption(s)."),
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    method: str = typer.Option(
        "diffdis", "--method", help="diffdis | clip (a --model folder from diffdis eval train-clip)."
    ),
    schedulers: str | None = SCHEDULERS,
    steps: str | None = STEPS,
    guidance: str | None = GUIDANCE,
    seed: int = SEED,
    batch_size: int = BATCH,
    max_samples: int | None = MAX_SAMPLES,
    num_shards: int = typer.Option(
        1, "--num-shards", min=1, help="Split the images into K shards (each still ranked against every caption) ..."
    ),
    shard_index: int = SHARD_INDEX,
    output: str = typer.Option(DEFAULT_OUTPUT, "--output", help="Where each run's JSON goes."),
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Image-text retrieval Recall@1/5/10 both ways (CLIP_benchmark's names too), one JSON per run."""
    from diffdis.eval.sweep import check_options, load_retrieve_data, retrieve_sweep

    grid = check_options("retrieve", method, num_shards, shard_index, schedulers, steps, guidance)
    placement = resolve_placement(device, dtype)
    run_data = load_retrieve_data(data, data_format, image_root, max_samples, num_shards, shard_index)
    pipe = _load(model, method, placement)
    records = retrieve_sweep(
        pipe,
        run_data,
        grid,
        model=model,
        method=method,
        text_column=text_column,
        seed=seed,
        batch_size=batch_size,
        output=output,
        progress=bars(json_out),
    )
    report(
        records,
        [
            "scheduler",
            "steps",
            "guidance",
            "n",
            "num_texts",
            "image_to_text_R@1",
            "image_to_text_R@5",
            "text_to_image_R@1",
            "text_to_image_R@5",
            "seconds_per_image",
            "path",
        ],
        json_out,
    )


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
