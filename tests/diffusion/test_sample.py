import pytest
import torch

from diffdis.config import preset
from diffdis.diffusion.sample import SCHEDULERS, make_scheduler, sample
from diffdis.errors import UsageError

SCHEDULE = preset("tiny").schedule


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@pytest.mark.parametrize("steps", [1, 5])
def test_every_scheduler_reaches_the_oracle_x0(name, steps):
    """With a denoiser that knows x0, every sampler must land on x0, in x0 or in eps parametrisation."""
    target = torch.randn(2, 1, 8)
    noise = torch.randn(2, 1, 8, generator=torch.Generator().manual_seed(0))
    out = sample(
        lambda x, t: target, noise, make_scheduler(name, SCHEDULE), steps, "sample", torch.Generator().manual_seed(1)
    )
    assert torch.allclose(out, target, atol=1e-3), (name, (out - target).abs().max())


def test_eps_parametrisation_matches_sample_parametrisation():
    from diffdis.diffusion.schedule import alpha_bar, eps_from_x0

    target = torch.randn(2, 8)
    noise = torch.randn(2, 8)
    sched = make_scheduler("ddim", SCHEDULE)

    def eps(x, t):
        return eps_from_x0(x, target, alpha_bar(sched, t.item()))

    a = sample(eps, noise, sched, 4, "epsilon")
    b = sample(lambda x, t: target, noise, make_scheduler("ddim", SCHEDULE), 4, "sample")
    assert torch.allclose(a, b, atol=1e-5)


def test_fresh_schedulers_and_stochastic_sampler_are_seeded():
    noise = torch.randn(1, 8)
    runs = [
        sample(
            lambda x, t: 0.5 * x, noise, make_scheduler("ddpm", SCHEDULE), 5, "sample", torch.Generator().manual_seed(3)
        )
        for _ in range(2)
    ]
    assert torch.equal(*runs)
    assert make_scheduler("dpm++", SCHEDULE) is not make_scheduler("dpm++", SCHEDULE)


def test_bad_scheduler_and_steps_are_usage_errors():
    with pytest.raises(UsageError, match="unknown scheduler"):
        make_scheduler("plms", SCHEDULE)
    with pytest.raises(UsageError, match="at least 1"):
        sample(lambda x, t: x, torch.randn(1, 4), make_scheduler("ddim", SCHEDULE), 0)


def test_clip_x0_bounds_every_step_estimate():
    """An eps-model whose x0 estimate is far out of range: clipping keeps the result inside [-1, 1]."""
    from diffdis.diffusion.schedule import alpha_bar, eps_from_x0

    target = torch.full((1, 3, 4, 4), 5.0)
    sched = make_scheduler("dpm++", SCHEDULE)

    def eps(x, t):
        return eps_from_x0(x, target, alpha_bar(sched, t.item()))

    wild = sample(eps, torch.randn(1, 3, 4, 4), sched, 5, "epsilon")
    clipped = sample(eps, torch.randn(1, 3, 4, 4), make_scheduler("dpm++", SCHEDULE), 5, "epsilon", clip_x0=1.0)
    assert wild.max() > 4 and clipped.abs().max() <= 1.0 + 1e-4
