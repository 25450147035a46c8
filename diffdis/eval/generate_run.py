"""One generation benchmark run as a library call: prompts -> images on disk (resumable, sharded) -> FID,
CLIPScore, DiffDis score and judge accuracy -> one record, written where an --output template puts it.

`diffdis eval generate` is these functions behind flags, so a Python caller gets the same record
(`diffdis.eval.results.RECORD_KEYS["generate"]`):

    job = load_generate_job("world", num_prompts=64)
    record = generate_eval(pipe, job, choose_features("judge"), model=folder)

Loading the prompts is kept apart so a bad prompt file or shard fails before a slow model load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffdis import __version__
from diffdis.errors import UsageError
from diffdis.eval.data import EvalData
from diffdis.eval.fid import Features
from diffdis.eval.fid_stats import is_saved, reference_statistics, statistics_of
from diffdis.eval.generate import fid, sample_grid, save_shard_stats, score_images
from diffdis.eval.generated import blocks, existing, generate_missing
from diffdis.eval.results import DEFAULT_OUTPUT, record_path, run_fields, write_record
from diffdis.eval.sweep import Progress, no_progress
from diffdis.paths import check_writable_folder
from diffdis.png_record import save_png


def check_feature_options(features: str | None, inception_weights: Path | None, inception_style: str) -> None:
    """Refuse FID feature options that contradict each other, before anything loads."""
    from diffdis.eval.inception import STYLES

    if inception_weights is not None and features is not None:
        raise UsageError("pass --features or --inception-weights, not both: each chooses the FID features")
    if inception_style not in STYLES:
        raise UsageError(f"--inception-style must be one of {', '.join(STYLES)}, got {inception_style!r}")


def load_prompts(
    spec: str, count: int | None, data_format: str = "auto", image_root: Path | None = None
) -> tuple[list[str], list[dict] | None, Any]:
    """Prompts from a .txt file (one per line), or the captions of evaluation data (rows kept for the judge)."""
    from diffdis.data.formats import check_format, detect
    from diffdis.data.label_sets import read_text_file
    from diffdis.eval.data import load_eval_data
    from diffdis.eval.retrieve import caption_lists

    path = Path(spec)
    if check_format(data_format) is None and (path.suffix == ".txt" or (path.is_file() and detect(path) is None)):
        return read_text_file(path, "prompts")[:count], None, None
    dataset = load_eval_data(spec, data_format, image_root)
    rows = dataset.rows[:count]
    # a row with a list of captions (COCO-style) prompts with its first one
    return [texts[0] for texts in caption_lists([r.get("text") for r in rows], dataset.name)], rows, dataset


@dataclass
class GenerateJob:
    """What one generation run (a shard of it) makes and scores against: its prompts and its reference."""

    spec: str  # --prompts as given
    prompts: list[str]
    rows: list[dict] | None  # the prompts' data rows, for the judge (None: a prompt file)
    data: EvalData | None  # the prompts' data (None: a prompt file)
    blocks: list[range]  # this shard's blocks of prompt indices
    num_prompts: int | None = 64
    reference: str | None = None  # REF.npz or data; None: the prompts' data
    max_reference: int | None = None
    batch_size: int = 16
    num_shards: int = 1
    shard_index: int = 0
    data_format: str = "auto"
    image_root: Path | None = None

    @property
    def data_name(self) -> str:
        return self.data.name if self.data is not None else Path(self.spec).stem


def load_generate_job(
    prompts: str,
    reference: str | None = None,
    num_prompts: int | None = 64,
    max_reference: int | None = None,
    batch_size: int = 16,
    num_shards: int = 1,
    shard_index: int = 0,
    data_format: str = "auto",
    image_root: Path | None = None,
) -> GenerateJob:
    """The first `num_prompts` prompts and this shard's blocks of `batch_size` of them (block b always samples with
    seed + b, so `batch_size` is part of what the images are). A prompt file needs a `reference`."""
    prompt_list, rows, prompt_data = load_prompts(prompts, num_prompts, data_format, image_root)
    if len(prompt_list) < 2:
        raise UsageError("FID needs at least two prompts")
    if reference is None and prompt_data is None:
        raise UsageError("give --reference DATA or REF.npz: the prompts come from a text file, which holds no images")
    my_blocks = blocks(len(prompt_list), batch_size, num_shards, shard_index)
    if sum(len(b) for b in my_blocks) < 2:
        raise UsageError(
            f"shard {shard_index} of {num_shards} holds fewer than two prompts; FID needs two: use fewer shards"
        )
    return GenerateJob(
        prompts,
        prompt_list,
        rows,
        prompt_data,
        my_blocks,
        num_prompts,
        reference,
        max_reference,
        batch_size,
        num_shards,
        shard_index,
        data_format,
        image_root,
    )


def generate_eval(
    pipe: Any,
    job: GenerateJob,
    features: Features,
    *,
    clip: Any = None,
    clip_model: str | Path | None = None,
    model: str | Path | None = None,
    scheduler: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    output: str = DEFAULT_OUTPUT,
    output_dir: Path | None = None,
    grid: Path | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Generate the job's missing images (into `output_dir`, default beside the record: RECORD_images/), score
    them, write the record (and its sample grid, default the record's path with .png); the record with its
    "path". `features`: `diffdis.eval.fid.choose_features`; `clip`: a `ClipScorer` for CLIPScore and
    `clip_model` its folder, as the record names it; sampler None: the model's default."""
    # Long for one reason: the record's keys are spelled out here, in their order, as the schema (results.py).
    inf = pipe.inference
    scheduler, steps = scheduler or inf.generate_scheduler, steps or inf.generate_steps
    guidance = inf.generate_guidance if guidance is None else guidance
    base = {"task": "generate", "method": "diffdis", **run_fields(pipe, model, job.data_name, seed)}
    path = record_path(
        output,
        {
            **base,
            "scheduler": scheduler,
            "steps": steps,
            "guidance": guidance,
            "num_shards": job.num_shards,
            "shard_index": job.shard_index,
        },
    )
    images = output_dir or path.with_name(f"{path.stem}_images")
    check_writable_folder(images, "--output-dir")
    settings = {
        "seed": seed,
        "batch_size": job.batch_size,
        "scheduler": scheduler,
        "steps": steps,
        "guidance": guidance,
        "model": base["model"],
        "model_name": base["model_name"],
        "model_version": base["model_version"],
        "diffdis_version": __version__,
    }
    have = existing(images, job.prompts, job.blocks, settings)  # images of other settings are refused here
    with (no_progress if is_saved(job.reference) else progress)("reference features") as update:
        ref = reference_statistics(
            job.reference if job.reference is not None else job.data,
            features,
            job.max_reference,
            job.data_format,
            job.image_root,
            callback=update,
        )
    with progress("generating") as update:
        made, seconds = generate_missing(pipe, job.prompts, images, job.blocks, settings, have, update)
    with progress("scoring") as update:
        metrics, stats = score_images(
            pipe, images, job.prompts, job.blocks, features, job.rows, clip, seed, job.batch_size, update
        )
    record = {
        **base,
        "prompts": job.spec,
        "num_prompts": job.num_prompts,
        "reference": ref.source,
        "max_reference": job.max_reference,
        "features": features.name,
        "features_id": features.identity,
        "clip_model": None if clip_model is None else str(clip_model),
        "scheduler": scheduler,
        "steps": steps,
        "guidance": guidance,
        "batch_size": job.batch_size,
        "num_shards": job.num_shards,
        "shard_index": job.shard_index,
        "fid": fid(stats, ref),
        **metrics,
        "n": stats.n,
        "n_reference": ref.n,
        "n_generated": made,
        "seconds": seconds,
        "seconds_per_image": seconds / made if made else None,
        "images": str(images),
    }
    if job.num_shards > 1:  # what `eval build` pools to give the FID of all shards
        stats_path = save_shard_stats(
            path.with_name(f"{path.stem}_features.npz"),
            statistics_of(stats, features.name, features.identity, str(images)),
            ref,
        )
        record["features_stats"] = stats_path.name
    record["grid"] = str(save_png(sample_grid(images, job.blocks, len(job.prompts)), grid or path.with_suffix(".png")))
    write_record(record, path)
    return {**record, "path": str(path)}
