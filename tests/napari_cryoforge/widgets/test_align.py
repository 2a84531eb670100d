"""The Align & average dock: align a sample pair (errors against the truth), align a set (histogram),
reference-free averaging with a live FSC, training with a live loss plot, and bad input."""

import numpy as np
import pytest


@pytest.fixture
def align(docked):
    from napari_cryoforge.widgets.align import AlignWidget

    return docked(AlignWidget)


@pytest.fixture
def small_dataset(tmp_path_factory):
    """Eight noise-free-ish pairs of one asymmetric shipped map, written as a pair dataset."""
    from cryoforge.align.data import simulate_pairs
    from cryoforge.io.mrc import read_mrc
    from cryoforge.samples import sample_path
    from cryoforge.sim.params import TomoParams
    from cryoforge.sim.subtomo import write_pairs

    maps, _ = read_mrc(sample_path("gumnet/maps.mrc"))
    ds = simulate_pairs(np.asarray(maps[:1]), 8, TomoParams(snr=5.0, apply_ctf=False), seed=1, structures=["4v5d"])
    out = tmp_path_factory.mktemp("pairs")
    write_pairs(ds, out)
    return out


def _open_pairs(viewer, path):
    from cryoforge.sim.subtomo import read_pairs

    ds = read_pairs(path)
    meta = {"cryoforge": {"dataset": str(path), "voxel_size": (12.0,) * 3}}
    viewer.add_image(ds.s_a, name="s_a set", scale=(1, 12, 12, 12), metadata=meta)
    viewer.add_image(ds.s_b, name="s_b set", scale=(1, 12, 12, 12), metadata=meta)
    return ds


def test_align_one_pair_shows_overlay_and_errors(align, qtbot, small_dataset, wait_job, stall_meter):
    viewer, w = align
    _open_pairs(viewer, small_dataset)
    assert w.pairs.layer_a.currentText() == "s_a set" and w.pairs.layer_b.currentText() == "s_b set"
    w.pairs.method.setCurrentText("classical")
    w.pairs.pair.setValue(3)
    stall_meter.start()
    w.align_pair()
    wait_job(w)
    assert stall_meter.stop("Align & average (align a pair)") <= stall_meter.allowance_ms
    assert {"align: s_a", "align: aligned s_b"} <= {ly.name for ly in viewer.layers}
    assert viewer.layers["align: aligned s_b"].data.shape == (32, 32, 32)
    text = w.pairs.result_label.text()
    assert "error vs truth" in text and "→" in text
    assert w.last_result.errors["rot_deg"][0] < 5.0
    assert w.last_result.corr_after[0] > w.last_result.corr_before[0]


def test_one_pair_of_a_stack_with_gumnet_normalises_with_the_stack(align, qtbot, small_dataset, wait_job):
    viewer, w = align
    _open_pairs(viewer, small_dataset)  # 8 pairs: enough for the statistics (cryoforge.align.adapt)
    w.pairs.method.setCurrentText("gumnet")
    w.pairs.pair.setValue(2)
    w.align_pair()
    wait_job(w)
    assert w.last_result.n_pairs == 1 and w.last_result.summary["norm_from_these_pairs"] == 1


def test_s_b_chooser_prefers_a_layer_that_fits_s_a(align, small_dataset):
    viewer, w = align
    viewer.add_image(np.zeros((15, 32, 32, 32), np.float32), name="s_b known complexes")  # opened first, another set
    _open_pairs(viewer, small_dataset)
    assert w.pairs.layer_a.currentText() == "s_a set" and w.pairs.layer_b.currentText() == "s_b set"


def test_align_all_draws_error_histogram_then_average_with_fsc(align, qtbot, small_dataset, wait_job):
    viewer, w = align
    _open_pairs(viewer, small_dataset)
    w.pairs.method.setCurrentText("classical")
    w.pairs.limit.setValue(2)
    w.align_all()
    wait_job(w)
    assert len(w.last_result.errors["rot_deg"]) == 2
    assert w.err_axes[0].patches  # histogram bars
    w.averaging.iterations.setValue(1)
    w.average()
    wait_job(w)
    assert "align: average" in viewer.layers and viewer.layers["align: average"].data.shape == (32, 32, 32)
    assert w.averaging.fsc_ax.lines and w.last_result.report["iterations"][0]["resolution_0.143_A"] > 0


def test_train_from_the_dock_plots_loss_and_writes_checkpoint(align, qtbot, small_dataset, tmp_path, wait_job):
    viewer, w = align
    _open_pairs(viewer, small_dataset)
    w.training.steps.setValue(5)
    w.training.checkpoint.setText(str(tmp_path / "g.pt"))
    w.train()
    wait_job(w, 300000)
    assert (tmp_path / "g.pt").is_file() and w.pairs.checkpoint.text() == str(tmp_path / "g.pt")
    assert len(w.training.curves["loss"]) >= 1 and w.training.ax.lines


def test_bad_inputs_give_one_clear_error(align, qtbot, notifications, tmp_path):
    viewer, w = align
    viewer.add_image(np.zeros((32, 32, 32), np.float32), name="s_a cube")
    viewer.add_image(np.zeros((24, 24, 24), np.float32), name="s_b small")
    w.pairs.layer_a.setCurrentText("s_a cube")
    w.pairs.layer_b.setCurrentText("s_b small")
    w.align_pair()
    assert w.job is None
    assert any("same shape" in m for _, m in notifications)
    viewer.add_image(np.zeros((40, 40, 40), np.float32), name="s_a 40")
    viewer.add_image(np.zeros((40, 40, 40), np.float32), name="s_b 40")
    w.pairs.layer_a.setCurrentText("s_a 40")
    w.pairs.layer_b.setCurrentText("s_b 40")
    w.pairs.method.setCurrentText("gumnet")
    w.align_pair()
    assert w.job is None
    assert any("trained for 32³" in m and "40³" in m for _, m in notifications)
    w.average()
    assert any("does not come from a pair dataset" in m for _, m in notifications)
