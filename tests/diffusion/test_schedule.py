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


def test_the_query_schedule_noises_the_query_and_sets_its_timesteps():
    """A model with its own query schedule: training draws t_e in [0, T_q) and noises e with that schedule."""
    from diffdis.model.unet import DiffDisModel
    from diffdis.train.losses import StepNoise, TextInputs, UnifiedLossSettings, unified_forward

    cfg = preset(
        "tiny", query_scale="sqrt-d", query_schedule={"num_train_timesteps": 50, "beta_schedule": "squaredcos_cap_v2"}
    )
    settings = UnifiedLossSettings(tasks="disc")
    noise = StepNoise.draw(
        torch.Generator().manual_seed(0), settings, 1000, (0, 64, 64), (3, 32, 32), cfg.query_dim, 50
    )
    assert noise.t_e.max() < 50 and noise.t_e.max() > 25
    model = DiffDisModel(cfg)
    seen = {}
    model.predict_query = lambda latents, e_t, t, c: seen.setdefault("e_t", e_t)  # noqa: ARG005
    e0 = torch.nn.functional.normalize(torch.randn(64, cfg.query_dim), dim=-1)
    text = TextInputs(condition=torch.zeros(64, 4, 256), query=e0, null_condition=torch.zeros(1, 4, 256))
    unified_forward(model, None, training_scheduler(cfg.schedule), text, torch.zeros(64, 3, 32, 32), noise, settings)
    abar = training_scheduler(cfg.query_schedule).alphas_cumprod[noise.t_e][:, None]
    expected = 16.0 * abar.sqrt() * e0 + (1 - abar).sqrt() * noise.noise_e
    assert torch.allclose(seen["e_t"], expected, atol=1e-5)


def test_self_conditioned_query_noises_the_models_own_first_guess():
    """With query_self_condition, the chosen rows' e_t noise the model's no-grad guess from pure noise at the
    last timestep; the other rows keep e0; runs without it draw exactly the same random numbers as before."""
    from diffdis.model.unet import DiffDisModel
    from diffdis.train.losses import StepNoise, TextInputs, UnifiedLossSettings, unified_forward

    cfg = preset("tiny", query_scale=4.0)
    plain, mixed = UnifiedLossSettings(tasks="disc"), UnifiedLossSettings(tasks="disc", query_self_condition=0.5)
    draw = lambda s: StepNoise.draw(torch.Generator().manual_seed(0), s, 1000, (0, 16, 16), (3, 32, 32), 256)  # noqa: E731
    a, b = draw(plain), draw(mixed)
    assert a.own_guess is None and torch.equal(a.t_e, b.t_e) and torch.equal(a.noise_e, b.noise_e)
    assert 0 < int(b.own_guess.sum()) < 16
    model = DiffDisModel(cfg)
    guess = torch.nn.functional.normalize(torch.randn(16, 256), dim=-1)
    calls = []

    def fake_predict(latents, e_t, t, c):
        calls.append((e_t, t, torch.is_grad_enabled()))
        return guess * 3 if len(calls) == 1 else e_t

    model.predict_query = fake_predict
    e0 = torch.nn.functional.normalize(torch.randn(16, 256), dim=-1)
    text = TextInputs(condition=torch.zeros(16, 4, 256), query=e0, null_condition=torch.zeros(1, 4, 256))
    sched = training_scheduler(cfg.schedule)
    unified_forward(model, None, sched, text, torch.zeros(16, 3, 32, 32), b, mixed)
    (start, t_first, grad_first), (e_t, _, _) = calls
    assert torch.equal(start, b.noise_guess) and bool((t_first == 999).all()) and not grad_first
    clean = torch.where(b.own_guess[:, None], guess, e0)
    abar = sched.alphas_cumprod[b.t_e][:, None]
    assert torch.allclose(e_t, 4.0 * abar.sqrt() * clean + (1 - abar).sqrt() * b.noise_e, atol=1e-5)
