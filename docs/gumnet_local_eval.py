"""Rotation error of a Gum-Net checkpoint on 200 held-out pairs within ±RANGE degrees (the local-refinement regime of
issue 27), at SNR 100 and 0.1, normalised with the pairs' own statistics, beside the error of guessing no rotation:
``python docs/gumnet_local_eval.py CKPT [RANGE ...]`` (default 45). The pairs come from the shipped bench maps with a
seed the training never uses; shifts grow with the range as in the gated curriculum."""

import sys

import torch

from cryoforge.align.adapt import recalibrated
from cryoforge.align.bench import _maps
from cryoforge.align.data import training_batch
from cryoforge.align.train import gumnet_predict, load_gumnet
from cryoforge.conventions import rotation_angle_deg
from cryoforge.sim.params import TomoParams

ckpt = sys.argv[1]
ranges = [float(a) for a in sys.argv[2:]] or [45.0]
maps, vs = _maps()
model = load_gumnet(ckpt, box=maps.shape[-1])
for rng_deg in ranges:
    for snr in (100.0, 0.1):
        s_a, s_b, rel, sh = training_batch(maps, 200, TomoParams(voxel_size=vs), [snr], 123_457, 0, 30.0,
                                           7.0 * rng_deg / 180, rng_deg)
        m = recalibrated(model, s_a, s_b)
        r, t = gumnet_predict(m, s_a, s_b)
        err = rotation_angle_deg(r, rel)
        ident = rotation_angle_deg(torch.eye(3).expand_as(rel), rel)
        shift = float(torch.linalg.norm(t - sh, dim=1).mean())
        print(f"±{rng_deg:g}° SNR {snr:g}: rotation error mean {float(err.mean()):.1f}° median "
              f"{float(err.median()):.1f}° (no-rotation guess {float(ident.mean()):.1f}°), shift {shift:.2f} vox")
