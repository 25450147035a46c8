"""Start DiffDis from pretrained weights, as the paper does (SD v1 UNet + VAE, CLIP text encoder).

`init_from_sd(SD_DIR)`: a diffusers Stable Diffusion v1.x folder (unet/, vae/, text_encoder/, tokenizer/,
scheduler/, model_index.json) fixes the geometry: the UNet config, the VAE (so the model is latent), the
CLIP text encoder and its tokenizer (frozen by default [ours]) and the noise schedule. The shared UNet takes
SD's weights exactly; every module the paper adds (the dual-stream blocks' own parts, the query transformer,
the predictor, the temperature) starts from scratch, FC-out zero so training starts from SD.

`with_text_encoder(DIR)`: any local transformers text model (CLIPTextModel, BERT, MiniLM, ...) supplies
c (its token states) and e (pooled, L2-normalised). No projection is added [ours]: a from-scratch UNet takes
the encoder's width as its cross_attention_dim, and an SD UNet must already match it (or is refused).

Both return a `DiffDisPipeline` and a `WeightReport` (which tensors were loaded, new, or unused).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from diffdis.config import ModelConfig, inference_defaults
from diffdis.errors import DiffDisError
from diffdis.model.autoencoder import LatentAutoencoder, build_autoencoder
from diffdis.model.text import load_text_model, load_text_tower, load_tokenizer, text_encoder_for, text_pooling
from diffdis.model.unet import DiffDisModel
from diffdis.pipeline import DiffDisPipeline

SD_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
SCHEDULE_KEYS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "steps_offset")
MAX_TOKENS = 77  # CLIP's context; a longer encoder (BERT: 512) is cut here, captions are short
_DROP = ("_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype", "_commit_hash")


@dataclass
class WeightReport:
    """Per part: tensors taken from the pretrained files, made fresh, and found in the files but not used."""

    loaded: dict[str, list[str]] = field(default_factory=dict)
    new: dict[str, list[str]] = field(default_factory=dict)
    unused: dict[str, list[str]] = field(default_factory=dict)

    def add(self, part: str, module: torch.nn.Module, info: dict[str, list[str]] | None = None) -> None:
        info = info or {}
        missing = set(info.get("missing_keys", []))
        names = list(module.state_dict())
        self.loaded[part] = [k for k in names if k not in missing]
        self.new[part] = [k for k in names if k in missing]
        self.unused[part] = sorted(info.get("unexpected_keys", []))

    def add_new(self, part: str, module: torch.nn.Module) -> None:
        self.loaded[part], self.new[part], self.unused[part] = [], list(module.state_dict()), []

    def lines(self, show: int = 3) -> list[str]:
        def names(keys: list[str]) -> str:
            return ", ".join(keys[:show]) + (", ..." if len(keys) > show else "")

        out = []
        for part in self.loaded:
            loaded, new, unused = self.loaded[part], self.new[part], self.unused[part]
            line = f"  {part:14s} {len(loaded):5d} loaded  {len(new):5d} new  {len(unused):3d} unused"
            details = [f"new: {names(new)}" if new and loaded else "", f"unused: {names(unused)}" if unused else ""]
            out.append("  ".join([line, *filter(None, details)]))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "new": self.new, "unused": self.unused}


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DiffDisError(f"cannot read {path}: {err}") from err


def _scheduler_config(folder: Path) -> dict[str, Any]:
    files = sorted((folder / "scheduler").glob("*.json"))
    if not files:
        raise DiffDisError(f"{folder} does not fit DiffDis: scheduler/ holds no scheduler_config.json")
    return _read_config(files[0])


def check_sd_geometry(
    folder: Path, unet: dict[str, Any], vae: dict[str, Any], text: dict[str, Any], scheduler: dict[str, Any]
) -> None:
    """Refuse a folder DiffDis cannot start from, naming the first mismatch (one line)."""

    def refuse(what: str) -> None:
        raise DiffDisError(f"{folder} does not fit DiffDis: {what}")

    if unet.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        refuse(f"unet is a {unet['_class_name']}, not a UNet2DConditionModel")
    for key in ("class_embed_type", "addition_embed_type"):
        if unet.get(key):
            refuse(f"unet {key} is {unet[key]!r} (SDXL-style conditioning); only SD v1-style UNets are supported")
    if unet.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
        refuse(
            f"unet mid_block_type is {unet['mid_block_type']}; the "
            "query transformer reads a cross-attention middle block"
        )
    if not any("CrossAttn" in t for t in unet.get("down_block_types", [])):
        refuse("unet has no cross-attention down blocks, so there is nowhere to fuse the text query")
    latent = vae.get("latent_channels", 4)
    for key in ("in_channels", "out_channels"):
        if unet.get(key) != latent:
            refuse(f"unet {key} is {unet.get(key)} but vae latent_channels is {latent}")
    cross, hidden = unet.get("cross_attention_dim"), text.get("hidden_size")
    if cross != hidden:
        refuse(f"unet cross_attention_dim is {cross} but text_encoder hidden_size is {hidden}")
    if text.get("model_type") != "clip_text_model":
        refuse(f"text_encoder is a {text.get('model_type')!r} model, not a CLIP text model (clip_text_model)")
    prediction = scheduler.get("prediction_type", "epsilon")
    if prediction != "epsilon":
        refuse(f"scheduler prediction_type is {prediction!r}; diffdis trains epsilon-prediction (SD v1)")
    if scheduler.get("trained_betas"):
        refuse("scheduler has trained_betas; diffdis needs a named beta_schedule")


def _load(cls, path: Path, part: str):
    try:
        return cls.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise DiffDisError(
            f"{path.parent} does not fit DiffDis: {part} weights do not load ({str(err).splitlines()[0][:300]})"
        ) from err


def _text_config(model) -> dict[str, Any]:
    return {k: v for k, v in model.config.to_dict().items() if k not in _DROP}


def _new_modules(config: ModelConfig, unet: UNet2DConditionModel, report: WeightReport) -> DiffDisModel:
    model = DiffDisModel(config, unet=unet)  # the discriminator is built fresh around the given UNet
    report.add_new("discriminator", model.discriminator)
    return model


def init_from_sd(
    folder: str | Path, base: ModelConfig | None = None, train_text_encoder: bool = False
) -> tuple[DiffDisPipeline, WeightReport]:
    """A DiffDis pipeline whose UNet, VAE, text encoder, tokenizer and schedule come from an SD v1 folder.

    `base` supplies only the new modules' settings (fusion, query transformer size, gamma, ...)."""
    folder, base = Path(folder), base or ModelConfig()
    if not folder.is_dir():
        raise DiffDisError(f"--init-from {folder}: no such folder (give a diffusers Stable Diffusion v1 folder)")
    for part in (*SD_PARTS, "model_index.json"):
        if not (folder / part).exists():
            raise DiffDisError(f"{folder} is not a diffusers Stable Diffusion folder: {part} is missing")
    configs = {part: _read_config(folder / part / "config.json") for part in ("unet", "vae", "text_encoder")}
    scheduler = _scheduler_config(folder)
    check_sd_geometry(folder, configs["unet"], configs["vae"], configs["text_encoder"], scheduler)
    report = WeightReport()
    unet, info = _load(UNet2DConditionModel, folder / "unet", "unet")
    report.add("unet", unet, info)
    vae, info = _load(AutoencoderKL, folder / "vae", "vae")
    report.add("vae", vae, info)
    text_model, info = load_text_model(folder / "text_encoder")
    report.add("text_encoder", text_model, info)
    tokenizer = load_tokenizer(folder / "tokenizer")
    unet_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in unet.config.items() if not k.startswith("_")}
    vae_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vae.config.items() if not k.startswith("_")}
    config = dataclasses.replace(
        base,
        image_size=int(unet.config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1),
        unet=unet_cfg,
        vae=vae_cfg,
        text_encoder=_text_config(text_model),
        schedule={k: scheduler[k] for k in SCHEDULE_KEYS if k in scheduler},
        clip_sample=None,
        text_pooling="eot",
        text_max_length=None,  # CLIP's own context (77 for SD)
        text_encoder_trainable=train_text_encoder,
    )
    model = _new_modules(config, unet, report)
    pipe = DiffDisPipeline(
        model,
        text_encoder_for(config, text_model, tokenizer),
        tokenizer,
        LatentAutoencoder(vae),
        inference_defaults(config),
    )
    return _ready(pipe), report


