"""A GPU check for the day a GPU is lent: sd15 training, generation and classification speed, one JSON line.

    python examples/gpu_check.py [--batch-size 8] [--steps 20] [--peak-tflops X]

Sized to finish in under 5 minutes on one H200 (an estimate until it has run on one). Everything is
measured at the sd15 geometry (512x512 images, the SD1.5 UNet, a CLIP-L-size text encoder, SD's
AutoencoderKL) in bf16. All weights are random, the VAE included: the numbers are speeds and say nothing
about quality. Data is the built-in `world:2000` (32x32 drawings resized to 512 by the loader), so nothing
is read from disk but what the script writes.

- training, three cases: (a) `plain`, the plain loop; (b) `plain_checkpointing`, the same with gradient
  checkpointing; (c) `zero2`, DeepSpeed ZeRO-2 on one GPU. Each gives samples/s, s/step and peak GPU memory
  (`torch.cuda.max_memory_allocated`) over `--steps` timed steps after `--warmup` steps. The clock covers
  `train_step` + `backend.step()` (the batch is fetched before it starts), with `torch.cuda.synchronize()`
  on both sides.
- MFU = FLOPs per step / s per step / peak FLOP/s. FLOPs per step: one `train_step` of case (a) (frozen VAE
  encode, text encoder, the unified loss's forward and backward; no optimiser) counted once by
  `torch.utils.flop_counter.FlopCounterMode`, outside the timing. The same model FLOPs divide all three
  cases, so checkpointing's recomputation shows as a lower MFU. Peak FLOP/s comes from a table of dense bf16
  tensor-core peaks by GPU name, or from `--peak-tflops`.
- generation: images/s at 512x512, 25 DPM-Solver++ steps with classifier-free guidance, a batch of
  `--generate-batch`; classification: images/s, 5 DDIM query steps, `--classify-images` images against the
  10 CIFAR-10 labels. Both use case (a)'s model after its few steps, cast to bf16.

ZeRO-2 runs in a process of its own: this script relaunched with `--zero2-worker` and RANK=0, WORLD_SIZE=1
(what `torchrun --nproc_per_node 1` would set; without torchrun's agent, killing the one process ends the
case, where a killed agent leaves its worker waiting on the agent's store). So its peak memory is not mixed
with the plain cases', and a crash or hang there (past `--case-timeout` seconds) becomes that case's "error"
while the rest of the report still prints. Any case that fails records an "error" string instead of its numbers.

Without a CUDA GPU it prints one line and exits 0. `--allow-cpu --tiny` runs the same code on the CPU at a toy
geometry (a random 16x16 AutoencoderKL, a micro UNet, a step or two): the test of this script.

It imports two modules beside it (copy them with it): gpu_check_setup.py (the geometry, the trainer of a case,
the peak FLOP/s) and gpu_check_timing.py (the measurements).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch
from gpu_check_setup import geometry, make_trainer, peak_tflops, random_vae
from gpu_check_timing import failure, free_memory, inference_speed, time_training

NO_GPU = "gpu_check: no CUDA GPU visible; nothing measured"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=8, help="global training batch (default 8)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per case (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps first (default 3)")
    p.add_argument("--generate-batch", type=int, default=4, help="images per timed generate call (default 4)")
    p.add_argument("--classify-images", type=int, default=16, help="images per timed classify call (default 16)")
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="the GPU's peak bf16 TFLOP/s (default: from its name)"
    )
    p.add_argument("--data", default=None, help="training data (default: world:2000; --tiny: world:200)")
    p.add_argument("--vae", default=None, help="an AutoencoderKL folder (default: a random one of the geometry)")
    p.add_argument("--case-timeout", type=int, default=180, help="seconds the ZeRO-2 process may take (default 180)")
    p.add_argument("--allow-cpu", action="store_true", help="measure on the CPU when there is no GPU")
    p.add_argument("--tiny", action="store_true", help="a toy geometry (with --allow-cpu: a test of this script)")
    p.add_argument("--zero2-worker", default=None, help=argparse.SUPPRESS)  # internal: write case (c) here
    args = p.parse_args(argv)
    args.data = args.data or ("world:200" if args.tiny else "world:2000")
    return args


# ---- ZeRO-2, in a process of its own ---------------------------------------------------------------------------
def zero2_worker(args: argparse.Namespace, device: torch.device) -> None:
    """Case (c), in its own process: rank 0 writes its numbers, or its error, to `args.zero2_worker`."""
    with tempfile.TemporaryDirectory(prefix="diffdis-gpu-check-zero2-") as out:
        try:
            trainer = make_trainer(args, device, Path(out), checkpointing=False, deepspeed="zero2")
            result, rank = time_training(trainer, args, flops=False), trainer.rank
            import deepspeed  # loaded by the trainer already

            result["deepspeed"] = deepspeed.__version__
        except Exception as err:  # noqa: BLE001  (the parent reports it as this case's error)
            result, rank = failure(err), int(os.environ.get("RANK", "0"))
        if rank == 0:
            Path(args.zero2_worker).write_text(json.dumps(result))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zero2_case(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """This script relaunched as the ZeRO-2 worker, a world of one; its numbers, or why there are none."""
    out, log = work / "zero2.json", work / "zero2.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--data",
        args.data,
        "--vae",
        args.vae,
        "--zero2-worker",
        str(out),
    ]
    command += ["--tiny"] * args.tiny + ["--allow-cpu"] * args.allow_cpu
    world = {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    # output to a file and a process group of its own: a hung worker is killed whole and blocks nothing
    with open(log, "w") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **world}, start_new_session=True
        )
        try:
            process.wait(timeout=args.case_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return {"error": f"the ZeRO-2 process took more than --case-timeout {args.case_timeout} s and was killed"}
    if not out.is_file():
        lines = [
            line for line in log.read_text(errors="replace").splitlines() if line.strip() and "WARNING" not in line
        ]
        return {"error": f"the ZeRO-2 process exited with {process.returncode}: " + " | ".join(lines[-3:])[-600:]}
    return json.loads(out.read_text())


# ---- the report ------------------------------------------------------------------------------------------------
def train_case(args: argparse.Namespace, device: torch.device, work: Path, name: str) -> tuple[dict[str, Any], Any]:
    """One plain case's numbers, and (case (a) only) its model; the trainer dies with this frame."""
    trainer = make_trainer(args, device, work / name, checkpointing=name == "plain_checkpointing")
    result = time_training(trainer, args, flops=name == "plain")
    return result, trainer.pipe if name == "plain" else None


