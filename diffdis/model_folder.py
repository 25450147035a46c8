"""The model folder, in the diffusers spirit: safetensors weights and JSON configs, no pickle.

model_index.json          what this folder is, and the diffdis version that wrote it
model_config.json         ModelConfig        inference_config.json / training_config.json
unet/                     a standard diffusers UNet2DConditionModel folder (the SD part)
discriminator/            model.safetensors: every module the paper adds
text_encoder/ tokenizer/  transformers folders
scheduler/                the training noise schedule (diffusers DDPMScheduler config)
vae/                      AutoencoderKL, latent models only
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from diffdis import __version__
from diffdis.config import (
    FORMAT_VERSION,
    InferenceConfig,
    ModelConfig,
    TrainConfig,
    inference_defaults,
    load_config,
    read_json_object,
    save_config,
)
from diffdis.diffusion.schedule import training_scheduler
from diffdis.errors import DiffDisError
from diffdis.model.autoencoder import IdentityAutoencoder, LatentAutoencoder, autoencoder_dtype
from diffdis.model.text import TextEncoder, load_tokenizer, text_encoder_for
from diffdis.model.unet import DiffDisModel

INDEX = "model_index.json"
CARD_KEYS = ("name", "model_version")


@dataclass
class Components:
    model: DiffDisModel
    text_encoder: TextEncoder
    tokenizer: PreTrainedTokenizerBase
    autoencoder: IdentityAutoencoder | LatentAutoencoder
    inference: InferenceConfig
    training: TrainConfig | None = None
    card: dict[str, str] = field(default_factory=dict)  # name and model_version, for shipped/released models


def save_folder(parts: Components, directory: Path) -> None:
    """Write every part beside `directory`, then move the parts in (other files there, e.g. checkpoints/,
    are kept). A crash leaves no model_index.json, which loading reports as an incomplete folder."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Not diffdis.atomic: the parts are moved into a folder that stays (with its checkpoints/), not renamed whole.
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        cfg = parts.model.config
        (tmp / INDEX).write_text(
            json.dumps(
                {
                    "_class_name": "DiffDisPipeline",
                    "diffdis_version": __version__,
                    "format_version": FORMAT_VERSION,
                    **{k: v for k, v in parts.card.items() if k in CARD_KEYS},
                },
                indent=2,
            )
            + "\n"
        )
        save_config(cfg, tmp / "model_config.json")
        save_config(parts.inference, tmp / "inference_config.json")
        if parts.training is not None:
            save_config(parts.training, tmp / "training_config.json")
        parts.model.unet.save_pretrained(tmp / "unet", safe_serialization=True)
        (tmp / "discriminator").mkdir()
        _save_weights(parts.model.discriminator, tmp / "discriminator" / "model.safetensors")
        _save_text_model(parts.text_encoder.model, tmp / "text_encoder")
        parts.tokenizer.save_pretrained(tmp / "tokenizer")
        training_scheduler(cfg.schedule).save_pretrained(tmp / "scheduler")
        if isinstance(parts.autoencoder, LatentAutoencoder):
            parts.autoencoder.vae.save_pretrained(tmp / "vae", safe_serialization=True)
        # Move each part in; model_index.json goes last, so a folder without it is known to be incomplete.
        directory.mkdir(exist_ok=True)
        (directory / INDEX).unlink(missing_ok=True)
        for item in sorted(tmp.iterdir(), key=lambda p: p.name == INDEX):
            target = directory / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_text_model(model: PreTrainedModel, directory: Path) -> None:
    """What transformers' save_pretrained writes (config.json + model.safetensors), without its
    accelerate unwrapping, which imports deepspeed (and its stdout logging) whenever it is installed."""
    directory.mkdir()
    model.config.save_pretrained(directory)
    _save_weights(model, directory / "model.safetensors")


def _save_weights(module: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})


def _require(directory: Path, *names: str) -> None:
    for name in names:
        if not (directory / name).exists():
            raise DiffDisError(f"{directory} is not a complete diffdis model folder: {name} is missing")


def load_folder(directory: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Components:
    directory = Path(directory)
    if not directory.is_dir():
        raise DiffDisError(f"model folder {directory} does not exist; train one with `diffdis train`")
    _require(
        directory, INDEX, "model_config.json", "unet", "discriminator/model.safetensors", "text_encoder", "tokenizer"
    )
    index = read_json_object(directory / INDEX, "; restore it from the original model folder")
    if index.get("format_version", 0) > FORMAT_VERSION:
        raise DiffDisError(f"{directory} was written by a newer diffdis ({index.get('diffdis_version')}); upgrade")
    cfg = load_config(ModelConfig, directory / "model_config.json")
    inference = (
        load_config(InferenceConfig, directory / "inference_config.json")
        if (directory / "inference_config.json").exists()
        else inference_defaults(cfg)
    )
    training = (
        load_config(TrainConfig, directory / "training_config.json")
        if (directory / "training_config.json").exists()
        else None
    )
    try:
        unet = UNet2DConditionModel.from_pretrained(directory / "unet", local_files_only=True)
        text_model = AutoModel.from_pretrained(directory / "text_encoder", local_files_only=True)  # CLIP, BERT, ...
        vae = AutoencoderKL.from_pretrained(directory / "vae", local_files_only=True) if cfg.vae else None
    except (OSError, ValueError, RuntimeError) as err:
        raise DiffDisError(f"cannot load the weights in {directory}: {err}") from err
    mismatch = {k: v for k, v in cfg.unet.items() if _as_list(unet.config.get(k)) != _as_list(v)}
    if mismatch:
        key = next(iter(mismatch))
        raise DiffDisError(
            f"{directory}/unet does not fit model_config.json: {key} "
            f"is {unet.config.get(key)}, expected {mismatch[key]}"
        )
    model = DiffDisModel(cfg, unet=unet)
    try:
        model.discriminator.load_state_dict(load_file(str(directory / "discriminator" / "model.safetensors")))
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]  # torch lists every key, over many lines
        raise DiffDisError(
            f"{directory}/discriminator weights do not fit model_config.json; keep one model's weights "
            f"and configs together ({detail})"
        ) from err
    autoencoder = LatentAutoencoder(vae) if vae is not None else IdentityAutoencoder(cfg.patch_size)
    card = {
        "name": str(index.get("name") or directory.resolve().name),
        "model_version": str(index.get("model_version", "")),
        "diffdis_version": str(index.get("diffdis_version", "")),
    }
    tokenizer = load_tokenizer(directory / "tokenizer")
    parts = Components(
        model, text_encoder_for(cfg, text_model, tokenizer), tokenizer, autoencoder, inference, training, card
    )
    place(parts, device, dtype)
    return parts


def place(parts: Components, device: str | torch.device, dtype: torch.dtype) -> None:
    """Move every network to `device` in eval mode: UNet and text encoder in `dtype`, the VAE in
    `autoencoder_dtype(dtype)` (fp32 under fp16, where the SD VAE decoder overflows)."""
    parts.model.to(device=device, dtype=dtype).eval()
    parts.text_encoder.to(device=device, dtype=dtype).eval()
    parts.autoencoder.to(device=device, dtype=autoencoder_dtype(dtype)).eval()


def _as_list(value: object) -> object:
    return list(value) if isinstance(value, (list, tuple)) else value
