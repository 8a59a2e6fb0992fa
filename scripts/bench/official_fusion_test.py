#!/usr/bin/env python3
"""The official code's fusion test path (t_fusion.py) on CPU, for side-by-side timing with dif-fuse.

    /usr/bin/python3 scripts/bench/official_fusion_test.py --official ../Dif-Fusion \
        --pairs DIR --threads 2 -o OUT_DIR [--config config/fusion_test.json]

DIR holds ir/ and vi/ (the layout dif-fuse --pairs reads). Runs the body of the official
repository's t_fusion.py (https://github.com/GeoVectorMatrix/Dif-Fusion, not vendored here)
with its own modules: models.create_model (DDPM: GaussianDiffusion + SR3 UNet),
models.create_fusion_model (DFFM: Fusion_Head), data.VIDataset.FusionDataset(split='val',
is_crop=False) through a DataLoader as t_fusion.py builds it, and for each pair
diffusion.feed_data, get_feats(t) for every t of model_df.t, fussion_net.feed_data + test()
and the image written as core.metrics.tensor2img + save_img do.

What differs from running t_fusion.py itself, and why:
- CPU instead of gpu_ids [0] (t_fusion.py would put the models on CUDA); torch.set_num_threads.
- No checkpoints (resume_state None): PyTorch's default init of the same modules. The
  arithmetic, and so the time, does not depend on the weights.
- Tensor.cuda is the identity: fs_loss.py's Sobel kernels call .cuda() unconditionally.
- No tensorboardX SummaryWriter and no cv2 (neither is installed with Debian's python3-torch):
  the image is written with PIL from the same uint8 array (cv2.imwrite of the BGR copy writes
  the same RGB PNG). Neither is on the timed path in any way that matters (one PNG).
Prints phase times (imports, model build, per-pair fusion) and peak RSS; time the whole
command with /usr/bin/time for the figure comparable to dif-fuse's whole command.
"""

import argparse
import json
import os
import resource
import sys
import time
from collections import OrderedDict

T0 = time.time()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--official", required=True, help="a checkout of GeoVectorMatrix/Dif-Fusion")
    p.add_argument("--config", default="config/fusion_test.json", help="relative to --official")
    p.add_argument("--pairs", required=True, help="folder holding ir/ and vi/")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()

    root = os.path.abspath(a.official)
    cfg = os.path.join(root, a.config)
    if not os.path.isfile(os.path.join(root, "t_fusion.py")):
        sys.exit(f"official_fusion_test.py: {root}: not a Dif-Fusion checkout (no t_fusion.py)")
    for sub in ("ir", "vi"):
        if not os.path.isdir(os.path.join(a.pairs, sub)):
            sys.exit(f"official_fusion_test.py: {a.pairs}: no {sub}/ folder (--pairs)")
    sys.path.insert(0, root)

    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader

    torch.set_num_threads(a.threads)
    # models/fs_loss.py's Sobelxy puts its two 3x3 kernels on CUDA unconditionally (.cuda());
    # on a CPU-only torch that raises, so Tensor.cuda is the identity here (the kernels stay
    # on the CPU with everything else).
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    import core.logger as Logger
    import models as Model
    from data.VIDataset import FusionDataset as FD

    # Logger.parse without its experiments folders and CUDA_VISIBLE_DEVICES: the same comment
    # stripping and OrderedDict load, then phase 'test' and CPU.
    with open(cfg) as f:
        opt = json.loads("".join(line.split("//")[0] + "\n" for line in f), object_pairs_hook=OrderedDict)
    opt["phase"] = "test"
    opt["gpu_ids"] = None
    opt["distributed"] = False
    opt["path"]["resume_state"] = None
    opt["path_df"]["resume_state"] = None
    opt = Logger.dict_to_nonedict(opt)
    t_import = time.time() - T0

    dataset_opt = opt["datasets"]["train"]  # t_fusion.py builds its loader from the 'train' entry
    test_dataset = FD(split="val", crop_size=dataset_opt["resolution"],
                      ir_path=os.path.join(a.pairs, "ir"), vi_path=os.path.join(a.pairs, "vi"), is_crop=False)
    test_loader = DataLoader(dataset=test_dataset, batch_size=dataset_opt["batch_size"], shuffle=False,
                             num_workers=1, pin_memory=True, drop_last=False)

    t = time.time()
    diffusion = Model.create_model(opt)
    fussion_net = Model.create_fusion_model(opt)
    t_build = time.time() - t
    n_params = sum(p.numel() for p in diffusion.netG.parameters()) + sum(
        p.numel() for p in fussion_net.netDF.parameters())
    os.makedirs(a.out, exist_ok=True)

    times = []
    for test_data, file_names in test_loader:
        start = time.time()
        diffusion.feed_data(test_data)
        fds = []
        for t_ in opt["model_df"]["t"]:
            fe_t, fd_t = diffusion.get_feats(t=t_)
            fds.append(fd_t)
            del fd_t, fe_t
        fussion_net.feed_data(fds, test_data)
        fussion_net.test()
        # core.metrics.tensor2img (3D branch) + save_img
        img = fussion_net.get_current_visuals()["pred_rgb"].detach().squeeze().float().cpu().clamp_(-1, 1)
        img = ((img + 1) / 2).numpy().transpose(1, 2, 0)
        img = (img * 255.0).round().astype(np.uint8)
        Image.fromarray(img).save(os.path.join(a.out, file_names[0]))
        times.append(time.time() - start)
        print(f"{file_names[0]}: {times[-1]:.1f} s", flush=True)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "params": n_params,
                      "import_s": round(t_import, 2), "build_s": round(t_build, 2),
                      "pairs_s": [round(x, 2) for x in times], "total_s": round(time.time() - T0, 2),
                      "peak_rss_mb": round(rss)}))


if __name__ == "__main__":
    main()
