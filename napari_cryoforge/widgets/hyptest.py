"""Hypothesis-test dock: is the best-matching known template significant against GAN pseudo-complexes?

Pick a subtomogram layer (a volume, or a stack whose index follows the viewer's slider) and a template
set; the engine (cryoforge.hyptest.montecarlo.HypothesisTester) scores the known templates, draws the
null set of pseudo-complexes for the best one and scores them in the background. The histogram of
pseudo-complex scores grows live, with a vertical line per known template (the best in red, labelled
with its rank and p̂) and the p = α threshold in green, as in the paper's Figure 4 (with a *calibration*, where the
calibrated p crosses α). Click a line to show
that template fitted into the subtomogram, or a bar to show the pseudo-complex nearest to it. *Test
all* runs every subtomogram of the stack and fills a table with p̂, the Benjamini–Hochberg q and the
verdict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from .._jobs import in_turns
from .._notify import report_error, report_info
from ._dock import JobDock
from .controls import canvas, dspin, ispin, layer_combo, path_row, refresh_combo, voxel_size_of
from .groups import null_histogram

TABLE_COLUMNS = ("#", "best", "score", "Monte-Carlo p", "q", "verdict", "truth")  # Qt drops p̂'s combining hat


class InputGroup(QGroupBox):
    """What is tested: the subtomogram layer and index, its tilt range (missing-wedge mask), the known templates
    and the 3D-WGAN that makes the pseudo-complexes."""

    def __init__(self, on_browse_templates, on_browse_model):
        super().__init__("Subtomogram and templates")
        f = QFormLayout(self)
        self.layer = layer_combo()
        f.addRow("subtomogram", self.layer)
        self.index = ispin(0, 0, 0, tip="index in an (N, Z, Y, X) stack; follows the viewer's slider")
        f.addRow("index", self.index)
        tilt = QHBoxLayout()
        self.tilt_min = dspin(-60, -90, 0, 5, "°", 1,
                              "lowest tilt (missing-wedge mask); a pair dataset's own wedge wins")
        self.tilt_max = dspin(60, 0, 90, 5, "°", 1, "highest tilt")
        tilt.addWidget(self.tilt_min)
        tilt.addWidget(self.tilt_max)
        f.addRow("tilt range", tilt)
        row, self.templates = path_row("shipped 15 known complexes (32³, 12 Å)", on_browse_templates, "…")
        f.addRow("templates", row)
        row, self.model = path_row("shipped 3D-WGAN + regressor", on_browse_model, "…")
        f.addRow("GAN model", row)


class TestGroup(QGroupBox):
    """How the test is run: null-set size, α, the rejection region's prior, the null (the paper's or the neighbour
    null), an optional calibration of p̂ (``cryoforge hyptest calibrate``); test one subtomogram or the first N."""

    __test__ = False  # not a pytest test class

    def __init__(self, cancel_btn, on_browse_calibration):
        super().__init__("Monte-Carlo test")
        f = QFormLayout(self)
        self.n_pseudo = ispin(985, 10, 100_000, tip="pseudo-complexes in the null set (B = this + other known)")
        f.addRow("pseudo-complexes", self.n_pseudo)
        self.alpha = dspin(0.01, 0.0001, 0.5, 0.005, "", 4, "significance threshold α")
        f.addRow("α", self.alpha)
        self.prior = dspin(1.0, 0.001, 1000, 0.5, "", 3, "prior π of the rejection region N(z) < π·E(z)")
        f.addRow("prior π", self.prior)
        self.spread = dspin(0.0, 0.0, 10.0, 0.25, "", 2,
                            "0: pseudo-complexes drawn from the whole GAN prior (the paper). τ > 0: the neighbour "
                            "null — drawn at spread τ (prior standard deviations) around the best template's own "
                            "codes, its rejection region kept. Rejects more unknown complexes, but its Monte-Carlo p is not "
                            "calibrated (anti-conservative with the shipped model, docs/benchmarks.md): set a "
                            "calibration below, made by cryoforge hyptest calibrate --null-spread τ")
        self.spread.setSpecialValueText("paper (whole prior)")
        f.addRow("neighbour null τ", self.spread)
        row, self.calibration = path_row("none: the Monte-Carlo p decides", on_browse_calibration, "…")
        self.calibration.setToolTip("calibrated p-values: a JSON of simulated H0 cases from `cryoforge hyptest "
                                    "calibrate` made with this null, prior and the data's acquisition; the Monte-Carlo p "
                                    "(p-hat) is then referred to them, p = (1 + #{H0 p-hat ≤ p-hat}) / (M + 1)")
        f.addRow("calibration", row)
        buttons = QHBoxLayout()
        self.test_btn = QPushButton("Test subtomogram")
        self.all_btn = QPushButton("Test all")
        self.limit = ispin(20, 1, 100_000, tip="how many subtomograms 'Test all' takes")
        for w in (self.test_btn, self.all_btn, QLabel("first"), self.limit):
            buttons.addWidget(w)
        f.addRow(buttons)
        f.addRow(cancel_btn)

    def config(self):
        """The test's :class:`~cryoforge.hyptest.config.HypTestConfig` (scoring at its defaults)."""
        from cryoforge.hyptest.config import HypTestConfig

        return HypTestConfig(n_pseudo=self.n_pseudo.value(), alpha=self.alpha.value(), prior=self.prior.value(),
                             null_spread=self.spread.value() or None)


