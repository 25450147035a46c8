import math

import pytest
import torch
import torch.nn.functional as F

from diffdis.diffusion.schedule import training_scheduler
from diffdis.model.autoencoder import IdentityAutoencoder
from diffdis.model.text import TextEncoder, build_text_model, tokenize
from diffdis.model.unet import DiffDisModel
from diffdis.train.losses import UnifiedLossSettings, loss_alignment, loss_generative, unified_loss


def test_loss_alignment_hand_computed_two_by_two():
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scale = torch.tensor(2.0)
    loss, acc = loss_alignment(pred, text, scale)
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))  # same for both rows and both directions
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert acc.item() == 1.0


def test_loss_alignment_is_symmetric_and_scale_invariant_in_inputs():
    g = torch.Generator().manual_seed(0)
    pred, text = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    scale = torch.tensor(10.0)
    a, _ = loss_alignment(pred, text, scale)
    b, _ = loss_alignment(text, pred, scale)
    c, _ = loss_alignment(3 * pred, text, scale)  # inputs are normalised inside
    assert a.item() == pytest.approx(b.item(), rel=1e-6) and a.item() == pytest.approx(c.item(), rel=1e-6)
    logits = scale * F.normalize(pred) @ F.normalize(text).T
    labels = torch.arange(6)
    manual = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert a.item() == pytest.approx(manual.item(), rel=1e-6)


def test_loss_alignment_wrong_pairing_costs_more():
    text = torch.eye(4)
    good, _ = loss_alignment(text, text, torch.tensor(20.0))
    bad, acc = loss_alignment(text.roll(1, dims=0), text, torch.tensor(20.0))
    assert good < 0.01 < bad and acc.item() == 0.0


def test_loss_generative_is_mse():
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    assert loss_generative(a, b).item() == 1.0


@pytest.mark.parametrize(
    "tasks, keys",
    [("both", {"loss_generative", "loss_alignment"}), ("gen", {"loss_generative"}), ("disc", {"loss_alignment"})],
)
def test_unified_loss_runs_the_requested_tasks(config, tokenizer, tasks, keys):
    model = DiffDisModel(config)
    text = TextEncoder(build_text_model(config.text_encoder, tokenizer))
    ids = tokenize(tokenizer, ["a red circle", "a blue square", "a green triangle", "cat"], 16)
    null = tokenize(tokenizer, [""], 16)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    settings = UnifiedLossSettings(tasks=tasks)
    sched = training_scheduler(config.schedule)
    loss, logs = unified_loss(
        model, text, IdentityAutoencoder(), sched, ids, null, images, settings, torch.Generator().manual_seed(0)
    )
    assert keys <= set(logs) and not ({"loss_generative", "loss_alignment"} - keys) & set(logs)
    expected = sum(logs[k] for k in keys)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert any(p.grad is not None for p in text.parameters())  # a from-scratch text encoder learns from the loss
    again, _ = unified_loss(
        model, text, IdentityAutoencoder(), sched, ids, null, images, settings, torch.Generator().manual_seed(0)
    )
    assert again.item() == pytest.approx(loss.item(), rel=1e-6)  # all randomness comes from the generator


def test_min_snr_weights_cap_the_easy_timesteps():
    from diffdis.config import preset
    from diffdis.train.losses import min_snr_weights

    sched = training_scheduler(preset("tiny").schedule)
    w = min_snr_weights(sched, torch.tensor([0, 100, 999]), gamma=5.0)
    snr = sched.alphas_cumprod / (1 - sched.alphas_cumprod)
    assert w[0].item() == pytest.approx(5.0 / snr[0].item(), rel=1e-4)  # low noise: high SNR, down-weighted
    assert w[2].item() == pytest.approx(1.0)  # SNR below gamma: weight 1
    weighted = loss_generative(torch.ones(3, 2), torch.zeros(3, 2), torch.tensor([1.0, 0.5, 0.0]))
    assert weighted.item() == pytest.approx(0.5)


def test_sharded_rows_see_the_noise_of_the_global_batch(config, tokenizer):
    """Two ranks with half a batch each draw exactly the noise one process draws for the whole batch."""
    model = DiffDisModel(config).eval()
    text = TextEncoder(build_text_model(config.text_encoder, tokenizer)).eval()
    ids = tokenize(tokenizer, ["a red circle", "a blue square", "a green triangle", "cat"], 16)
    null = tokenize(tokenizer, [""], 16)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    settings, sched = UnifiedLossSettings(tasks="gen"), training_scheduler(config.schedule)

    def run(rows, sl):
        with torch.no_grad():
            _, logs = unified_loss(
                model,
                text,
                IdentityAutoencoder(),
                sched,
                ids[sl],
                null,
                images[sl],
                settings,
                torch.Generator().manual_seed(5),
                rows,
            )
        return logs["loss_generative"]

    full = run(None, slice(0, 4))
    halves = (run((0, 4), slice(0, 2)) + run((2, 4), slice(2, 4))) / 2
    assert halves == pytest.approx(full, rel=1e-5)
