#!/usr/bin/env python3
"""Test fixtures for @dif-fusion/torch-import, made with PyTorch.

Run with Debian's python3 and python3-torch (apt-get install -y python3-torch):

    /usr/bin/python3 packages/torch-import/scripts/make-fixtures.py
    /usr/bin/python3 packages/torch-import/scripts/make-fixtures.py --paper-size DIR  # not test data

It writes, into packages/torch-import/fixtures/ (deterministic: fixed seeds):

- ddpm_gen.pth       torch.save(state_dict) of a GaussianDiffusion-like wrapper around a tiny
                     SR3 UNet, official key layout: schedule buffers + `denoise_fn.*`
- df_head_gen.pth    torch.save(state_dict) of a tiny fusion head, official key layout
- df_head_gen_fp16.pth  the same head state_dict with every tensor in float16
- misc.pth           an unpickler workout: float16/bfloat16/float64/int64/bool tensors, a
                     transposed view, a slice with a storage offset, two views of one storage,
                     an nn.Parameter, nested dict/list/tuple and primitives
- misc_expected.safetensors  every tensor of misc.pth as contiguous float32/float64 values
- legacy.pth         the legacy (pre-1.6, non-zip) torch.save format
- malicious.pth      a zip checkpoint whose data.pkl calls os.system (GLOBAL + REDUCE)
- malicious_stack_global.pkl  a bare protocol-4 pickle calling builtins.eval (STACK_GLOBAL)
- reference.safetensors  inputs, noise and outputs of the official forward pass with these
                     weights: eps of the UNet and the fused image; its metadata also holds
                     `checksums` (per-tensor float64 sum / sum of squares of both
                     state_dicts, JSON) and the configs

The networks below re-implement the architecture of the official Dif-Fusion code
(SR3 UNet, models/sr3_modules/unet.py; fusion head, models/fs_modules/fs_head.py) with the
same module tree, so that state_dict keys and shapes match the authors' checkpoints.
"""

import collections
import json
import math
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures")

# The payload of the malicious fixtures: harmless if it ever ran, and detectable.
PWNED_MARKER = "/tmp/dif-fusion-torch-import-pwned"

# Tiny versions of the paper's configuration (inner_channel 128 there).
UNET = dict(
    in_channel=4,
    out_channel=4,
    inner_channel=4,
    norm_groups=2,  # not the default 32: exercises the importer's --norm-groups
    channel_mults=[1, 2, 2, 4, 4],
    attn_res=[16],
    res_blocks=2,
    dropout=0.2,
    image_size=32,
)
HEAD = dict(feat_scales=[2, 5, 8, 11, 14], time_steps=[5, 50, 100])
SCHEDULE = dict(schedule="linear", n_timestep=2000, linear_start=1e-6, linear_end=1e-2)
H, W = 16, 32  # non-square on purpose; divisible by 2^4 (five levels)


# ---------------------------------------------------------------------------------------------
# SR3 UNet (same module tree and forward pass as the official code)


