"""The Template matching dock: a tomogram with three planted copies of an asymmetric map, matched with a decoy; the
candidates shown as points, the q slider accepting fewer as it tightens, a click on a copy showing its box with the
template in the found pose, and the accepted candidates exported as a STAR that starfile reads back."""

import numpy as np
import starfile

from cryoforge.io import write_mrc
from cryoforge.matching.job import match_rotations
from tests.helpers import phantom_crowd, tomogram_of_copies
from tests.napari_cryoforge.widgets.test_qa import _press

BOX, VOXEL = 20, 6.0


def test_match_dock_finds_the_copies_accepts_by_q_and_exports(docked, wait_job, tmp_path, stall_meter):
    from napari_cryoforge.widgets.match import POINTS, SCORES, MatchWidget

    grid = match_rotations(30.0)
    vol, ref, xyz = tomogram_of_copies(grid[[5, 40, 77]], BOX, (24, 48, 96), noise=0.3)
    write_mrc(tmp_path / "TS_1.mrc", vol, VOXEL)
    write_mrc(tmp_path / "template.mrc", ref, VOXEL)
    viewer, w = docked(MatchWidget)
    viewer.open(str(tmp_path / "TS_1.mrc"), plugin="napari-cryoforge")
    viewer.open(str(tmp_path / "template.mrc"), plugin="napari-cryoforge")
    assert w.inputs.tomogram.currentText() == "TS_1" and w.inputs.template.currentText() == "template"
    w.inputs.angular_step.setValue(30.0)
    w.inputs.mask_radius.setValue(48.0)
    w.inputs.decoys.setValue(1)
    w.inputs.n.setValue(20)
    w.inputs.set_output(str(tmp_path / "m"))
    stall_meter.start()
    w.run()
    wait_job(w, 300000)
    assert stall_meter.stop("Template matching (a decoy and the template)") <= stall_meter.allowance_ms
    found = w.found
    assert found is not None and found.n_decoys == 1 and found.q_name == "cfQValue"
    assert (tmp_path / "m" / "decoy1" / "job.json").is_file() and SCORES in viewer.layers
    pts = viewer.layers[POINTS]
    assert len(pts.data) == len(found.q_values) >= 3
    best3 = np.argsort(-found.particles.table["rlnLCCmax"].to_numpy())[:3]
    planted = {tuple(p) for p in xyz.astype(int)[:, ::-1]}  # (z, y, x) voxels
    assert {tuple(np.round(pts.data[i]).astype(int)) for i in best3} == planted
    # the slider: a looser q accepts at least as many, and the label says how many
    q = found.q_values
    assert q[best3].max() <= np.sort(q)[2]  # the copies have the smallest q-values
    w.fdr.q.setValue(float(q[best3].max()))
    assert w.accepted()[best3].all() and w.fdr.label.text().startswith(f"{int(w.accepted().sum())} of ")
    w.fdr.q.setValue(0.001)  # below the smallest a decoy comparison can give (1 / candidates): none
    assert not w.accepted().any() and w.fdr.label.text().startswith("0 of ")
    w.fdr.q.setValue(float(q[best3].max()))
    # a click on the first copy shows its box with the template in the found pose
    _press(pts, pts.data[best3[0]] * VOXEL + np.array([0.0, 3.0, -3.0]))
    assert w.selected == int(best3[0]) and w.panel.label.text().startswith(f"candidate {best3[0] + 1} of")
    assert all(img is not None for img in w.panel.images) and w.last_click_ms < 1000
    out = w.export_accepted(str(tmp_path / "accepted.star"))
    table = starfile.read(out)
    table = table["particles"] if isinstance(table, dict) else table
    assert len(table) == int(w.accepted().sum()) and (table["cfQValue"] <= q[best3].max()).all()


def test_match_dock_tests_the_candidates_and_shows_their_null_histograms(docked, wait_job, tmp_path):
    """Ribosome and proteasome phantoms of the shipped known set: after *Test candidates* the points are coloured by
    the test's q-values, a ribosome shows its pseudo-complex histogram with p̂, another candidate its known scores."""
    from napari_cryoforge.widgets.match import POINTS, MatchWidget

    sim, maps = phantom_crowd()
    write_mrc(tmp_path / "crowd.mrc", sim.tomogram, 12.0)
    write_mrc(tmp_path / "ribosome.mrc", maps[0], 12.0)
    viewer, w = docked(MatchWidget)
    viewer.open(str(tmp_path / "crowd.mrc"), plugin="napari-cryoforge")
    viewer.open(str(tmp_path / "ribosome.mrc"), plugin="napari-cryoforge")
    w.inputs.tomogram.setCurrentText("crowd")
    w.inputs.template.setCurrentText("ribosome")
    w.inputs.angular_step.setValue(45.0)
    w.inputs.decoys.setValue(0)
    w.inputs.set_output(str(tmp_path / "m"))
    w.run()
    wait_job(w, 300000)
    assert w.found is not None and w.found.q_name == "cfGaussianNullQValue" and w.test.canvas.isHidden()
    w.test.target.setCurrentText("ribosome")
    w.test.n_pseudo.setValue(100)
    w.test_candidates()
    wait_job(w, 300000)
    t = w.tests
    assert t is not None and w.found.q_name == "cfTestQValue" and len(t.q) == len(w.found.q_values)
    assert "tested" in w.status.text()
    pts = viewer.layers[POINTS]
    ribosome = [i for i, b in enumerate(t.best) if b == "ribosome"]
    other = [i for i, b in enumerate(t.best) if b != "ribosome"]
    assert ribosome and other
    w.fdr.q.setValue(0.05)
    assert w.accepted()[ribosome].all() and not w.accepted()[other].any()
    w.select(ribosome[0])
    assert not w.test.canvas.isHidden() and "Monte-Carlo p" in w.panel.label.text()
    assert len(w.test.ax.patches) == 40  # the pseudo-complexes' histogram
    w.select(other[0])
    assert "not the target: p = 1" in w.panel.label.text() and len(w.test.ax.patches) == len(t.names)  # known bars
    assert len(pts.data) == len(t.q)
