"""Gradient accumulation keeps the InfoNCE batch whole: K micro-batches give the one-big-batch gradient."""

from __future__ import annotations

import pytest
import torch

from diffdis.diffusion.schedule import training_scheduler
from diffdis.model.autoencoder import IdentityAutoencoder
from diffdis.pipeline import DiffDisPipeline
from diffdis.train.accumulation import accumulate
from diffdis.train.losses import (
    StepNoise,
    TextInputs,
    UnifiedLossSettings,
    encode_latents,
    unified_forward,
    unified_loss,
)


def _gradients(
    pipe, ids, null, images, settings, steps: int, generator_seed: int = 7
) -> tuple[dict[str, torch.Tensor], dict]:
    scheduler = training_scheduler(pipe.config.schedule)
    generator = torch.Generator().manual_seed(generator_seed)
    latents = encode_latents(IdentityAutoencoder(), images, generator)
    noise = StepNoise.draw(
        generator, settings, 1000, (0, len(ids), len(ids)), tuple(latents.shape[1:]), pipe.config.query_dim
    )

    def forward(text, latents, noise, settings):
        return unified_forward(pipe.model, pipe.text_encoder, scheduler, text, latents, noise, settings)

    params = dict(pipe.model.named_parameters()) | {f"text.{k}": v for k, v in pipe.text_encoder.named_parameters()}
    for p in params.values():
        p.grad = None
    logs = accumulate(forward, lambda loss: loss.backward(), TextInputs(ids, null), latents, noise, settings, steps)
    return {k: p.grad.clone() for k, p in params.items() if p.grad is not None}, logs


@pytest.mark.parametrize("tasks", ["both", "disc"])
def test_accumulated_gradient_equals_the_one_big_batch_gradient(config, tokenizer, tasks):
    torch.manual_seed(0)
    pipe = DiffDisPipeline.build(config, tokenizer)
    pipe.model.train()
    ids = pipe.token_ids(
        ["a red circle", "a blue square", "a green triangle", "cat", "dog", "a red square", "a cat", "blue"]
    )
    null = pipe.token_ids([""])
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    settings = UnifiedLossSettings(tasks=tasks, condition_dropout=0.0, image_dropout=0.0)
    whole, logs_whole = _gradients(pipe, ids, null, images, settings, 1)
    for steps in (2, 4):
        parts, logs_parts = _gradients(pipe, ids, null, images, settings, steps)
        assert parts.keys() == whole.keys()
        for name, grad in whole.items():
            assert torch.allclose(parts[name], grad, rtol=1e-4, atol=1e-6), (
                steps,
                name,
                (parts[name] - grad).abs().max(),
            )
        assert logs_parts["loss"] == pytest.approx(logs_whole["loss"], rel=1e-5)
    # the text encoder trains from scratch here: InfoNCE's targets get gradients through the live micro-batch too
    assert any(name.startswith("text.") for name in whole)


def test_micro_batches_that_each_took_their_own_infonce_would_differ(config, tokenizer):
    """The test above can fail: InfoNCE over 4 rows is not InfoNCE over 8 (so summing per-micro losses is wrong)."""
    torch.manual_seed(0)
    pipe = DiffDisPipeline.build(config, tokenizer)
    ids = pipe.token_ids(
        ["a red circle", "a blue square", "a green triangle", "cat", "dog", "a red square", "a cat", "blue"]
    )
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    settings = UnifiedLossSettings(tasks="disc", image_dropout=0.0)
    scheduler = training_scheduler(pipe.config.schedule)
    with torch.no_grad():
        whole, _ = unified_loss(
            pipe.model,
            pipe.text_encoder,
            IdentityAutoencoder(),
            scheduler,
            ids,
            pipe.token_ids([""]),
            images,
            settings,
            torch.Generator().manual_seed(1),
        )
        halves = [
            unified_loss(
                pipe.model,
                pipe.text_encoder,
                IdentityAutoencoder(),
                scheduler,
                ids[s],
                pipe.token_ids([""]),
                images[s],
                settings,
                torch.Generator().manual_seed(1),
                rows=(s.start, 8),
            )[0]
            for s in (slice(0, 4), slice(4, 8))
        ]
    assert abs(float(sum(halves) / 2) - float(whole)) > 1e-3
