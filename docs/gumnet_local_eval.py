"""Rotation error of a Gum-Net checkpoint on 200 held-out pairs within ±RANGE degrees (the local-refinement regime of
issue 27), at SNR 100 and 0.1, normalised with the pairs' own statistics, beside the error of guessing no rotation:
``python docs/gumnet_local_eval.py CKPT [RANGE ...]`` (default 45). The pairs come from the shipped bench maps with a
seed the training never uses; shifts grow with the range as in the gated curriculum. The evaluation is the one
``cryoforge bench align`` runs for its ``local_range`` rows (:func:`cryoforge.align.bench._local_bench`)."""

import sys

from cryoforge.align.bench import AlignBench, _local_bench, _maps
from cryoforge.align.train import load_gumnet

ckpt = sys.argv[1]
ranges = [float(a) for a in sys.argv[2:]] or [45.0]
maps, vs = _maps()
models = {"model": load_gumnet(ckpt, box=maps.shape[-1])}
for rng_deg in ranges:
    for snr in (100.0, 0.1):
        rows = _local_bench(models, maps, vs, AlignBench(n_pairs=200, local_range=rng_deg), snr, 123_457, "cpu")
        m = rows["model"]
        print(f"±{rng_deg:g}° SNR {snr:g}: rotation error mean {m['rot_deg_mean']:.1f}° median "
              f"{m['rot_deg_median']:.1f}° (no-rotation guess {rows['no_rotation']['rot_deg_mean']:.1f}°), "
              f"shift {m['trans_vox_mean']:.2f} vox")
