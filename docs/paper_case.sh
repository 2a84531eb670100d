#!/usr/bin/env bash
# The hypothesis test at the paper's sampling (issue 26, `cryoforge bench hyptest -o case=paper`): the known set of
# 64³ templates at 6 Å, the 3D-WGAN and its regressor trained on it, then the bench. Every step resumes: run it again
# after an interruption and it continues where it stopped (the GAN and the regressor from their last checkpoints).
#
#   bash docs/paper_case.sh [WORKDIR]      (default ./paper64; ../shared/structures must be there)
#
# On 2 CPU cores a GAN step at 64³ takes 7.5–8 s with N_CRITIC=5 (the default 10: about 15 s, estimated from
# 1.5–1.75 s per critic step, not timed), a regressor
# step about 1.5 s, the bench about 16 min with 20 calibration cases (about 9 s each).
# GAN_STEPS, N_CRITIC (critic steps per generator step, default 10) and REG_STEPS shorten the run.
# The figures in docs/benchmarks.md and docs/paper_case_64.json: N_CRITIC=5, the GAN stopped after step 1 102 (SIGTERM),
# REG_STEPS=800 (about 1.3 s a step), the bench 24 min with 100 calibration cases.
set -euo pipefail
work=${1:-paper64}
shared=${SHARED:-../shared/structures}
gan_steps=${GAN_STEPS:-1200}
reg_steps=${REG_STEPS:-1500}
n_critic=${N_CRITIC:-10}
mkdir -p "$work"

if [ ! -f "$work/templates64/templates.json" ]; then
  cryoforge hyptest templates \
    "$shared"/{4v5d.cif.gz,3jb9.cif.gz,4v1w.cif.gz,6z6u.pdb.gz,3enl_addH.pdb.gz,1ake.pdb.gz,4ake_chainA.pdb.gz} \
    phantom:{proteasome,ribosome,assembly@4,assembly@5,assembly@6,filament@3,ring@2,tripod@2} \
    --box 64 --voxel-size 6 --blur 2 --out "$work/templates64"
fi
cryoforge hyptest train-gan --templates "$work/templates64" --checkpoint "$work/wgan64.pt" --steps "$gan_steps" \
  --n-critic "$n_critic" --checkpoint-every 25 --validate-every 100
cryoforge hyptest train-regressor --templates "$work/templates64" --gan "$work/wgan64.pt" \
  --checkpoint "$work/regressor64.pt" --steps "$reg_steps" --checkpoint-every 100 --validate-every 100
cryoforge hyptest export "$work/regressor64.pt" "$work/wgan_regressor64.pt"
cryoforge bench hyptest -o case=paper -o templates="$work/templates64" -o model="$work/wgan_regressor64.pt" \
  -o calibration_cases=100 --out "$work/paper.json"
# the same with the neighbour null (pseudo-complexes around the best template's codes; a deviation from the paper),
# its p-values calibrated against 200 simulated H0 cases (written as a calibration for `hyptest test` below)
cryoforge bench hyptest -o case=paper -o templates="$work/templates64" -o model="$work/wgan_regressor64.pt" \
  -o calibration_cases=100 -o null_spread=1 -o reference_cases=200 -o reference_file="$work/calibration_nb1.json" \
  --out "$work/paper_neighbours.json"
# one subtomogram (4V5D at SNR 0.03, defocus 5 µm, Cs 2 mm) tested end to end from the CLI: loading, the null set
# and 1 000 templates scored
python - "$work" <<'PY'
import sys

import mrcfile

from cryoforge.hyptest.acquisition import simulate
from cryoforge.hyptest.templates import read_template_set

maps, names, vs = read_template_set(f"{sys.argv[1]}/templates64")
noisy, _, _ = simulate(maps[:1], 0.03, 1, voxel_size=vs, defocus=5.0, cs=2.0)
with mrcfile.new(f"{sys.argv[1]}/sub64.mrc", overwrite=True) as m:
    m.set_data(noisy[0])
    m.voxel_size = vs
PY
time cryoforge hyptest test "$work/sub64.mrc" --templates "$work/templates64" --model "$work/wgan_regressor64.pt" \
  --defocus 5 --cs 2 --limit 1
time cryoforge hyptest test "$work/sub64.mrc" --templates "$work/templates64" --model "$work/wgan_regressor64.pt" \
  --defocus 5 --cs 2 --limit 1 --null-spread 1 --calibration "$work/calibration_nb1.json"
