"""Configs as dataclasses, serialised to JSON next to the weights.

`ModelConfig` fixes the network (what must match the weights); `TrainConfig` records how a model was
trained; `InferenceConfig` holds the sampler defaults a model folder ships with. Every choice PAPER.md
marks **[ours]** is a field here, never a constant in the code.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from diffdis.errors import DiffDisError, UsageError
from diffdis.presets import list_presets, preset_fields
from diffdis.query_options import check_schedule

FORMAT_VERSION = 1  # bump when a saved config can no longer be read by this code

T = TypeVar("T")


def _tiny(key: str) -> dict[str, Any]:
    fields = preset_fields("tiny")
    assert fields is not None, "diffdis/presets/tiny.json is missing from the installed package"
    return fields[key]


def _tiny_unet() -> dict[str, Any]:  # ModelConfig's defaults are the tiny preset's (diffdis/presets/tiny.json)
    return _tiny("unet")


def _tiny_text() -> dict[str, Any]:
    return _tiny("text_encoder")


def _pixel_schedule() -> dict[str, Any]:
    return _tiny("schedule")


TEXT_POOLINGS = ("eot", "mean", "cls", "pooler")


@dataclass
class ModelConfig:
    """The network. `unet`, `text_encoder`, `vae` and `schedule` are kwargs of the diffusers /
    transformers classes they build, so an SD folder's own configs map onto them one to one."""

    preset: str = "tiny"
    image_size: int = 32  # pixels; the latent is image_size / vae downsampling
    unet: dict[str, Any] = field(default_factory=_tiny_unet)
    text_encoder: dict[str, Any] = field(default_factory=_tiny_text)
    vae: dict[str, Any] | None = None  # None: pixel space (identity image encoder)
    schedule: dict[str, Any] = field(default_factory=_pixel_schedule)
    clip_sample: float | None = 1.0  # clamp x0 estimates while generating: pixel space 1.0, latents None [ours]
    # --- discrimination branch (new modules) ---
    fusion: str = "joint"  # "joint" (paper Fig. 3) | "one-way" (image tokens ignore the text token) [ours]
    query_transformer_layers: int = 6
    patch_size: int = 1  # pixel space: fold p x p patches into channels, the UNet runs at image_size / p [ours]
    query_transformer_width: int = 256
    query_transformer_head_dim: int = 64
    # gamma in e_t = gamma*sqrt(abar)*e0 + sqrt(1-abar)*eps: a number, or "sqrt-d" (unit variance per dimension,
    # as image latents have; follows d when a pretrained text encoder sets it) [ours]
    query_scale: float | str = 1.0
    # the text query's own noise schedule (diffusers DDPMScheduler kwargs); None: the image's `schedule` [ours]
    query_schedule: dict[str, Any] | None = None
    disc_condition: str = "null_text"  # c in discrimination mode: "null_text" (empty caption) | "skip" [ours]
    logit_scale_init: float = 1 / 0.07  # InfoNCE temperature, learnable [ours]
    logit_scale_max: float = 100.0
    text_encoder_trainable: bool = True  # from scratch: trained by both losses; pretrained: frozen [ours]
    # e from the text model [ours]: "eot" (CLIP: EOT state after the final layer norm), "mean" (mean of the
    # non-pad token states, as sentence encoders), "cls" (first token state), "pooler" (the model's pooler_output)
    text_pooling: str = "eot"
    text_max_length: int | None = None  # tokens per caption; None: the text encoder's max_position_embeddings
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.fusion not in ("joint", "one-way"):
            raise UsageError(f"fusion must be 'joint' or 'one-way', got {self.fusion!r}")
        if self.disc_condition not in ("null_text", "skip"):
            raise UsageError(f"disc_condition must be 'null_text' or 'skip', got {self.disc_condition!r}")
        if self.query_scale != "sqrt-d":
            number = isinstance(self.query_scale, (int, float)) and not isinstance(self.query_scale, bool)
            if not (number and math.isfinite(self.query_scale) and self.query_scale > 0):
                raise UsageError(f"query_scale (gamma) must be a positive number or 'sqrt-d', got {self.query_scale!r}")
        if self.query_schedule is not None:
            check_schedule(self.query_schedule, "query_schedule")
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise UsageError(
                f"patch_size must be a positive divisor of image_size {self.image_size}, got {self.patch_size}"
            )
        if self.patch_size > 1 and self.vae is not None:
            raise UsageError("patch_size folds pixels; a latent model (vae) cannot use it")
        if self.text_pooling not in TEXT_POOLINGS:
            raise UsageError(f"text_pooling must be one of {', '.join(TEXT_POOLINGS)}, got {self.text_pooling!r}")

    @property
    def query_dim(self) -> int:
        """d: width of the text query e (the text encoder's hidden size)."""
        return int(self.text_encoder["hidden_size"])

    @property
    def gamma(self) -> float:
        """The query scale as a number."""
        return math.sqrt(self.query_dim) if self.query_scale == "sqrt-d" else float(self.query_scale)

    @property
    def query_noise_schedule(self) -> dict[str, Any]:
        """The schedule that noises the text query: its own, or the image's."""
        return self.schedule if self.query_schedule is None else self.query_schedule

    @property
    def latent_size(self) -> int:
        if self.vae is None:
            return self.image_size // self.patch_size
        return self.image_size // 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.unet["in_channels"])


