"""The Gaussian diffusion process: noise schedules, the forward process, the loss, and the sampler.

References (equation numbers are the papers'):
- Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (DDPM): Algorithms 1 and 2, eqs. 4, 6-7, 11, 14.
- Nichol & Dhariwal 2021, "Improved DDPM": the cosine schedule (eq. 17) and respacing (section 4).
- Ho & Salimans 2021, "Classifier-Free Diffusion Guidance": eq. 6.
- Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models" (DDIM): eqs. 12 and 16.
- Lu et al. 2022, "DPM-Solver++": Algorithm 2 (multistep, second order, data prediction).

Timestep indices are 0-based: index ``i`` is the paper's ``t = i + 1``. The network never holds the schedule;
every function here takes the model as an argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from dreaming_data.config import DiffusionConfig

# eps_model(x_t [B, C, H, W], t [B] int64, y [B] int64) -> eps [B, C, H, W]
EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------------------
# Schedules: pure functions returning float64 arrays of shape [T]


def linear_betas(timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """DDPM section 4: betas increasing linearly from beta_1 to beta_T."""
    return np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)


def cosine_alpha_bar(t: np.ndarray, timesteps: int, s: float) -> np.ndarray:
    """Improved DDPM eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2).

    The reference report prints this formula garbled ("(1 + s*t/T)", "(1 + s)/s"); this is the paper's form.
    """
    f = lambda u: np.cos(((u / timesteps + s) / (1 + s)) * np.pi / 2) ** 2  # noqa: E731
    return f(np.asarray(t, dtype=np.float64)) / f(0.0)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Improved DDPM section 3.2: beta_t = 1 - alpha_bar(t) / alpha_bar(t - 1), clipped at 0.999."""
    t = np.arange(1, timesteps + 1, dtype=np.float64)
    betas = 1 - cosine_alpha_bar(t, timesteps, s) / cosine_alpha_bar(t - 1, timesteps, s)
    return np.minimum(betas, max_beta)


