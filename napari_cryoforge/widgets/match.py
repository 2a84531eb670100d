"""Template matching dock: a template matched over a whole tomogram (and decoy templates beside it), the score map as
an overlay, the candidates as points coloured by their q-value with a q slider, a click on a candidate → its
subtomogram's three central planes with the template in its pose, and *Export accepted* → RELION 5 STAR.
*Test candidates* runs seed 000's hypothesis test on every candidate (:mod:`cryoforge.candidate_tests`, as
``cryoforge match extract --target``); the points are then coloured by its q-values, and a click also shows the
candidate's pseudo-complex histogram with its p̂ (the Hypothesis test dock's view).

The engine does the work (:func:`cryoforge.matching.job.match_folder_job` into an output folder, which resumes;
:func:`cryoforge.matching.candidates.match_candidates` for the statistics, as ``cryoforge match extract``); this dock
gathers the inputs and shows the result. The q-values are the target–decoy ones when decoys were matched (the
calibrated choice of ``cryoforge bench tm``), else the Gaussian null's with Benjamini–Hochberg (docs/benchmarks.md says
how each measured).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QFileDialog, QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout

from .._notify import report_error, report_info
from ._dock import JobDock
from .controls import (
    canvas,
    default_output,
    dspin,
    ispin,
    layer_combo,
    refresh_combo,
    thick_slice,
    tilt_range_row,
    voxel_size_of,
)
from .groups import ParticlePanel, null_histogram

POINTS, SCORES = "match: candidates", "match: scores"


class MatchInputGroup(QGroupBox):
    """The tomogram and template layers, the rotation set, the mask, the missing wedge, decoys, how many candidates,
    the output folder and the button."""

    def __init__(self):
        from cryoforge.matching.config import MatchConfig

        super().__init__("Tomogram and template")
        d = MatchConfig()
        f = QFormLayout(self)
        self.tomogram, self.template = layer_combo(), layer_combo()
        f.addRow("tomogram", self.tomogram)
        f.addRow("template", self.template)
        self.angular_step = dspin(d.angular_step, 1.0, 90.0, 1.0, "°", 1,
                                  "spacing of the uniform rotation set (smaller: more rotations, slower)")
        f.addRow("angular step", self.angular_step)
        self.mask_radius = dspin(0.0, 0.0, 10_000.0, 10.0, " Å", 0, "spherical mask radius; 0: 0.4 of the template box")
        self.mask_radius.setSpecialValueText("auto (0.4 × box)")  # as the Volume inspector's
        f.addRow("mask radius", self.mask_radius)
        tilt, self.tilt_min, self.tilt_max = tilt_range_row("the missing wedge the template gets")
        f.addRow("tilt range", tilt)
        self.decoys = ispin(1, 0, 8, tip="decoy templates matched beside the template (each as long as the template): "
                                         "the candidates get target–decoy q-values; 0: the Gaussian null's")
        f.addRow("decoys", self.decoys)
        self.n = ispin(100, 1, 100_000, tip="at most this many candidates, a mask diameter apart")
        f.addRow("candidates", self.n)
        self.out = default_output("match")
        self.folder_label = QLabel(self.out)
        self.folder_label.setToolTip("output folder (scores.mrc, angles.mrc, job.json, decoyK/); a cancelled run "
                                     "resumes from it")
        self.folder_label.setWordWrap(True)
        f.addRow("output", self.folder_label)
        self.run_btn = QPushButton("Match")
        f.addRow(self.run_btn)

    def set_output(self, folder: str) -> None:
        self.out = folder
        self.folder_label.setText(folder)


class FdrGroup(QGroupBox):
    """The q-value threshold, how many candidates it accepts, and the writer."""

    def __init__(self):
        super().__init__("False-discovery rate")
        f = QFormLayout(self)
        self.q = dspin(0.05, 0.001, 1.0, 0.01, "", 3, "accept the candidates whose q-value is at most this")
        f.addRow("q ≤", self.q)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        f.addRow(self.label)
        self.export_btn = QPushButton("Export accepted…")
        self.export_btn.setToolTip("the accepted candidates with their poses, scores and q-values, as RELION 5 STAR")
        f.addRow(self.export_btn)


def _known_names() -> list[str]:
    """The shipped known set's names (its templates.json; nothing heavy is read)."""
    import json

    from cryoforge.samples import HYPTEST_TEMPLATES, sample_path

    return json.loads((sample_path(HYPTEST_TEMPLATES) / "templates.json").read_text())["names"]


