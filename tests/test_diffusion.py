"""The diffusion math against closed forms and an independent implementation (diffusers' DDPMScheduler)."""

import math

import numpy as np
import pytest
import torch

from dreaming_data.config import parse_params
from dreaming_data.diffusion import (
    Schedule, cosine_betas, guided_eps, linear_betas, make_schedule, p_sample_step, q_sample, respaced_timesteps,
    sample, sampler_coefficients, training_loss,
)

from conftest import default_params, tiny_params

T = 500


def test_linear_endpoints():
    b = linear_betas(T, 1e-4, 0.028)
    assert b.dtype == np.float64 and b.shape == (T,)
    assert b[0] == 1e-4 and b[-1] == pytest.approx(0.028, abs=1e-15)
    assert np.allclose(np.diff(b), (0.028 - 1e-4) / (T - 1))


def test_cosine_alpha_bar_matches_paper_formula():
    s = 0.008
    f = lambda t: math.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2  # noqa: E731
    ab = Schedule.from_betas(cosine_betas(T, s)).alphas_cumprod.numpy()
    expected = np.array([f(t) / f(0) for t in range(1, T + 1)])
    unclipped = cosine_betas(T, s) < 0.999
    assert np.allclose(ab[unclipped], expected[unclipped], rtol=1e-10)
    assert ab[0] == pytest.approx(1 - (1 - f(1) / f(0)), rel=1e-12)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedule_properties(schedule):
    s = make_schedule(parse_params(default_params()).diffusion, schedule)
    ab = s.alphas_cumprod
    assert ab.dtype == torch.float64
    assert bool((ab[1:] < ab[:-1]).all()), "alpha_bar strictly decreasing"
    assert bool((s.betas <= 0.999).all()) and bool((s.betas > 0).all())


def test_cosine_betas_match_diffusers_squaredcos():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2").betas.double().numpy()
    assert np.allclose(cosine_betas(T, 0.008), ref, atol=1e-6)


def test_posterior_variance_closed_form():
    betas = linear_betas(T, 1e-4, 0.028)
    c = sampler_coefficients(Schedule.from_betas(betas), torch.arange(T), "fixed_small")
    ab = 1.0
    for t in range(T):
        ab_prev, ab = ab, ab * (1 - betas[t])
        assert float(c.posterior_variance[t]) == pytest.approx(betas[t] * (1 - ab_prev) / (1 - ab), rel=1e-9)
    assert float(c.posterior_variance[0]) == 0.0  # x_0 | x_1 is deterministic under the posterior
    large = sampler_coefficients(Schedule.from_betas(betas), torch.arange(T), "fixed_large")
    assert torch.allclose(large.sigma ** 2, torch.as_tensor(betas))


def test_respacing_keeps_alpha_bar_at_kept_steps():
    s = make_schedule(parse_params(default_params()).diffusion, "linear")
    kept = respaced_timesteps(T, 100)
    assert len(kept) == 100 and kept[0] == 0 and kept[-1] == T - 1
    c = sampler_coefficients(s, kept, "fixed_large")
    # the respaced betas rebuild alpha_bar of the kept steps exactly (Improved DDPM, section 4)
    assert torch.allclose(torch.cumprod(1 - c.betas, 0), s.alphas_cumprod[kept], rtol=1e-12)
    full = sampler_coefficients(s, torch.arange(T), "fixed_large")
    assert torch.allclose(full.betas, s.betas, rtol=1e-10)


def test_q_sample_moments():
    s = make_schedule(parse_params(default_params()).diffusion, "linear")
    g = torch.Generator().manual_seed(0)
    n, t = 200_000, 250
    x0 = torch.full((n, 1, 1, 1), 0.5)
    xt = q_sample(s, x0, torch.full((n,), t), torch.randn(x0.shape, generator=g))
    ab = float(s.alphas_cumprod[t])
    assert float(xt.mean()) == pytest.approx(math.sqrt(ab) * 0.5, abs=0.01)
    assert float(xt.var()) == pytest.approx(1 - ab, rel=0.02)


class LabelEcho(torch.nn.Module):
    """eps(x, t, y) = y everywhere: outputs known in advance."""

    calls = 0

    def forward(self, x, t, y):
        LabelEcho.calls += 1
        return torch.ones_like(x) * y.float()[:, None, None, None]


