"""DeepSpeed ZeRO training: the backend the one training loop (`scaffold.py`) uses under `--deepspeed`.

Launch with `deepspeed --num_gpus N --no_local_rank` or `torchrun --nproc_per_node N` (gloo on CPU, nccl on
GPUs; `--nnodes`/`--hostfile` for several machines). `--batch-size` stays the *global* batch: rank r trains rows
[r*B/N, (r+1)*B/N) of the same global batch with the same noise (`losses.StepNoise`), and L_ITA gathers across
ranks, so N ranks x B/N follow the curve of one process x B. Frozen parts (the VAE, a frozen text encoder) stay
out of the engine, so ZeRO-3 does not partition them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from diffdis.config import read_json_object
from diffdis.errors import DiffDisError
from diffdis.train.attention_kernel import training_attention
from diffdis.train.backends import TrainedModules, lr_schedule

_ZERO = {
    "zero1": {"stage": 1},
    "zero2": {"stage": 2, "overlap_comm": True, "contiguous_gradients": True},
    "zero3": {
        "stage": 3,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "stage3_gather_16bit_weights_on_model_save": True,
    },
}
_OFFLOAD = {"offload_optimizer": {"device": "cpu", "pin_memory": True}}
PRESETS = {
    **{name: {"zero_optimization": zero} for name, zero in _ZERO.items()},
    "zero2-offload": {"zero_optimization": {**_ZERO["zero2"], **_OFFLOAD}},
    "zero3-offload": {"zero_optimization": {**_ZERO["zero3"], **_OFFLOAD, "offload_param": {"device": "cpu"}}},
}


def init_distributed() -> tuple[int, int]:
    """(rank, world size). A plain `python` run becomes a world of one (DeepSpeed would look for MPI)."""
    for key, value in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29517",
    }.items():
        os.environ.setdefault(key, value)
    try:
        import deepspeed
    except ImportError as err:
        raise DiffDisError(f"--deepspeed needs DeepSpeed ({err}): pip install 'diffdis[deepspeed]'") from err

    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _derived(cfg: Any, world_size: int, mixed_precision: str | None = None) -> dict[str, Any]:
    accumulation = getattr(cfg, "gradient_accumulation_steps", 1)
    if cfg.batch_size % (world_size * accumulation):
        raise DiffDisError(
            f"--batch-size {cfg.batch_size} (the global batch) must be divisible by the {world_size} ranks"
            f" x {accumulation} accumulation steps"
        )
    precision = mixed_precision or cfg.mixed_precision
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size // (world_size * accumulation),
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": cfg.max_grad_norm,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.learning_rate,
                "betas": [cfg.adam_beta1, cfg.adam_beta2],
                "weight_decay": cfg.weight_decay,
                "torch_adam": True,
            },
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _contradictions(user: dict[str, Any], derived: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in user.items():
        if key not in derived:
            continue
        if isinstance(value, dict) and isinstance(derived[key], dict):
            out += _contradictions(value, derived[key], f"{prefix}{key}.")
        elif value != derived[key] and not (key == "type" and str(value).lower() == str(derived[key]).lower()):
            out.append(f"{prefix}{key}={value!r} (the flags give {derived[key]!r})")
    return out


def deepspeed_config(spec: str, cfg: Any, world_size: int, mixed_precision: str | None = None) -> dict[str, Any]:
    """A ZeRO preset name or a JSON file, with batch, clipping, precision and optimiser taken from the flags.

    A user file that contradicts the flags is refused rather than silently overridden.
    """
    if spec in PRESETS:
        user: dict[str, Any] = json.loads(json.dumps(PRESETS[spec]))
    else:
        if not Path(spec).is_file():
            raise DiffDisError(f"--deepspeed takes {', '.join(PRESETS)} or a JSON file; {spec} is neither")
        user = read_json_object(Path(spec))
    derived = _derived(cfg, world_size, mixed_precision)
    if "train_batch_size" in user and user["train_batch_size"] != cfg.batch_size:
        raise DiffDisError(
            f"DeepSpeed config sets train_batch_size={user['train_batch_size']}, --batch-size is {cfg.batch_size}"
        )
    if "scheduler" in user:
        raise DiffDisError("DeepSpeed config has a 'scheduler' section: set --lr-scheduler / --warmup-steps instead")
    clashes = _contradictions(user, derived)
    if clashes:
        raise DiffDisError(
            f"DeepSpeed config contradicts the command line: {clashes[0]}; drop it from the JSON or change the flag"
        )
    merged = {**derived, **{k: v for k, v in user.items() if k not in derived}}
    merged.pop("train_batch_size", None)
    return merged


def check_shared_output(output_dir: Path, rank: int, world_size: int) -> None:
    """Every rank must see the files rank 0 writes in --output-dir (checkpoints are built by all ranks in one
    folder and published by rank 0). Node-local folders fail here, at start, in one line on every rank."""
    if world_size == 1:
        return
    token = torch.tensor([int.from_bytes(os.urandom(4), "little") if rank == 0 else 0], dtype=torch.long)
    dist.broadcast(token, src=0)
    marker = Path(output_dir) / f".shared-filesystem-check-{int(token)}"
    if rank == 0:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("diffdis\n")
    dist.barrier()
    seen = torch.tensor([1 if marker.is_file() else 0], dtype=torch.long)
    dist.all_reduce(seen)
    dist.barrier()
    if rank == 0:
        marker.unlink(missing_ok=True)
    if int(seen) != world_size:
        raise DiffDisError(
            f"--output-dir {output_dir} is not shared: {world_size - int(seen)} of {world_size} ranks cannot see "
            "what rank 0 writes there; multi-node training needs a "
            "shared filesystem (NFS, Lustre, ...) for --output-dir"
        )


class DeepSpeedBackend:
    """A DeepSpeed engine around the trained modules: ZeRO 1/2/3, bf16/fp16, accumulation at its boundary."""

    def __init__(
        self,
        modules: nn.Module,
        groups: list[dict[str, Any]],
        loop: Any,
        spec: str,
        world_size: int,
        mixed_precision: str,
    ) -> None:
        import deepspeed

        config = deepspeed_config(spec, loop, world_size, mixed_precision)
        if loop.ema_decay and config.get("zero_optimization", {}).get("stage", 0) == 3:
            raise DiffDisError("--ema-decay is not supported with ZeRO-3 (the weights are partitioned); use ZeRO-1/2")
        self.modules = modules
        self.engine, self.optimizer, _, self.lr_scheduler = deepspeed.initialize(
            model=modules, model_parameters=groups, config=config, lr_scheduler=lr_schedule(loop)
        )
        self.device = self.engine.device
        self.compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision, torch.float32)

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        with training_attention(self.device):
            return self.engine(fn, *args)

    def backward(self, loss: torch.Tensor) -> None:
        # the accumulation mechanics already weigh each micro-batch (diffdis.train.accumulation): no 1/K here
        with training_attention(self.device):  # as the forward: checkpointed blocks recompute with the same kernel
            self.engine.backward(loss, scale_wrt_gas=False)
        self.engine.step()  # applies the update only at the accumulation boundary

    def step(self) -> float:
        return float(self.engine.get_global_grad_norm() or 0.0)

    def lr(self) -> float:
        return self.lr_scheduler.get_last_lr()[0]

    def save(self, directory: Path, client: dict[str, Any], rank: int) -> None:
        self.engine.save_checkpoint(str(directory / "deepspeed"), tag="state", client_state=client, save_latest=False)

    def load(self, checkpoint: Path) -> dict[str, Any]:
        if not (checkpoint / "deepspeed").is_dir():
            raise DiffDisError(f"{checkpoint} was written without DeepSpeed: resume it without --deepspeed")
        _, client = self.engine.load_checkpoint(str(checkpoint / "deepspeed"), tag="state")
        return client or {}

    def gathered(self) -> AbstractContextManager:
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(self.modules.parameters()), modifier_rank=None)

    def barrier(self) -> None:
        dist.barrier()


def export_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """A DeepSpeed checkpoint (any ZeRO stage) -> a model folder, consolidated from the shards."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from diffdis.pipeline import DiffDisPipeline

    checkpoint = Path(checkpoint)
    if not (checkpoint / "deepspeed" / "state").is_dir() or not (checkpoint / "model" / "model_index.json").is_file():
        raise DiffDisError(
            f"{checkpoint} is not a diffdis DeepSpeed checkpoint (checkpoint-N with deepspeed/ and model/)"
        )
    pipe = DiffDisPipeline.from_pretrained(checkpoint / "model")  # configs, tokenizer, frozen parts
    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint / "deepspeed"), tag="state")
    trained = {
        "model": pipe.model,
        **({"text_encoder": pipe.text_encoder} if pipe.config.text_encoder_trainable else {}),
    }
    modules = TrainedModules(**trained)
    missing, unexpected = modules.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("text_encoder.")]:
        raise DiffDisError(
            f"{checkpoint}: the shards do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    pipe.save_pretrained(out_dir)
    return Path(out_dir)
