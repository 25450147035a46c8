"""`diffdis train`: unified generative + discriminative training on an image-caption dataset."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import typer

from diffdis.config import ModelConfig, TrainConfig
from diffdis.paths import check_writable_folder
from diffdis.recipe import Recipe, train_defaults
from diffdis_cli.common import command, err_console, print_json, progress, quiet_libraries, step_progress

TRAIN = train_defaults()  # flag defaults come from TrainConfig, so the two cannot drift
FUSION = ModelConfig.__dataclass_fields__["fusion"].default


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether a flag was given (not left at its default): given flags override a --config file."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _train_fields(ctx: typer.Context, recipe: Recipe, flags: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields: flags given, else the --config file, else the defaults; data and output_dir from one."""
    from diffdis.errors import UsageError

    fields = {**flags, **recipe.train, **{k: v for k, v in flags.items() if _given(ctx, k)}}
    for name in ("data", "output_dir"):
        if not fields[name]:
            raise UsageError(f'give --{name.replace("_", "-")} (or "{name}" in the --config file)')
    return fields


def _model_choices(
    ctx: typer.Context, recipe: Recipe, fusion: str, query_scale: str | None, query_schedule: str | None
) -> dict[str, Any]:
    """ModelConfig fields over the preset: the --config file's
    fusion / query_scale / query_schedule, flags given win."""
    from diffdis.query_options import parse_query_scale, parse_query_schedule

    model = dict(recipe.model)
    if _given(ctx, "fusion") or "fusion" not in model:
        model["fusion"] = fusion
    if query_scale is not None:
        model["query_scale"] = parse_query_scale(query_scale)
    if query_schedule is not None:
        model["query_schedule"] = parse_query_schedule(query_schedule)
    return model


