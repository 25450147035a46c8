"""`diffdis eval`: benchmark sweeps that write one JSON per run, and `build` to merge them into a table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from diffdis_cli.baselines import train_clip
from diffdis_cli.common import (
    DEVICE,
    DTYPE,
    MODEL,
    command,
    err_console,
    load_pipeline,
    model_fields,
    print_json,
    progress,
    resolve_placement,
)

app = typer.Typer(help="Benchmarks: zero-shot classification, retrieval, generation; merge results into a table.",
                  no_args_is_help=True)  # fmt: skip

DATA = typer.Option(..., "--data", help="Data on disk (a folder or file in any --data-format layout; PATH@SPLIT "
                    "chooses a split: CIFAR test (default) or train, Karpathy test (default), val, train, restval), or "
                    "built-in: world (held-out split), digits (test split), NAME/SPLIT, NAME:N.")  # fmt: skip
DATA_FORMAT = typer.Option("auto", "--data-format", help="Layout of the data on disk (for generate: --prompts and "
                           "--reference): auto (detected) | metadata (metadata.jsonl) | imagefolder (class folders) | "
                           "imagenet-devkit | cifar-bin | cifar-python | parquet | karpathy | coco-captions.")  # fmt: skip
IMAGE_ROOT = typer.Option(None, "--image-root", help="Folder of the images when the data is an annotation file "
                          "(karpathy, coco-captions) or the ImageNet devkit. Default: found beside it.")  # fmt: skip
SCHEDULERS = typer.Option(None, "--scheduler", help="Comma list, e.g. ddim,dpm++,unipc. Default: the model's.")
STEPS = typer.Option(None, "--num-inference-steps", help="Comma list, e.g. 1,2,5,10,25,50. Default: the model's.")
GUIDANCE = typer.Option(None, "--guidance-scale", help="Comma list of CFG scales over the image (1 = off). Default: the model's.")
SEED = typer.Option(0, "--seed")
BATCH = typer.Option(64, "--batch-size", min=1, help="Images per forward pass.")
MAX_SAMPLES = typer.Option(None, "--max-samples", min=1, help="Evaluate only the first N samples.")
JSON = typer.Option(False, "--json", help="Print the records as JSON (without per-sample results).")


def _list(value: str | None, default: Any, cast: type, flag: str) -> list:
    from diffdis.errors import UsageError

    if value is None:
        return [default]
    try:
        items = [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError as err:
        raise UsageError(f"{flag} {value!r}: give a comma-separated list ({err})") from None
    if not items:
        raise UsageError(f"{flag} is empty")
    return items


def _check_sweep(schedulers: str | None, steps: str | None, guidance: str | None) -> None:
    """Refuse a bad scheduler, step count or scale before data and model are loaded."""
    from diffdis.pipeline import check_sampling_options

    for scheduler in _list(schedulers, None, str, "--scheduler"):
        check_sampling_options(None, None, scheduler)
    for n in _list(steps, None, int, "--num-inference-steps"):
        check_sampling_options(n, None, None)
    for scale in _list(guidance, None, float, "--guidance-scale"):
        check_sampling_options(None, scale, None)


def _with_guidance(template: str, scales: list[float]) -> str:
    """A sweep over guidance scales needs {guidance} in the file name, or runs would overwrite each other."""
    if len(scales) < 2 or "{guidance}" in template:
        return template
    path = Path(template)
    return str(path.with_name(f"{path.stem}_g{{guidance}}{path.suffix}"))


def _common_fields(pipe: Any, model: Path | None, data_name: str, seed: int) -> dict[str, Any]:
    from diffdis import __version__

    card = model_fields(pipe)
    return {"model": str(model) if model is not None else "default", "model_name": card["model"],
            "model_version": card["model_version"],
            "data": data_name, "seed": seed, "diffdis_version": __version__,
            "device": str(pipe.device), "dtype": str(pipe.dtype).removeprefix("torch."),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


def _report(records: list[dict[str, Any]], keys: list[str], json_out: bool) -> None:
    if json_out:
        print_json([{k: v for k, v in r.items() if k != "samples"} for r in records])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results")
    for key in keys:
        table.add_column(key)
    for r in records:
        table.add_row(*(f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys))
    Console().print(table)


@command
def classify(
    model: Path | None = MODEL,
    data: str = DATA,
    labels: str = typer.Option(..., "--labels", help="Built-in set (world_objects, world_colours, digits, ...), FILE.txt or a,b,c."),
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
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Split the samples into K shards ..."),
    shard_index: int = typer.Option(0, "--shard-index", min=0, help="... and evaluate shard I (every K-th sample)."),
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
    if shard_index >= num_shards:
        raise UsageError(f"--shard-index {shard_index} must be below --num-shards {num_shards}")
    if method == "diffdis":
        _check_sweep(schedulers, steps, guidance)
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
    base = {"task": "classify", "method": method, **_common_fields(pipe, model, dataset.name, seed), "labels": labels,
            "templates": templates or "default", "label_column": column, "num_classes": len(label_names),
            "max_samples": max_samples, "num_shards": num_shards, "shard_index": shard_index, "n": len(rows)}  # fmt: skip
    evaluation.warm_up(pipe, images)
    if method in ("diffdis", "clip"):
        scales = _list(guidance, pipe.inference.query_guidance, float, "--guidance-scale")
        runs = [(s, n, g) for s in _list(schedulers, pipe.inference.query_scheduler, str, "--scheduler")
                for n in _list(steps, pipe.inference.query_steps, int, "--num-inference-steps") for g in scales]  # fmt: skip
        records = _sweep_diffdis(pipe, images, targets, rows, label_names, template_list, runs, base,
                                 _with_guidance(output, scales), batch_size, json_out)  # fmt: skip
    else:
        records = []
        for n_timesteps in _list(dc_timesteps, 25, int, "--dc-timesteps"):
            err_console.print(f"diffusion classifier: {n_timesteps} timesteps x {len(label_names)} classes, {len(images)} images")
            start = time.perf_counter()
            logits, passes = diffusion_classify(pipe, images, label_names, template_list, n_timesteps, dc_keep, seed, batch_size)
            seconds = time.perf_counter() - start
            record = {**base, "scheduler": "dc", "steps": n_timesteps, "guidance": None, "dc_timesteps": n_timesteps,
                      "dc_keep": dc_keep, "unet_passes_per_image": passes,
                      **evaluation.classification_metrics(logits, torch.tensor(targets)),
                      "seconds": seconds, "seconds_per_image": seconds / len(images),
                      "samples": evaluation.sample_record(logits, targets, rows)}  # fmt: skip
            records.append(_save(record, output, "dc", n_timesteps, method, None, num_shards, shard_index))
    _report(records, ["method", "scheduler", "steps", "guidance", "n", "acc1", "acc5", "mean_per_class_recall",
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
        records.append(_save(record, output, scheduler, n_steps, base["method"], scale, base["num_shards"], base["shard_index"]))
    return records


def _save(record: dict[str, Any], template: str, scheduler: str, steps: Any, method: str, guidance: Any,
          num_shards: int = 1, shard_index: int = 0) -> dict[str, Any]:  # fmt: skip
    from diffdis.eval.results import output_path, write_record

    path = output_path(template, task=record["task"], data=record["data"], scheduler=scheduler, steps=steps, method=method,
                       guidance=guidance, shard=shard_index, num_shards=num_shards, shard_index=shard_index)  # fmt: skip
    write_record(record, path)
    return {**record, "path": str(path)}


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
    output: str = typer.Option("results/{task}_{data}_{scheduler}_{steps}.json", "--output", help="Where each run's JSON goes."),
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Image-text retrieval Recall@1/5/10 both ways (CLIP_benchmark's names too), one JSON per run."""
    from diffdis.errors import UsageError
    from diffdis.eval.classify import warm_up
    from diffdis.eval.data import load_eval_data
    from diffdis.eval.retrieve import run_retrieval

    if method not in ("diffdis", "clip"):
        raise UsageError(f"--method must be diffdis or clip, got {method!r}")
    _check_sweep(schedulers, steps, guidance)
    _no_sampler_for_clip(method, schedulers, steps, guidance)
    placement = resolve_placement(device, dtype)
    dataset = load_eval_data(data, data_format, image_root).head(max_samples)
    pipe = _load(model, method, placement)
    warm_up(pipe, dataset.images([0]))
    inf = pipe.inference
    base = {"task": "retrieve", "method": method, **_common_fields(pipe, model, dataset.name, seed),
            "max_samples": max_samples, "n": len(dataset)}  # fmt: skip
    records = []
    scales = _list(guidance, inf.query_guidance, float, "--guidance-scale")
    output = _with_guidance(output, scales)
    for scheduler in _list(schedulers, inf.query_scheduler, str, "--scheduler"):
        for n_steps in _list(steps, inf.query_steps, int, "--num-inference-steps"):
            for scale in scales:
                with progress(f"{scheduler} {n_steps} steps s={scale}", enabled=not json_out) as update:
                    result = run_retrieval(pipe, dataset, scheduler, n_steps, scale, seed, batch_size, text_column,
                                           callback=update)  # fmt: skip
                record = {**base, "scheduler": scheduler, "steps": n_steps, "guidance": scale, **result}
                records.append(_save(record, output, scheduler, n_steps, method, scale))
    _report(records, ["scheduler", "steps", "guidance", "n", "num_texts", "image_to_text_R@1", "image_to_text_R@5",
                      "text_to_image_R@1", "text_to_image_R@5", "seconds_per_image", "path"], json_out)  # fmt: skip


