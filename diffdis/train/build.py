"""The DiffDis pipeline a training run starts from, built in one place: from scratch (a BPE tokenizer trained on
the captions plus pinned label sets), from pretrained weights (`--init-from SD_DIR`, `--text-encoder DIR`) and/or
with a trained autoencoder (`--vae DIR`). The trainer receives the result; resuming loads a checkpoint instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffdis.config import ModelConfig, TrainConfig
from diffdis.data.label_sets import load_labels, load_templates
from diffdis.errors import DiffDisError, UsageError
from diffdis.model.text import train_tokenizer
from diffdis.pipeline import DiffDisPipeline

# The label sets and templates a from-scratch tokenizer also learns from, so zero-shot prompts tokenise well.
# A fixed list, not "every built-in set": adding a label set (e.g. SUN397's 397 scenes) must not change the
# tokenizer, and so the model, that a recipe with the same seed trains.
TOKENIZER_LABEL_SETS = ("cifar10", "cifar100", "digits", "imagenet1k", "mnist", "world_colours", "world_objects")
TOKENIZER_TEMPLATES = ("cifar", "digits", "imagenet", "imagenet_simple", "mnist", "simple")


def tokenizer_corpus(captions: list[str]) -> list[str]:
    """Captions plus the label names and templates of TOKENIZER_LABEL_SETS / TOKENIZER_TEMPLATES."""
    extra = [label for name in TOKENIZER_LABEL_SETS for label in load_labels(name)]
    extra += [t.replace("{}", "") for name in TOKENIZER_TEMPLATES for t in load_templates(name)]
    return captions + extra


def check_model_config(config: ModelConfig, c: TrainConfig) -> None:
    """Refuse geometries that would train on nothing useful, before any data loads."""
    if c.vae and c.init_from:
        raise UsageError("--vae and --init-from both give the autoencoder; pass one (an SD folder brings its own vae/)")
    if config.vae is not None and not (c.vae or c.init_from):
        raise UsageError(
            f"--preset {config.preset} has an AutoencoderKL: pass --init-from SD_DIR (its vae/ is used) or --vae DIR "
            "(e.g. an SD folder's vae/); a random frozen VAE would train on noise"
        )
    if config.preset == "tiny-latent" and not c.vae:
        raise UsageError("--preset tiny-latent needs --vae DIR: train one with diffdis train-autoencoder")


def build_training_pipeline(
    c: TrainConfig,
    model_config: ModelConfig | None,
    captions: Callable[[int], list[str]],
    from_cache: bool = False,
    log: Callable[[str], None] = print,
) -> DiffDisPipeline:
    """A new pipeline for `c`. `captions(image_size)` gives the training captions; it is called only when the
    tokenizer is trained here (a from-scratch text encoder). The seed is set just before the weights are drawn, so
    the same TrainConfig draws the same initial weights."""
    config = model_config or ModelConfig()
    check_model_config(config, c)
    vae = None
    if c.vae:
        from diffdis.train.autoencoder import attach_autoencoder, load_autoencoder

        vae = load_autoencoder(c.vae)
        config = attach_autoencoder(config, vae)
    if c.init_from or c.text_encoder:
        from diffdis.pretrained import build_pretrained

        torch.manual_seed(c.seed)
        pipe = build_pretrained(config, c.init_from, c.text_encoder, c.train_text_encoder, log)
    else:
        if from_cache:
            raise DiffDisError(
                f"{c.data} is a frozen-encoder cache: train on it from "
                "the encoders that made it (--init-from / --text-encoder)"
            )
        max_length = config.text_encoder["max_position_embeddings"]
        tokenizer = train_tokenizer(tokenizer_corpus(captions(config.image_size)), c.vocab_size, max_length)
        torch.manual_seed(c.seed)
        pipe = DiffDisPipeline.build(config, tokenizer)
    if vae is not None:
        pipe.autoencoder.vae.load_state_dict(vae.state_dict())
    return pipe