def make_betas(cfg: DiffusionConfig, schedule: str) -> np.ndarray:
    if schedule == "linear":
        return linear_betas(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    if schedule == "cosine":
        return cosine_betas(cfg.timesteps, cfg.cosine_s)
    raise ValueError(f"unknown schedule {schedule!r}")


@dataclass(frozen=True)
class Schedule:
    """Derived quantities of a beta schedule, each a float64 tensor of shape [T]."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor  # alpha_bar_t = prod_{s <= t} (1 - beta_s)
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor

    @classmethod
    def from_betas(cls, betas: np.ndarray | torch.Tensor) -> Schedule:
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-D sequence in (0, 1)")
        ab = torch.cumprod(1 - betas, dim=0)
        return cls(betas, ab, ab.sqrt(), (1 - ab).sqrt())

    @property
    def timesteps(self) -> int:
        return len(self.betas)

    def to(self, device: torch.device | str) -> Schedule:
        return type(self)(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def make_schedule(cfg: DiffusionConfig, schedule: str) -> Schedule:
    return Schedule.from_betas(make_betas(cfg, schedule))


def _gather(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """values[t] as float32, shaped [B, 1, 1, ...] to broadcast against a [B, ...] tensor of ``ndim`` dims."""
    return values.to(t.device)[t].float().view(-1, *([1] * (ndim - 1)))


# ---------------------------------------------------------------------------------------------------------
# Forward process and training loss


def q_sample(s: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """DDPM eq. 4: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.

    x0, noise: [B, C, H, W]; t: [B] int64 in [0, T).
    """
    return _gather(s.sqrt_alphas_cumprod, t, x0.ndim) * x0 + _gather(s.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise


def training_loss(
    model: EpsModel,
    s: Schedule,
    x0: torch.Tensor,
    y: torch.Tensor,
    null_class: int,
    p_uncond: float,
    generator: torch.Generator | None = None,
    part: slice | None = None,
    parts: int = 1,
) -> torch.Tensor:
    """Algorithm 1 with L_simple (eq. 14): ||eps - eps_theta(x_t, t, y)||^2, mean over all elements.

    Classifier-free guidance training (Ho & Salimans, Algorithm 1): each label is replaced by ``null_class``
    with probability ``p_uncond``. x0: [B, C, H, W] in [-1, 1]; y: [B] int64. With ``part`` (DDP over ``parts``
    processes), t, the noise and the label dropout are drawn for the whole batch, as one process would, and the
    loss is part's summed error x parts / (B x elements per image): DDP's mean over processes is then the batch
    mean, whatever the shares' sizes. An empty part (a batch shorter than the processes) runs image 0 at weight 0.
    """
    B = x0.shape[0]
    dev = x0.device
    t = torch.randint(0, s.timesteps, (B,), device=dev, generator=generator)
    noise = torch.randn(x0.shape, device=dev, generator=generator, dtype=x0.dtype)
    drop = torch.rand(B, device=dev, generator=generator) < p_uncond
    y = torch.where(drop, torch.full_like(y, null_class), y)
    if part is not None:
        weight = 1.0
        if part.start == part.stop:
            part, weight = slice(0, 1), 0.0
        x0, y, t, noise = x0[part], y[part], t[part], noise[part]
        eps = model(q_sample(s, x0, t, noise), t, y)
        return F.mse_loss(eps.float(), noise.float(), reduction="sum") * (weight * parts / (B * noise[0].numel()))
    eps = model(q_sample(s, x0, t, noise), t, y)
    return F.mse_loss(eps.float(), noise.float())


# ---------------------------------------------------------------------------------------------------------
# Sampling over an arbitrary decreasing subset of timesteps


def respaced_timesteps(timesteps: int, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced indices of [0, T), first and last included (improved-diffusion's ``space_timesteps``).

    Returns an increasing int64 tensor; the sampler walks it backwards.
    """
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in [1, {timesteps}], got {steps}")
    if steps == 1:
        return torch.tensor([timesteps - 1])
    stride = (timesteps - 1) / (steps - 1)
    return torch.tensor(sorted({round(i * stride) for i in range(steps)}), dtype=torch.int64)


@dataclass(frozen=True)
class SamplerCoefficients:
    """Per-step coefficients of ancestral sampling over kept timesteps ``t_0 < ... < t_{K-1}``; float64, [K].

    Respacing (Improved DDPM section 4): beta'_k = 1 - alpha_bar(t_k) / alpha_bar(t_{k-1}), alpha_bar(t_{-1}) = 1,
    so the full schedule is the special case that keeps every step.
    """

    timesteps: torch.Tensor  # [K] int64, original indices (what the network is told)
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    betas: torch.Tensor  # beta'_k
    posterior_variance: torch.Tensor  # beta~_k = beta'_k (1 - alpha_bar_prev) / (1 - alpha_bar), eq. 7
    posterior_mean_coef_x0: torch.Tensor  # sqrt(alpha_bar_prev) beta'_k / (1 - alpha_bar), eq. 7
    posterior_mean_coef_xt: torch.Tensor  # sqrt(alpha'_k) (1 - alpha_bar_prev) / (1 - alpha_bar), eq. 7
    sigma: torch.Tensor  # sqrt of the chosen variance: fixed_large = beta', fixed_small = beta~ (section 3.2)


def sampler_coefficients(s: Schedule, timesteps: torch.Tensor, variance: str) -> SamplerCoefficients:
    timesteps = torch.as_tensor(timesteps, dtype=torch.int64).cpu()
    if timesteps.ndim != 1 or len(timesteps) == 0 or bool((timesteps[1:] <= timesteps[:-1]).any()):
        raise ValueError("timesteps must be a strictly increasing 1-D sequence")
    ab = s.alphas_cumprod.cpu()[timesteps]
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    betas = 1 - ab / ab_prev
    post_var = betas * (1 - ab_prev) / (1 - ab)
    if variance == "fixed_large":
        var = betas
    elif variance == "fixed_small":
        var = post_var
    else:
        raise ValueError(f"unknown variance {variance!r}")
    return SamplerCoefficients(
        timesteps=timesteps,
        alphas_cumprod=ab,
        alphas_cumprod_prev=ab_prev,
        betas=betas,
        posterior_variance=post_var,
        posterior_mean_coef_x0=ab_prev.sqrt() * betas / (1 - ab),
        posterior_mean_coef_xt=(1 - betas).sqrt() * (1 - ab_prev) / (1 - ab),
        sigma=var.sqrt(),
    )


def guided_eps(model: EpsModel, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, null_class: int, w: float) -> torch.Tensor:
    """Ho & Salimans eq. 6: eps = (1 + w) eps(x, c) - w eps(x, null); both halves in one batched forward."""
    if w == 0:
        return model(x, t, y).float()
    B = x.shape[0]
    eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null_class)])).float()
    eps_cond, eps_uncond = eps[:B], eps[B:]
    return (1 + w) * eps_cond - w * eps_uncond


def p_sample_step(
    c: SamplerCoefficients, k: int, x: torch.Tensor, eps: torch.Tensor, noise: torch.Tensor | None, clip: bool = True
) -> torch.Tensor:
    """One ancestral step x_{t_k} -> x_{t_{k-1}} (Algorithm 2, in the posterior form of eqs. 7 and 11).

    x0 is predicted from eps (eq. 11 rearranged; clipped to [-1, 1] as in the DDPM release), then
    x_prev = mu~(x_t, x0) + sigma_k z, with no noise at the last step (k = 0). Arithmetic in float32.
    """
    ab = float(c.alphas_cumprod[k])
    x = x.float()
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip:
        x0 = x0.clamp(-1, 1)
    mean = float(c.posterior_mean_coef_x0[k]) * x0 + float(c.posterior_mean_coef_xt[k]) * x
    if k == 0 or noise is None:
        return mean
    return mean + float(c.sigma[k]) * noise