def _prompts(spec: str, count: int | None, data_format: str = "auto",
             image_root: Path | None = None) -> tuple[list[str], list[dict] | None, Any]:  # fmt: skip
    """Prompts from a .txt file (one per line), or the captions of evaluation data (rows kept for the judge)."""
    from diffdis.data.formats import check_format, detect
    from diffdis.data.label_sets import read_text_file
    from diffdis.eval.data import load_eval_data

    path = Path(spec)
    if check_format(data_format) is None and (path.suffix == ".txt" or (path.is_file() and detect(path) is None)):
        return read_text_file(path, "prompts")[:count], None, None
    from diffdis.eval.retrieve import caption_lists

    dataset = load_eval_data(spec, data_format, image_root)
    rows = dataset.rows[:count]
    # a row with a list of captions (COCO-style) prompts with its first one
    return [texts[0] for texts in caption_lists([r.get("text") for r in rows], dataset.name)], rows, dataset


@command
def generate(
    model: Path | None = MODEL,
    prompts: str = typer.Option(..., "--prompts", help="A .txt file (one prompt per line), or data whose captions are the "
                                "prompts (e.g. world: the held-out split; the judge then checks object and colour)."),
    reference: str | None = typer.Option(None, "--reference", help="Reference images for FID (data as for --data). "
                                         "Default: the --prompts data."),
    num_prompts: int | None = typer.Option(64, "--num-prompts", min=2, help="Use the first N prompts."),
    max_reference: int | None = typer.Option(None, "--max-reference", min=2, help="Use the first N reference images."),
    features: str | None = typer.Option(None, "--features", help="FID features: judge (default), judge:DIR, or "
                                        "module:function mapping a list of PIL images to an (N, D) array."),
    inception_weights: Path | None = typer.Option(None, "--inception-weights", help="FID with the standard Inception-v3 "
                                                  "pool3 features: pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                                                  "(the same file as torch-fidelity's), from disk."),
    inception_style: str = typer.Option("torch-fidelity", "--inception-style", help="Whose resize and scaling feed the "
                                        "Inception: torch-fidelity (TF1 bilinear, as TF FID), clean-fid (PIL bicubic) "
                                        "or pytorch-fid."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Default: the model's."),
    steps: int | None = typer.Option(None, "--num-inference-steps", help="Default: the model's."),
    guidance: float | None = typer.Option(None, "--guidance-scale", help="Default: the model's."),
    seed: int = SEED,
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    output: str = typer.Option("results/{task}_{data}_{scheduler}_{steps}.json", "--output", help="The JSON record."),
    grid: Path | None = typer.Option(None, "--grid", help="Sample grid PNG. Default: the output path with .png."),
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """FID (judge or Inception features), DiffDis score, judge accuracy and a sample grid for generated images."""
    from diffdis.errors import UsageError
    from diffdis.eval.data import load_eval_data
    from diffdis.eval.fid import is_judge, judge_dir, judge_features, load_extractor
    from diffdis.eval.generate import image_grid, run_generation
    from diffdis.eval.inception import STYLES
    from diffdis.eval.results import write_record

    if inception_weights is not None and features is not None:
        raise UsageError("pass --features or --inception-weights, not both: each chooses the FID features")
    if inception_style not in STYLES:
        raise UsageError(f"--inception-style must be one of {', '.join(STYLES)}, got {inception_style!r}")
    _check_sweep(scheduler, None if steps is None else str(steps), None if guidance is None else str(guidance))
    where, precision = resolve_placement(device, dtype)
    prompt_list, rows, prompt_data = _prompts(prompts, num_prompts, data_format, image_root)
    if len(prompt_list) < 2:
        raise UsageError("FID needs at least two prompts")
    if reference is None and prompt_data is None:
        raise UsageError("give --reference DATA: the prompts come from a text file, which holds no images")
    ref_data = prompt_data if reference is None else load_eval_data(reference, data_format, image_root)
    ref_rows = list(range(len(ref_data)))[:max_reference]
    judge = None
    if inception_weights is not None:  # loaded first: a wrong file fails before any image is generated
        extractor = load_extractor(None, str(inception_weights), inception_style, where)  # fp32: FID features
        features_name = f"inception:{inception_style}"
    elif is_judge(features):  # the judge that gives the features also checks the prompts
        from diffdis.eval.judge import load_judge

        judge = load_judge(judge_dir(features), where)
        extractor, features_name = judge_features(judge), features or "judge"
    else:
        extractor, features_name = load_extractor(features), features
    pipe = load_pipeline(model, where, precision)
    inf = pipe.inference
    scheduler, steps = scheduler or inf.generate_scheduler, steps or inf.generate_steps
    guidance = inf.generate_guidance if guidance is None else guidance
    with progress("generating", enabled=not json_out) as update:
        metrics, images = run_generation(pipe, prompt_list, ref_data.images(ref_rows), extractor, rows, judge, steps, guidance,
                                         scheduler, seed, batch_size, update)  # fmt: skip
    data_name = prompt_data.name if prompt_data is not None else Path(prompts).stem
    record = {"task": "generate", "method": "diffdis", **_common_fields(pipe, model, data_name, seed), "prompts": prompts,
              "reference": ref_data.name, "features": features_name, "scheduler": scheduler, "steps": steps,
              "guidance": guidance, **metrics}  # fmt: skip
    record = _save(record, output, scheduler, steps, "diffdis", guidance)
    grid_path = grid or Path(record["path"]).with_suffix(".png")
    image_grid(images[:64]).save(grid_path)
    record["grid"] = str(grid_path)
    write_record({k: v for k, v in record.items() if k != "path"}, Path(record["path"]))
    _report([record], ["scheduler", "steps", "guidance", "n", "fid", "diffdis_score", "judge_object_accuracy",
                       "judge_colour_accuracy", "seconds_per_image", "path", "grid"], json_out)  # fmt: skip


@command
def build(
    results: list[Path] = typer.Argument(..., help="Result JSON files (runs and shards)."),
    output: Path = typer.Option(Path("table.csv"), "--output", help="The merged table (CSV)."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG: accuracy vs steps and vs seconds per image, per scheduler."),
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


app.command("classify")(classify)
app.command("retrieve")(retrieve)
app.command("generate")(generate)
app.command("build")(build)
app.command("train-clip")(train_clip)
