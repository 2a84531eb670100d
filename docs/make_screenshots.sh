#!/usr/bin/env bash
# Remakes every picture of the README with the command printed under it (run from the repository root, with the
# project installed). Without a display it runs each under xvfb-run (Xvfb + Mesa give vispy a real GL context).
set -euo pipefail
cd "$(dirname "$0")/.."
run() {
  if [ -n "${DISPLAY:-}" ]; then "$@"; else xvfb-run -a -s "-screen 0 1600x1000x24" "$@"; fi
}
run cryoforge view --sample --fsc --3d --screenshot docs/screenshot.png
run cryoforge view --sample --simulate --screenshot docs/simulate.png
run cryoforge view --sample --align --screenshot docs/align.png
run cryoforge view --explore --screenshot docs/explorer.png
# the Subtomogram QA dock on a simulated crowded tomogram (ribosome phantoms, 10 Å voxels) and its true particle list
sim="$(mktemp -d)/sim"
cryoforge simulate tomogram phantom:ribosome --box 40 --voxel-size 10 --shape 384 384 96 --n-particles 120 \
  --thickness 900 --snr 0.1 --out "$sim"
run cryoforge view "$sim/tomogram.mrc" --particles "$sim/particles.star" --qa --box 40 --screenshot docs/qa.png
run cryoforge view --sample --hyptest --screenshot docs/hyptest.png
run cryoforge view --mcgan --screenshot docs/mcgan.png
# the Template matching dock on bench tm's first crowded tomogram (needs ../shared/structures)
run python docs/match_screenshot.py docs/match.png
# `cryoforge view --match` on a simulated crowded tomogram of ribosome and proteasome phantoms (12 Å voxels)
tm="$(mktemp -d)"
cryoforge simulate tomogram phantom:ribosome phantom:proteasome --voxel-size 12 --box 32 --shape 192 192 64 \
  --n-particles 30 --thickness 600 --out "$tm/tm_sim"
cryoforge simulate map phantom:ribosome --box 32 --voxel-size 12 --out "$tm/ribosome.mrc"
run cryoforge view "$tm/tm_sim/tomogram.mrc" "$tm/ribosome.mrc" --match --target ribosome \
  --screenshot docs/match_view.png
