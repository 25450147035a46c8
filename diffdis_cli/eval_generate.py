"""`diffdis eval generate` (FID, CLIPScore, DiffDis score, judge accuracy of generated images, resumable and
sharded) and `diffdis eval fid-stats` (reference statistics as pytorch-fid / clean-fid save them)."""

from __future__ import annotations

from pathlib import Path

import typer

from diffdis.paths import check_writable_folder
from diffdis_cli.common import DEVICE, DTYPE, MODEL, command, err_console, load_pipeline, print_json, resolve_placement
from diffdis_cli.eval_common import (
    DATA,
    DATA_FORMAT,
    DEFAULT_OUTPUT,
    IMAGE_ROOT,
    JSON,
    MAX_SAMPLES,
    SEED,
    SHARD_INDEX,
    bars,
    report,
)

FEATURES = typer.Option(
    None,
    "--features",
    help="FID features: judge (default), judge:DIR, or module:function mapping a "
    "list of PIL images to an (N, D) array.",
)
INCEPTION_WEIGHTS = typer.Option(
    None,
    "--inception-weights",
    help="FID with the standard Inception-v3 pool3 features: "
    "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (the same file as torch-fidelity's), "
    "from disk.",
)
INCEPTION_STYLE = typer.Option(
    "torch-fidelity",
    "--inception-style",
    help="Whose resize and scaling feed the Inception: "
    "torch-fidelity (TF1 bilinear, as TF FID), clean-fid (PIL bicubic) or pytorch-fid.",
)
CLIP_MODEL = typer.Option(
    None,
    "--clip-model",
    help="Also CLIPScore (100 * max(cos, 0), torchmetrics' scale) with this "
    "CLIPModel folder (save_pretrained, with its tokenizer and image processor).",
)
IMAGES_DIR = typer.Option(
    None,
    "--output-dir",
    help="Where the images go, one PNG per prompt (000000.png, ...); images "
    "already there are kept, so a run resumes. Default: beside the record, RECORD_images/.",
)
GRID = typer.Option(None, "--grid", help="Sample grid PNG. Default: the output path with .png.")
STATS_OUTPUT = typer.Option(
    ...,
    "--output",
    help="The .npz: mu and sigma (float64), as pytorch-fid and clean-fid save "
    "them, with n and the features that made them.",
)


@command
def generate(
    model: Path | None = MODEL,
    prompts: str = typer.Option(
        ...,
        "--prompts",
        help="A .txt file (one prompt per line), or data whose captions are the "
        "prompts (e.g. world: the held-out split; the judge then checks object and colour).",
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="FID reference: statistics from `eval fid-stats` (or "
        "pytorch-fid / clean-fid) as REF.npz, or images (data as for --data). "
        "Default: the --prompts data.",
    ),
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
    batch_size: int = typer.Option(
        16,
        "--batch-size",
        min=1,
        help="Prompts per sampling call. Block b of B prompts is "
        "always sampled together with seed + b, so B is part of what the images are.",
    ),
    num_shards: int = typer.Option(
        1, "--num-shards", min=1, help="Split the prompts into K shards (blocks of --batch-size, in turn) ..."
    ),
    shard_index: int = SHARD_INDEX,
    output: str = typer.Option(DEFAULT_OUTPUT, "--output", help="The JSON record."),
    output_dir: Path | None = IMAGES_DIR,
    grid: Path | None = GRID,
    data_format: str = DATA_FORMAT,
    image_root: Path | None = IMAGE_ROOT,
    json_out: bool = JSON,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """FID (judge or Inception features), CLIPScore, DiffDis score and judge accuracy of generated images."""
    from diffdis.eval.clip_score import ClipScorer
    from diffdis.eval.fid import choose_features
    from diffdis.eval.generate_run import check_feature_options, generate_eval, load_generate_job
    from diffdis.eval.sweep import SamplerGrid, check_shard

    check_feature_options(features, inception_weights, inception_style)
    check_shard(num_shards, shard_index)
    SamplerGrid.parse(scheduler, None if steps is None else str(steps), None if guidance is None else str(guidance))
    where, precision = resolve_placement(device, dtype)
    job = load_generate_job(
        prompts, reference, num_prompts, max_reference, batch_size, num_shards, shard_index, data_format, image_root
    )
    feats = choose_features(features, inception_weights, inception_style, where)  # a wrong file fails before any work
    clip = ClipScorer.from_pretrained(clip_model, where) if clip_model is not None else None
    pipe = load_pipeline(model, where, precision)
    record = generate_eval(
        pipe,
        job,
        feats,
        clip=clip,
        clip_model=clip_model,
        model=model,
        scheduler=scheduler,
        steps=steps,
        guidance=guidance,
        seed=seed,
        output=output,
        output_dir=output_dir,
        grid=grid,
        progress=bars(json_out),
    )
    report(
        [record],
        [
            "scheduler",
            "steps",
            "guidance",
            "n",
            "fid",
            "clip_score",
            "diffdis_score",
            "judge_object_accuracy",
            "judge_colour_accuracy",
            "seconds_per_image",
            "path",
            "grid",
        ],
        json_out,
    )


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
    """FID reference statistics of a set of images, for `eval
    generate --reference REF.npz` (or pytorch-fid / clean-fid)."""
    from diffdis.errors import UsageError
    from diffdis.eval.data import load_eval_data
    from diffdis.eval.fid import choose_features
    from diffdis.eval.fid_stats import reference_statistics, save_stats
    from diffdis.eval.generate_run import check_feature_options

    if output.suffix != ".npz":
        raise UsageError(f"--output must end in .npz (pytorch-fid reads statistics by that suffix), got {output}")
    check_writable_folder(output.parent, "--output")
    check_feature_options(features, inception_weights, inception_style)
    if max_samples is not None and max_samples < 2:
        raise UsageError("FID statistics need at least two images")
    where, _ = resolve_placement(device, "auto")  # the extractors run in fp32 whatever the dtype
    feats = choose_features(features, inception_weights, inception_style, where)
    dataset = load_eval_data(data, data_format, image_root)
    with bars(json_out)("reference features") as update:
        stats = reference_statistics(dataset, feats, max_samples, batch_size=batch_size, callback=update)
    save_stats(output, stats, data=dataset.name)
    summary = {
        "output": str(output),
        "data": dataset.name,
        "n": stats.n,
        "feature_dim": len(stats.mu),
        "features": feats.name,
        "features_id": feats.identity,
    }
    if json_out:
        print_json(summary)
    else:
        err_console.print(
            f"wrote {output}: {stats.n} images of {dataset.name}, {len(stats.mu)}-d {feats.name} features",
            highlight=False,
        )
