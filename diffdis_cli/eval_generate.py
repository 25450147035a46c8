"""`diffdis eval generate` (FID, CLIPScore, DiffDis score, judge accuracy of generated images, resumable and
sharded) and `diffdis eval fid-stats` (reference statistics as pytorch-fid / clean-fid save them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from diffdis_cli.common import (
    DEVICE,
    DTYPE,
    MODEL,
    command,
    err_console,
    load_pipeline,
    print_json,
    progress,
    resolve_placement,
)
from diffdis_cli.eval_common import (
    DATA,
    DATA_FORMAT,
    IMAGE_ROOT,
    JSON,
    MAX_SAMPLES,
    SEED,
    SHARD_INDEX,
    check_shard,
    check_sweep,
    common_fields,
    report,
)
from diffdis_cli.paths import check_writable_folder

FEATURES = typer.Option(None, "--features", help="FID features: judge (default), judge:DIR, or module:function mapping a "
                        "list of PIL images to an (N, D) array.")  # fmt: skip
INCEPTION_WEIGHTS = typer.Option(None, "--inception-weights", help="FID with the standard Inception-v3 pool3 features: "
                                 "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (the same file as torch-fidelity's), "
                                 "from disk.")  # fmt: skip
INCEPTION_STYLE = typer.Option("torch-fidelity", "--inception-style", help="Whose resize and scaling feed the Inception: "
                               "torch-fidelity (TF1 bilinear, as TF FID), clean-fid (PIL bicubic) or pytorch-fid.")  # fmt: skip
CLIP_MODEL = typer.Option(None, "--clip-model", help="Also CLIPScore (100 * max(cos, 0), torchmetrics' scale) with this "
                          "CLIPModel folder (save_pretrained, with its tokenizer and image processor).")  # fmt: skip
IMAGES_DIR = typer.Option(None, "--output-dir", help="Where the images go, one PNG per prompt (000000.png, ...); images "
                          "already there are kept, so a run resumes. Default: beside the record, RECORD_images/.")  # fmt: skip
GRID = typer.Option(None, "--grid", help="Sample grid PNG. Default: the output path with .png.")
STATS_OUTPUT = typer.Option(..., "--output", help="The .npz: mu and sigma (float64), as pytorch-fid and clean-fid save "
                            "them, with n and the features that made them.")  # fmt: skip


def check_feature_options(features: str | None, inception_weights: Path | None, inception_style: str) -> None:
    from diffdis.errors import UsageError
    from diffdis.eval.inception import STYLES

    if inception_weights is not None and features is not None:
        raise UsageError("pass --features or --inception-weights, not both: each chooses the FID features")
    if inception_style not in STYLES:
        raise UsageError(f"--inception-style must be one of {', '.join(STYLES)}, got {inception_style!r}")


def load_prompts(spec: str, count: int | None, data_format: str = "auto",
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
    reference: str | None = typer.Option(None, "--reference", help="FID reference: statistics from `eval fid-stats` (or "
                                         "pytorch-fid / clean-fid) as REF.npz, or images (data as for --data). "
                                         "Default: the --prompts data."),
    num_prompts: int | None = typer.Option(64, "--num-prompts", min=2, help="Use the first N prompts."),
    max_reference: int | None = typer.Option(None, "--max-reference", min=2, help="Use the first N reference images."),
    features: str | None = FEATURES,
    inception_weights: Path | None = INCEPTION_WEIGHTS,
    inception_style: str = INCEPTION_STYLE,
    clip_model: Path | None = CLIP_MODEL,
    scheduler: str | None = typer.Option(None, "--scheduler", help="Default: the model's."),
    steps: int | None = typer.Option(None, "--num-inference-steps", help="Default: the model's."),
    guidance: float | None = typer.Option(None, "--guidance-scale", help="Default: the model's."),
    seed: int = SEED,
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Prompts per sampling call. Block b of B prompts is "
                                   "always sampled together with seed + b, so B is part of what the images are."),
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Split the prompts into K shards (blocks of "
                                   "--batch-size, in turn) ..."),
    shard_index: int = SHARD_INDEX,
    output: str = typer.Option("results/{task}_{data}_{scheduler}_{steps}.json", "--output", help="The JSON record."),
    output_dir: Path | None = IMAGES_DIR,
    grid: Path | None = GRID,
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """FID (judge or Inception features), CLIPScore, DiffDis score and judge accuracy of generated images."""
    from diffdis import __version__
    from diffdis.errors import UsageError
    from diffdis.eval.clip_score import ClipScorer
    from diffdis.eval.fid import choose_features
    from diffdis.eval.fid_stats import is_saved, reference_statistics, statistics_of
    from diffdis.eval.generate import fid, sample_grid, save_shard_stats, score_images
    from diffdis.eval.generated import blocks, existing, generate_missing
    from diffdis.eval.results import output_path, write_record
    from diffdis.png_record import save_png

    check_feature_options(features, inception_weights, inception_style)
    check_shard(num_shards, shard_index)
    check_sweep(scheduler, None if steps is None else str(steps), None if guidance is None else str(guidance))
    where, precision = resolve_placement(device, dtype)
    prompt_list, rows, prompt_data = load_prompts(prompts, num_prompts, data_format, image_root)
    if len(prompt_list) < 2:
        raise UsageError("FID needs at least two prompts")
    if reference is None and prompt_data is None:
        raise UsageError("give --reference DATA or REF.npz: the prompts come from a text file, which holds no images")
    my_blocks = blocks(len(prompt_list), batch_size, num_shards, shard_index)
    if sum(len(b) for b in my_blocks) < 2:
        raise UsageError(f"shard {shard_index} of {num_shards} holds fewer than two prompts; FID needs two: use fewer shards")
    feats = choose_features(features, inception_weights, inception_style, where)  # a wrong file fails before any work
    clip = ClipScorer.from_pretrained(clip_model, where) if clip_model is not None else None
    pipe = load_pipeline(model, where, precision)
    inf = pipe.inference
    scheduler, steps = scheduler or inf.generate_scheduler, steps or inf.generate_steps
    guidance = inf.generate_guidance if guidance is None else guidance
    base = {"task": "generate", "method": "diffdis", **common_fields(pipe, model, _data_name(prompts, prompt_data), seed)}
    path = output_path(output, task="generate", data=base["data"], scheduler=scheduler, steps=steps, method="diffdis",
                       guidance=guidance, shard=shard_index, num_shards=num_shards, shard_index=shard_index)  # fmt: skip
    images = output_dir or path.with_name(f"{path.stem}_images")
    check_writable_folder(images, "--output-dir")
    settings = {"seed": seed, "batch_size": batch_size, "scheduler": scheduler, "steps": steps, "guidance": guidance,
                "model": base["model"], "model_name": base["model_name"], "model_version": base["model_version"],
                "diffdis_version": __version__}  # fmt: skip
    have = existing(images, prompt_list, my_blocks, settings)  # images of other settings are refused here
    with progress("reference features", enabled=not (json_out or is_saved(reference))) as update:
        ref = reference_statistics(reference if reference is not None else prompt_data, feats, max_reference,
                                   data_format, image_root, callback=update)  # fmt: skip
    with progress("generating", enabled=not json_out) as update:
        made, seconds = generate_missing(pipe, prompt_list, images, my_blocks, settings, have, update)
    with progress("scoring", enabled=not json_out) as update:
        metrics, stats = score_images(pipe, images, prompt_list, my_blocks, feats, rows, clip, seed, batch_size, update)
    record = {**base, "prompts": prompts, "num_prompts": num_prompts, "reference": ref.source,
              "max_reference": max_reference, "features": feats.name, "features_id": feats.identity,
              "clip_model": None if clip_model is None else str(clip_model), "scheduler": scheduler, "steps": steps,
              "guidance": guidance, "batch_size": batch_size, "num_shards": num_shards, "shard_index": shard_index,
              "fid": fid(stats, ref), **metrics, "n": stats.n, "n_reference": ref.n, "n_generated": made,
              "seconds": seconds, "seconds_per_image": seconds / made if made else None, "images": str(images)}  # fmt: skip
    if num_shards > 1:  # what `eval build` pools to give the FID of all shards
        stats_path = save_shard_stats(path.with_name(f"{path.stem}_features.npz"),
                                      statistics_of(stats, feats.name, feats.identity, str(images)), ref)  # fmt: skip
        record["features_stats"] = stats_path.name
    record["grid"] = str(save_png(sample_grid(images, my_blocks, len(prompt_list)), grid or path.with_suffix(".png")))
    write_record(record, path)
    report([{**record, "path": str(path)}], ["scheduler", "steps", "guidance", "n", "fid", "clip_score", "diffdis_score",
                                             "judge_object_accuracy", "judge_colour_accuracy", "seconds_per_image",
                                             "path", "grid"], json_out)  # fmt: skip


def _data_name(prompts: str, prompt_data: Any) -> str:
    return prompt_data.name if prompt_data is not None else Path(prompts).stem


@command
def fid_stats(
    data: str = DATA,
    output: Path = STATS_OUTPUT,
    features: str | None = FEATURES,
    inception_weights: Path | None = INCEPTION_WEIGHTS,
    inception_style: str = INCEPTION_STYLE,
    max_samples: int | None = MAX_SAMPLES,
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images read and extracted at a time."),
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    device: str = DEVICE,
) -> None:
    """FID reference statistics of a set of images, for `eval generate --reference REF.npz` (or pytorch-fid / clean-fid)."""
    from diffdis.errors import UsageError
    from diffdis.eval.fid import choose_features
    from diffdis.eval.fid_stats import reference_statistics, save_stats

    if output.suffix != ".npz":
        raise UsageError(f"--output must end in .npz (pytorch-fid reads statistics by that suffix), got {output}")
    check_writable_folder(output.parent, "--output")
    check_feature_options(features, inception_weights, inception_style)
    if max_samples is not None and max_samples < 2:
        raise UsageError("FID statistics need at least two images")
    where, _ = resolve_placement(device, "auto")  # the extractors run in fp32 whatever the dtype
    feats = choose_features(features, inception_weights, inception_style, where)
    from diffdis.eval.data import load_eval_data

    dataset = load_eval_data(data, data_format, image_root)
    with progress("reference features", enabled=not json_out) as update:
        stats = reference_statistics(dataset, feats, max_samples, batch_size=batch_size, callback=update)
    save_stats(output, stats, data=dataset.name)
    summary = {"output": str(output), "data": dataset.name, "n": stats.n, "feature_dim": len(stats.mu), "features": feats.name,
               "features_id": feats.identity}  # fmt: skip
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"wrote {output}: {stats.n} images of {dataset.name}, {len(stats.mu)}-d {feats.name} features",
                          highlight=False)  # fmt: skip
