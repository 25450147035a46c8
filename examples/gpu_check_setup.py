"""The set-up examples/gpu_check.py measures: the sd15 geometry (or a toy one for the CPU test), a random
AutoencoderKL, the trainer of one training case, and the GPU's peak bf16 FLOP/s for the MFU. Kept apart from
the measurements (`gpu_check_timing.py`) so either reads on its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s; the first match wins.
PEAK_BF16_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.5), ("H100", 989.4), ("A100", 312.0))


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tiny_vae() -> dict[str, Any]:
    """A 16x16 -> 8x8x4 AutoencoderKL of two small levels."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2,
        "block_out_channels": [8, 16],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 16,
        "scaling_factor": 1.0,
    }


def geometry(tiny: bool):
    """(ModelConfig, AutoencoderKL kwargs, tokenizer vocabulary size)."""
    from diffdis.config import preset

    if not tiny:
        config = preset("sd15")
        return config, config.vae, 4096
    unet = {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [16, 32],
        "layers_per_block": 1,
        "attention_head_dim": 2,
        "cross_attention_dim": 32,
        "norm_num_groups": 8,
    }
    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "projection_dim": 32,
    }
    config = preset(
        "tiny-latent",
        unet=unet,
        text_encoder=text,
        query_transformer_layers=2,
        query_transformer_width=32,
        query_transformer_head_dim=16,
    )
    return config, tiny_vae(), 300


def random_vae(kwargs: dict[str, Any], folder: Path) -> str:
    """A randomly initialised AutoencoderKL saved as a folder: training refuses a latent preset without one."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(**kwargs).save_pretrained(folder)
    return str(folder)


def peak_tflops(device: torch.device, given: float | None) -> tuple[float | None, str]:
    if given is not None:
        return given, "--peak-tflops"
    if device.type != "cuda":
        return None, "not a GPU: pass --peak-tflops for an MFU"
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return tflops, f"table: {key} bf16 dense"
    return None, f"{name} is not in the table: pass --peak-tflops for an MFU"


def make_trainer(
    args: argparse.Namespace, device: torch.device, out: Path, checkpointing: bool, deepspeed: str | None = None
):
    from diffdis.config import TrainConfig
    from diffdis.train.loop import Trainer

    config, _, vocab = geometry(args.tiny)
    cfg = TrainConfig(
        data=args.data,
        output_dir=str(out),
        preset=config.preset,
        max_steps=args.warmup + args.steps + 1,
        batch_size=args.batch_size,
        learning_rate=1e-4,
        lr_scheduler="constant",
        warmup_steps=0,
        mixed_precision="bf16",
        device=device.type,
        gradient_checkpointing=checkpointing,
        vae=args.vae,
        vocab_size=vocab,
        checkpointing_steps=10**9,
        log_every=10**9,
    )
    return Trainer(cfg, config, log=stderr, deepspeed=deepspeed)
