#!/usr/bin/env python3
"""PyTorch reference for one `dif-train ddpm` training step, for side-by-side timing.

The SR3 UNet exactly as packages/unet (unet.ts, blocks.ts) and packages/nn (layers.ts)
define it: same modules, same parameter names (the official state_dict keys), same count.
One step, as apps/trainer/src/ddpm.ts (GaussianDiffusion.p_losses):

    t ~ U{1..T}; level ~ U(sqrt_acp_prev[t-1], sqrt_acp_prev[t]) per sample (continuous)
    x_t  = level * x0 + sqrt(1 - level^2) * noise
    loss = sum((noise - unet(x_t, level))^2) / (B*C*H*W)
    backward, Adam(lr 1e-4) step

with x0 uniform in [-1, 1] (no image loading). Prints wall s/step (mean and best over the
timed steps, after one warm-up), CPU-s/step (all threads, time.process_time), peak RSS and
the parameter count.

    python3 scripts/bench/torch_ddpm_step.py --inner 16 --attn 16 --crop 64 --batch 4 --threads 2
    python3 scripts/bench/torch_ddpm_step.py --inner 12 --norm-groups 6 --attn '' --count-only
    # the official code's step (models/model.py optimize_parameters) from a checkout of
    # https://github.com/GeoVectorMatrix/Dif-Fusion (not vendored here):
    python3 scripts/bench/torch_ddpm_step.py --official ../Dif-Fusion --inner 16 --norm-groups 16
    # the same options as: node apps/trainer/dist/bench.js --backend onnxruntime ...

Written by hand from our TypeScript definition (not copied from the official code), so that
it measures the architecture we ship; `--list-params` prints `name shape` lines to diff
against the TS UNet's params().
"""

import argparse
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------- blocks (blocks.ts)


