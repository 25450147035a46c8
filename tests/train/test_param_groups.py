"""Parameter groups: pretrained vs from-scratch learning rates, no weight decay on norms, biases, logit scale."""

import pytest
import torch
from diffusers.optimization import get_scheduler

from diffdis.model.unet import DiffDisModel
from diffdis.pipeline import DiffDisPipeline
from diffdis.train.param_groups import parameter_groups
from tests.conftest import micro_config


@pytest.fixture
def pipe(tokenizer) -> DiffDisPipeline:
    return DiffDisPipeline.build(micro_config(), tokenizer)


def _groups(pipe: DiffDisPipeline, scratch_learning_rate: float | None = 1e-3) -> dict[str, dict]:
    model = pipe.model
    modules = {
        "unet": (model.unet, True),
        "discriminator": (model.discriminator, False),
        "text_encoder": (pipe.text_encoder, True),
    }
    groups = parameter_groups(
        modules, learning_rate=1e-5, scratch_learning_rate=scratch_learning_rate, weight_decay=0.1
    )
    return {g["name"]: g for g in groups}


def test_every_trainable_parameter_once(pipe):
    pipe.text_encoder.model.get_input_embeddings().requires_grad_(False)  # frozen parameters stay out
    groups = _groups(pipe)
    placed = [id(p) for g in groups.values() for p in g["params"]]
    trainable = [p for m in (pipe.model, pipe.text_encoder) for p in m.parameters() if p.requires_grad]
    assert len(placed) == len(set(placed)) == len(trainable)
    assert set(placed) == {id(p) for p in trainable}
    assert set(groups) == {"pretrained/decay", "pretrained/no_decay", "scratch/decay", "scratch/no_decay"}


def test_norms_biases_and_logit_scale_get_no_weight_decay(pipe):
    groups = _groups(pipe)
    no_decay = {id(p) for name, g in groups.items() if name.endswith("no_decay") for p in g["params"]}
    decay = {id(p) for name, g in groups.items() if name.endswith("/decay") for p in g["params"]}
    model = pipe.model
    norms = [
        m
        for m in (*model.modules(), *pipe.text_encoder.modules())
        if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm))
    ]
    assert len(norms) > 10 and all(id(p) in no_decay for m in norms for p in m.parameters())
    biases = [p for n, p in (*model.named_parameters(), *pipe.text_encoder.named_parameters()) if n.endswith("bias")]
    assert len(biases) > 10 and all(id(p) in no_decay for p in biases)
    assert id(model.discriminator.logit_scale.log_value) in no_decay
    weights = [
        model.unet.conv_in.weight,
        model.discriminator.fusion["mid_0"].fc_in.weight,
        pipe.text_encoder.model.get_input_embeddings().weight,
    ]
    assert all(id(p) in decay for p in weights)  # embedding tables decay, as in CLIP and open_clip
    assert all(g["weight_decay"] == (0.1 if name.endswith("/decay") else 0.0) for name, g in groups.items())


def test_pretrained_and_scratch_learning_rates(pipe):
    groups = _groups(pipe)
    scratch = {id(p) for p in pipe.model.discriminator.parameters()}
    for name, group in groups.items():
        assert group["lr"] == (1e-3 if name.startswith("scratch") else 1e-5)
        assert all((id(p) in scratch) == name.startswith("scratch") for p in group["params"])
    assert {g["lr"] for g in _groups(pipe, scratch_learning_rate=None).values()} == {1e-5}


def test_first_entry_wins_and_empty_groups_are_dropped():
    model = DiffDisModel(micro_config())
    groups = parameter_groups({"discriminator": (model.discriminator, False), "model": (model, True)}, 1e-4, None, 0.0)
    scratch = {id(p) for g in groups if g["name"].startswith("scratch") for p in g["params"]}
    assert scratch == {id(p) for p in model.discriminator.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    only_biases = torch.nn.Linear(2, 2).requires_grad_(False)
    only_biases.bias.requires_grad_(True)
    assert [g["name"] for g in parameter_groups({"m": (only_biases, True)}, 1e-4, None, 0.1)] == ["pretrained/no_decay"]


def test_an_optimiser_built_from_the_groups_steps(pipe):
    model = pipe.model
    optimizer = torch.optim.AdamW(list(_groups(pipe).values()), lr=1.0, fused=True)  # as the loop; the groups' lr wins
    before = [
        p.detach().clone() for p in (model.unet.conv_in.weight, model.discriminator.query_transformer.predictor.weight)
    ]
    model.predict_query(
        torch.randn(2, 3, 16, 16), torch.randn(2, 32), torch.tensor([1, 2]), None
    ).square().mean().backward()
    optimizer.step()
    after = (model.unet.conv_in.weight, model.discriminator.query_transformer.predictor.weight)
    assert not any(torch.equal(b, a) for b, a in zip(before, after))
    assert max((a - b).abs().max().item() for b, a in zip(before, after)) < 2e-3  # lr 1e-3 / 1e-5, not 1.0


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant_with_warmup"])
def test_lr_schedules_keep_the_ratio_between_groups(pipe, schedule):
    optimizer = torch.optim.SGD(list(_groups(pipe).values()), lr=1.0)
    lr_scheduler = get_scheduler(schedule, optimizer, num_warmup_steps=2, num_training_steps=10)
    for _ in range(6):
        optimizer.step()  # no gradients: the parameters stay, the schedule advances
        lr_scheduler.step()
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        assert lrs["scratch/decay"] > 0
        assert lrs["scratch/decay"] == pytest.approx(100 * lrs["pretrained/decay"])
        assert lrs["scratch/no_decay"] == lrs["scratch/decay"] and lrs["pretrained/no_decay"] == lrs["pretrained/decay"]