def test_guidance_formula_one_batched_forward():
    model = LabelEcho()
    LabelEcho.calls = 0
    x = torch.zeros(3, 1, 2, 2)
    y = torch.tensor([0, 2, 5])
    eps = guided_eps(model, x, torch.zeros(3, dtype=torch.int64), y, null_class=10, w=1.8)
    assert LabelEcho.calls == 1
    expected = (1 + 1.8) * y.float() - 1.8 * 10
    assert torch.allclose(eps[:, 0, 0, 0], expected)
    assert torch.equal(guided_eps(model, x, torch.zeros(3, dtype=torch.int64), y, 10, 0.0)[:, 0, 0, 0], y.float())


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
@pytest.mark.parametrize("steps", [500, 100])
def test_one_step_matches_diffusers(schedule, variance, steps):
    from diffusers import DDPMScheduler

    name = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule]
    ref = DDPMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.028, beta_schedule=name,
                        variance_type=variance, clip_sample=True, prediction_type="epsilon")
    kept = respaced_timesteps(T, steps)
    ref.set_timesteps(timesteps=kept.flip(0).tolist())
    mine = sampler_coefficients(make_schedule(parse_params(default_params()).diffusion, schedule), kept, variance)
    g = torch.Generator().manual_seed(1)
    for k in (len(kept) - 1, len(kept) // 2, 3, 1, 0):
        x = torch.randn(4, 3, 8, 8, generator=g)
        eps = torch.randn(4, 3, 8, 8, generator=g)
        t = int(kept[k])
        expected = ref.step(eps, t, x, generator=torch.Generator().manual_seed(7)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
        got = p_sample_step(mine, k, x, eps, noise)
        assert torch.allclose(got, expected, atol=2e-5, rtol=1e-4), (k, (got - expected).abs().max())


def tiny_model_and_schedule():
    from dreaming_data.ddpm import build_unet

    p = parse_params(tiny_params())
    torch.manual_seed(0)
    model = build_unet(p.unet, (8, 8, 1), 10).eval()
    return model, make_schedule(p.diffusion, "linear"), p


def test_sampler_is_deterministic_for_fixed_noise():
    model, s, p = tiny_model_and_schedule()
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    noise = lambda seed: lambda t: torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(seed * 1000 + t))  # noqa: E731
    run = lambda seed: sample(model, s, y, x_T, respaced_timesteps(s.timesteps, 10), "fixed_large", 10, 1.8,  # noqa: E731
                              noise(seed))
    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (4, 1, 8, 8) and float(a.abs().max()) <= 1


def test_training_loss_runs_and_drops_labels():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, t, y):
            seen.append(y.clone())
            return torch.zeros_like(x)

    s = make_schedule(parse_params(default_params()).diffusion, "linear")
    x0 = torch.zeros(4000, 1, 1, 1)
    loss = training_loss(Spy(), s, x0, torch.zeros(4000, dtype=torch.int64), null_class=10, p_uncond=0.1,
                         generator=torch.Generator().manual_seed(0))
    assert float(loss) == pytest.approx(1.0, abs=0.05)  # zero prediction: E[eps^2] = 1
    assert float((seen[0] == 10).float().mean()) == pytest.approx(0.1, abs=0.02)


class ToyEps(torch.nn.Module):
    """A smooth eps(x, t, y) whose conditional and unconditional halves differ, so that guidance matters."""

    def forward(self, x, t, y):
        scale = (t.float() / T).view(-1, 1, 1, 1)
        return 0.8 * torch.tanh(x) + 0.3 * torch.sin(3 * scale + y.float().view(-1, 1, 1, 1))


def _diffusers_config(schedule: str) -> dict:
    name = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule]
    return dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.028, beta_schedule=name, prediction_type="epsilon")