def with_text_encoder(
    text_dir: str | Path,
    base: ModelConfig,
    train_text_encoder: bool = False,
    pipe: DiffDisPipeline | None = None,
    report: WeightReport | None = None,
) -> tuple[DiffDisPipeline, WeightReport]:
    """Use a local transformers text model as T. On its own: a from-scratch model of `base`'s geometry with
    the UNet's cross_attention_dim set to the encoder's width. With `pipe` (e.g. from `init_from_sd`): swap
    its text encoder, which must then match the UNet's cross_attention_dim."""
    text_dir, report = Path(text_dir), report or WeightReport()
    text_model, tokenizer, info = load_text_tower(text_dir)
    report.add("text_encoder", text_model, info)
    width, model_type = int(text_model.config.hidden_size), text_model.config.model_type
    pooling = text_pooling(text_dir, model_type)
    positions = int(text_model.config.max_position_embeddings)
    preset_tokens = int(base.text_encoder.get("max_position_embeddings", MAX_TOKENS))
    max_length = None if model_type == "clip_text_model" else min(positions, preset_tokens, MAX_TOKENS)
    overrides = dict(
        text_encoder=_text_config(text_model),
        text_pooling=pooling,
        text_max_length=max_length,
        text_encoder_trainable=train_text_encoder,
    )
    if pipe is not None:
        cross = pipe.model.unet.config.cross_attention_dim
        if cross != width:
            raise DiffDisError(
                f"--text-encoder {text_dir} does not fit the UNet: its hidden_size "
                f"is {width}, the UNet's cross_attention_dim is {cross}"
            )
        config = dataclasses.replace(pipe.config, **overrides)
        model = _new_modules(config, pipe.model.unet, report)  # e's width may differ: the new modules follow it
        autoencoder = pipe.autoencoder
    else:
        config = dataclasses.replace(base, unet={**base.unet, "cross_attention_dim": width}, **overrides)
        model = DiffDisModel(config)
        report.add_new("unet", model.unet)
        report.add_new("discriminator", model.discriminator)
        autoencoder = build_autoencoder(config.vae, config.patch_size)
        if config.vae is not None:
            report.add_new("vae", autoencoder.vae)
    out = DiffDisPipeline(
        model, text_encoder_for(config, text_model, tokenizer), tokenizer, autoencoder, inference_defaults(config)
    )
    return _ready(out), report