class CandidateTestGroup(QGroupBox):
    """Seed 000's test of every candidate: the target among the shipped known set, the null-set size, the button, and
    the pseudo-complex histogram of the candidate shown."""

    def __init__(self):
        from qtpy.QtWidgets import QComboBox

        from cryoforge.hyptest.config import HypTestConfig

        super().__init__("Hypothesis test of the candidates (seed 000)")
        f = QFormLayout(self)
        self.target = QComboBox()
        self.target.addItems(_known_names())
        self.target.setToolTip("the known template that is the matched complex: a candidate's p-value is the "
                               "Monte-Carlo p when it explains the candidate best among the known set, else 1")
        f.addRow("target", self.target)
        self.n_pseudo = ispin(HypTestConfig().n_pseudo, 100, 100_000, tip="pseudo-complexes in the null set (3D-WGAN)")
        f.addRow("null set", self.n_pseudo)
        self.run_btn = QPushButton("Test candidates")
        self.run_btn.setToolTip("score every known template and the pseudo-complexes in each candidate's subtomogram; "
                                "Benjamini–Hochberg q-values over the candidates")
        f.addRow(self.run_btn)
        self.canvas, (self.ax,) = canvas(1.8)
        self.canvas.setVisible(False)  # shown with the first tested candidate
        f.addRow(self.canvas)


def _crop(vol: np.ndarray, centre_zyx: np.ndarray, n: int) -> np.ndarray:
    """The ``n``³ box of ``vol`` centred on a voxel (its mean beyond the edges)."""
    out = np.full((n, n, n), float(np.mean(vol)), np.float32)
    c = np.round(centre_zyx).astype(int) - n // 2
    src = tuple(slice(max(0, c[k]), min(vol.shape[k], c[k] + n)) for k in range(3))
    dst = tuple(slice(s.start - c[k], s.stop - c[k]) for k, s in enumerate(src))
    if all(s.stop > s.start for s in src):
        out[dst] = vol[src]
    return out