class NoiseLevelEncoding(nn.Module):
    """WaveGrad sinusoidal encoding of the continuous noise level [B, 1] -> [B, dim]."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, level):
        half = self.dim // 2
        freqs = torch.exp(-math.log(1e4) * torch.arange(half, dtype=level.dtype) / half)
        enc = level.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat([enc.sin(), enc.cos()], dim=-1)


class SiLU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class NoiseAffine(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.noise_func = nn.Sequential(nn.Linear(cin, cout))

    def forward(self, x, emb):
        return x + self.noise_func(emb).view(x.shape[0], -1, 1, 1)


class NormActConv(nn.Module):
    def __init__(self, cin, cout, groups, dropout=0.0):
        super().__init__()
        self.block = nn.Sequential(
            nn.GroupNorm(groups, cin),
            SiLU(),
            nn.Dropout(dropout) if dropout else nn.Identity(),
            nn.Conv2d(cin, cout, 3, padding=1),
        )

    def forward(self, x):
        return self.block(x)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups, dropout):
        super().__init__()
        self.noise_func = NoiseAffine(emb_dim, cout)
        self.block1 = NormActConv(cin, cout, groups)
        self.block2 = NormActConv(cout, cout, groups, dropout)
        self.res_conv = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.block2(self.noise_func(self.block1(x), emb))
        return h + self.res_conv(x)


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1, bias=False)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, 1, 3 * c, h, w).chunk(3, dim=2)
        scores = torch.einsum("bnchw,bncyx->bnhwyx", q, k) / math.sqrt(c)
        scores = torch.softmax(scores.reshape(b, 1, h, w, h * w), -1).view(b, 1, h, w, h, w)
        y = torch.einsum("bnhwyx,bncyx->bnchw", scores, v)
        return self.out(y.reshape(b, c, h, w)) + x


class ResAttn(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups, dropout, with_attn):
        super().__init__()
        self.res_block = ResBlock(cin, cout, emb_dim, groups, dropout)
        self.with_attn = with_attn
        if with_attn:
            self.attn = Attention(cout, groups)

    def forward(self, x, emb):
        x = self.res_block(x, emb)
        return self.attn(x) if self.with_attn else x


class Down(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(self.up(x))


class SR3UNet(nn.Module):
    def __init__(self, in_channel, out_channel, inner_channel, norm_groups, channel_mults,
                 attn_res, res_blocks, dropout, image_size):
        super().__init__()
        c0, g = inner_channel, norm_groups
        self.noise_level_mlp = nn.Sequential(
            NoiseLevelEncoding(c0), nn.Linear(c0, 4 * c0), SiLU(), nn.Linear(4 * c0, c0))
        self.init_conv = nn.Conv2d(in_channel, c0, 3, padding=1)
        skips, ch, res = [c0], c0, image_size
        downs = []
        for lvl, mult in enumerate(channel_mults):
            for _ in range(res_blocks):
                downs.append(ResAttn(ch, c0 * mult, c0, g, dropout, res in attn_res))
                ch = c0 * mult
                skips.append(ch)
            if lvl != len(channel_mults) - 1:
                downs.append(Down(ch))
                skips.append(ch)
                res //= 2
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList([ResAttn(ch, ch, c0, g, dropout, True),
                                  ResAttn(ch, ch, c0, g, dropout, False)])
        ups = []
        for lvl in reversed(range(len(channel_mults))):
            for _ in range(res_blocks + 1):
                ups.append(ResAttn(ch + skips.pop(), c0 * channel_mults[lvl], c0, g, dropout,
                                   res in attn_res))
                ch = c0 * channel_mults[lvl]
            if lvl != 0:
                ups.append(Up(ch))
                res *= 2
        self.ups = nn.ModuleList(ups)
        self.final_conv = NormActConv(ch, out_channel, g)

    def forward(self, x, level, feat_need=False):
        emb = self.noise_level_mlp(level)
        x = self.init_conv(x)
        skips = [x]
        for layer in self.downs:
            x = layer(x, emb) if isinstance(layer, ResAttn) else layer(x)
            skips.append(x)
        for layer in self.mid:
            x = layer(x, emb)
        dec = []
        for layer in self.ups:
            if isinstance(layer, ResAttn):
                x = layer(torch.cat((x, skips.pop()), dim=1), emb)
                dec.append(x)
            else:
                x = layer(x)
        if feat_need:
            return dec[::-1]  # reversed: index 0 = last, full-resolution block
        return self.final_conv(x)


class Diffusion(nn.Module):
    """State-dict-compatible stand-in for the official GaussianDiffusion (buffers + denoise_fn)."""

    def __init__(self, denoise_fn, schedule):
        super().__init__()
        self.denoise_fn = denoise_fn
        betas = np.linspace(schedule["linear_start"], schedule["linear_end"],
                            schedule["n_timestep"], dtype=np.float64)
        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        ac_prev = np.append(1.0, ac[:-1])
        self.sqrt_alphas_cumprod_prev = np.sqrt(np.append(1.0, ac))
        f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        for name, value in [
            ("betas", betas),
            ("alphas_cumprod", ac),
            ("alphas_cumprod_prev", ac_prev),
            ("sqrt_alphas_cumprod", np.sqrt(ac)),
            ("sqrt_one_minus_alphas_cumprod", np.sqrt(1.0 - ac)),
            ("log_one_minus_alphas_cumprod", np.log(1.0 - ac)),
            ("sqrt_recip_alphas_cumprod", np.sqrt(1.0 / ac)),
            ("sqrt_recipm1_alphas_cumprod", np.sqrt(1.0 / ac - 1)),
            ("posterior_variance", post_var),
            ("posterior_log_variance_clipped", np.log(np.maximum(post_var, 1e-20))),
            ("posterior_mean_coef1", betas * np.sqrt(ac_prev) / (1.0 - ac)),
            ("posterior_mean_coef2", (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)),
        ]:
            self.register_buffer(name, f32(value))

    def midpoint_level(self, t):
        return 0.5 * (self.sqrt_alphas_cumprod_prev[t - 1] + self.sqrt_alphas_cumprod_prev[t])


# ---------------------------------------------------------------------------------------------
# Fusion head (same module tree and forward pass as the official code, `reference` behaviour)


def scale_channels(scale, inner, mults, res_blocks):
    return inner * mults[scale // (res_blocks + 1)]


class SqueezeExcite(nn.Module):
    """Concurrent channel and spatial squeeze & excitation (scSE): the sum of both.

    The sum, not the max some scSE implementations take, is what reproduces the official
    outputs in ../shared/golden/fusion_head.safetensors (checked in check_against_golden).
    """

    def __init__(self, c):
        super().__init__()
        self.cSE = nn.Module()
        self.cSE.fc1 = nn.Linear(c, c // 2)
        self.cSE.fc2 = nn.Linear(c // 2, c)
        self.sSE = nn.Module()
        self.sSE.conv = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        b, c = x.shape[:2]
        s = torch.sigmoid(self.cSE.fc2(F.relu(self.cSE.fc1(x.mean(dim=(2, 3))))))
        channel = x * s.view(b, c, 1, 1)
        spatial = x * torch.sigmoid(self.sSE.conv(x))
        return channel + spatial


class HeadBlock(nn.Module):
    def __init__(self, dim, n_steps):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim * n_steps, dim, 1), nn.ReLU(),
                                   nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return self.block(x)


class HeadAttention(nn.Module):
    def __init__(self, dim, dim_out):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim_out, 3, padding=1), nn.ReLU(),
                                   SqueezeExcite(dim_out))

    def forward(self, x):
        return self.block(x)


class ConvAct(nn.Module):
    def __init__(self, cin, cout, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.act = act

    def forward(self, x):
        return self.act(self.conv(x))


class FusionHead(nn.Module):
    def __init__(self, feat_scales, time_steps, inner, mults, res_blocks):
        super().__init__()
        self.scales = sorted(feat_scales, reverse=True)
        self.n_steps = len(time_steps)
        dims = [scale_channels(s, inner, mults, res_blocks) for s in self.scales]
        layers = []
        for i, d in enumerate(dims):
            layers.append(HeadBlock(d, self.n_steps))
            if i != len(dims) - 1:
                layers.append(HeadAttention(d, dims[i + 1]))
        self.decoder = nn.ModuleList(layers)
        # The official code hard-codes 128 = inner_channel * channel_multiplier[0] at the
        # paper's size; the general rule is the channel count of the finest scale.
        self.rgb_decode2 = ConvAct(dims[-1], 64, lambda x: F.leaky_relu(x, 0.2))
        self.rgb_decode1 = ConvAct(64, 3, torch.tanh)

    def forward(self, feats):
        lvl, x = 0, None
        for layer in self.decoder:
            if isinstance(layer, HeadBlock):
                f = torch.cat([feats[k][self.scales[lvl]] for k in range(self.n_steps)], dim=1)
                f = layer(f)
                if lvl != 0:
                    f = f + x
                lvl += 1
            else:
                f = layer(f)
                x = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=True)
        # As in the official forward pass: the finest Block's output is not used.
        return self.rgb_decode1(self.rgb_decode2(x))


# ---------------------------------------------------------------------------------------------


def init_weights(module):
    """Orthogonal conv/linear weights (the official init) and non-trivial biases/affines."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(m.weight, gain=1.0)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, nn.GroupNorm):
                m.weight.uniform_(0.95, 1.05)
                m.bias.uniform_(-0.1, 0.1)


