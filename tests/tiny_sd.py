"""A tiny random Stable Diffusion v1 folder built from the diffusers / transformers classes themselves
(UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer, PNDMScheduler), for offline tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

SMALL_NEW = dict(
    query_transformer_layers=1, query_transformer_width=32, query_transformer_head_dim=16
)  # new modules, toy size
WORDS = ["a", "red", "blue", "green", "circle", "square", "car", "cat", "dog", "on", "the", "photo", "of"]


def write_clip_vocab(directory: Path) -> Path:
    """vocab.json + merges.txt of a small CLIP-style byte-level BPE: every byte, every byte + '</w>', a few
    whole words (so common words are single tokens) and the two specials last, as CLIP's own vocabulary."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab = chars + [c + "</w>" for c in chars]
    merges = []
    for word in WORDS:  # merge left to right: "r e" -> "re", "re d</w>" -> "red</w>"
        left = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merges.append(f"{left} {right}")
            left = left + right
            if left not in vocab:
                vocab.append(left)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    return directory


def make_tiny_sd(directory: Path, cross_attention_dim: int = 32, text_hidden: int = 32, seed: int = 0) -> Path:
    """Save a random SD v1-shaped pipeline (16x16 pixels, 8x8x4 latents) with save_pretrained."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(str(write_clip_vocab(directory.parent / f".{directory.name}-vocab")))
    tokenizer.model_max_length = 16
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=2,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=text_hidden,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory
