"""The measurements of examples/gpu_check.py: FLOPs of one training step, timed training steps and their peak
memory, generate and classify throughput; a measurement that fails becomes an "error" entry, not a crash.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import torch
from gpu_check_setup import stderr

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def count_flops(trainer, batch: dict, step: int) -> dict[str, float]:
    """FLOPs of one train_step (forward and backward) and of its frozen VAE encode alone."""
    from torch.utils.flop_counter import FlopCounterMode

    from diffdis.train.losses import encode_latents

    with FlopCounterMode(display=False) as counter:
        trainer.train_step(batch, step)
    trainer.backend.step()
    pixels = batch["pixels"].to(trainer.device)
    with torch.no_grad(), FlopCounterMode(display=False) as vae:
        encode_latents(trainer.pipe.autoencoder, pixels, torch.Generator().manual_seed(0))
    return {
        "model_tflops_per_step": counter.get_total_flops() / 1e12,
        "vae_encode_tflops_per_step": vae.get_total_flops() / 1e12,
    }


def time_training(trainer, args: argparse.Namespace, flops: bool) -> dict[str, Any]:
    """Warm-up, (FLOPs once), then the timed steps."""
    from diffdis.train.reporting import peak_memory_gib

    device, stream, step = trainer.device, trainer.batches(), 0

    def one_step() -> float:
        nonlocal step
        batch = next(stream)
        sync(device)
        start = time.perf_counter()
        trainer.train_step(batch, step)
        trainer.backend.step()
        sync(device)
        step += 1
        return time.perf_counter() - start

    for _ in range(args.warmup):
        one_step()
    result: dict[str, Any] = {}
    if flops:
        result.update(count_flops(trainer, next(stream), step))
        step += 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = sum(one_step() for _ in range(args.steps))
    result.update(
        samples_per_s=args.batch_size * args.steps / seconds,
        s_per_step=seconds / args.steps,
        peak_memory_gib=peak_memory_gib(device),
    )
    return result


def failure(err: BaseException) -> dict[str, str]:
    stderr(f"gpu_check: {type(err).__name__}: {err}")
    return {"error": f"{type(err).__name__}: {err}"[:600]}


def time_call(device: torch.device, fn) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def inference_speed(pipe, args: argparse.Namespace) -> dict[str, Any]:
    """Generate and classify throughput of `pipe` in bf16 (each timed once, after a short warm-up call)."""
    pipe.model.eval()
    pipe.text_encoder.eval()
    pipe.to(dtype=torch.bfloat16)
    device, result = pipe.device, {}
    prompts = [f"a photo of a {CIFAR10[i % 10]}" for i in range(args.generate_batch)]
    images = None
    try:
        pipe.generate(prompts, num_inference_steps=2, scheduler="dpm++", guidance_scale=7.5)
        seconds, images = time_call(
            device, lambda: pipe.generate(prompts, num_inference_steps=25, scheduler="dpm++", guidance_scale=7.5)
        )
        result["generate"] = {
            "images_per_s": len(images) / seconds,
            "seconds": seconds,
            "batch": len(images),
            "steps": 25,
            "scheduler": "dpm++",
            "guidance_scale": 7.5,
            "size": images[0].size[0],
        }
    except Exception as err:  # noqa: BLE001  (a report, not a crash)
        result["generate"] = failure(err)
    try:
        from PIL import Image

        size = pipe.config.image_size
        images = images or [Image.new("RGB", (size, size), (120, 60, 200))]
        batch = [images[i % len(images)] for i in range(args.classify_images)]
        pipe.classify(batch, CIFAR10, num_inference_steps=1, scheduler="ddim")
        seconds, _ = time_call(device, lambda: pipe.classify(batch, CIFAR10, num_inference_steps=5, scheduler="ddim"))
        result["classify"] = {
            "images_per_s": len(batch) / seconds,
            "seconds": seconds,
            "images": len(batch),
            "steps": 5,
            "scheduler": "ddim",
            "labels": len(CIFAR10),
        }
    except Exception as err:  # noqa: BLE001
        result["classify"] = failure(err)
    return result
