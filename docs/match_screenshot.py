"""The Template matching dock's picture: the first crowded tomogram of ``cryoforge bench tm`` (SNR 0.1, seed 0: 4V5D
target with 3JB9 and 6Z6U beside it, 192 × 192 × 64 voxels of 12 Å, ±60° tilts, 3 µm defocus), written as MRC and
opened in napari with the 4V5D template; the dock matches it at 20°, tests every candidate against the shipped known set
and the 3D-WGAN's pseudo-complexes (target 4v5d), accepts at q ≤ 0.05 and shows the strongest candidate with its
pseudo-complex histogram. ``xvfb-run -a -s "-screen 0 1600x1000x24" python docs/match_screenshot.py docs/match.png``
(needs ../shared/structures, as the bench does)."""

import sys
import tempfile
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer

from cryoforge.bench_tm import TmBench
from cryoforge.bench_tomo import _resolve
from cryoforge.io import write_mrc
from cryoforge.jobs import drive
from cryoforge.sim.sources import MapSpec, load_map, source_name
from cryoforge.sim.tomogram import TomogramParams, map_radius, simulate_tomogram_job

out = sys.argv[1] if len(sys.argv) > 1 else "docs/match.png"
o = TmBench()
spec = MapSpec(o.box, o.voxel_size)
sources = [o.target, *o.others]
maps = np.stack([load_map(_resolve(s, o.shared), spec, seed=k) for k, s in enumerate(sources)])
params = TomogramParams(shape=o.shape, voxel_size=o.voxel_size, n_particles=o.n_particles, tilt_range=o.tilt_range,
                        tilt_step=o.tilt_step, snr=0.1, defocus=o.defocus, thickness=o.thickness, seed=0)
sim = drive(simulate_tomogram_job(maps, [source_name(s) for s in sources], params))
work = Path(tempfile.mkdtemp(prefix="cryoforge_match_"))
write_mrc(work / "TS_01.mrc", sim.tomogram, o.voxel_size)
write_mrc(work / "template_4v5d.mrc", maps[0], o.voxel_size)

viewer = napari.Viewer(title="cryoforge")
viewer.open(str(work / "TS_01.mrc"), plugin="napari-cryoforge")
viewer.open(str(work / "template_4v5d.mrc"), plugin="napari-cryoforge")
frame, dock = viewer.window.add_plugin_dock_widget("napari-cryoforge", "Template matching")
dock.inputs.tomogram.setCurrentText("TS_01")
dock.inputs.template.setCurrentText("template_4v5d")
dock.inputs.angular_step.setValue(o.angular_step)
dock.inputs.mask_radius.setValue(min(map_radius(maps[0]) + 2, o.box / 2) * o.voxel_size)
dock.inputs.decoys.setValue(0)
dock.test.target.setCurrentText("4v5d")
dock.inputs.set_output(str(work / "match"))
dock.fdr.q.setValue(0.05)
viewer.layers["template_4v5d"].visible = False
viewer.dims.set_point(0, o.voxel_size * o.shape[2] / 2)  # the tomogram's middle slice
dock.run()


tested: list[bool] = []


def shoot():
    if dock.job is not None and dock.job.running or dock.found is None:
        QTimer.singleShot(300, shoot)
        return
    if dock.tests is None:
        if not tested:
            tested.append(True)
            dock.test_candidates()
        QTimer.singleShot(300, shoot)
        return
    dock.select(int(np.argmax(dock.found.particles.table["rlnLCCmax"].to_numpy())))
    QTimer.singleShot(500, lambda: (viewer.screenshot(out, canvas_only=False, flash=False), print(out),
                                    viewer.close()))


viewer.window.resize(1500, 980)
QTimer.singleShot(1500, shoot)
napari.run()