def safetensors_bytes(tensors, metadata=None):
    dtypes = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64",
              torch.int32: "I32", torch.uint8: "U8"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    np_types = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np_types[info["dtype"]])
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out, meta


def check_against_golden(golden):
    """The re-implemented networks reproduce the official outputs in ../shared/golden."""
    g, meta = read_safetensors(os.path.join(golden, "unet_5level.safetensors"))
    cfg = json.loads(meta["config"])
    unet = SR3UNet(**{k: cfg[k] for k in ("in_channel", "out_channel", "inner_channel",
                                            "norm_groups", "channel_mults", "attn_res",
                                            "res_blocks", "image_size")}, dropout=0).eval()
    unet.load_state_dict({k[8:]: v for k, v in g.items() if k.startswith("weights.")})
    with torch.no_grad():
        eps = unet(g["input.x"], g["input.noise_level"])
    err_unet = float((eps - g["output.eps"]).abs().max() / g["output.eps"].abs().max())
    h, _ = read_safetensors(os.path.join(golden, "fusion_head.safetensors"))
    d, _ = read_safetensors(os.path.join(golden, "diffusion_feats.safetensors"))
    head = FusionHead([2, 5, 8, 11, 14], [5, 50, 100], cfg["inner_channel"],
                      cfg["channel_mults"], cfg["res_blocks"]).eval()
    head.load_state_dict({k[8:]: v for k, v in h.items() if k.startswith("weights.")})
    feats = [[d[f"t{t}.fd.{i:02d}"] for i in range(15)] for t in (5, 50, 100)]
    with torch.no_grad():
        rgb = head(feats)
    err_head = float((rgb - h["output.rgb"]).abs().max() / h["output.rgb"].abs().max())
    print(f"golden check: unet eps rel err {err_unet:.2e}, head rgb rel err {err_head:.2e}")
    if err_unet > 1e-5 or err_head > 1e-5:
        raise SystemExit("the re-implemented networks do not match the golden files")


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def checksums(sd):
    out = {}
    for k, v in sd.items():
        a = v.detach().to(torch.float64)
        out[k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                  "sum": float(a.sum()), "sumsq": float((a * a).sum())}
    return out


