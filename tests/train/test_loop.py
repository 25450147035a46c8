import pytest
import torch
from safetensors.torch import load_file

from diffdis.data.loader import batch_indices, training_data
from diffdis.errors import DiffDisError
from diffdis.train.loop import Trainer, step_generator
from diffdis.train.losses import unified_loss
from tests.conftest import micro_config, micro_train_config


def test_batch_indices_cover_each_epoch_once_and_are_repeatable():
    n, b = 10, 4
    first_epoch = [i for s in range(2) for i in batch_indices(s, n, b, 0)] + batch_indices(2, n, b, 0)[:2]
    assert sorted(first_epoch) == list(range(n))
    assert batch_indices(7, n, b, 0) == batch_indices(7, n, b, 0)
    assert batch_indices(0, n, b, 0) != batch_indices(0, n, b, 1)


def _eval_loss(trainer: Trainer) -> float:
    batch = next(
        iter(
            training_data(
                trainer.cfg.data, image_size=trainer.pipe.config.image_size, batch_size=trainer.cfg.batch_size
            )
        )
    )
    input_ids, images = trainer.pipe.token_ids(batch["text"]), batch["pixels"]
    with torch.no_grad():
        loss, _ = unified_loss(
            trainer.pipe.model,
            trainer.pipe.text_encoder,
            trainer.pipe.autoencoder,
            trainer.scheduler,
            input_ids,
            trainer.null_ids,
            images,
            trainer.settings,
            step_generator(123, 0),
        )
    return loss.item()


def test_a_few_steps_lower_the_loss(shapes_dir, tmp_path):
    cfg = micro_train_config(shapes_dir, tmp_path, max_steps=30, checkpointing_steps=100, learning_rate=2e-3)
    trainer = Trainer(cfg, micro_config(), log=lambda m: None)
    before = _eval_loss(trainer)
    trainer.run()
    after = _eval_loss(trainer)
    assert after < 0.9 * before, (before, after)


def test_bf16_autocast_trains_fp32_weights_and_fp16_is_refused(shapes_dir, tmp_path):
    cfg = micro_train_config(
        shapes_dir,
        tmp_path / "bf16",
        max_steps=30,
        checkpointing_steps=100,
        learning_rate=2e-3,
        mixed_precision="bf16",
        ema_decay=0.9,
    )
    trainer = Trainer(cfg, micro_config(), log=lambda m: None)
    matmuls = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: (
            matmuls.append(o.dtype) if isinstance(m, torch.nn.Linear) and isinstance(o, torch.Tensor) else None
        )
    )
    try:
        trainer.train_step(next(trainer.batches()), 0)
    finally:
        handle.remove()
    assert torch.bfloat16 in matmuls  # the forward ran under autocast
    assert (
        trainer.backend.optimizer.defaults["fused"] and trainer.ema.foreach
    )  # one kernel over all tensors, not a loop
    before = _eval_loss(trainer)
    trainer.run()
    assert _eval_loss(trainer) < 0.9 * before
    assert all(p.dtype == torch.float32 for p in trainer.params)  # master weights and optimiser stay fp32
    with pytest.raises(DiffDisError, match="fp16 needs DeepSpeed"):
        Trainer(
            micro_train_config(shapes_dir, tmp_path / "fp16", mixed_precision="fp16"),
            micro_config(),
            log=lambda m: None,
        )


class _Killed(Exception):
    pass


def test_resume_continues_the_same_run_exactly(shapes_dir, tmp_path):
    def cfg(out):
        return micro_train_config(shapes_dir, out, max_steps=4, checkpointing_steps=2, ema_decay=0.9)

    curve_a: list[float] = []
    Trainer(cfg(tmp_path / "a"), micro_config(), log=lambda m: None).run(
        lambda s, n, logs: curve_a.append(logs["loss"])
    )

    curve_b: list[float] = []

    def killed_at_step_3(step, total, logs):
        curve_b.append(logs["loss"])
        if step == 3:  # after checkpoint-2 was written, before checkpoint-4
            raise _Killed

    try:
        Trainer(cfg(tmp_path / "b"), micro_config(), log=lambda m: None).run(killed_at_step_3)
    except _Killed:
        pass
    resumed = Trainer(cfg(tmp_path / "b"), micro_config(), resume_from_checkpoint="latest", log=lambda m: None)
    assert resumed.start_step == 2
    resumed.run(lambda s, n, logs: curve_b.append(logs["loss"]))
    assert curve_b[:3] + curve_b[4:] == curve_a[:3] + curve_a[3:]  # step 3 ran twice, same value
    assert curve_b[2] == curve_b[3]
    for part in (
        "unet/diffusion_pytorch_model.safetensors",
        "discriminator/model.safetensors",
        "text_encoder/model.safetensors",
    ):
        a, b = load_file(tmp_path / "a" / part), load_file(tmp_path / "b" / part)
        assert all(torch.equal(a[k], b[k]) for k in a), part