def plain_cases(args: argparse.Namespace, device: torch.device, work: Path) -> dict[str, Any]:
    """Cases (a) and (b), and inference on (a)'s model; FLOPs counted in (a)."""
    train: dict[str, Any] = {}
    report: dict[str, Any] = {"train": train}
    for name in ("plain", "plain_checkpointing"):
        pipe = None
        try:
            train[name], pipe = train_case(args, device, work, name)
        except Exception as err:  # noqa: BLE001  (one case fails, the report still comes)
            train[name] = failure(err)
        for key in ("model_tflops_per_step", "vae_encode_tflops_per_step"):
            if key in train[name]:
                report[key] = train[name].pop(key)
        free_memory()  # the optimiser state and activations go; case (a)'s model stays for inference
        if pipe is not None:
            try:
                report.update(inference_speed(pipe, args))
            except Exception as err:  # noqa: BLE001
                report["generate"] = report["classify"] = failure(err)
            del pipe
            free_memory()
    return report


def add_mfu(report: dict[str, Any]) -> None:
    flops, peak = report.get("model_tflops_per_step"), report.get("peak_tflops")
    for case in report["train"].values():
        if "s_per_step" in case:
            case["mfu"] = flops / case["s_per_step"] / peak if flops and peak else None


def measure(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import diffusers

    started = time.perf_counter()
    peak, source = peak_tflops(device, args.peak_tflops)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "geometry": "tiny" if args.tiny else "sd15 512x512",
        "weights": "random (UNet, text encoder and AutoencoderKL): a speed check, not a quality check",
        "precision": "bf16",
        "batch_size": args.batch_size,
        "timed_steps": args.steps,
        "peak_tflops": peak,
        "peak_tflops_source": source,
        "peak_memory": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "the process's peak RSS",
    }
    with tempfile.TemporaryDirectory(prefix="diffdis-gpu-check-") as tmp:
        work = Path(tmp)
        try:
            args.vae = args.vae or random_vae(geometry(args.tiny)[1], work / "vae")
        except Exception as err:  # noqa: BLE001  (no autoencoder, no case: say why)
            return {**report, **failure(err), "seconds": time.perf_counter() - started}
        report.update(plain_cases(args, device, work))
        report["train"]["zero2"] = zero2_case(args, work)
    add_mfu(report)
    for task in ("generate", "classify"):
        report[f"{task}_images_per_s"] = report.get(task, {}).get("images_per_s")
    report["seconds"] = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print(NO_GPU)
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.zero2_worker:
        zero2_worker(args, device)
        return 0
    print(json.dumps(measure(args, device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