@dataclass
class InferenceConfig:
    """Sampler defaults shipped with a model (chosen by measurement, overridable per call)."""

    generate_scheduler: str = "dpm++"
    generate_steps: int = 25
    generate_guidance: float = 7.5
    query_scheduler: str = "ddim"
    query_steps: int = 5
    query_guidance: float = 1.0  # s in f(null) + s*(f(z) - f(null)); the paper's w = s - 1


def inference_defaults(config: ModelConfig) -> InferenceConfig:
    """Latent (SD-style) models: DPM-Solver++ 25 steps, s = 7.5 as diffusers' SD default. Pixel-space models
    trained briefly on CPU leave visible noise with deterministic samplers; ancestral DDPM with 50 steps and
    s = 3 gave the cleanest samples of the tiny preset (README). Discrimination: DDIM, 5 steps, no guidance:
    on the shapes world 1 to 10 steps and s in {1, 2, 4} all scored the same (benchmarks/shapes_sweep.py)."""
    if config.vae is None:
        return InferenceConfig(generate_scheduler="ddpm", generate_steps=50, generate_guidance=3.0)
    return InferenceConfig()


@dataclass
class TrainConfig:
    """How a model is (or was) trained; saved as training_config.json in the model folder."""

    data: str = ""
    output_dir: str = ""
    preset: str = "tiny"
    image_column: str = "image"
    caption_column: str = "text"
    max_steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    lr_scheduler: str = "cosine"  # any diffusers.optimization scheduler name
    warmup_steps: int = 50
    max_grad_norm: float = 1.0
    ema_decay: float | None = None  # None: no EMA
    seed: int = 0
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    tasks: str = "both"  # "both" (DiffDis) | "gen" | "disc": single-task baselines
    loss_alignment_weight: float = 1.0  # lambda in L = L_IG + lambda * L_ITA [ours]
    condition_dropout: float = 0.1  # p of dropping c in the generative pass [ours]
    image_dropout: float = 0.1  # p of dropping the image in the discriminative pass [ours]
    snr_gamma: float | None = None  # Min-SNR-gamma weighting of L_IG (e.g. 5.0); None: plain MSE as the paper
    # share of discrimination samples whose e_t is built from the model's own first guess (from pure noise, no
    # gradient) instead of the true e0, so it learns to correct a guess as the sampler asks it to [ours]
    query_self_condition: float = 0.0
    mixed_precision: str = (
        "auto"  # "auto" (bf16 on GPUs that support it) | "no" | "bf16" (autocast, fp32 weights) | "fp16" (DeepSpeed)
    )
    device: str = "auto"  # auto | cpu | cuda | cuda:N (DeepSpeed runs use each rank's own GPU)
    gradient_accumulation_steps: int = 1  # K micro-batches per step; the InfoNCE batch stays whole
    gradient_checkpointing: bool = False  # recompute activations in backward, both passes
    scratch_learning_rate: float | None = None  # modules trained from scratch; None: learning_rate
    dataloader_num_workers: int = 0  # decode and resize on this many worker processes
    max_bad_fraction: float = 0.01  # streamed data: stop once more rows than this were unusable
    shuffle_buffer: int = 1000  # streamed data: rows per worker's shuffle buffer
    report_to: str = "none"  # none | tensorboard (logs.jsonl is always written)
    validation_prompts: list[str] = field(default_factory=list)
    validation_data: str = ""  # captioned images for a held-out zero-shot caption accuracy
    validation_every: int | None = None  # steps between validations
    vocab_size: int = 4096  # size of the BPE tokenizer trained on the captions (from-scratch text encoder)
    init_from: str = ""  # a diffusers Stable Diffusion v1 folder the model starts from (diffdis/pretrained.py)
    text_encoder: str = ""  # a local transformers text model used as T instead of a from-scratch one
    train_text_encoder: bool = False  # fine-tune a pretrained text encoder (from scratch it always trains)
    vae: str = ""  # a local AutoencoderKL folder (diffdis train-autoencoder): a latent model with that frozen V/D
    log_every: int = 10
    bad_rows: str = "error"  # rows without a caption or a readable image: "error" (name the first) | "skip"
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "checkpointing_steps", "vocab_size", "log_every"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise UsageError(f"warmup-steps must not be negative, got {self.warmup_steps}")
        if not self.max_grad_norm > 0:
            raise UsageError(f"max-grad-norm must be positive, got {self.max_grad_norm}")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise UsageError(f"checkpoints-total-limit must be at least 1, got {self.checkpoints_total_limit}")
        if not 0 < self.learning_rate < float("inf"):  # NaN fails too
            raise UsageError(f"learning-rate must be positive, got {self.learning_rate}")
        for name in ("condition_dropout", "image_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UsageError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.tasks not in ("both", "gen", "disc"):
            raise UsageError(f"tasks must be 'both', 'gen' or 'disc', got {self.tasks!r}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise UsageError(f"mixed-precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.gradient_accumulation_steps < 1:
            raise UsageError(f"gradient-accumulation-steps must be at least 1, got {self.gradient_accumulation_steps}")
        if self.batch_size % self.gradient_accumulation_steps:
            raise UsageError(
                f"--batch-size {self.batch_size} must be divisible by "
                f"--gradient-accumulation-steps {self.gradient_accumulation_steps}"
            )
        if self.scratch_learning_rate is not None and not 0 < self.scratch_learning_rate < float("inf"):
            raise UsageError(f"scratch-learning-rate must be positive, got {self.scratch_learning_rate}")
        if self.dataloader_num_workers < 0:
            raise UsageError(f"dataloader-num-workers must not be negative, got {self.dataloader_num_workers}")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise UsageError(f"max-bad-fraction must be in [0, 1], got {self.max_bad_fraction}")
        if self.shuffle_buffer < 1:
            raise UsageError(f"shuffle-buffer must be at least 1, got {self.shuffle_buffer}")
        if self.report_to not in ("none", "tensorboard"):
            raise UsageError(f"report-to must be none or tensorboard, got {self.report_to!r}")
        if self.validation_every is not None and self.validation_every <= 0:
            raise UsageError(f"validation-every must be positive, got {self.validation_every}")
        if self.validation_every is not None and not (self.validation_prompts or self.validation_data):
            raise UsageError("--validation-every needs --validation-prompts or --validation-data")
        if not 0.0 <= self.query_self_condition <= 1.0:
            raise UsageError(f"query-self-condition must be in [0, 1], got {self.query_self_condition}")
        if self.snr_gamma is not None and self.snr_gamma <= 0:
            raise UsageError(f"snr-gamma must be positive, got {self.snr_gamma}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise UsageError(f"ema-decay must be in (0, 1), got {self.ema_decay}")
        if self.bad_rows not in ("error", "skip"):
            raise UsageError(f"bad-rows must be 'error' or 'skip', got {self.bad_rows!r}")


PRESETS = list_presets()  # the files in diffdis/presets/


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named geometry (diffdis/presets/NAME.json) or a
    model_config.json file; `overrides` replace top-level fields."""
    if name.endswith(".json"):
        return dataclasses.replace(load_config(ModelConfig, Path(name)), **overrides)
    fields = preset_fields(name)
    if fields is None:
        raise UsageError(
            f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}, or a model_config.json file"
        )
    return ModelConfig(**{**fields, "preset": name, **overrides})


def to_json(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True)


def save_config(cfg: Any, path: Path) -> None:
    Path(path).write_text(to_json(cfg) + "\n", encoding="utf-8")


def read_json_object(path: Path, hint: str = "") -> dict[str, Any]:
    """A JSON file holding an object, or one clear error (missing, not JSON, not an object)."""
    path = Path(path)
    if not path.is_file():
        raise DiffDisError(f"missing JSON file {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DiffDisError(f"{path} is not valid JSON ({err}){hint}") from err
    if not isinstance(data, dict):
        raise DiffDisError(f"{path} must hold a JSON object")
    return data


def load_config(cls: type[T], path: Path) -> T:
    """Read a config JSON; unknown keys or a newer format are refused with a clear message."""
    data = read_json_object(path, "; restore it from the original model folder")
    version = data.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise DiffDisError(f"{path} was written by a newer diffdis (format {version}); upgrade diffdis")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise DiffDisError(f"{path} has unknown keys {unknown}: written by another diffdis version?")
    try:
        return cls(**data)
    except TypeError as err:
        raise DiffDisError(f"{path}: {err}") from err
