#!/usr/bin/env python3
"""PyTorch-produced test fixture for SkipUNet (@dif-fusion/unet), from the official code.

Imports `models/sr3_modules/skip_unet.py` from a Dif-Fusion checkout (not vendored here) and
runs it with Debian's python3 and python3-torch (apt-get install -y python3-torch):

    /usr/bin/python3 packages/unet/scripts/make-skip-unet-fixture.py --official ../Dif-Fusion

It writes packages/unet/fixtures/skip-unet.safetensors (deterministic: fixed seed): for each
tiny config (metadata `config.<variant>`), the weights and BatchNorm buffers before the pass
(`<variant>.weights.<official key>`, BatchNorm weights, biases and running statistics
randomised so that eval mode is not the identity), the eval-mode output (`<variant>.eval`),
the train-mode output (`<variant>.train`, batch statistics) and the buffers after that one
train-mode forward (`<variant>.after.<key>`: PyTorch's momentum-0.1 update).
"""

import argparse
import importlib.util
import json
import os
import struct

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "skip-unet.safetensors")

VARIANTS = {
    "small": dict(in_channel=4, out_channel=4, inner_channel=4, channel_mults=[1, 2],
                  res_blocks=2, dropout=0.0),
    "affine": dict(in_channel=3, out_channel=2, inner_channel=4, channel_mults=[1, 2, 2],
                   res_blocks=3, dropout=0.0, use_affine_level=True, skip_range=0.5),
}


def safetensors_bytes(tensors, metadata):
    dtypes = {torch.float32: "F32"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu().float()
        raw = t.numpy().astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--official", required=True, help="a Dif-Fusion checkout")
    a = p.parse_args()
    path = os.path.join(a.official, "models", "sr3_modules", "skip_unet.py")
    spec = importlib.util.spec_from_file_location("official_skip_unet", path)
    if spec is None or not os.path.exists(path):
        raise SystemExit(f"make-skip-unet-fixture.py: {path}: not found (--official wants a Dif-Fusion checkout)")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    out, meta = {}, {"torch": torch.__version__, "source": "models/sr3_modules/skip_unet.py"}
    for name, cfg in VARIANTS.items():
        net = mod.UNet(**cfg)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.8, 1.2)
                    m.bias.uniform_(-0.2, 0.2)
                    m.running_mean.uniform_(-0.3, 0.3)
                    m.running_var.uniform_(0.5, 1.5)
                    m.num_batches_tracked.fill_(3)
        h, w = 8, 12
        x = torch.rand((2, cfg["in_channel"], h, w)) * 2 - 1
        # levels as sqrt(alpha_cumprod) of a late and an early step
        level = torch.tensor([[0.93], [0.0077]])
        out[f"{name}.x"] = x
        out[f"{name}.level"] = level
        for k, v in net.state_dict().items():
            out[f"{name}.weights.{k}"] = v.clone()
        net.eval()
        with torch.no_grad():
            out[f"{name}.eval"] = net(x, level)
        net.train()
        with torch.no_grad():
            out[f"{name}.train"] = net(x, level)
        for k, v in net.state_dict().items():
            if "running_" in k or "num_batches_tracked" in k:
                out[f"{name}.after.{k}"] = v.clone()
        meta[f"config.{name}"] = json.dumps(cfg)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(safetensors_bytes(out, meta))
    print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
