"""The Hypothesis test dock: test a shipped known-complex subtomogram (histogram, lines, verdict, fitted
template), click a line and a bar, test a stack (table with q-values), and bad input."""

from dataclasses import replace

import numpy as np
import pytest

from napari_cryoforge._jobs import at_once

FAST = {"n_rotations": 500}


@pytest.fixture
def hyp(docked):
    from napari_cryoforge.widgets.hyptest import HypTestWidget

    viewer, widget = docked(HypTestWidget, "known_subtomograms")
    widget.testing.n_pseudo.setValue(120)
    return viewer, widget


def _fast(widget):
    tester = widget._get_tester()
    tester.cfg.score = replace(tester.cfg.score, **FAST)
    return tester


class _Pick:
    def __init__(self, artist):
        self.artist = artist


def test_one_subtomogram_histogram_and_picks(hyp, qtbot, wait_job, stall_meter):
    viewer, w = hyp
    assert w.inputs.layer.currentText() == "s_b known complexes, SNR 0.03"
    _fast(w)
    w.inputs.index.setValue(1)  # 3JB9
    stall_meter.start()
    w.test_one()
    wait_job(w, 180000)
    assert stall_meter.stop("Hypothesis test (one subtomogram)") <= stall_meter.allowance_ms
    r = w.last_result
    assert r.truth_name == "3jb9" and r.B == 120 + 14
    assert "Monte-Carlo p" in w.summary.text() and "Cond.1" in w.summary.text()
    labels = [t.get_text() for t in w.ax.texts]
    assert any(f"1. {r.best_name}" in t for t in labels) and any("p=0.01" in t for t in labels)
    reds = [ln for ln in w._lines if ln.get_color() == "red"]
    assert len(reds) == 1 and w._lines[reds[0]] == r.best
    assert sum(b.get_height() for b in w._bars) == 120  # every pseudo score is in the histogram
    assert viewer.layers["hyptest: template"].data.shape == (32, 32, 32)
    other = next(ln for ln, k in w._lines.items() if k != r.best)
    w._picked(_Pick(other))  # shown in the next event-loop turns
    qtbot.waitUntil(lambda: viewer.layers["hyptest: template"].metadata["template"] == w.tester.names[w._lines[other]],
                    timeout=5000)
    bar = max(w._bars, key=lambda b: b.get_height())
    w._picked(_Pick(bar))
    assert viewer.layers["hyptest: pseudo-complex"].data.shape == (32, 32, 32)


def test_stack_table(hyp, qtbot, wait_job):
    viewer, w = hyp
    _fast(w)
    w.testing.limit.setValue(2)
    w.test_all()
    wait_job(w, 180000)
    assert w.table.rowCount() == 2 and not w.table.isHidden()
    assert w.table.item(0, 6).text() == "4v5d" and w.table.item(1, 6).text() == "3jb9"
    q = [float(w.table.item(i, 4).text()) for i in range(2)]
    p = [float(w.table.item(i, 3).text()) for i in range(2)]
    assert all(qi >= pi for qi, pi in zip(q, p, strict=True))
    at_once(w._show_row(1))  # a table click, shown in event-loop turns; here all at once
    assert w.last_result.truth_name == "3jb9"


def test_bad_inputs(hyp, qtbot, monkeypatch, tmp_path):
    viewer, w = hyp
    errors = []
    monkeypatch.setattr("napari_cryoforge.widgets.hyptest.report_error", errors.append)
    viewer.add_image(np.zeros((16, 16, 16), np.float32), name="small")
    w.inputs.layer.setCurrentText("small")
    w.test_one()
    assert w.job is None and "16³ but the templates are 32³" in errors[-1]
    w.inputs.layer.setCurrentText("s_b known complexes, SNR 0.03")
    w.testing.n_pseudo.setValue(50)
    w.test_one()
    assert "cannot reach" in errors[-1]
    w.testing.n_pseudo.setValue(120)
    w.inputs.model.setText(str(tmp_path / "missing.pt"))
    w.test_one()
    assert "no such checkpoint" in errors[-1]


def test_the_null_is_a_setting_of_the_dock(hyp):
    _, w = hyp
    paper = w._get_tester()
    assert paper.cfg.null_spread is None and w.testing.spread.text() == "paper (whole prior)"
    w.testing.spread.setValue(1.0)
    near = w._get_tester()
    assert near is not paper and near.cfg.null_spread == 1.0  # a new null, not the cached one
    w.testing.spread.setValue(0.0)
    assert w._get_tester().cfg.null_spread is None


def test_a_calibration_file_is_a_setting_of_the_dock_and_one_for_another_null_is_refused(hyp, tmp_path, monkeypatch):
    import cryoforge.hyptest.calibration as calibration
    from napari_cryoforge.widgets import hyptest as dock

    _, w = hyp
    errors = []
    monkeypatch.setattr(dock, "report_error", errors.append)
    good = calibration.Calibration(np.linspace(0, 1, 120), {"null_spread": None, "prior": 1.0, "box": 32})
    other = calibration.Calibration(np.linspace(0, 1, 120), {"null_spread": 1.0, "prior": 1.0, "box": 32})
    w.testing.calibration.setText(str(good.write(tmp_path / "good.json")))
    tester = w._get_tester()
    assert tester.calibration is not None and tester.calibration.cases == 120
    w.testing.calibration.setText(str(other.write(tmp_path / "other.json")))
    w.test_one()
    assert w.job is None and "calibrate again with the test's null" in errors[-1]
    w.testing.calibration.setText("")
    assert w._get_tester().calibration is None


def test_with_a_calibration_the_green_line_is_where_the_calibrated_p_crosses_alpha(hyp, tmp_path):
    import cryoforge.hyptest.calibration as calibration

    _, w = hyp
    rng = np.random.default_rng(0)
    w._known, w._pseudo = rng.normal(0.3, 0.05, 14), rng.normal(0.2, 0.05, 120)
    null = np.concatenate([w._pseudo, np.delete(w._known, np.argmax(w._known))])

    def green():
        line = next(ln for ln in w.ax.lines if ln.get_color() == "green")
        text = next(t.get_text() for t in w.ax.texts if t.get_color() == "green")
        return float(line.get_xdata()[0]), text

    w._get_tester()
    w.draw_histogram()
    assert green() == (pytest.approx(np.quantile(null, 0.99)), " p=0.01")
    h0 = np.linspace(0, 0.5, 300)  # p̂ anti-conservative: p ≤ 0.01 needs p̂ < the third smallest, 0.00334
    cal = calibration.Calibration(h0, {"null_spread": None, "prior": 1.0, "box": 32})
    w.testing.calibration.setText(str(cal.write(tmp_path / "cal.json")))
    w._get_tester()
    w.draw_histogram()
    x, text = green()
    assert x == pytest.approx(np.quantile(null, 1 - h0[2])) and x > np.quantile(null, 0.99)
    assert text == " calibrated p=0.01"
    cal = calibration.Calibration(np.zeros(300), {"null_spread": None, "prior": 1.0, "box": 32})
    w.testing.calibration.setText(str(cal.write(tmp_path / "zeros.json")))
    w._get_tester()
    w.draw_histogram()
    assert green() == (pytest.approx(null.max()), " calibrated p=0.01: unreachable")
