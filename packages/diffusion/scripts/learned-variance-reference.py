#!/usr/bin/env python3
"""PyTorch reference values for `var_type: learned_range` (Improved DDPM, Nichol & Dhariwal
2021, sec. 3.1) of @dif-fusion/diffusion.

Run with Debian's python3 and python3-torch (apt-get install -y python3-torch):

    /usr/bin/python3 packages/diffusion/scripts/learned-variance-reference.py

It writes packages/diffusion/fixtures/learned-variance.json (deterministic: fixed seed),
computed in float64 from the paper's equations, written here independently:
- the 3-step chain betas 0.1, 0.2, 0.3 (linspace(0.1, 0.3, 3)) and its posterior;
- a tiny batch x0 [2, 2, 3, 3] NCHW in [-1, 1] (a few entries at exactly -1 and 1, the
  decoder's open edge bins), noise, and a fixed network output [2, 4, 3, 3] = [eps, v];
- per t = 1..3 (chain index i = t - 1), at the discrete level sqrt(alphas_cumprod[i]):
  lv2 = frac log(beta_i) + (1 - frac) log(v~_i), frac = (v + 1) / 2, v~ = [v~_1, v~_1, v~_2];
  the model mean from the detached eps; KL(q || p) (i > 0) or the discretized-Gaussian
  decoder NLL (i = 0) per element, vb = mean / ln 2, mse = mean (eps - noise_out)^2 where
  noise_out is the network's eps, loss = mse + lambda T vb (lambda 0.001), and
  d loss / d output (eps and v channels) by autograd.
"""

import json
import math
import os

import torch

torch.manual_seed(17)
DT = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "learned-variance.json")

betas = torch.tensor([0.1, 0.2, 0.3], dtype=DT)
T = betas.numel()
acp = torch.cumprod(1 - betas, 0)
acp_prev = torch.cat([torch.ones(1, dtype=DT), acp[:-1]])
post_var = betas * (1 - acp_prev) / (1 - acp)
post_logvar_clipped = torch.log(torch.cat([post_var[1:2], post_var[1:]]))
coef1 = betas * torch.sqrt(acp_prev) / (1 - acp)
coef2 = (1 - acp_prev) * torch.sqrt(1 - betas) / (1 - acp)
LAMBDA = 0.001


def normal_kl(m1, lv1, m2, lv2):
    """KL(N(m1, e^lv1) || N(m2, e^lv2)) per element."""
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def phi(x):
    """tanh approximation of the standard normal CDF."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def disc_loglik(x, mean, log_scale):
    """log of the probability mass of x's 2/255-wide bin, edge bins open."""
    c = x - mean
    inv = torch.exp(-log_scale)
    cdf_plus = phi(inv * (c + 1.0 / 255))
    cdf_min = phi(inv * (c - 1.0 / 255))
    log_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_plus, torch.where(x > 0.999, log_one_minus_min, log_delta))


x0 = torch.rand(2, 2, 3, 3, dtype=DT) * 2 - 1
x0[0, 0, 0, 0] = -1.0
x0[0, 1, 2, 2] = 1.0
x0[1, 0, 1, 1] = -1.0
x0[1, 1, 0, 2] = 1.0
noise = torch.randn(2, 2, 3, 3, dtype=DT)
# eps close to the noise (as a trained model's), v in (-1.2, 1.2)
out0 = torch.cat([noise + 0.3 * torch.randn(2, 2, 3, 3, dtype=DT),
                  torch.rand(2, 2, 3, 3, dtype=DT) * 2.4 - 1.2], 1)

cases = []
for t in range(1, T + 1):
    i = t - 1
    out = out0.clone().requires_grad_(True)
    eps, v = out[:, :2], out[:, 2:]
    level = math.sqrt(acp[i].item())
    xt = level * x0 + math.sqrt(1 - level * level) * noise
    m1 = coef1[i] * x0 + coef2[i] * xt
    eps_d = eps.detach()
    x0_pred = torch.sqrt(1 / acp[i]) * xt - torch.sqrt(1 / acp[i] - 1) * eps_d
    m2 = coef1[i] * x0_pred + coef2[i] * xt
    frac = (v + 1) / 2
    lv2 = frac * torch.log(betas[i]) + (1 - frac) * post_logvar_clipped[i]
    kl = normal_kl(m1, post_logvar_clipped[i], m2, lv2) / math.log(2.0)
    nll = -disc_loglik(x0, m2, 0.5 * lv2) / math.log(2.0)
    term = nll if i == 0 else kl
    vb = term.mean()
    mse = ((noise - eps) ** 2).mean()
    loss = mse + LAMBDA * T * vb
    loss.backward()
    cases.append({
        "t": t,
        "level": level,
        "model_log_variance": lv2.detach().flatten().tolist(),
        "model_mean": m2.detach().flatten().tolist(),
        "true_mean": m1.flatten().tolist(),
        "kl_bits": kl.detach().flatten().tolist(),
        "nll_bits": nll.detach().flatten().tolist(),
        "vb": vb.item(),
        "mse": mse.item(),
        "loss": loss.item(),
        "grad_output": out.grad.flatten().tolist(),
    })

fixture = {
    "about": "scripts/learned-variance-reference.py (PyTorch %s, float64)" % torch.__version__,
    "betas": betas.tolist(),
    "vlb_weight": LAMBDA,
    "shape": [2, 2, 3, 3],
    "posterior_log_variance_clipped": post_logvar_clipped.tolist(),
    "x0": x0.flatten().tolist(),
    "noise": noise.flatten().tolist(),
    "output": out0.flatten().tolist(),
    "cases": cases,
}
with open(OUT, "w") as f:
    json.dump(fixture, f, indent=1)
    f.write("\n")
print("wrote", os.path.normpath(OUT))
