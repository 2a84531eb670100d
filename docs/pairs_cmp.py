"""Round-trip comparison for issue 25, ``python docs/pairs_cmp.py OUT [N]`` after docs/tomo_e2e.py OUT: the same
number of pair-dataset subtomograms (s_b: ±60°, 2° steps, SNR 0.1, 3 µm, the simulated tomogram's 4V5D map at 10 Å,
box 40) averaged with their true poses; FSC against the true map. Writes OUT/pairs_cmp.json."""
import json
import sys

import torch

from cryoforge.align.average import weighted_average
from cryoforge.align.data import simulate_pairs
from cryoforge.io import read_mrc
from cryoforge.metrics import fsc
from cryoforge.sim.params import TomoParams
from cryoforge.sim.subtomo import dataset_masks

OUT = sys.argv[1]
truth_map = read_mrc(f"{OUT}/sim/maps.mrcs")[0][0]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 220
p = TomoParams(voxel_size=10.0, tilt_step=2.0, snr=0.1, defocus_min=30000.0, defocus_max=30000.0)
ds = simulate_pairs(truth_map[None], n, p, seed=7, wedge_b=30.0, max_shift=0.0)
_, mb = dataset_masks(ds)
from cryoforge.conventions import euler_zyz_to_matrix

t = ds.truth
x = torch.from_numpy(ds.s_b)
rot = euler_zyz_to_matrix(t["b_rot"].to_numpy(), t["b_tilt"].to_numpy(), t["b_psi"].to_numpy()).float()  # absolute
sh = torch.from_numpy(ds.shifts()).float()
avg = weighted_average(x, torch.as_tensor(mb)[None] if mb.ndim == 3 else torch.as_tensor(mb), rot, sh)
c = fsc(avg, torch.from_numpy(truth_map), 10.0)
out = {"n": n, "pairs_fsc0143_vs_truth_A": c.resolution(0.143), "pairs_fsc05_vs_truth_A": c.resolution(0.5)}
print(json.dumps(out)); open(f"{OUT}/pairs_cmp.json", "w").write(json.dumps(out, indent=1))
