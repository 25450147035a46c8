"""Run by the DeepSpeed tests under torchrun: train the micro model and write the loss curve (rank 0).

    python -m torch.distributed.run --nproc_per_node 2 tests/train/ds_driver.py DATA OUT STAGE STEPS CURVE [resume]
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import micro_config, micro_train_config  # noqa: E402

from diffdis.train.deepspeed import DeepSpeedTrainer  # noqa: E402


def main() -> None:
    data, out, stage, steps, curve_path = sys.argv[1:6]
    resume = "latest" if len(sys.argv) > 6 else None
    cfg = micro_train_config(Path(data), Path(out), max_steps=int(steps), checkpointing_steps=2, lr_scheduler="constant",
                             warmup_steps=0)  # fmt: skip
    trainer = DeepSpeedTrainer(cfg, stage, micro_config(), resume, log=lambda m: None)
    curve: list[float] = []
    trainer.run(lambda step, total, logs: curve.append(logs["loss"]))
    if trainer.rank == 0:
        Path(curve_path).write_text(json.dumps({"start": trainer.start_step, "curve": curve}))


if __name__ == "__main__":
    main()
