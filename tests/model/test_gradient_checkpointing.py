"""Gradient checkpointing: same outputs and gradients, and it really recomputes in both passes."""

import copy

import pytest
import torch

from diffdis.model.unet import DiffDisModel
from tests.conftest import micro_config


def _model(fusion: str) -> DiffDisModel:
    model = DiffDisModel(micro_config(fusion=fusion)).train()
    for block in model.discriminator.fusion.values():  # FC-out starts at zero: make the text stream matter
        torch.nn.init.normal_(block.fc_out.weight, std=0.2)
    return model


def _inputs(batch: int = 2):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(batch, 3, 16, 16, generator=g)
    c = torch.randn(batch, 16, 32, generator=g)
    e = torch.randn(batch, 32, generator=g)
    return z, c, e, torch.tensor([10, 500])


def _forward(model: DiffDisModel, mode: str) -> torch.Tensor:
    z, c, e, t = _inputs()
    return model.predict_noise(z, t, c) if mode == "noise" else model.predict_query(z, e, t, c)


def _step(model: DiffDisModel, mode: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    out = _forward(model, mode)
    out.square().mean().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("mode", ["noise", "query"])
@pytest.mark.parametrize("fusion", ["joint", "one-way"])
def test_checkpointing_keeps_outputs_and_gradients(fusion, mode):
    plain = _model(fusion)
    checkpointed = copy.deepcopy(plain)
    checkpointed.enable_gradient_checkpointing()
    out_plain, grads_plain = _step(plain, mode)
    out_ckpt, grads_ckpt = _step(checkpointed, mode)
    assert torch.equal(out_plain, out_ckpt)
    assert grads_plain.keys() == grads_ckpt.keys() and len(grads_plain) > 10
    for name, grad in grads_plain.items():
        assert torch.allclose(grad, grads_ckpt[name], rtol=1e-5, atol=1e-7), name


def _forward_calls(model: DiffDisModel, mode: str, backward: bool = True) -> dict[str, int]:
    """How often one resnet, one fusion block and one query-transformer block ran during forward + backward."""
    watched = {"resnet": model.unet.down_blocks[1].resnets[0]}
    if mode == "query":
        watched["fusion"] = next(iter(model.discriminator.fusion.values()))
        watched["query_block"] = model.discriminator.query_transformer.blocks[0]
    calls = dict.fromkeys(watched, 0)
    # pre-hooks: a recomputation stops early, once it has rebuilt what backward needs, so forward hooks may not fire
    hooks = [
        m.register_forward_pre_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1)) for k, m in watched.items()
    ]
    try:
        out = _forward(model, mode)
        if backward:
            out.square().mean().backward()
    finally:
        for hook in hooks:
            hook.remove()
    return calls


@pytest.mark.parametrize("mode", ["noise", "query"])
def test_checkpointed_blocks_run_again_in_backward(mode):
    model = _model("joint")
    assert set(_forward_calls(model, mode).values()) == {1}
    model.enable_gradient_checkpointing()
    assert set(_forward_calls(model, mode).values()) == {2}  # recomputed: their activations were not kept
    model.disable_gradient_checkpointing()
    assert set(_forward_calls(model, mode).values()) == {1}


def test_no_recomputation_without_grad_in_eval_or_when_caching():
    model = _model("one-way")
    model.enable_gradient_checkpointing()
    with torch.no_grad():
        assert set(_forward_calls(model, "query", backward=False).values()) == {1}
    assert set(_forward_calls(model.eval(), "query").values()) == {1}
    model.train()
    z, c, e, t = _inputs()
    cache = model.cache_image_stream(z, c)  # records the image stream: never checkpointed
    assert all(len(v) == 1 for k, v in cache.items() if k != "query_transformer")
    assert len(cache["query_transformer"]) == len(model.discriminator.query_transformer.blocks)
    with torch.no_grad():
        assert torch.allclose(model.predict_query_cached(cache, e, t), model.predict_query(z, e, t, c), atol=1e-5)
