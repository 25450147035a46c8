"""Which scaled-dot-product-attention kernel training runs on CPU.

PyTorch's CPU default is its flash kernel, whose backward pass is slow for the short sequences of these models
(64 and 16 image tokens, one query token, 32 text tokens). The math kernel trains faster there: the tiny-patch2
step at batch 32 in bf16 autocast on 2 cores took a median 0.677 s with flash and 0.575 s with math, interleaved
(`python benchmarks/train_step_speed.py`; an earlier side-by-side run: 0.80 s against 0.59-0.67 s). Inference
has no backward, and there flash stays as fast or faster, so only training switches. On GPU the choice stays
PyTorch's.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def training_attention(device: torch.device) -> AbstractContextManager:
    """Wrap the forward pass of a training step (the backward follows the kernel chosen there)."""
    return sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else nullcontext()