class MatchWidget(JobDock):
    """The Template matching dock (module text)."""

    job_buttons = ("inputs.run_btn", "test.run_btn")
    preload = ("cryoforge.matching.job", "cryoforge.matching.candidates", "cryoforge.matching.peaks")

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.found = None  # the last MatchCandidates
        self.untested = None  # the same before the hypothesis test
        self.tests = None  # its CandidateTests
        self.folder: Path | None = None
        self.template: np.ndarray | None = None  # on the tomogram's grid
        self.selected: int | None = None
        self.last_click_ms: float | None = None
        root = QVBoxLayout(self)
        self.inputs = MatchInputGroup()
        self.inputs.run_btn.clicked.connect(self.run)
        self.status = self._head(root, self.inputs)
        self.fdr = FdrGroup()
        self.fdr.q.valueChanged.connect(self._recolour)
        self.fdr.export_btn.clicked.connect(self.export_accepted)
        root.addWidget(self.fdr)
        self.test = CandidateTestGroup()
        self.test.run_btn.clicked.connect(self.test_candidates)
        root.addWidget(self.test)
        self.panel = ParticlePanel("Candidate", "click a candidate in the viewer")
        root.addWidget(self.panel)
        root.addStretch(1)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    def _refresh_layers(self, *_):
        from napari.layers import Image

        names = [ly.name for ly in self.viewer.layers
                 if isinstance(ly, Image) and ly.ndim == 3 and not ly.name.startswith("match:")]
        refresh_combo(self.inputs.tomogram, names)
        refresh_combo(self.inputs.template, names, hint="template")

    # ------------------------------------------------------------------ the job
    def _inputs(self):
        from cryoforge.matching.config import MatchConfig
        from cryoforge.sim.sources import resample_map

        tomo = self._named_layer(self.inputs.tomogram.currentText())
        tpl = self._named_layer(self.inputs.template.currentText())
        if tomo is None or tpl is None:
            raise ValueError("open a tomogram and a template (3-D image layers) and choose them")
        if tomo is tpl:
            raise ValueError("the tomogram and the template are the same layer")
        vs, tvs = voxel_size_of(tomo), voxel_size_of(tpl)
        template = np.asarray(tpl.data, np.float32)
        if len(set(template.shape)) != 1:
            raise ValueError(f"the template must be a cubic volume; {tpl.name} is {template.shape}")
        if abs(tvs - vs) > 1e-4 * vs:  # onto the tomogram's grid, the field of view kept
            template = resample_map(template, tvs, vs, max(4, 2 * round(template.shape[0] * tvs / vs / 2)))
        if template.shape[0] > min(tomo.data.shape):
            raise ValueError(f"the template ({template.shape[0]}³ voxels at {vs:g} Å) is larger than the tomogram")
        cfg = MatchConfig(angular_step=self.inputs.angular_step.value(),
                          mask_radius=self.inputs.mask_radius.value() or None,
                          tilt_range=(self.inputs.tilt_min.value(), self.inputs.tilt_max.value()))
        return tomo, vs, template, cfg

    def run(self) -> None:
        """Match in the background (decoys first), then find the candidates and their statistics."""
        if self._busy():
            return
        from cryoforge.io.atomic import check_output_dir
        from cryoforge.io.mrc import read_mrc
        from cryoforge.jobs import Result
        from cryoforge.jobs.runner import stage
        from cryoforge.matching.candidates import match_candidates
        from cryoforge.matching.job import match_folder_job

        try:
            tomo, vs, template, cfg = self._inputs()
            out = check_output_dir(self.inputs.out, "job.json")
        except (ValueError, OSError) as err:
            report_error(f"Template matching: {err}")
            return
        self.template, self.found, self.selected, self.untested, self.tests = template, None, None, None, None
        self.folder = out
        self.test.canvas.setVisible(False)
        volume = np.asarray(tomo.data, np.float32)
        decoys, n = self.inputs.decoys.value(), self.inputs.n.value()

        def job():
            folder = yield from stage(match_folder_job(volume, template, vs, cfg, out, decoys=decoys,
                                                       extra={"tomogram_name": tomo.name}))
            scores, _ = read_mrc(folder / "scores.mrc", layout="volume")  # read here, not in the GUI's turn
            yield Result((match_candidates(folder, n), np.asarray(scores, np.float32)))

        self.status.setText(f"matching {template.shape[0]}³ against {tomo.name} {volume.shape} "
                            f"at {cfg.angular_step:g}° with {decoys} decoy(s)…")
        self._start(job(), "Template matching", self._show)

    # ------------------------------------------------------------------ results
    def _show(self, result):
        """The score map, then the candidates, then their colours and the status: a step per event-loop turn."""
        found, scores = result
        tomo = self._named_layer(self.inputs.tomogram.currentText())
        if tomo is None:
            return
        self.found = self.untested = found
        layer = self._set_layer(SCORES, scores, found.voxel_size, colormap="inferno", blending="additive")
        layer.opacity = 0.6
        yield
        zyx = found.particles.voxels(found.voxel_size, tomo.data.shape)[:, ::-1]
        size = 0.6 * found.min_distance / found.voxel_size
        kw = {"scale": tomo.scale, "translate": tomo.translate}
        if POINTS in self.viewer.layers:
            pts = self.viewer.layers[POINTS]
            pts.data = zyx
        else:
            pts = self.viewer.add_points(zyx, name=POINTS, size=size, border_width=0.12,
                                         projection_mode="rescale_spherical", units=("angstrom",) * 3, **kw)
            pts.mouse_drag_callbacks.append(self._on_click)
        yield
        thick_slice(self.viewer, found.min_distance)  # the candidates within a mask radius of the plane show
        self._recolour()
        self.viewer.layers.selection.active = pts
        what = ("hypothesis-test q (seed 000)" if self.tests is not None
                else f"target–decoy q ({found.n_decoys} decoy map(s))" if found.n_decoys
                else "Gaussian null + Benjamini–Hochberg q")
        self.status.setText(f"{len(zyx)} candidates (rings); coloured by {what}: yellow low, purple high, grey "
                            "rejected, red the one shown below. "
                            + found.summary().split("; ", 1)[1])

    def test_candidates(self) -> None:
        """Seed 000's test of every candidate in the background; then the points are coloured by its q-values."""
        if self._busy():
            return
        tomo = self._named_layer(self.inputs.tomogram.currentText())
        if self.untested is None or self.folder is None or tomo is None:
            report_error("Template matching: match first; the candidates are tested in the tomogram they came from")
            return
        import json

        from cryoforge.candidate_tests import candidate_tester, test_match_job
        from cryoforge.jobs import Result
        from cryoforge.jobs.runner import stage

        found, folder, volume = self.untested, self.folder, np.asarray(tomo.data, np.float32)
        target, n_pseudo = self.test.target.currentText(), self.test.n_pseudo.value()

        def job():
            record = json.loads((folder / "job.json").read_text())
            tester, tvs = candidate_tester(n_pseudo=n_pseudo)
            tests = yield from stage(test_match_job(found, record, volume, tester, tvs, [target]))
            yield Result(tests)

        self.status.setText(f"testing {len(found.q_values)} candidates against the known set ({target} the target) "
                            f"and {n_pseudo} pseudo-complexes…")
        self._start(job(), "Hypothesis test of the candidates", self._show_tests)

    def _show_tests(self, tests) -> None:
        from cryoforge.candidate_tests import with_tests

        if self.untested is None:
            return
        self.tests, self.found = tests, with_tests(self.untested, tests)
        self._recolour()
        self.status.setText(f"{tests.summary()}; the points are coloured by its q-values. Click one for its "
                            "histogram.")
        if self.selected is not None:
            self.select(self.selected)

    def _draw_test(self, i: int) -> str:
        """The pseudo-complex histogram of candidate ``i`` (when it was scored against them); a line of text."""
        t = self.tests
        if t is None:
            return ""
        self.test.canvas.setVisible(True)
        from cryoforge.hyptest.montecarlo import p_text

        known = np.asarray(t.known_scores[i])
        target = t.names.index(t.targets[0])
        pseudo = t.pseudo_scores[i]
        if pseudo is None:
            self.test.ax.clear()
            self.test.ax.barh(range(len(known)), known, color=["red" if k == int(np.argmax(known)) else "tab:orange"
                                                                if k == target else "tab:blue"
                                                                for k in range(len(known))])
            self.test.ax.set_yticks(range(len(known)), t.names, fontsize=5)
            self.test.ax.set_xlabel("wedge-constrained correlation c(P, T(C))", fontsize=7)
            self.test.ax.tick_params(labelsize=6)
            self.test.canvas.draw_idle()
            return f"; best explained by {t.best[i]}, not the target: p = 1"
        null_histogram(self.test.ax, known, np.asarray(pseudo), t.names, t.alpha, target)
        self.test.canvas.draw_idle()
        return f"; best {t.best[i]}, Monte-Carlo p {p_text(float(t.p_hat[i]), t.B)} (B = {t.B})"  # Qt drops p̂'s hat

    def accepted(self) -> np.ndarray:
        """Which candidates the q slider accepts."""
        if self.found is None:
            return np.zeros(0, bool)
        return self.found.q_values <= self.fdr.q.value()

    def _recolour(self, *_) -> None:
        if self.found is None or POINTS not in self.viewer.layers:
            return
        from matplotlib import colormaps

        pts = self.viewer.layers[POINTS]
        q = self.found.q_values
        keep = self.accepted()
        colours = colormaps["viridis_r"](np.clip(q / max(self.fdr.q.value(), 1e-9), 0, 1))
        colours[~keep] = [0.55, 0.55, 0.55, 0.6]
        if self.selected is not None:
            colours[self.selected] = [1.0, 0.2, 0.2, 1.0]
        pts.face_color = np.zeros((len(q), 4))  # rings: the density inside stays visible
        pts.border_color = colours
        self.fdr.label.setText(f"{int(keep.sum())} of {len(q)} candidates accepted at q ≤ {self.fdr.q.value():g} "
                               f"({self.found.q_name})")

    def _on_click(self, layer, event):
        """Select the candidate nearest the click (within half a mask diameter)."""
        if event.type != "mouse_press" or self.found is None:
            return
        if len(getattr(event, "dims_displayed", ())) == 3:
            hit = layer.get_value(event.position, view_direction=event.view_direction,
                                  dims_displayed=event.dims_displayed, world=True)
            if hit is not None:
                self.select(int(hit))
            return
        pos = np.asarray(layer.world_to_data(event.position), float)[-3:]
        dist = np.sqrt(((layer.data - pos) ** 2).sum(1))
        i = int(np.argmin(dist))
        if dist[i] <= 0.5 * self.found.min_distance / self.found.voxel_size:
            self.select(i)

    def select(self, i: int) -> None:
        """Show candidate ``i``: its subtomogram's central planes with the template in its pose, score and q."""
        import torch

        from cryoforge.geometry import transform_volumes

        tomo = self._named_layer(self.inputs.tomogram.currentText())
        if self.found is None or self.template is None or tomo is None:
            return
        t0 = time.perf_counter()
        self.selected = int(i)
        found = self.found
        zyx = found.particles.voxels(found.voxel_size, tomo.data.shape)[i, ::-1]
        box = _crop(np.asarray(tomo.data), zyx, self.template.shape[0])
        model = transform_volumes(torch.from_numpy(self.template), torch.as_tensor(
            found.particles.rotations[i], dtype=torch.float32)).numpy()
        row = found.particles.table.iloc[i]
        tested = self._draw_test(i)
        self.panel.show_particle(box, model, f"candidate {i + 1} of {len(found.q_values)}: score "
                                             f"{row['rlnLCCmax']:.3f}, q {found.q_values[i]:.3g}, Gaussian-null false "
                                             f"alarms {row['cfGaussianNullFalseAlarms']:.3g}{tested}; red: the "
                                             "template in its pose")
        self._recolour()
        self.last_click_ms = 1000 * (time.perf_counter() - t0)

    def export_accepted(self, path: str | None = None) -> Path | None:
        """Write the accepted candidates as RELION 5 STAR (``path``, else asked)."""
        from cryoforge.io.tomo_particles import write_relion5

        if self.found is None:
            report_error("Template matching: nothing matched yet")
            return None
        keep = self.accepted()
        if not keep.any():
            report_error(f"Template matching: no candidate has q ≤ {self.fdr.q.value():g}")
            return None
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export accepted candidates",
                                                  default_output("accepted.star"), "RELION 5 STAR (*.star)")
        if not path:
            return None
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        out = write_relion5(path, self.found.particles.take(keep), self.found.voxel_size)
        report_info(f"wrote {int(keep.sum())} candidates to {out}")
        return out