def paper_size(out):
    """Paper-size official-layout checkpoints (PyTorch's default init; ~1.7 GB, not test data)."""
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    cfg = dict(UNET, inner_channel=128, norm_groups=32, channel_mults=[1, 2, 4, 8, 8], image_size=160)
    unet = SR3UNet(**cfg)
    ddpm = Diffusion(unet, SCHEDULE)
    torch.save(ddpm.state_dict(), os.path.join(out, "I0_E0_gen.pth"))
    del ddpm, unet
    head = FusionHead(HEAD["feat_scales"], HEAD["time_steps"], 128, cfg["channel_mults"], 2)
    torch.save(head.state_dict(), os.path.join(out, "df_model_E0_gen.pth"))
    for f in sorted(os.listdir(out)):
        print(f"{os.path.getsize(os.path.join(out, f)):>12}  {f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--paper-size":
        return paper_size(sys.argv[2])
    golden = os.environ.get("DIF_FUSION_SHARED", os.path.join(HERE, "..", "..", "..", "..", "shared"))
    golden = os.path.join(golden, "golden")
    if os.path.exists(os.path.join(golden, "unet_5level.safetensors")):
        check_against_golden(golden)
    else:
        print(f"note: {golden} not found, skipping the check against the golden files")
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)  # every random draw below comes from this one global generator
    torch.use_deterministic_algorithms(True)

    unet = SR3UNet(**UNET)
    init_weights(unet)
    ddpm = Diffusion(unet, SCHEDULE).eval()
    head = FusionHead(HEAD["feat_scales"], HEAD["time_steps"], UNET["inner_channel"],
                      UNET["channel_mults"], UNET["res_blocks"])
    init_weights(head)
    head.eval()

    ddpm_sd = ddpm.state_dict()
    head_sd = head.state_dict()
    torch.save(ddpm_sd, os.path.join(OUT, "ddpm_gen.pth"))
    torch.save(head_sd, os.path.join(OUT, "df_head_gen.pth"))
    torch.save(collections.OrderedDict((k, v.half()) for k, v in head_sd.items()),
               os.path.join(OUT, "df_head_gen_fp16.pth"))

    # --- the official forward pass on a fixed input --------------------------------------
    vis = torch.rand((1, 3, H, W)) * 2 - 1
    ir = torch.rand((1, 1, H, W)) * 2 - 1
    x = torch.cat([vis, ir], dim=1)  # VIDataset: cat([visible, infrared[0:1]])
    steps = HEAD["time_steps"]
    noise = torch.randn((len(steps), 1, 4, H, W))
    ref = {"input.vis": vis, "input.ir": ir, "input.x": x, "input.noise": noise}
    feats = []
    with torch.no_grad():
        for k, t in enumerate(steps):
            level = torch.tensor([[ddpm.midpoint_level(t)]], dtype=torch.float32)
            x_noisy = level.view(-1, 1, 1, 1) * x + (1 - level.view(-1, 1, 1, 1) ** 2).sqrt() * noise[k]
            ref[f"t{t}.level"] = level
            ref[f"t{t}.x_noisy"] = x_noisy
            ref[f"t{t}.eps"] = unet(x_noisy, level)
            feats.append(unet(x_noisy, level, feat_need=True))
        ref["output.fused"] = head(feats)
    meta = {"unet": json.dumps(UNET), "head": json.dumps(HEAD), "schedule": json.dumps(SCHEDULE),
            "torch": torch.__version__,
            "checksums": json.dumps({"ddpm": checksums(ddpm_sd), "head": checksums(head_sd)},
                                    separators=(",", ":"))}
    write("reference.safetensors", safetensors_bytes(ref, meta))

    # --- unpickler workout -------------------------------------------------------------------
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7 - 1
    shared = torch.randn(10)
    misc = collections.OrderedDict()
    misc["f32"] = torch.randn(2, 3, 4)
    misc["f16"] = torch.randn(5, 3).half()
    misc["bf16"] = torch.randn(7).bfloat16()
    misc["f64"] = torch.randn(3, 2).double()
    misc["i64"] = torch.tensor([-3, 0, 7, 2**40], dtype=torch.int64)
    misc["i32"] = torch.tensor([[1, -2], [3, -4]], dtype=torch.int32)
    misc["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    misc["bool"] = torch.tensor([True, False, True])
    misc["scalar"] = torch.tensor(2.5)
    misc["transposed"] = base.t()  # non-contiguous view
    misc["sliced"] = base[1:3, 2:5]  # storage offset + strides
    misc["shared_a"] = shared[2:6]  # two views of one storage
    misc["shared_b"] = shared.view(2, 5)[:, ::2]
    misc["param"] = nn.Parameter(torch.randn(3))
    misc["nested"] = {"list": [1, -2, 3.5, None, True, False], "tuple": (1, "two", 2**70),
                      "str": "héllo ✓", "bytes": b"\x00\x01raw", "float": -0.125,
                      "big": -(2**63), "tensors": [torch.ones(2), (torch.zeros(1, 1),)]}
    torch.save(misc, os.path.join(OUT, "misc.pth"))
    expected = {}
    for k, v in misc.items():
        if isinstance(v, torch.Tensor):
            v = v.detach()
            if v.dtype in (torch.float16, torch.bfloat16, torch.bool, torch.uint8, torch.int32):
                v = v.float()
            expected[k] = v.contiguous()
    write("misc_expected.safetensors", safetensors_bytes(expected))

    # --- legacy format -------------------------------------------------------------------------
    torch.save({"w": torch.ones(2, 2)}, os.path.join(OUT, "legacy.pth"),
               _use_new_zipfile_serialization=False)

    # --- malicious pickles: never to be executed ---------------------------------------------
    cmd = f"touch {PWNED_MARKER}".encode()
    # protocol 2: PROTO 2, GLOBAL 'os system', BINUNICODE cmd, TUPLE1, REDUCE, STOP
    evil = (b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd
            + b"q\x01\x85q\x02Rq\x03.")
    with zipfile.ZipFile(os.path.join(OUT, "malicious.pth"), "w", zipfile.ZIP_STORED) as z:
        for name, data in [("data.pkl", evil), ("byteorder", b"little"), ("version", b"3\n")]:
            z.writestr(zipfile.ZipInfo(f"malicious/{name}", date_time=(2020, 1, 1, 0, 0, 0)), data)
    # protocol 4: STACK_GLOBAL builtins.eval
    src = f"__import__('os').system('{cmd.decode()}')".encode()
    evil4 = (b"\x80\x04\x95" + struct.pack("<Q", 0)  # FRAME (length unchecked by readers)
             + b"\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94"
             + b"\x8c" + bytes([len(src)]) + src + b"\x94\x85\x94R\x94.")
    write("malicious_stack_global.pkl", evil4)
    # sanity: Python's own restricted loader sees the same globals
    for blob in (evil, evil4):
        class Spy(pickle.Unpickler):
            def find_class(self, module, name):
                raise pickle.UnpicklingError(f"{module}.{name}")
        try:
            Spy(__import__("io").BytesIO(blob)).load()
        except pickle.UnpicklingError as e:
            print("malicious pickle refers to", e)

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    for f in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, f)):>9}  {f}")
    print(f"{total:>9}  total; unet params {sum(p.numel() for p in unet.parameters())},"
          f" head params {sum(p.numel() for p in head.parameters())}")


if __name__ == "__main__":
    sys.exit(main())