def _trajectory(schedule: str, steps: int):
    """Our coefficients, the kept timesteps (decreasing), x_T, labels and a guided eps for any (x, t)."""
    kept = respaced_timesteps(T, steps)
    coeffs = sampler_coefficients(make_schedule(parse_params(default_params()).diffusion, schedule), kept, "fixed_large")
    x = torch.randn(3, 3, 6, 6, generator=torch.Generator().manual_seed(2)) * 1.0
    y = torch.tensor([0, 4, 9])
    eps = lambda x, t: guided_eps(ToyEps(), x, torch.full((3,), t), y, null_class=10, w=1.8)  # noqa: E731
    return coeffs, kept, x, eps


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps,eta", [(100, 0.0), (25, 0.0), (25, 1.0), (500, 0.5)])
def test_ddim_matches_diffusers_step_by_step(schedule, steps, eta):
    """diffusers' DDIMScheduler with clip_sample and use_clipped_model_output (improved-diffusion's ddim_sample).

    diffusers steps from t to t - T // num_inference_steps; respaced gaps vary (4 or 5 for 100 of 500), so its
    num_inference_steps is set per step to give the same previous timestep."""
    from diffusers import DDIMScheduler

    from dreaming_data.diffusion import ddim_step

    ref = DDIMScheduler(**_diffusers_config(schedule), clip_sample=True, set_alpha_to_one=True)
    coeffs, kept, x, eps_of = _trajectory(schedule, steps)
    for k in reversed(range(len(kept))):
        t = int(kept[k])
        gap = t - int(kept[k - 1]) if k > 0 else t + 1
        ref.num_inference_steps = T // gap
        assert T // ref.num_inference_steps == gap
        eps = eps_of(x, t)
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(100 + t))
        expected = ref.step(eps, t, x, eta=eta, use_clipped_model_output=True, variance_noise=z).prev_sample
        x_next = ddim_step(coeffs, k, x, eps, eta, z)
        assert torch.allclose(x_next, expected, atol=3e-5, rtol=1e-4), (k, (x_next - expected).abs().max())
        x = expected


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [100, 25, 10])
def test_dpm_solver_pp_matches_diffusers_step_by_step(schedule, steps):
    """diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint, final sigma 0); its thresholding with
    sample_max_value 1 is exactly clipping x0 to [-1, 1]. Our respaced timesteps are passed as custom timesteps."""
    from diffusers import DPMSolverMultistepScheduler

    from dreaming_data.diffusion import dpm_solver_pp_step

    ref = DPMSolverMultistepScheduler(**_diffusers_config(schedule), algorithm_type="dpmsolver++", solver_order=2,
                                      solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero",
                                      thresholding=True, sample_max_value=1.0)
    coeffs, kept, x, eps_of = _trajectory(schedule, steps)
    ref.set_timesteps(timesteps=kept.flip(0).tolist())
    previous = None
    for k in reversed(range(len(kept))):
        t = int(kept[k])
        eps = eps_of(x, t)
        expected = ref.step(eps, t, x).prev_sample
        x_next, previous = dpm_solver_pp_step(coeffs, k, x, eps, previous)
        assert torch.allclose(x_next, expected, atol=1e-4, rtol=1e-4), (k, (x_next - expected).abs().max())
        x = expected


def test_ddim_eta_one_is_the_ancestral_posterior():
    """eq. 16: eta = 1 gives sigma^2 = beta~ (the DDPM posterior variance) and the same mean as eq. 7."""
    from dreaming_data.diffusion import ddim_step

    s = make_schedule(parse_params(default_params()).diffusion, "linear")
    kept = respaced_timesteps(T, 50)
    coeffs = sampler_coefficients(s, kept, "fixed_small")
    g = torch.Generator().manual_seed(0)
    x0, eps, z = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    x0 = x0.clamp(-0.9, 0.9)  # inside [-1, 1]: no clipping, so both forms see the same x0
    for k in (40, 10, 1):
        ab = float(coeffs.alphas_cumprod[k])
        x = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        assert torch.allclose(ddim_step(coeffs, k, x, eps, 1.0, z), p_sample_step(coeffs, k, x, eps, z), atol=1e-5)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "dpmsolver++"])
def test_every_sampler_runs_end_to_end(sampler):
    model, s, p = tiny_model_and_schedule()
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = lambda t: torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(t))  # noqa: E731
    out = sample(model, s, torch.tensor([0, 1, 2, 3]), x_T, respaced_timesteps(s.timesteps, 7), "fixed_large", 10,
                 1.8, noise, sampler=sampler, eta=0.0)
    assert out.shape == (4, 1, 8, 8) and torch.isfinite(out).all() and float(out.abs().max()) <= 1