@command
def train(
    ctx: typer.Context,
    config_file: Path | None = typer.Option(
        None,
        "--config",
        help="A recipe JSON: TrainConfig fields (e.g. a model folder's training_config.json: that model's recipe) "
        "and fusion / query_scale / query_schedule. Flags given override it.",
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Image folder with metadata.jsonl, a .parquet / .csv file, shards, or built-in "
        "sets NAME, NAME/SPLIT or NAME:N joined by + (world:20000+digits). Required (here or in --config).",
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Where the model folder and checkpoints go. Required (here or in --config)."
    ),
    preset: str = typer.Option(
        TRAIN["preset"],
        "--preset",
        help="Model geometry: tiny | tiny-patch2 | tiny-latent (with --vae) | sd15 | a model_config.json file.",
    ),
    max_steps: int = typer.Option(TRAIN["max_steps"], "--max-steps"),
    batch_size: int = typer.Option(TRAIN["batch_size"], "--batch-size"),
    learning_rate: float = typer.Option(TRAIN["learning_rate"], "--learning-rate"),
    lr_scheduler: str = typer.Option(
        TRAIN["lr_scheduler"], "--lr-scheduler", help="constant, constant_with_warmup, cosine, linear, ..."
    ),
    warmup_steps: int = typer.Option(TRAIN["warmup_steps"], "--warmup-steps"),
    max_grad_norm: float = typer.Option(TRAIN["max_grad_norm"], "--max-grad-norm"),
    ema_decay: float | None = typer.Option(
        TRAIN["ema_decay"], "--ema-decay", help="Keep an EMA of the weights (e.g. 0.999)."
    ),
    seed: int = typer.Option(TRAIN["seed"], "--seed"),
    checkpointing_steps: int = typer.Option(TRAIN["checkpointing_steps"], "--checkpointing-steps"),
    checkpoints_total_limit: int | None = typer.Option(TRAIN["checkpoints_total_limit"], "--checkpoints-total-limit"),
    resume_from_checkpoint: str | None = typer.Option(
        None, "--resume-from-checkpoint", help="'latest' or a checkpoint folder."
    ),
    image_column: str = typer.Option(TRAIN["image_column"], "--image-column"),
    caption_column: str = typer.Option(TRAIN["caption_column"], "--caption-column"),
    bad_rows: str = typer.Option(
        TRAIN["bad_rows"], "--bad-rows", help="Rows without a caption or a readable image: error | skip."
    ),
    fusion: str = typer.Option(FUSION, "--fusion", help="joint (the paper) | one-way (cacheable image stream)."),
    query_scale: str | None = typer.Option(
        None,
        "--query-scale",
        help="gamma: scale of the unit-norm text query, a number or sqrt-d "
        "(unit variance per dimension). Default: the preset's.",
    ),
    query_schedule: str | None = typer.Option(
        None,
        "--query-schedule",
        help="The text query's noise schedule: image (shared, the "
        "paper) | linear | scaled-linear | cosine | a JSON object.",
    ),
    loss_alignment_weight: float = typer.Option(
        TRAIN["loss_alignment_weight"], "--lambda", help="Weight of L_ITA in L_IG + lambda * L_ITA."
    ),
    tasks: str = typer.Option(TRAIN["tasks"], "--tasks", help="both (DiffDis) | gen | disc (single-task baselines)."),
    snr_gamma: float | None = typer.Option(
        TRAIN["snr_gamma"], "--snr-gamma", help="Min-SNR-gamma weighting of L_IG (e.g. 5)."
    ),
    query_self_condition: float = typer.Option(
        TRAIN["query_self_condition"],
        "--query-self-condition",
        help="Share of samples whose noisy text query is built from the model's own first guess (0: the paper).",
    ),
    vocab_size: int = typer.Option(TRAIN["vocab_size"], "--vocab-size", help="BPE vocabulary trained on the captions."),
    init_from: str | None = typer.Option(
        None,
        "--init-from",
        help="A diffusers Stable Diffusion v1 folder: UNet, VAE, CLIP "
        "text encoder, tokenizer and schedule start from it.",
    ),
    text_encoder: str | None = typer.Option(
        None,
        "--text-encoder",
        help="A local transformers text model (CLIP text, BERT, MiniLM, ...) used as the text encoder.",
    ),
    train_text_encoder: bool = typer.Option(
        TRAIN["train_text_encoder"],
        "--train-text-encoder/--no-train-text-encoder",
        help="Fine-tune a pretrained text encoder (frozen by default).",
    ),
    vae: Path | None = typer.Option(
        None,
        "--vae",
        help="A local AutoencoderKL folder (from diffdis train-autoencoder): train a latent model with it frozen.",
    ),
    deepspeed: str | None = typer.Option(
        None,
        "--deepspeed",
        help="zero1 | zero2 | zero3 | zero2-offload | zero3-offload | CONFIG.json (launch with torchrun or deepspeed).",
    ),
    mixed_precision: str = typer.Option(
        TRAIN["mixed_precision"],
        "--mixed-precision",
        help="auto (bf16 on GPUs that support it) | no | bf16 (autocast) | fp16 (with --deepspeed).",
    ),
    device: str = typer.Option(
        TRAIN["device"], "--device", help="auto | cpu | cuda | cuda:N (DeepSpeed: each rank's own GPU)."
    ),
    gradient_accumulation_steps: int = typer.Option(
        TRAIN["gradient_accumulation_steps"],
        "--gradient-accumulation-steps",
        help="K micro-batches per step; InfoNCE still sees the whole --batch-size.",
    ),
    gradient_checkpointing: bool = typer.Option(
        TRAIN["gradient_checkpointing"],
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations in backward (generative and discriminative passes).",
    ),
    scratch_learning_rate: float | None = typer.Option(
        TRAIN["scratch_learning_rate"],
        "--scratch-learning-rate",
        help="LR of modules trained from scratch (the discriminative branch; "
        "all of a from-scratch model). Default: --learning-rate.",
    ),
    dataloader_num_workers: int = typer.Option(
        TRAIN["dataloader_num_workers"], "--dataloader-num-workers", help="Processes that decode and resize images."
    ),
    max_bad_fraction: float = typer.Option(
        TRAIN["max_bad_fraction"],
        "--max-bad-fraction",
        help="Streamed data: stop once more rows than this were unusable.",
    ),
    shuffle_buffer: int = typer.Option(
        TRAIN["shuffle_buffer"], "--shuffle-buffer", help="Streamed data: rows in each worker's shuffle buffer."
    ),
    report_to: str = typer.Option(
        TRAIN["report_to"], "--report-to", help="none | tensorboard (OUTPUT_DIR/logs.jsonl is always written)."
    ),
    validation_prompts: list[str] | None = typer.Option(
        None, "--validation-prompts", help="A prompt for the sample grid (repeat the flag)."
    ),
    validation_data: str | None = typer.Option(
        None, "--validation-data", help="Held-out captioned images for a zero-shot caption accuracy."
    ),
    validation_every: int | None = typer.Option(
        TRAIN["validation_every"], "--validation-every", help="Validate every N steps (OUTPUT_DIR/validation/)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print only a JSON summary at the end."),
) -> None:
    """Train DiffDis: L = L_IG + lambda * L_ITA on every batch. Writes a model folder to --output-dir."""
    # Long only because it maps each flag (or the --config recipe) onto TrainConfig and ModelConfig fields.
    quiet_libraries()
    from diffdis.config import preset as make_preset
    from diffdis.device import resolve_device
    from diffdis.recipe import read_recipe
    from diffdis.train.checkpoint import check_new_run
    from diffdis.train.loop import Trainer

    recipe = read_recipe(config_file) if config_file is not None else Recipe()
    flags = dict(
        data=data or "",
        output_dir=str(output_dir or ""),
        preset=preset,
        image_column=image_column,
        caption_column=caption_column,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler=lr_scheduler,
        warmup_steps=warmup_steps,
        max_grad_norm=max_grad_norm,
        ema_decay=ema_decay,
        seed=seed,
        checkpointing_steps=checkpointing_steps,
        checkpoints_total_limit=checkpoints_total_limit,
        tasks=tasks,
        loss_alignment_weight=loss_alignment_weight,
        vocab_size=vocab_size,
        snr_gamma=snr_gamma,
        query_self_condition=query_self_condition,
        mixed_precision=mixed_precision,
        bad_rows=bad_rows,
        init_from=init_from or "",
        text_encoder=text_encoder or "",
        train_text_encoder=train_text_encoder,
        vae=str(vae or ""),
        device=device,
        gradient_accumulation_steps=gradient_accumulation_steps,
        gradient_checkpointing=gradient_checkpointing,
        scratch_learning_rate=scratch_learning_rate,
        dataloader_num_workers=dataloader_num_workers,
        max_bad_fraction=max_bad_fraction,
        shuffle_buffer=shuffle_buffer,
        report_to=report_to,
        validation_prompts=list(validation_prompts or []),
        validation_data=validation_data or "",
        validation_every=validation_every,
    )
    fields = _train_fields(ctx, recipe, flags)
    output_dir, device = Path(fields["output_dir"]), fields["device"]
    if not deepspeed:
        resolve_device(device)  # --device cuda without CUDA: one line, before any data loads
    check_new_run(output_dir, resume_from_checkpoint is not None)
    check_writable_folder(output_dir, "--output-dir")
    if fields["vae"]:
        from diffdis.train.autoencoder import check_autoencoder_folder

        check_autoencoder_folder(Path(fields["vae"]))
    cfg = TrainConfig(**fields)
    model_config = make_preset(cfg.preset, **_model_choices(ctx, recipe, fusion, query_scale, query_schedule))
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun / deepspeed only rank 0 talks
    quiet = json_out or not main_process
    log = (lambda msg: None) if quiet else (lambda msg: err_console.print(msg, highlight=False))
    stdout = contextlib.nullcontext()
    if deepspeed:
        from diffdis.train.deepspeed import deepspeed_config

        deepspeed_config(deepspeed, cfg, int(os.environ.get("WORLD_SIZE", "1")))  # a bad preset or JSON fails now
        # DeepSpeed prints to stdout (its logger binds the stream on import): keep stdout for our results
        stdout = contextlib.redirect_stdout(sys.stderr)
    with stdout:
        trainer = Trainer(cfg, model_config, resume_from_checkpoint, log, deepspeed=deepspeed)
    last: dict[str, float] = {}
    with stdout, progress("training", enabled=not quiet) as update:

        def on_step(step: int, total: int, logs: dict[str, float]) -> None:
            last.update(logs, step=step)
            update(step, total)
            if step % cfg.log_every == 0 or step == total:
                log(" ".join(f"{k}={v:.4g}" for k, v in {"step": step, **logs}.items()))

        out = trainer.run(on_step)
    summary = {"model": str(out), "steps": cfg.max_steps, **last}
    if not main_process:
        return
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"model saved to {out}", highlight=False)


