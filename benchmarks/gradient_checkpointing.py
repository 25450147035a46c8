"""Peak memory and time of one unified-loss training step with and without gradient checkpointing.

    python benchmarks/gradient_checkpointing.py                    # sd15 UNet, 32x32 latents, batch 2, CPU
    python benchmarks/gradient_checkpointing.py --device cuda --latent-size 64 --batch-size 8 --bf16
The sd15 geometry (UNet, discriminative branch, CLIP ViT-L text tower, frozen as when it is pretrained) on
random latents of --latent-size: the VAE is skipped (it is frozen and runs the same with or without
checkpointing), so the "images" fed to the loss are latents and the autoencoder is the identity. A step is the
forward and backward pass of `unified_loss` (both tasks); the optimiser update is left out: it and its state
are the same either way. Each case runs in a fresh subprocess. Memory is the peak of its first step above what
the process held before it (weights, libraries): on CUDA max_memory_allocated, on CPU the peak resident set
(VmHWM, reset through /proc/self/clear_refs; a fresh process has no freed heap for the step to hide in). Time
is the fastest of the --steps steps that follow (the least disturbed by other load), in wall-clock seconds and
in CPU seconds of the process (all threads; on a shared CPU machine the steadier of the two). Prints one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

GIB = 2**30


def _resident_bytes(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) * 1024


def _reset_peak(device: torch.device) -> int:
    """Forget the peak so far; returns the memory held now."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    return _resident_bytes("VmRSS")


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return _resident_bytes("VmHWM")


def run_case(args: argparse.Namespace) -> dict:
    from diffdis.config import preset
    from diffdis.diffusion.schedule import training_scheduler
    from diffdis.model.text import train_tokenizer
    from diffdis.pipeline import DiffDisPipeline
    from diffdis.train.attention_kernel import training_attention
    from diffdis.train.losses import UnifiedLossSettings, unified_loss

    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = preset("sd15", vae=None, image_size=args.latent_size)  # vae=None: the loss is fed latents directly
    tokenizer = train_tokenizer(
        ["a small red car on a blue background"] * 8, 1000, cfg.text_encoder["max_position_embeddings"]
    )
    pipe = DiffDisPipeline.build(cfg, tokenizer).to(device)
    pipe.text_encoder.requires_grad_(False)
    pipe.model.train()
    if args.checkpointing:
        pipe.model.enable_gradient_checkpointing()
    scheduler = training_scheduler(cfg.schedule)
    ids = pipe.token_ids(["a small red car on a blue background"] * args.batch_size).to(device)
    null = pipe.token_ids([""]).to(device)
    latents = torch.randn(args.batch_size, cfg.latent_channels, args.latent_size, args.latent_size, device=device)
    settings = UnifiedLossSettings(tasks="both")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step(seed: int) -> None:
        pipe.model.zero_grad(set_to_none=True)
        # the backward inside the attention-kernel context too: checkpointing recomputes forwards there
        with training_attention(device):
            with autocast:
                loss, _ = unified_loss(
                    pipe.model,
                    pipe.text_encoder,
                    pipe.autoencoder,
                    scheduler,
                    ids,
                    null,
                    latents,
                    settings,
                    torch.Generator().manual_seed(seed),
                )
            loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    held = _reset_peak(device)
    step(0)
    peak = _peak(device) - held
    times, cpu_times = [], []
    for seed in range(1, args.steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        step(seed)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    grads = sum(p.numel() * p.element_size() for p in pipe.model.parameters() if p.requires_grad)
    return {
        "peak_gib": peak / GIB,
        "held_gib": held / GIB,
        "grads_gib": grads / GIB,
        "step_s": min(times),
        "cpu_s": min(cpu_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--latent-size", type=int, default=32, help="latent side; sd15 at 512 px is 64")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case, after the measured first one")
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast over fp32 weights, as --mixed-precision bf16"
    )
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)  # one case, in a child
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: CUDA is not available here")
    if args.case:
        print(json.dumps(run_case(args)))
        return

    results = {}
    for name, flag in (("off", []), ("on", ["--checkpointing"])):
        child = [sys.executable, __file__, "--case", *flag, *sys.argv[1:]]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    off, on = results["off"], results["on"]
    print(
        json.dumps(
            {
                "geometry": "sd15 UNet + branch + CLIP-L text (frozen), "
                "latents {args.latent_size}x{args.latent_size}x4",
                "device": args.device,
                "batch_size": args.batch_size,
                "bf16": args.bf16,
                "threads": torch.get_num_threads(),
                "held_before_step_gib": round(off["held_gib"], 2),
                "of_which_peak_is_gradients_gib": round(off["grads_gib"], 2),
                "peak_gib_off": round(off["peak_gib"], 2),
                "peak_gib_on": round(on["peak_gib"], 2),
                "peak_ratio_on_off": round(on["peak_gib"] / off["peak_gib"], 3),
                "step_s_off": round(off["step_s"], 2),
                "step_s_on": round(on["step_s"], 2),
                "step_time_ratio_on_off": round(on["step_s"] / off["step_s"], 3),
                "step_cpu_s_off": round(off["cpu_s"], 2),
                "step_cpu_s_on": round(on["cpu_s"], 2),
                "step_cpu_time_ratio_on_off": round(on["cpu_s"] / off["cpu_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
