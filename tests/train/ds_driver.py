"""Run by the DeepSpeed tests under torchrun: train the micro model and write the loss curve (rank 0).

    python -m torch.distributed.run --nproc_per_node 2 tests/train/ds_driver.py DATA OUT STAGE STEPS CURVE [resume]
DS_DRIVER_OVERRIDES (JSON) replaces TrainConfig fields, e.g. {"mixed_precision": "bf16", "ema_decay": 0.999}.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from diffdis.train.loop import DeepSpeedTrainer  # noqa: E402
from tests.conftest import micro_config, micro_train_config  # noqa: E402


def main() -> None:
    data, out, stage, steps, curve_path = sys.argv[1:6]
    resume = "latest" if len(sys.argv) > 6 else None
    overrides = json.loads(os.environ.get("DS_DRIVER_OVERRIDES", "{}"))
    cfg = micro_train_config(
        Path(data),
        Path(out),
        max_steps=int(steps),
        checkpointing_steps=2,
        lr_scheduler="constant",
        warmup_steps=0,
        **overrides,
    )
    trainer = DeepSpeedTrainer(cfg, stage, micro_config(), resume, log=lambda m: None)
    initial = [s.clone() for s in trainer.ema.shadow_params] if trainer.ema is not None else []
    curve: list[float] = []
    trainer.run(lambda step, total, logs: curve.append(logs["loss"]))
    if trainer.rank == 0:
        result = {"start": trainer.start_step, "curve": curve, "world_size": trainer.world_size}
        if trainer.ema is not None:
            shadow = trainer.ema.shadow_params
            result["ema"] = {
                "dtypes": sorted({str(s.dtype) for s in shadow}),
                "weight_dtypes": sorted({str(p.dtype) for p in trainer.params}),
                "moved": max(float((s - i).abs().max()) for s, i in zip(shadow, initial)),
                "below_bf16": max(float((s - s.bfloat16().float()).abs().max()) for s in shadow),
            }
        Path(curve_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
