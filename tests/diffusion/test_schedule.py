import torch

from diffdis.config import preset
from diffdis.diffusion.schedule import alpha_bar, eps_from_x0, noise_query, training_scheduler, x0_from_eps


def test_noise_query_follows_the_paper_formula():
    sched = training_scheduler(preset("tiny").schedule)
    e0 = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    eps, t = torch.randn(4, 8), torch.tensor([0, 10, 500, 999])
    gamma = 0.3
    abar = sched.alphas_cumprod[t][:, None]
    expected = gamma * abar.sqrt() * e0 + (1 - abar).sqrt() * eps
    assert torch.allclose(noise_query(sched, e0, eps, t, gamma), expected, atol=1e-6)


def test_x0_and_eps_conversions_are_inverse():
    x_t, x0, abar = torch.randn(3, 5), torch.randn(3, 5), torch.tensor(0.37)
    eps = eps_from_x0(x_t, x0, abar)
    assert torch.allclose(x0_from_eps(x_t, eps, abar), x0, atol=1e-5)


def test_alpha_bar_matches_the_table_at_integer_steps_and_interpolates_between():
    sched = training_scheduler(preset("sd15").schedule)
    table = sched.alphas_cumprod.double()
    for t in (0, 1, 500, 999):
        assert abs(alpha_bar(sched, t).item() - table[t].item()) < 1e-9
    mid = alpha_bar(sched, 500.5).item()
    assert table[501].item() < mid < table[500].item()
