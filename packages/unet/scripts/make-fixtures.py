#!/usr/bin/env python3
"""PyTorch-produced test fixtures for the UNet options of @dif-fusion/unet.

Run with Debian's python3 and python3-torch (apt-get install -y python3-torch):

    /usr/bin/python3 packages/unet/scripts/make-fixtures.py

It writes packages/unet/fixtures/variants.safetensors (deterministic: fixed seeds): for each
variant of a tiny SR3 UNet, its config (metadata `config.<variant>`), weights
(`<variant>.weights.<official key>`), the input x and noise level, and eps.

The SR3 module tree comes from packages/torch-import/scripts/make-fixtures.py (the official
`models/sr3_modules/unet.py` re-implemented with the same state_dict keys); the variants
swap in the option's forward pass:
- use_affine_level: FeatureWiseAffine gives 2C values, x = (1 + gamma) x + beta;
- use_scale_shift_norm (improved-diffusion ResBlock): block2's GroupNorm output is
  GN(h) (1 + scale) + shift, [scale, shift] = Linear(emb), then Swish, Dropout, conv;
- num_heads: the official SelfAttention with n_head heads (qkv viewed as
  [B, n_head, 3C/n_head, H, W], scores / sqrt(C)).
"""

import importlib.util
import json
import math
import os

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures")
spec = importlib.util.spec_from_file_location(
    "tif", os.path.join(HERE, "..", "..", "torch-import", "scripts", "make-fixtures.py"))
tif = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tif)

TINY = dict(in_channel=4, out_channel=4, inner_channel=4, norm_groups=2, channel_mults=[1, 2],
            attn_res=[8], res_blocks=1, dropout=0.0, image_size=16)
VARIANTS = {
    "affine_heads": dict(use_affine_level=True, num_heads=2),
    "scale_shift": dict(use_scale_shift_norm=True, num_heads=4),
}


class AffineResBlock(tif.ResBlock):
    def forward(self, x, emb):
        h = self.block1(x)
        gamma, beta = self.noise_func.noise_func(emb).view(x.shape[0], -1, 1, 1).chunk(2, dim=1)
        h = self.block2((1 + gamma) * h + beta)
        return h + self.res_conv(x)


class ScaleShiftResBlock(tif.ResBlock):
    def forward(self, x, emb):
        h = self.block1(x)
        scale, shift = self.noise_func.noise_func(emb).view(x.shape[0], -1, 1, 1).chunk(2, dim=1)
        norm, rest = self.block2.block[0], self.block2.block[1:]
        h = rest(norm(h) * (1 + scale) + shift)
        return h + self.res_conv(x)


class MultiHeadAttention(tif.Attention):
    def forward(self, x):
        b, c, h, w = x.shape
        n = self.n_head
        q, k, v = self.qkv(self.norm(x)).view(b, n, 3 * c // n, h, w).chunk(3, dim=2)
        scores = torch.einsum("bnchw,bncyx->bnhwyx", q, k) / math.sqrt(c)
        scores = torch.softmax(scores.reshape(b, n, h, w, h * w), -1).view(b, n, h, w, h, w)
        y = torch.einsum("bnhwyx,bncyx->bnchw", scores, v)
        return self.out(y.reshape(b, c, h, w)) + x


def sr3_variant(opts):
    unet = tif.SR3UNet(**TINY)
    for m in unet.modules():
        if isinstance(m, tif.ResBlock):
            cout = m.noise_func.noise_func[0].out_features
            m.noise_func = tif.NoiseAffine(TINY["inner_channel"], 2 * cout)
            m.__class__ = ScaleShiftResBlock if opts.get("use_scale_shift_norm") else AffineResBlock
        if isinstance(m, tif.Attention):
            m.__class__ = MultiHeadAttention
            m.n_head = opts.get("num_heads", 1)
    return unet


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    out, meta = {}, {"torch": torch.__version__}
    x = torch.rand((2, 4, 8, 12)) * 2 - 1
    level = torch.tensor([[0.93], [0.41]])
    out["input.x"] = x
    out["input.noise_level"] = level
    for name, opts in VARIANTS.items():
        unet = sr3_variant(opts)
        tif.init_weights(unet)
        unet.eval()
        with torch.no_grad():
            out[f"{name}.eps"] = unet(x, level)
        for k, v in unet.state_dict().items():
            out[f"{name}.weights.{k}"] = v
        meta[f"config.{name}"] = json.dumps({**TINY, **opts})
    with open(os.path.join(OUT, "variants.safetensors"), "wb") as f:
        f.write(tif.safetensors_bytes(out, meta))


if __name__ == "__main__":
    main()