SAMPLERS = ("ancestral", "ddim", "dpmsolver++")


def predict_x0(ab: float, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """DDPM eq. 4 solved for x_0, clipped to [-1, 1] (the data range; improved-diffusion's ``clip_denoised``)."""
    return ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)


def ddim_step(c: SamplerCoefficients, k: int, x: torch.Tensor, eps: torch.Tensor, eta: float,
              noise: torch.Tensor | None) -> torch.Tensor:
    """One DDIM step x_{t_k} -> x_{t_{k-1}} (Song et al. 2021, eq. 12):

    x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev)  (eq. 16; eta = 1 is DDPM's posterior, 0 is
    deterministic). x0 is clipped and eps re-derived from it, as improved-diffusion's ``ddim_sample`` does.
    """
    ab, ab_prev = float(c.alphas_cumprod[k]), float(c.alphas_cumprod_prev[k])
    x = x.float()
    x0 = predict_x0(ab, x, eps)
    eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    out = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma ** 2, 0.0)) * eps
    if sigma > 0 and noise is not None:
        out = out + sigma * noise
    return out


def dpm_solver_pp_step(c: SamplerCoefficients, k: int, x: torch.Tensor, eps: torch.Tensor,
                       previous_x0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DPM-Solver++(2M) step x_{t_k} -> x_{t_{k-1}} (Lu et al. 2022, Algorithm 2), or to the data (sigma = 0)
    at k = 0. Returns (x_prev, x0 of this step), x0 to pass as ``previous_x0`` to the next step.

    With alpha = sqrt(ab), sigma = sqrt(1 - ab), lambda = log(alpha / sigma), h = lambda_prev - lambda_k:
    x_prev = (sigma_prev / sigma_k) x - alpha_prev (e^-h - 1) D, where D = x0 (first order: the first step, and the
    last one, lower_order_final) or x0 + (x0 - x0_previous) / (2 r), r = (lambda_k - lambda_{k+1}) / h (midpoint).
    x0 is clipped to [-1, 1] (the static thresholding the paper recommends for pixel-space guided sampling).
    """
    ab = c.alphas_cumprod.double()
    x = x.float()
    x0 = predict_x0(float(ab[k]), x, eps)
    if k == 0:  # to sigma = 0: the first-order update returns the data prediction itself
        return x0, x0
    lam = lambda i: 0.5 * math.log(float(ab[i]) / (1 - float(ab[i])))  # noqa: E731
    h = lam(k - 1) - lam(k)
    d = x0
    if previous_x0 is not None:
        r = (lam(k) - lam(k + 1)) / h
        d = x0 + (x0 - previous_x0) / (2 * r)
    ratio = math.sqrt(1 - float(ab[k - 1])) / math.sqrt(1 - float(ab[k]))
    return ratio * x - math.sqrt(float(ab[k - 1])) * math.expm1(-h) * d, x0


@torch.no_grad()
def sample(
    model: EpsModel,
    s: Schedule,
    y: torch.Tensor,
    x_T: torch.Tensor,
    timesteps: torch.Tensor,
    variance: str,
    null_class: int,
    guidance: float,
    noise: Callable[[int], torch.Tensor],
    progress: Callable[[int], None] | None = None,
    sampler: str = "ancestral",
    eta: float = 0.0,
) -> torch.Tensor:
    """Sampling with classifier-free guidance over the kept ``timesteps``: one guided eps per kept timestep.

    ``sampler``: ancestral (DDPM Algorithm 2, ``variance`` fixed_large or fixed_small), ddim (``eta``) or
    dpmsolver++ (deterministic). y: [B] int64 labels; x_T: [B, C, H, W] initial noise; timesteps: increasing int64
    indices (all T, or a respaced subset). ``noise(t)`` gives the z of the step that leaves timestep index t, shaped
    like x_T (drawn per image, so that no image depends on its batch). Returns x_0 in [-1, 1].
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}")
    c = sampler_coefficients(s, timesteps, variance)
    x = x_T.float()
    previous_x0 = None
    for k in reversed(range(len(c.timesteps))):
        t_k = int(c.timesteps[k])
        t = torch.full((x.shape[0],), t_k, device=x.device, dtype=torch.int64)
        eps = guided_eps(model, x, t, y, null_class, guidance)
        if sampler == "ancestral":
            x = p_sample_step(c, k, x, eps, noise(t_k).to(x.device) if k > 0 else None)
        elif sampler == "ddim":
            x = ddim_step(c, k, x, eps, eta, noise(t_k).to(x.device) if k > 0 and eta > 0 else None)
        else:
            x, previous_x0 = dpm_solver_pp_step(c, k, x, eps, previous_x0)
        if progress is not None:
            progress(1)
    return x.clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] float in [-1, 1] -> [B, H, W, C] uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """[B, H, W, C] uint8 -> [B, C, H, W] float32 in [-1, 1]."""
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1
