"""DeepSpeed ZeRO training: the single-process loop's batch, noise and loss, sharded across ranks.

Launch with `deepspeed --num_gpus N --no_local_rank` or `torchrun --nproc_per_node N` (gloo on CPU, nccl on
GPUs). `--batch-size` stays the *global* batch: rank r trains rows [r*B/N, (r+1)*B/N) of the same global batch
with the same noise (`unified_loss(rows=...)`), and L_ITA gathers across ranks, so N ranks x B/N follow the
curve of one process x B. Frozen parts (the VAE, a frozen text encoder) are passed in, never wrapped, so
ZeRO-3 does not partition them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch import nn

from diffdis.config import ModelConfig, TrainConfig, read_json_object
from diffdis.errors import DiffDisError
from diffdis.model.text import load_tokenizer
from diffdis.train.attention_kernel import training_attention
from diffdis.train.checkpoint import checkpoints_dir, publish
from diffdis.train.loop import Trainer, step_generator
from diffdis.train.losses import unified_loss

_ZERO = {
    "zero1": {"stage": 1},
    "zero2": {"stage": 2, "overlap_comm": True, "contiguous_gradients": True},
    "zero3": {"stage": 3, "overlap_comm": True, "contiguous_gradients": True, "stage3_gather_16bit_weights_on_model_save": True},
}
_OFFLOAD = {"offload_optimizer": {"device": "cpu", "pin_memory": True}}
PRESETS = {
    **{name: {"zero_optimization": zero} for name, zero in _ZERO.items()},
    "zero2-offload": {"zero_optimization": {**_ZERO["zero2"], **_OFFLOAD}},
    "zero3-offload": {"zero_optimization": {**_ZERO["zero3"], **_OFFLOAD, "offload_param": {"device": "cpu"}}},
}


def init_distributed() -> tuple[int, int]:
    """(rank, world size). A plain `python` run becomes a world of one (DeepSpeed would look for MPI)."""
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"}.items():
        os.environ.setdefault(key, value)
    try:
        import deepspeed
    except ImportError as err:
        raise DiffDisError(f"--deepspeed needs DeepSpeed ({err}): pip install 'diffdis[deepspeed]'") from err

    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _derived(cfg: TrainConfig, world_size: int) -> dict[str, Any]:
    if cfg.batch_size % world_size:
        raise DiffDisError(f"--batch-size {cfg.batch_size} (the global batch) must be divisible by the {world_size} ranks")
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size // world_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.max_grad_norm,
        "bf16": {"enabled": cfg.mixed_precision == "bf16"},
        "fp16": {"enabled": cfg.mixed_precision == "fp16"},
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": cfg.learning_rate, "betas": [cfg.adam_beta1, cfg.adam_beta2],
                       "weight_decay": cfg.weight_decay, "torch_adam": True},
        },  # fmt: skip
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


def deepspeed_config(spec: str, cfg: TrainConfig, world_size: int) -> dict[str, Any]:
    """A ZeRO preset name or a JSON file, with batch, clipping, precision and optimiser taken from the flags.

    A user file that contradicts the flags is refused rather than silently overridden.
    """
    if spec in PRESETS:
        user: dict[str, Any] = json.loads(json.dumps(PRESETS[spec]))
    else:
        if not Path(spec).is_file():
            raise DiffDisError(f"--deepspeed takes {', '.join(PRESETS)} or a JSON file; {spec} is neither")
        user = read_json_object(Path(spec))
    derived = _derived(cfg, world_size)
    if "train_batch_size" in user and user["train_batch_size"] != cfg.batch_size:
        raise DiffDisError(f"DeepSpeed config sets train_batch_size={user['train_batch_size']}, --batch-size is {cfg.batch_size}")
    if "scheduler" in user:
        raise DiffDisError("DeepSpeed config has a 'scheduler' section: set --lr-scheduler / --warmup-steps instead")
    clashes = _contradictions(user, derived)
    if clashes:
        raise DiffDisError(f"DeepSpeed config contradicts the command line: {clashes[0]}; drop it from the JSON or change the flag")
    merged = {**derived, **{k: v for k, v in user.items() if k not in derived}}
    merged.pop("train_batch_size", None)
    return merged


class TrainedModules(nn.Module):
    """What DeepSpeed wraps: the DiffDis network and, when it trains, the text encoder. Its forward is the
    unified loss, so ZeRO-3 gathers each weight exactly when a submodule runs."""

    def __init__(self, model: nn.Module, text_encoder: nn.Module | None) -> None:
        super().__init__()
        self.model = model
        self.text_encoder = text_encoder

    def forward(self, frozen_text_encoder, autoencoder, scheduler, input_ids, null_ids, images, settings, generator, rows):
        text_encoder = self.text_encoder if self.text_encoder is not None else frozen_text_encoder
        return unified_loss(self.model, text_encoder, autoencoder, scheduler, input_ids, null_ids, images, settings, generator, rows)


class DeepSpeedTrainer(Trainer):
    def __init__(self, train_config: TrainConfig, deepspeed: str, model_config: ModelConfig | None = None,
                 resume_from_checkpoint: str | None = None, log: Callable[[str], None] = print) -> None:  # fmt: skip
        self.rank, self.world_size = init_distributed()
        self.deepspeed_spec = deepspeed
        super().__init__(train_config, model_config, resume_from_checkpoint, log if self.rank == 0 else lambda m: None)

    def make_tokenizer(self, config: ModelConfig):
        """Rank 0 trains the tokenizer; the others read it, so every rank has the same vocabulary."""
        shared = checkpoints_dir(Path(self.cfg.output_dir)) / ".tokenizer"
        if self.rank == 0:
            shared.parent.mkdir(parents=True, exist_ok=True)
            super().make_tokenizer(config).save_pretrained(shared)
        dist.barrier()
        return load_tokenizer(shared)

    def setup_optimisation(self) -> None:
        import deepspeed

        c = self.cfg
        config = deepspeed_config(self.deepspeed_spec, c, self.world_size)
        if c.ema_decay and config.get("zero_optimization", {}).get("stage", 0) == 3:
            raise DiffDisError("--ema-decay is not supported with ZeRO-3 (the weights are partitioned); use ZeRO-1/2")
        trains_text = self.pipe.config.text_encoder_trainable
        self.modules = TrainedModules(self.pipe.model, self.pipe.text_encoder if trains_text else None)
        self.engine, self.optimizer, _, self.lr_scheduler = deepspeed.initialize(
            model=self.modules,
            model_parameters=[p for p in self.modules.parameters() if p.requires_grad],
            config=config,
            lr_scheduler=lambda opt: get_scheduler(c.lr_scheduler, opt, num_warmup_steps=c.warmup_steps, num_training_steps=c.max_steps),
        )
        self.pipe.autoencoder.to(self.engine.device)  # frozen parts stay out of the engine, on its device
        if not trains_text:
            self.pipe.text_encoder.to(self.engine.device)
        self.null_ids = self.null_ids.to(self.engine.device)
        # per-tensor EMA, not foreach: under ZeRO-3 diffusers then gathers one parameter at a time, where foreach
        # would gather the whole model at once on every GPU
        self.ema = EMAModel(self.params, decay=c.ema_decay) if c.ema_decay else None
        if self.checkpoint is not None:
            if not (self.checkpoint / "deepspeed").is_dir():
                raise DiffDisError(f"{self.checkpoint} was written without DeepSpeed: resume it without --deepspeed")
            _, client = self.engine.load_checkpoint(str(self.checkpoint / "deepspeed"), tag="state")
            self.start_step = int(client["step"])
            if self.ema is not None:
                self.ema.load_state_dict(client["ema"])
            self.log(f"resumed at step {self.start_step}")

    def train_step(self, step: int) -> dict[str, float]:
        self.engine.train()
        micro = self.cfg.batch_size // self.world_size
        offset = self.rank * micro
        input_ids, images = self.batch(step, slice(offset, offset + micro))
        device, dtype = self.engine.device, {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.mixed_precision, torch.float32)
        with training_attention(device):
            loss, logs = self.engine(self.pipe.text_encoder, self.pipe.autoencoder, self.scheduler, input_ids.to(device),
                                     self.null_ids.to(device), images.to(device, dtype), self.settings,
                                     step_generator(self.cfg.seed, step), (offset, self.cfg.batch_size))  # fmt: skip
        self.engine.backward(loss)
        self.engine.step()
        if self.ema is not None:
            self.ema.step(self.params)
        names = sorted(logs)
        values = torch.tensor([logs[k] for k in names], dtype=torch.float64)
        dist.all_reduce(values)  # log the global-batch means, as one process would
        logs = dict(zip(names, (values / self.world_size).tolist()))
        logs["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        logs["lr"] = self.lr_scheduler.get_last_lr()[0]
        return logs

    def _gathered(self):
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(self.modules.parameters()), modifier_rank=None)

    def save_checkpoint(self, step: int) -> Path:
        """Every rank writes its ZeRO shards; rank 0 adds the gathered model folder, then publishes."""
        root = checkpoints_dir(Path(self.cfg.output_dir))
        tmp = root / f".checkpoint-{step}.tmp"
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        client = {"step": step, **({"ema": self.ema.state_dict()} if self.ema is not None else {})}
        self.engine.save_checkpoint(str(tmp / "deepspeed"), tag="state", client_state=client, save_latest=False)
        with self._gathered():
            if self.rank == 0:
                self.pipe.save_pretrained(tmp / "model")
        dist.barrier()
        if self.rank == 0:
            publish(root, tmp, step, self.cfg.checkpoints_total_limit)
        dist.barrier()
        return root / f"checkpoint-{step}"

    def _save_model(self, directory: Path) -> None:
        with self._gathered():
            if self.rank == 0:
                super()._save_model(directory)
        dist.barrier()


def export_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """A DeepSpeed checkpoint (any ZeRO stage) -> a model folder, consolidated from the shards."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from diffdis.pipeline import DiffDisPipeline

    checkpoint = Path(checkpoint)
    if not (checkpoint / "deepspeed" / "state").is_dir() or not (checkpoint / "model" / "model_index.json").is_file():
        raise DiffDisError(f"{checkpoint} is not a diffdis DeepSpeed checkpoint (checkpoint-N with deepspeed/ and model/)")
    pipe = DiffDisPipeline.from_pretrained(checkpoint / "model")  # configs, tokenizer, frozen parts
    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint / "deepspeed"), tag="state")
    modules = TrainedModules(pipe.model, pipe.text_encoder if pipe.config.text_encoder_trainable else None)
    missing, unexpected = modules.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("text_encoder.")]:
        raise DiffDisError(f"{checkpoint}: the shards do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    pipe.save_pretrained(out_dir)
    return Path(out_dir)
