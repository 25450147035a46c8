"""Where the optimiser lives: plain torch on one device (this file) or a DeepSpeed engine (`deepspeed.py`).

Both answer the loop the same way: `forward(fn, *args)` runs `fn(trained_modules, *args)` under the right
precision and attention kernel, `backward(loss)` accumulates one micro-batch's gradients, `step()` applies
them (clipping, LR schedule) and returns the gradient norm, `save`/`load` write and read optimiser state.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from diffusers.optimization import SchedulerType, get_scheduler
from torch import nn

from diffdis.errors import DiffDisError, UsageError
from diffdis.train.attention_kernel import training_attention
from diffdis.train.checkpoint import load_checkpoint_state

PRECISIONS = ("auto", "no", "bf16", "fp16")


def mixed_precision_for(spec: str, device: torch.device, deepspeed: bool) -> str:
    """no | bf16 | fp16 from --mixed-precision (auto: bf16 on GPUs that support it, else no)."""
    if spec not in PRECISIONS:
        raise UsageError(f"mixed-precision must be one of {', '.join(PRECISIONS)}, got {spec!r}")
    if spec == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    if spec == "fp16" and not deepspeed:
        raise DiffDisError(
            "--mixed-precision fp16 needs DeepSpeed (--deepspeed zero2, "
            "...) for its loss scaling; the plain loop takes bf16"
        )
    return spec


def check_lr_scheduler(name: str) -> None:
    schedules = [s.value for s in SchedulerType]
    if name not in schedules:
        raise UsageError(f"unknown --lr-scheduler {name!r}; choose one of: {', '.join(schedules)}")


def lr_schedule(loop: Any) -> Callable[[torch.optim.Optimizer], Any]:
    return lambda optimizer: get_scheduler(
        loop.lr_scheduler, optimizer, num_warmup_steps=loop.warmup_steps, num_training_steps=loop.max_steps
    )


def fused_adamw(groups: list[dict[str, Any]], loop: Any, device: torch.device) -> torch.optim.Optimizer:
    # fused AdamW: one kernel over all tensors instead of a Python loop (1-5% of a CPU step, measured)
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(
        groups,
        lr=loop.learning_rate,
        betas=(loop.adam_beta1, loop.adam_beta2),
        weight_decay=loop.weight_decay,
        fused=fused,
    )


class TrainedModules(nn.Module):
    """What the optimiser (or DeepSpeed) owns. Its forward runs `fn(self, *args)`, so every computation goes
    through the engine and ZeRO-3 gathers each weight exactly when a submodule runs."""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        for name, module in modules.items():
            setattr(self, name, module)

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self, *args)


class PlainBackend:
    """AdamW over fp32 weights on one device; bf16 autocast as accelerate's mixed precision."""

    def __init__(
        self,
        modules: nn.Module,
        groups: list[dict[str, Any]],
        loop: Any,
        device: torch.device,
        mixed_precision: str,
        make_optimizer: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
        make_lr_scheduler: Callable[[torch.optim.Optimizer], Any],
    ) -> None:
        """`make_optimizer` / `make_lr_scheduler`: the trainer's (`TrainingLoop.make_optimizer`, ...)."""
        self.modules, self.device, self.loop = modules, device, loop
        self.params = [p for group in groups for p in group["params"]]
        self.optimizer = make_optimizer(groups)
        self.lr_scheduler = make_lr_scheduler(self.optimizer)
        self.compute_dtype = torch.float32  # autocast picks bf16 per op
        self.bf16 = mixed_precision == "bf16"

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        # bf16 autocast over fp32 weights and optimiser state. tiny-patch2 at batch 32 on 2 CPU cores: 0.70-0.80 s
        # against 0.87-0.92 s per step side by side (~1.2x)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16), training_attention(self.device):
            return self.modules(fn, *args)

    def backward(self, loss: torch.Tensor) -> None:
        # the same attention kernel as the forward: gradient checkpointing recomputes it here and must see the
        # same graph (flash and math save different tensors)
        with training_attention(self.device):
            loss.backward()

    def step(self) -> float:
        # max_grad_norm inf: no clipping, the norm still reported (the grads are multiplied by exactly 1.0)
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.loop.max_grad_norm))
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def lr(self) -> float:
        return self.lr_scheduler.get_last_lr()[0]

    def save(self, directory: Path, client: dict[str, Any], rank: int) -> None:
        state = {"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(), **client}
        torch.save(state, directory / "training_state.pt")

    def load(self, checkpoint: Path) -> dict[str, Any]:
        _, state = load_checkpoint_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        return state

    def gathered(self) -> AbstractContextManager:
        return nullcontext()

    def barrier(self) -> None:
        pass