class PositionalEncoding(nn.Module):
    """WaveGrad eq. 8: [sin(level * f_k), cos(level * f_k)], f_k = 1e4^(-k/(dim/2))."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, level):
        count = self.dim // 2
        step = torch.arange(count, dtype=level.dtype, device=level.device) / count
        enc = level.reshape(-1, 1) * torch.exp(-math.log(1e4) * step.unsqueeze(0))
        return torch.cat([torch.sin(enc), torch.cos(enc)], dim=-1)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class FeatureWiseAffine(nn.Module):
    """x + Linear(emb), or (1 + gamma) * x + beta with use_affine_level."""

    def __init__(self, emb_dim, channels, affine):
        super().__init__()
        self.affine = affine
        self.noise_func = nn.Sequential(nn.Linear(emb_dim, channels * (2 if affine else 1)))

    def forward(self, x, emb):
        b = x.shape[0]
        v = self.noise_func(emb).view(b, -1, 1, 1)
        if self.affine:
            gamma, beta = v.chunk(2, dim=1)
            return (1 + gamma) * x + beta
        return x + v


class Block(nn.Module):
    """GroupNorm, Swish, Dropout (Identity when 0), 3x3 conv: keys block.0, block.3."""

    def __init__(self, dim, dim_out, groups, dropout=0.0):
        super().__init__()
        self.block = nn.Sequential(
            nn.GroupNorm(groups, dim),
            Swish(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(dim, dim_out, 3, padding=1),
        )

    def forward(self, x):
        return self.block(x)


class ResnetBlock(nn.Module):
    """block2(affine(block1(x), emb)) + res_conv(x); dropout only in block2."""

    def __init__(self, dim, dim_out, emb_dim, groups, dropout, affine):
        super().__init__()
        self.noise_func = FeatureWiseAffine(emb_dim, dim_out, affine) if emb_dim else None
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups, dropout)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, emb):
        h = self.block1(x)
        if self.noise_func is not None and emb is not None:
            h = self.noise_func(h, emb)
        h = self.block2(h)
        return h + self.res_conv(x)


class SelfAttention(nn.Module):
    """GroupNorm, 1x1 qkv conv (no bias), softmax(q.k / sqrt(C)) v, 1x1 out conv, residual."""

    def __init__(self, channels, groups, n_head=1):
        super().__init__()
        self.n_head = n_head
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        nh = self.n_head
        hd = c // nh
        qkv = self.qkv(self.norm(x)).view(b, nh, hd * 3, h * w)
        q, k, v = qkv.chunk(3, dim=2)  # [b, nh, hd, hw] each
        # scale 1/sqrt(C) with C the full channel count (as ops.selfAttention / the official code)
        attn = torch.einsum("bncq,bnck->bnqk", q, k) / math.sqrt(c)
        attn = torch.softmax(attn, dim=-1)
        out = torch.einsum("bnqk,bnck->bncq", attn, v).reshape(b, c, h, w)
        return self.out(out) + x


class ResnetBlocWithAttn(nn.Module):
    def __init__(self, dim, dim_out, emb_dim, groups, dropout, affine, with_attn):
        super().__init__()
        self.res_block = ResnetBlock(dim, dim_out, emb_dim, groups, dropout, affine)
        self.attn = SelfAttention(dim_out, groups) if with_attn else None

    def forward(self, x, emb):
        h = self.res_block(x, emb)
        return self.attn(h) if self.attn is not None else h


class Downsample(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x):
        return self.conv(self.up(x))


# ---------------------------------------------------------------- UNet (unet.ts)


class UNet(nn.Module):
    def __init__(self, in_channel, out_channel, inner_channel, norm_groups, channel_mults,
                 attn_res, res_blocks, dropout, image_size, with_noise_level_emb=True,
                 use_affine_level=False):
        super().__init__()
        emb_dim = inner_channel if with_noise_level_emb else None
        self.noise_level_mlp = (
            nn.Sequential(
                PositionalEncoding(inner_channel),
                nn.Linear(inner_channel, inner_channel * 4),
                Swish(),
                nn.Linear(inner_channel * 4, inner_channel),
            )
            if emb_dim
            else None
        )

        def block(dim, dim_out, with_attn):
            return ResnetBlocWithAttn(dim, dim_out, emb_dim, norm_groups, dropout,
                                      use_affine_level, with_attn)

        self.init_conv = nn.Conv2d(in_channel, inner_channel, 3, padding=1)
        levels = len(channel_mults)
        pre = inner_channel
        feat_channels = [pre]
        res = image_size
        downs = []
        for i in range(levels):
            use_attn = res in attn_res
            ch = inner_channel * channel_mults[i]
            for _ in range(res_blocks):
                downs.append(block(pre, ch, use_attn))
                feat_channels.append(ch)
                pre = ch
            if i < levels - 1:
                downs.append(Downsample(pre))
                feat_channels.append(pre)
                res //= 2
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList([block(pre, pre, True), block(pre, pre, False)])
        ups = []
        for i in reversed(range(levels)):
            use_attn = res in attn_res
            ch = inner_channel * channel_mults[i]
            for _ in range(res_blocks + 1):
                ups.append(block(pre + feat_channels.pop(), ch, use_attn))
                pre = ch
            if i > 0:
                ups.append(Upsample(pre))
                res *= 2
        self.ups = nn.ModuleList(ups)
        self.final_conv = Block(pre, out_channel, norm_groups)

    def forward(self, x, level):
        emb = self.noise_level_mlp(level) if self.noise_level_mlp is not None else None
        h = self.init_conv(x)
        feats = [h]
        for layer in self.downs:
            h = layer(h, emb) if isinstance(layer, ResnetBlocWithAttn) else layer(h)
            feats.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.ups:
            if isinstance(layer, ResnetBlocWithAttn):
                h = layer(torch.cat([h, feats.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.final_conv(h)


# ---------------------------------------------------------------- schedule (packages/schedules)


def sqrt_alphas_cumprod_prev(n_timestep=2000, start=1e-6, end=1e-2):
    """Linear betas (float64, as the reference): sqrt([1, cumprod(1 - beta)])."""
    betas = torch.linspace(start, end, n_timestep, dtype=torch.float64)
    acp = torch.cumprod(1.0 - betas, dim=0)
    return torch.sqrt(torch.cat([torch.ones(1, dtype=torch.float64), acp]))


# ---------------------------------------------------------------- the official code


def official_step(root, a, groups):
    """The official training step, imported from a checkout at `root`: its UNet and
    GaussianDiffusion (models/sr3_modules), l2 loss, linear schedule, and the body of
    models/model.py's optimize_parameters (loss.sum() / (b*c*h*w), backward, Adam step).
    Returns (module, step function)."""
    import importlib.util
    import types

    try:
        import tqdm  # noqa: F401  (diffusion.py imports it for its sampling loops only)
    except ImportError:
        stub = types.ModuleType("tqdm")
        stub.tqdm = lambda it=None, *args, **kw: it
        sys.modules["tqdm"] = stub

    def load(name):
        path = f"{root}/models/sr3_modules/{name}.py"
        spec = importlib.util.spec_from_file_location(f"official_{name}", path)
        if spec is None:
            sys.exit(f"torch_ddpm_step.py: {path}: not found (--official wants a Dif-Fusion checkout)")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    unet, diffusion = load("unet"), load("diffusion")
    net = unet.UNet(in_channel=a.in_channel, out_channel=a.out_channel, norm_groups=groups,
                    inner_channel=a.inner, channel_mults=a.mults, attn_res=a.attn,
                    res_blocks=a.res_blocks, dropout=a.dropout, image_size=a.crop)
    g = diffusion.GaussianDiffusion(net, image_size_w=a.crop, image_size_h=a.crop,
                                    channels=a.in_channel, loss_type="l2", conditional=False,
                                    schedule_opt=None)
    g.set_loss(torch.device("cpu"))
    g.set_new_noise_schedule({"schedule": "linear", "n_timestep": 2000, "linear_start": 1e-6,
                              "linear_end": 1e-2}, torch.device("cpu"))
    g.train()
    opt = torch.optim.Adam(g.parameters(), lr=a.lr)
    b, c, s = a.batch, a.in_channel, a.crop

    def step():
        x0 = torch.rand(b, c, s, s) * 2 - 1
        opt.zero_grad()
        l_pix = g({"img": x0})
        l_pix = l_pix.sum() / int(b * c * s * s)
        l_pix.backward()
        opt.step()
        return float(l_pix)

    return net, step


# ---------------------------------------------------------------- benchmark


def int_list(s):
    return [int(v) for v in s.split(",") if v.strip() != ""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inner", type=int, default=16, help="inner_channel (default 16)")
    p.add_argument("--mults", type=int_list, default=[1, 2, 4, 8, 8],
                   help="channel_mults, comma list (default 1,2,4,8,8)")
    p.add_argument("--attn", type=int_list, default=[16],
                   help="attn_res, comma list of resolutions ('' = none; default 16)")
    p.add_argument("--norm-groups", type=int, default=None, help="default min(32, inner)")
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--crop", type=int, default=64, help="crop size = image_size (default 64)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--in-channel", type=int, default=4)
    p.add_argument("--out-channel", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--steps", type=int, default=5, help="timed steps after 1 warm-up (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--count-only", action="store_true",
                   help="print the parameter count and exit (no step)")
    p.add_argument("--official", metavar="DIR",
                   help="time the official code's step from this Dif-Fusion checkout instead")
    p.add_argument("--first-step", action="store_true",
                   help="time to the first step instead: build, the official orthogonal init "
                        "(init_weights(net, 'orthogonal'): orthogonal_ conv/linear weights, zero "
                        "biases), one step; prints seconds of each and the peak RSS")
    p.add_argument("--list-params", action="store_true",
                   help="print 'name shape' per parameter and the total, then exit")
    a = p.parse_args(argv)

    groups = a.norm_groups if a.norm_groups is not None else min(32, a.inner)
    for m in a.mults:
        if (a.inner * m) % groups != 0:
            p.error(f"inner {a.inner} x {m} is not divisible by --norm-groups {groups}")
    size_multiple = 2 ** (len(a.mults) - 1)
    if a.crop % size_multiple != 0:
        p.error(f"--crop {a.crop} must be a multiple of {size_multiple}")
    if a.steps < 1:
        p.error("--steps must be >= 1")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_start = time.perf_counter()
    if a.official:
        net, official = official_step(a.official, a, groups)
    else:
        net = UNet(a.in_channel, a.out_channel, a.inner, groups, a.mults, a.attn, a.res_blocks,
                   a.dropout, a.crop)
    n_params = sum(t.numel() for t in net.parameters())
    if a.list_params:
        for name, t in net.named_parameters():
            print(name, "x".join(str(d) for d in t.shape))
        print("TOTAL", n_params)
        return
    if a.count_only:
        print(n_params)
        return

    t_built = time.perf_counter()
    if a.first_step:
        # models/networks.py weights_init_orthogonal, as init_weights(netG, 'orthogonal') applies it
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.orthogonal_(m.weight.data, gain=1)
                if m.bias is not None:
                    m.bias.data.zero_()
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.constant_(m.weight.data, 1.0)
                torch.nn.init.constant_(m.bias.data, 0.0)
        t_init = time.perf_counter()

    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    levels_prev = sqrt_alphas_cumprod_prev()
    n_t = levels_prev.numel() - 1
    b, c, s = a.batch, a.in_channel, a.crop

    def ours():
        x0 = torch.rand(b, c, s, s) * 2 - 1
        t = int(torch.randint(1, n_t + 1, (1,)))
        lo, hi = float(levels_prev[t - 1]), float(levels_prev[t])
        level = (lo + (hi - lo) * torch.rand(b, dtype=torch.float64)).float()
        noise = torch.randn_like(x0)
        l4 = level.view(b, 1, 1, 1)
        x_t = l4 * x0 + torch.sqrt(1 - l4 * l4) * noise
        eps = net(x_t, level.view(b, 1))
        loss = (noise - eps).pow(2).sum() / noise.numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    step = official if a.official else ours
    if a.first_step:
        loss = step()
        t_end = time.perf_counter()
        res = {
            "params": n_params,
            "build_s": round(t_built - t_start, 1),
            "init_s": round(t_init - t_built, 1),
            "first_step_s": round(t_end - t_init, 1),
            "total_s": round(t_end - t_start, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
            "loss": loss,
        }
        print(json.dumps(res))
        return
    walls, cpus = [], []
    first = None
    for i in range(a.steps + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        dw, dc = time.perf_counter() - w0, time.process_time() - c0
        if not math.isfinite(loss):
            sys.exit(f"torch_ddpm_step.py: loss is {loss} at step {i + 1}")
        if i == 0:
            first = dw
        else:
            walls.append(dw)
            cpus.append(dc)
    mean = sum(walls) / len(walls)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    res = {
        "command": "ddpm",
        "backend": f"torch {torch.__version__} cpu" + (" (official code)" if a.official else ""),
        "inner": a.inner,
        "mults": ",".join(map(str, a.mults)),
        "attn": ",".join(map(str, a.attn)),
        "norm_groups": groups,
        "crop": a.crop,
        "batch": a.batch,
        "threads": a.threads,
        "wall_mean_s": round(mean, 3),
        "wall_best_s": round(min(walls), 3),
        "cpu_s": round(sum(cpus) / len(cpus), 3),
        "first_step_s": round(first, 2),
        "peak_rss_mb": round(rss_mb),
        "params": n_params,
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(
            f"torch ddpm step: inner_channel {a.inner}, channel_mults [{res['mults']}], "
            f"attn_res [{res['attn']}], {s}x{s}, batch {b}, {a.threads} threads, "
            f"{res['backend']}: {mean:.3f} s/step mean, {min(walls):.3f} best over "
            f"{len(walls)} steps, {res['cpu_s']:.3f} CPU-s/step (all threads), "
            f"first step {first:.2f} s, peak RSS {res['peak_rss_mb']} MB, {n_params:,} params"
        )


if __name__ == "__main__":
    main()
