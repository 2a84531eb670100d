"""Pose and FSC figures of a reference-free average of docs/tomo_e2e.py's extracted set:
``python docs/avg_analyze.py OUT NAME`` (the average in OUT/NAME). Writes OUT/NAME_report.json."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cryoforge.conventions import rotation_angle_deg
from cryoforge.geometry import transform_volumes
from cryoforge.io import read_mrc
from cryoforge.io.tomo_particles import read_particle_list
from cryoforge.metrics import fsc
from cryoforge.search import SearchConfig, classical_align

OUT = Path(sys.argv[1]); name = sys.argv[2]
truth_map = read_mrc(OUT / "sim/maps.mrcs")[0][0]; truth = read_particle_list(OUT / "sim/particles.star")
avg, _ = read_mrc(OUT / name / "average.mrc")
t = torch.from_numpy(truth_map).float(); a = torch.from_numpy(avg).float()
r, s, _ = classical_align(a[None], t[None], None, None, SearchConfig(global_rotations=4000, candidates=8))
c = fsc(transform_volumes(a, r[0], s[0]), t, 10.0)
ref = read_particle_list(OUT / name / "particles.star")
rel = torch.from_numpy(np.einsum("nji,njk->nik", truth.rotations, ref.rotations))
votes = [int((rotation_angle_deg(rel, g.expand_as(rel)) < 15).sum()) for g in rel]
g = rel[int(np.argmax(votes))]
err = rotation_angle_deg(torch.from_numpy(truth.rotations) @ g, torch.from_numpy(ref.rotations)).numpy()
h = ref.table["rlnRandomSubset"].to_numpy()
d = (ref.positions - truth.positions) / 10.0; d0 = np.median(d, 0)
rep = {"fsc0143_vs_truth_A": c.resolution(0.143), "fsc05_vs_truth_A": c.resolution(0.5),
       "gold_standard_A": json.loads((OUT / name / "average.json").read_text())["iterations"][-1]["resolution_0.143_A"],
       "rot_err_mean": float(err.mean()), "rot_err_median": float(np.median(err)), "within10": float((err < 10).mean()),
       "half_medians": [float(np.median(err[h == k])) for k in (1, 2)],
       "shift_err_vox_mean": float(np.linalg.norm(d - d0, axis=1).mean())}
print(json.dumps(rep, indent=1)); (OUT / f"{name}_report.json").write_text(json.dumps(rep, indent=1))
