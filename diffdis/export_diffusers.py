"""Export the generation half of a DiffDis model as a standard diffusers `StableDiffusionPipeline` folder.

Generation mode is exactly SD's UNet forward (no text token), so the stock pipeline reproduces it:

    unet/ vae/ text_encoder/ tokenizer/ scheduler/ model_index.json      (safety_checker: None)
The discriminative modules are left out: diffusers has no pipeline for them. Only latent models with a
CLIP text encoder qualify: the pipeline always decodes with a VAE and calls a CLIPTextModel.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path

import transformers
from transformers import CLIPTextModel

from diffdis.atomic import atomic_path
from diffdis.diffusion.sample import make_scheduler
from diffdis.errors import DiffDisError
from diffdis.model.autoencoder import LatentAutoencoder


def check_exportable(pipe, source: Path) -> None:
    """Refuse, in one line, a model the stock StableDiffusionPipeline could not run."""
    if not isinstance(pipe.autoencoder, LatentAutoencoder):
        raise DiffDisError(
            f"{source} is a pixel-space model (no VAE): StableDiffusionPipeline always decodes latents with an "
            "AutoencoderKL, so only latent models export to diffusers (train with "
            "--init-from SD_DIR, --preset sd15 or --preset tiny-latent --vae DIR)"
        )
    if not isinstance(pipe.text_encoder.model, CLIPTextModel):
        kind = type(pipe.text_encoder.model).__name__
        raise DiffDisError(f"{source} has a {kind} text encoder; StableDiffusionPipeline needs a CLIPTextModel")
    if not hasattr(transformers, type(pipe.tokenizer).__name__):
        raise DiffDisError(
            f"{source}'s tokenizer ({type(pipe.tokenizer).__name__}) is not a transformers class the pipeline can load"
        )


def export_diffusers(pipe, out_dir: str | Path, source: str | Path = "the model") -> Path:
    """Write `pipe`'s UNet, VAE, text encoder, tokenizer and its default sampler as a diffusers folder."""
    from diffusers import StableDiffusionPipeline

    check_exportable(pipe, Path(source))
    out_dir = Path(out_dir)
    tokenizer = pipe.tokenizer
    tokenizer.model_max_length = pipe.text_encoder.max_length  # the pipeline pads prompts to this, as diffdis does
    sd = StableDiffusionPipeline(
        vae=pipe.autoencoder.vae,
        text_encoder=pipe.text_encoder.model,
        tokenizer=tokenizer,
        unet=pipe.model.unet,
        scheduler=make_scheduler(pipe.inference.generate_scheduler, pipe.config.schedule),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir) as tmp:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a killed process of the same id
        # transformers' save_pretrained imports deepspeed when installed, which logs to stdout
        with contextlib.redirect_stdout(sys.stderr):
            sd.save_pretrained(tmp, safe_serialization=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)  # a folder cannot be renamed over a non-empty one
    return out_dir