@command
def train_autoencoder(
    data: str = typer.Option(
        ..., "--data", help="Images to reconstruct: an image folder with metadata.jsonl, a file, or built-in sets."
    ),
    output_dir: Path = typer.Option(
        ..., "--output-dir", help="Where the AutoencoderKL folder goes (pass it to diffdis train --vae)."
    ),
    image_size: int = typer.Option(32, "--image-size", help="Pixels; the latents are image-size / 4."),
    latent_channels: int = typer.Option(4, "--latent-channels"),
    max_steps: int = typer.Option(1500, "--max-steps"),
    batch_size: int = typer.Option(64, "--batch-size"),
    learning_rate: float = typer.Option(1e-3, "--learning-rate"),
    kl_weight: float = typer.Option(1e-6, "--kl-weight", help="Weight of the KL term (LDM's KL-f4 used 1e-6)."),
    seed: int = typer.Option(0, "--seed"),
    image_column: str = typer.Option("image", "--image-column"),
    caption_column: str = typer.Option("text", "--caption-column"),
    bad_rows: str = typer.Option(
        "error", "--bad-rows", help="Rows without a caption or a readable image: error | skip."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    json_out: bool = typer.Option(False, "--json", help="Print only a JSON summary at the end."),
) -> None:
    """Train a small f=4 AutoencoderKL (32x32 images -> 8x8x4
    latents) for a latent model: --preset tiny-latent --vae DIR."""
    quiet_libraries()
    from diffdis.device import resolve_device
    from diffdis.errors import DiffDisError
    from diffdis.train.autoencoder import AutoencoderTrainConfig, train_autoencoder

    resolve_device(device)
    if (output_dir / "config.json").exists():
        raise DiffDisError(f"{output_dir} already holds an autoencoder; choose another --output-dir")
    check_writable_folder(output_dir, "--output-dir")
    cfg = AutoencoderTrainConfig(
        data=data,
        output_dir=str(output_dir),
        image_size=image_size,
        latent_channels=latent_channels,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        kl_weight=kl_weight,
        seed=seed,
        image_column=image_column,
        caption_column=caption_column,
        bad_rows=bad_rows,
        device=device,
    )
    log = (lambda msg: None) if json_out else (lambda msg: err_console.print(msg, highlight=False))
    with step_progress("training the autoencoder", not json_out, log, cfg.log_every) as (on_step, last):
        out = train_autoencoder(cfg, on_step, log)
    if json_out:
        print_json({"autoencoder": str(out), **last})
    else:
        err_console.print(f"autoencoder saved to {out}", highlight=False)
