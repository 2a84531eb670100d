"""End-to-end measurement for issue 25, ``python docs/tomo_e2e.py OUT`` from the repository (../shared beside it):
simulate → extract → reconstruct (true poses) and reference-free average; FSC against the true map, pose errors
against the truth (after the best global rotation). Writes OUT/report.json."""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(sys.argv[1]); OUT.mkdir(parents=True, exist_ok=True)
S = str(Path(__file__).resolve().parents[2] / "shared" / "structures" / "4v5d.cif.gz")  # ../shared beside the repo
def run(*a):
    if (OUT / a[a.index("--out") + 1].split("/")[-1]).exists():
        return None
    t = time.perf_counter(); subprocess.run([sys.executable, "-m", "cryoforge.cli", *a], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t
rep = {}
rep["simulate_s"] = run("simulate", "tomogram", S, "--box", "40", "--voxel-size", "10", "--n-particles", "220", "--thickness", "1250",
                        "--snr", "0.1", "--seed", "0", "--out", str(OUT / "sim"))
rep["extract_s"] = run("extract", str(OUT / "sim/tomogram.mrc"), str(OUT / "sim/particles.star"), "--box", "40",
                       "--tlt", str(OUT / "sim/tiltseries.tlt"), "--out", str(OUT / "ex"))
rep["reconstruct_s"] = run("align", "reconstruct", str(OUT / "ex"), "--out", str(OUT / "rec"))
rep["average_s"] = run("align", "average", str(OUT / "ex"), "--out", str(OUT / "avg"))
from cryoforge.conventions import rotation_angle_deg
from cryoforge.geometry import transform_volumes
from cryoforge.io import read_mrc
from cryoforge.io.tomo_particles import read_particle_list
from cryoforge.metrics import fsc
from cryoforge.search import SearchConfig, classical_align

truth_map = read_mrc(OUT / "sim/maps.mrcs")[0][0]
truth = read_particle_list(OUT / "sim/particles.star")
rep["n_particles"] = len(truth)
for name in ("rec", "avg"):
    avg, info = read_mrc(OUT / name / "average.mrc")
    t = torch.from_numpy(truth_map).float(); a = torch.from_numpy(avg).float()
    if name == "avg":  # reference-free: bring the average into the truth's frame first (t ≈ T(r, s) a)
        r, s, _ = classical_align(a[None], t[None], None, None, SearchConfig(global_rotations=4000, candidates=8))
        a = transform_volumes(a, r[0], s[0])
        rep["avg_to_truth_rotation"] = r[0].tolist()
    c = fsc(a, t, 10.0)
    rep[f"{name}_fsc0143_vs_truth_A"] = c.resolution(0.143)
    rep[f"{name}_fsc05_vs_truth_A"] = c.resolution(0.5)
    rep[f"{name}_gold_standard_A"] = json.loads((OUT / name / "average.json").read_text())["iterations"][-1]["resolution_0.143_A"]
ref = read_particle_list(OUT / "avg" / "particles.star")
# poses: refined R_i = R_true_i · G for one global G (the average's frame); estimate G as the mean of R_true_iᵀ R_i
rel = np.einsum("nji,njk->nik", truth.rotations, ref.rotations)
u, _, vt = np.linalg.svd(rel.mean(0)); g = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
err = rotation_angle_deg(torch.from_numpy(truth.rotations @ g), torch.from_numpy(ref.rotations)).numpy()
rep["rotation_error_deg_mean"] = float(err.mean()); rep["rotation_error_deg_median"] = float(np.median(err))
rep["fraction_within_10deg"] = float((err < 10).mean())
# shifts: refined positions − true positions, after removing the common offset (the average's centre)
d = (ref.positions - truth.positions) / 10.0
d0 = np.median(d, 0)
rep["shift_error_vox_mean"] = float(np.linalg.norm(d - d0, axis=1).mean())
rep["shift_common_offset_vox"] = d0.tolist()
(OUT / "report.json").write_text(json.dumps(rep, indent=1))
print(json.dumps(rep, indent=1))