class HypTestWidget(JobDock):
    """The Hypothesis test dock: score templates against subtomograms and give Monte-Carlo p-values."""

    job_buttons = ("testing.test_btn", "testing.all_btn")
    preload = ("sklearn.model_selection", "sklearn.neighbors")  # the null set's KDE (cryoforge.hyptest.null)

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.tester = None
        self._tester_key = None
        self.last_result = None
        self.table_result = None
        self._known, self._pseudo = None, None
        root = QVBoxLayout(self)

        self.inputs = InputGroup(self._browse_templates, self._browse_model)
        root.addWidget(self.inputs)
        self.testing = TestGroup(self.cancel_btn, self._browse_calibration)
        self.testing.test_btn.clicked.connect(self.test_one)
        self.testing.all_btn.clicked.connect(self.test_all)
        root.addWidget(self.testing)

        self.summary = QLabel("\n\n")
        self.summary.setWordWrap(True)
        root.addWidget(self.summary)
        self.canvas, (self.ax,) = canvas(2.6)
        self.canvas.mpl_connect("pick_event", self._picked)
        root.addWidget(self.canvas)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setVisible(False)
        self.table.cellClicked.connect(lambda r, _c: in_turns(self._show_row(r)))
        root.addWidget(self.table)
        root.addStretch(1)

        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.dims.events.current_step.connect(self._follow_slider)
        self.inputs.layer.currentTextChanged.connect(lambda *_: self._refresh_index())
        self._refresh_layers()

    # ------------------------------------------------------------------ inputs
    def image_layers(self):
        from napari.layers import Image

        return [ly for ly in self.viewer.layers if isinstance(ly, Image) and ly.ndim in (3, 4)
                and not ly.name.startswith("hyptest:")]

    def _refresh_layers(self, *_):
        refresh_combo(self.inputs.layer, [ly.name for ly in self.image_layers()], "s_b")
        self._refresh_index()

    def _refresh_index(self):
        ly = self._layer()
        self.inputs.index.setMaximum(max(0, ly.data.shape[0] - 1) if ly is not None and ly.ndim == 4 else 0)

    def _follow_slider(self, *_):
        ly = self._layer()
        if ly is not None and ly.ndim == 4:
            self.inputs.index.setValue(int(self.viewer.dims.current_step[0]))

    def _browse_templates(self):
        path, _ = QFileDialog.getOpenFileName(self, "Template set (templates.mrc or an MRC stack)", "", "MRC (*.mrc *.map)")
        if path:
            self.inputs.templates.setText(path)

    def _browse_model(self):
        path, _ = QFileDialog.getOpenFileName(self, "Regressor checkpoint (holds the generator)", "", "Checkpoints (*.pt)")
        if path:
            self.inputs.model.setText(path)

    def _browse_calibration(self):
        path, _ = QFileDialog.getOpenFileName(self, "Calibration (cryoforge hyptest calibrate)", "", "JSON (*.json)")
        if path:
            self.testing.calibration.setText(path)

    def _layer(self):
        return self._named_layer(self.inputs.layer.currentText())

    def _dataset(self, layer):
        d = (layer.metadata or {}).get("cryoforge", {}).get("dataset")
        return d if d and Path(d, "dataset.json").is_file() else None

    def _subtomograms(self, single: bool):
        """``(volumes (N, n, n, n), first index, mask, truths or None, voxel size)`` of the chosen layer."""
        ly = self._layer()
        if ly is None:
            raise ValueError("choose a subtomogram image layer")
        data = np.asarray(ly.data, np.float32)
        first = 0
        if data.ndim == 4:
            first = self.inputs.index.value() if single else 0
            data = data[first:first + 1] if single else data[: self.testing.limit.value()]
        else:
            data = data[None]
        if len(set(data.shape[1:])) != 1:
            raise ValueError(f"subtomograms must be cubic (n, n, n); got {data.shape[1:]} (Z, Y, X)")
        mask, truths = None, None
        d = self._dataset(ly)
        if d is not None:
            from cryoforge.hyptest.subtomograms import read_subtomograms

            _, mask, names, _ = read_subtomograms(d)
            truths = list(names[first:first + len(data)])
        if mask is None or mask.shape[-1] != data.shape[-1]:
            from cryoforge.sim.tomo import centred_wedge

            mask = centred_wedge(data.shape[-1], self.inputs.tilt_min.value(), self.inputs.tilt_max.value()).numpy()
        return data, first, mask, truths, voxel_size_of(ly)

    def _get_tester(self):
        from cryoforge.hyptest.montecarlo import HypothesisTester
        from cryoforge.hyptest.templates import read_template_set
        from cryoforge.samples import HYPTEST_MODEL, sample_path

        tpath = self.inputs.templates.text().strip() or None
        mpath = self.inputs.model.text().strip() or str(sample_path(HYPTEST_MODEL))
        cfg = self.testing.config()
        cpath = self.testing.calibration.text().strip() or None
        key = (tpath, mpath, cfg.n_pseudo, cfg.alpha, cfg.prior, cfg.null_spread, cpath)
        if self.tester is None or key != self._tester_key:
            maps, names, vs = read_template_set(tpath)
            calibration = None
            if cpath is not None:
                from cryoforge.hyptest.calibration import Calibration

                calibration = Calibration.read(cpath)
            self.tester = HypothesisTester.from_checkpoint(mpath, maps, names, cfg, calibration=calibration)
            self._tester_key, self._template_vs = key, vs
        return self.tester

    # ------------------------------------------------------------------ jobs
    def _prepare(self, single):
        try:
            data, first, mask, truths, vs = self._subtomograms(single)
            tester = self._get_tester()
            if data.shape[-1] != tester.templates.shape[-1]:
                raise ValueError(f"the subtomograms are {data.shape[-1]}³ but the templates are "
                                 f"{tester.templates.shape[-1]}³; resample one to the other")
        except (ValueError, FileNotFoundError, RuntimeError) as err:
            report_error(f"Cannot test: {err}")
            return None
        index = {n: i for i, n in enumerate(tester.names)}
        truth_idx = None if truths is None else [index.get(str(t), -1) for t in truths]
        return data, first, mask, truth_idx, vs, tester

    def test_one(self):
        if self._busy():
            return
        prepared = self._prepare(single=True)
        if prepared is None:
            return
        data, first, mask, truths, vs, tester = prepared
        self._p, self._vs, self._first = data[0], vs, first
        self._known, self._pseudo = None, None
        self.ax.clear()
        job = tester.test_job(data[0], mask, None if truths is None else truths[0])
        self._start(job, f"Hypothesis test of subtomogram {first}", self._show_result, self._on_event)

    def test_all(self):
        if self._busy():
            return
        prepared = self._prepare(single=False)
        if prepared is None:
            return
        data, _, mask, truths, vs, tester = prepared
        self._vs, self._first = vs, 0
        self._data = data
        self._start(tester.dataset_job(data, mask, truths), f"Hypothesis tests of {len(data)} subtomograms",
                    self._show_table, self._on_event)

    # ------------------------------------------------------------------ display
    def _on_event(self, event):
        from cryoforge.jobs import Preview

        if not isinstance(event, Preview) or event.view != "curve":
            return
        if event.name == "known scores":
            self._known, self._pseudo = event.array[1], None
        elif event.name == "pseudo scores":
            self._known, self._pseudo = np.asarray(event.meta["known"]), event.array[1]
            self.draw_histogram()

    def draw_histogram(self, result=None):
        """Pseudo-complex scores as a histogram; known templates as lines (best red), α threshold green."""
        known, pseudo = self._known, self._pseudo
        if known is None or pseudo is None or len(pseudo) == 0:
            self.ax.clear()
            return
        cal, alpha = self.tester.calibration, self.tester.cfg.alpha
        self._bars, self._lines = null_histogram(self.ax, np.asarray(known), np.asarray(pseudo), self.tester.names,
                                                 alpha, p_hat_level=None if cal is None else cal.p_hat_level(alpha))
        self.canvas.draw_idle()

    def _show_result(self, result):
        self.last_result = result
        self._known, self._pseudo = np.asarray(result.known_scores), np.asarray(result.pseudo_scores)
        self.draw_histogram(result)
        verdict = "significant" if result.cond2 else "not significant"
        from cryoforge.hyptest.montecarlo import p_text

        p_hat = p_text(result.p_hat, result.B)
        cal = self.tester.calibration if self.tester is not None else None
        calibrated = "" if result.p_cal is None or cal is None else (
            f", calibrated p = {result.p_cal:.3g} ({cal.cases} H0 cases)")
        lines = [f"best: {result.best_name} (c = {result.score:.3f}); Monte-Carlo p {p_hat} "
                 f"with B = {result.B}{calibrated} → {verdict} at α = {result.alpha:g}",
                 f"Gaussian tail: p = {result.p_gauss:.2e} ({result.z_sigma:.1f} σ); "
                 f"{result.rejected} of {result.drawn} GAN codes fell in the rejection region"]
        if self.tester is not None and self.tester.cfg.null_spread is not None:
            lines.append(f"null set: {result.n_pseudo} pseudo-complexes, {self.tester.null_kind()} (not the paper's)")
        if result.truth is not None:
            lines.append(f"truth: {result.truth_name} — Cond.1 {'✓' if result.cond1 else '✗'}, "
                         f"Cond.2 {'✓' if result.cond2 else '✗'}")
        self.summary.setText("\n".join(lines))
        yield  # the histogram drawn; the layers in later event-loop turns (napari_cryoforge._jobs.in_turns)
        yield from self._template_steps(result.best)

    def _show_table(self, table):
        self.table_result = table
        rows = table.rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            p = f"{r.p_hat:.4g}" + ("" if r.p_cal is None else f" (calibrated {r.p_cal:.3g})")
            vals = (r.index, r.best, f"{r.score:.3f}", p, f"{r.q:.4g}",
                    "significant" if r.significant else "—", r.truth or "")
            for j, v in enumerate(vals):
                self.table.setItem(i, j, QTableWidgetItem(str(v)))
        self.table.setVisible(True)
        n_sig = sum(r.significant for r in rows)
        self.summary.setText(f"{len(rows)} subtomograms: {n_sig} significant at q ≤ {table.alpha:g} "
                             "(Benjamini–Hochberg). Click a row for its histogram.")
        if rows:
            yield
            yield from self._show_row(0)

    def _show_row(self, i):
        if self.table_result is None or i >= len(self.table_result.results):
            return
        self._p = self._data[i]
        self._first = i
        yield from self._show_result(self.table_result.results[i])

    def _template_steps(self, k):
        """Template ``k`` fitted into the subtomogram (its rotation and shift) over the subtomogram: a layer a
        step."""
        from cryoforge.geometry import transform_volumes
        tester = self.tester
        r = self.last_result
        if r is not None and r.known_rotations is not None:  # the test found every template's pose: no search here
            rot, shift = np.asarray(r.known_rotations[k], np.float32), np.asarray(r.known_shifts[k], np.float32)
        else:
            fit = tester.scorer(self._p, None, n_rotations=2000).score(tester.templates[k:k + 1])
            rot, shift = fit.rotations[0], fit.shifts[0]
        placed = transform_volumes(tester.templates[k], rot, shift).numpy()
        self._set_layer("hyptest: subtomogram", self._p, self._vs)
        yield
        ly = self._set_layer("hyptest: template", placed, self._vs, "red", "additive")
        ly.rendering = "iso"
        ly.iso_threshold = float(placed.max() * 0.25)
        self.viewer.layers["hyptest: template"].metadata["template"] = tester.names[k]

    def _picked(self, event):
        artist = event.artist
        if artist in getattr(self, "_lines", {}):
            k = self._lines[artist]
            in_turns(self._template_steps(k))
            report_info(f"template {self.tester.names[k]} fitted into the subtomogram (red)")
        elif self._pseudo is not None and self.last_result is not None and artist in list(getattr(self, "_bars", [])):
            centre = artist.get_x() + artist.get_width() / 2
            b = int(np.argmin(np.abs(self._pseudo - centre)))
            vol = self.tester.pseudo_volume(self.last_result.best, b)
            self._set_layer("hyptest: pseudo-complex", vol, self._vs, "cyan", "additive")
            report_info(f"pseudo-complex #{b}: score {self._pseudo[b]:.3f}")