def _ready(pipe: DiffDisPipeline) -> DiffDisPipeline:
    for module in (pipe.model, pipe.text_encoder, pipe.autoencoder):
        module.eval()
    if not pipe.config.text_encoder_trainable:
        pipe.text_encoder.requires_grad_(False)
    return pipe


def build_pretrained(
    base: ModelConfig, init_from: str = "", text_encoder: str = "", train_text_encoder: bool = False, log=print
) -> DiffDisPipeline:
    """What `diffdis train --init-from / --text-encoder` starts from; logs the weight report."""
    pipe, report = None, WeightReport()
    if init_from:
        pipe, report = init_from_sd(init_from, base, train_text_encoder)
    if text_encoder:
        if pipe is not None:  # the SD text encoder is replaced: drop it from the report
            for table in (report.loaded, report.new, report.unused):
                table.pop("text_encoder", None)
        pipe, report = with_text_encoder(text_encoder, base, train_text_encoder, pipe, report)
    assert pipe is not None
    source = " + ".join(filter(None, (init_from, text_encoder)))
    frozen = "trained" if pipe.config.text_encoder_trainable else "frozen"
    log(f"initialised from {source} (text encoder {frozen}, pooling {pipe.config.text_pooling}); tensors per part:")
    for line in report.lines():
        log(line)
    return pipe
