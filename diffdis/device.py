"""Where the networks run: `--device` and `--dtype` strings turned into torch objects, checked up front.

Inference and training both call these, so a bad value fails in one line (a `UsageError`, exit code 2)
before any model or data is loaded, and "auto" means the same thing everywhere: CUDA when a GPU is
visible, bf16 on GPUs that run it natively, fp32 otherwise. Nothing here touches a GPU unless CUDA is asked for.
"""

from __future__ import annotations

import os
import re

import torch

from diffdis.errors import UsageError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_CUDA = re.compile(r"cuda(?::(\d+))?")


def _no_cuda_reason() -> str:
    """Why torch sees no GPU, in the words a user can act on."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "CUDA_VISIBLE_DEVICES is empty"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU or driver"


def resolve_device(spec: str = "auto") -> torch.device:
    """auto | cpu | cuda | cuda:N (| mps where torch has it). auto: CUDA when present, else CPU."""
    name = (spec or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError("--device mps: this torch has no Apple MPS device; use --device cpu or auto")
        return torch.device("mps")
    match = _CUDA.fullmatch(name)
    if match is None:
        raise UsageError(f"--device {spec!r}: choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is visible ({_no_cuda_reason()}); use --device cpu or auto")
    if match.group(1) is not None:
        index, count = int(match.group(1)), torch.cuda.device_count()
        if index >= count:
            raise UsageError(
                f"--device {name}: only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1}); "
                "pick one of those or use --device cuda"
            )
    return torch.device(name)


def resolve_dtype(spec: str, device: torch.device | str) -> torch.dtype:
    """auto | fp32 | bf16 | fp16 for `device`. auto: bf16 on a CUDA GPU that runs it natively (Ampere and
    later), else fp32: emulated bf16 is slow, and fp16 can overflow, so it is only used when asked for."""
    name = (spec or "auto").strip().lower()
    device = torch.device(device)
    if name == "auto":
        native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native_bf16 else torch.float32
    if name not in DTYPES:
        raise UsageError(f"--dtype {spec!r}: choose auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type == "cpu":
        raise UsageError(
            "--dtype fp16 on cpu: CPU kernels for fp16 convolution are missing or slow; use --dtype bf16 or fp32"
        )
    return DTYPES[name]


def enable_tf32(device: torch.device | str | None = None) -> bool:
    """TF32 matmuls and convolutions on NVIDIA GPUs (Ampere and later): ~fp32 accuracy at several times the
    speed, what diffusers' training scripts turn on. A no-op unless `device` (default: CUDA if present) is
    CUDA; returns whether it was set. Torch keeps this flag process-wide, so it is set, never unset."""
    is_cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    if not is_cuda:
        return False
    torch.set_float32_matmul_precision("high")  # matmuls in TF32
    torch.backends.cudnn.allow_tf32 = True  # convolutions in TF32 (torch's default, kept explicit)
    return True
