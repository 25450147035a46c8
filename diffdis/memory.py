"""How much memory training a preset needs under each DeepSpeed ZeRO preset (`diffdis env --estimate-memory`).

Model states only (16-bit weights, gradients, fp32 master weights and Adam moments), by DeepSpeed's own
formulas (`estimate_zero2_model_states_mem_needs`, `estimate_zero3_model_states_mem_needs`; ZeRO-1 the same
way with unpartitioned gradients), over parameter counts of the model built on the meta device (nothing is
allocated). The frozen parts (VAE, a frozen text encoder) sit beside the engine in fp32 on every GPU
(diffdis/train/deepspeed.py) and are added. Activations are not included: they grow with the per-GPU batch
and the resolution; examples/gpu_check.py measures the peak on a real GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffdis.config import ModelConfig

BUFFER_FACTOR = 1.5  # DeepSpeed's additional_buffer_factor default
GIB = 2**30


@dataclass
class ParameterCounts:
    trained: int  # what the optimiser steps: UNet + new modules (+ the text encoder when it trains)
    frozen: int  # VAE (+ a frozen text encoder)
    largest_layer: int  # the most parameters one module holds directly (ZeRO-3 gathers one layer at a time)


def _text_model(config: dict) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModel, CLIPTextConfig, CLIPTextModel

    model_type = config.get("model_type", "clip_text_model")
    if model_type == "clip_text_model":
        return CLIPTextModel(CLIPTextConfig(**{k: v for k, v in config.items() if k != "model_type"}))
    return AutoModel.from_config(AutoConfig.for_model(**config))


def parameter_counts(config: ModelConfig, train_text_encoder: bool | None = None) -> ParameterCounts:
    """Counts for `config`; `train_text_encoder` None follows the config (from scratch it trains)."""
    from diffusers import AutoencoderKL

    from diffdis.model.unet import DiffDisModel

    trains_text = config.text_encoder_trainable if train_text_encoder is None else train_text_encoder
    with torch.device("meta"):
        model, text = DiffDisModel(config), _text_model(config.text_encoder)
        vae = AutoencoderKL(**config.vae) if config.vae is not None else None

    def count(module: torch.nn.Module | None) -> int:
        return sum({id(p): p.numel() for p in module.parameters()}.values()) if module is not None else 0

    trained_modules = [model, text] if trains_text else [model]
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for t in trained_modules for m in t.modules())
    text_count = count(text)
    return ParameterCounts(
        trained=count(model) + (text_count if trains_text else 0),
        frozen=count(vae) + (0 if trains_text else text_count),
        largest_layer=largest,
    )


def zero2_model_states(params: int, gpus_per_node: int, nodes: int = 1, cpu_offload: bool = False) -> tuple[int, int]:
    """(CPU bytes per node, GPU bytes per GPU), as deepspeed's estimate_zero2_model_states_mem_needs."""
    total_gpus = nodes * gpus_per_node
    if cpu_offload:
        gpu = 2 * params
        cpu = params * max(4 * total_gpus, 16) * BUFFER_FACTOR
    else:  # 2: 16-bit params; 18: 16-bit + fp32 grads, fp32 params, Adam moments, partitioned
        gpu = 2 * params + int(18 * params / total_gpus)
        cpu = params * 4 * gpus_per_node * BUFFER_FACTOR
    return int(cpu), int(gpu)


def zero1_model_states(params: int, gpus_per_node: int, nodes: int = 1) -> tuple[int, int]:
    """ZeRO-1 the same way: only the optimiser side (fp32 grads, params, moments: 16 bytes) is partitioned."""
    total_gpus = nodes * gpus_per_node
    return int(params * 4 * gpus_per_node * BUFFER_FACTOR), 4 * params + int(16 * params / total_gpus)


def zero3_model_states(
    params: int,
    largest_layer: int,
    gpus_per_node: int,
    nodes: int = 1,
    cpu_offload: bool = False,
    cpu_offload_params: bool = False,
    zero_init: bool = False,
) -> tuple[int, int]:
    """(CPU bytes per node, GPU bytes per GPU), as deepspeed's estimate_zero3_model_states_mem_needs.
    zero_init False: diffdis builds the model whole, then hands it to the engine."""
    total_gpus, gpus_factor = nodes * gpus_per_node, 1 / nodes
    largest = 4 * largest_layer
    if cpu_offload:
        if cpu_offload_params:
            gpu = largest
            cpu = params * (18 * gpus_factor if zero_init else max(4 * gpus_per_node, 18 * gpus_factor)) * BUFFER_FACTOR
        else:
            gpu = largest + int(2 * params / total_gpus)
            cpu = params * (16 * gpus_factor if zero_init else max(4 * gpus_per_node, 16 * gpus_factor)) * BUFFER_FACTOR
    else:
        gpu = largest + int(18 * params / total_gpus)
        cpu = (largest_layer if zero_init else params) * 4 * gpus_per_node * BUFFER_FACTOR
    return int(cpu), int(gpu)


def estimate(counts: ParameterCounts, gpus_per_node: int = 1, nodes: int = 1) -> list[dict[str, float | str]]:
    """One row per `--deepspeed` preset: GiB per GPU (model states + frozen parts) and CPU GiB per node."""
    p, frozen_gpu = counts.trained, 4 * counts.frozen  # frozen parts: fp32, replicated on every GPU
    rows = {
        "zero1": zero1_model_states(p, gpus_per_node, nodes),
        "zero2": zero2_model_states(p, gpus_per_node, nodes),
        "zero2-offload": zero2_model_states(p, gpus_per_node, nodes, cpu_offload=True),
        "zero3": zero3_model_states(p, counts.largest_layer, gpus_per_node, nodes),
        "zero3-offload": zero3_model_states(p, counts.largest_layer, gpus_per_node, nodes, True, True),
    }
    return [
        {
            "deepspeed": name,
            "gpu_gib_per_gpu": round((gpu + frozen_gpu) / GIB, 2),
            "cpu_gib_per_node": round(cpu / GIB, 2),
        }
        for name, (cpu, gpu) in rows.items()
    ]
