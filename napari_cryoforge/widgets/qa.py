"""Subtomogram QA dock: a tomogram's particles as points (coloured by their correlation with the average) and their
orientations as vectors; click a particle to see its subtomogram's three central planes with the average in its
pose drawn over them; a gallery of the aligned particles sorted by correlation; a histogram with a threshold, and
the particles above it written as a RELION 5 STAR.

The engine does the work (:func:`cryoforge.particle_qa.qa_job`: extract, average with the list's poses, without a
reference or against one, score); this dock gathers the inputs and shows the result. A click is answered from what
the job computed (the subtomograms, the average, the poses): one warp of one box and three planes redrawn.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
)

from .._notify import report_error, report_info
from ._dock import JobDock
from .controls import (
    canvas,
    default_output,
    ispin,
    layer_combo,
    path_row,
    refresh_combo,
    thick_slice,
    tilt_range_row,
    voxel_size_of,
)
from .groups import ParticlePanel

POSES = {"the list's poses (no search)": "given", "reference-free search": "search",
         "align to a reference layer": "reference"}
POINTS, VECTORS = "qa: particles", "qa: orientations"
GALLERY_COLUMNS, GALLERY_MAX = 10, 200


class QaInputGroup(QGroupBox):
    """The tomogram layer, the particle list, the box and tilt range of the extraction, how the poses are found, and
    the button that runs it."""

    def __init__(self, on_browse):
        super().__init__("Tomogram and particles")
        f = QFormLayout(self)
        self.tomogram = layer_combo()
        f.addRow("tomogram", self.tomogram)
        row, self.particles = path_row("RELION 5/3/4 STAR, Dynamo .tbl, x y z text", on_browse)
        f.addRow("particles", row)
        self.load_btn = QPushButton("Show particles")
        self.load_btn.setToolTip("points at the particles and their orientations, coloured by cfCorrelation when the "
                                 "list has it")
        f.addRow(self.load_btn)
        self.box = ispin(32, 8, 256, " voxels", "box size of the subtomograms (tomogram voxels)")
        f.addRow("box", self.box)
        tilt, self.tilt_min, self.tilt_max = tilt_range_row("the missing wedge")
        f.addRow("tilt range", tilt)
        self.poses = QComboBox()
        self.poses.addItems(list(POSES))
        self.poses.setToolTip("the list's poses: average with them (seconds); reference-free: search all rotations "
                              "(minutes); reference: align each particle to the chosen layer")
        f.addRow("poses", self.poses)
        self.reference = layer_combo()
        f.addRow("reference", self.reference)
        self.run_btn = QPushButton("Extract, average and score")
        f.addRow(self.run_btn)

    def pose_mode(self) -> str:
        return POSES[self.poses.currentText()]


class ThresholdGroup(QGroupBox):
    """The histogram of the particles' correlation with a threshold slider, the count kept, and the writer."""

    def __init__(self):
        super().__init__("Correlation with the average")
        f = QFormLayout(self)
        self.hist_canvas, (self.ax,) = canvas(1.25)
        f.addRow(self.hist_canvas)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 1000)
        self.slider.setToolTip("keep the particles whose correlation is at least this")
        self.label = QLabel("")
        f.addRow("threshold", self.slider)
        f.addRow(self.label)
        self.write_btn = QPushButton("Write kept particles…")
        self.write_btn.setToolTip("the kept particles with their refined poses and cfCorrelation, as a RELION 5 STAR")
        f.addRow(self.write_btn)
        self.lo, self.hi = 0.0, 1.0
        self.line = None

    def set_scores(self, scores: np.ndarray) -> None:
        self.lo, self.hi = float(scores.min()), float(scores.max())
        if self.hi <= self.lo:
            self.hi = self.lo + 1e-6
        ax = self.ax
        ax.clear()
        ax.hist(scores, bins=min(50, max(10, len(scores) // 10)), color="0.5")
        ax.set_xlabel("correlation with the average in its pose", fontsize=7)
        ax.set_ylabel("particles", fontsize=7)
        ax.tick_params(labelsize=6)
        self.line = ax.axvline(self.threshold(), color="red", lw=1)
        self.hist_canvas.draw_idle()

    def threshold(self) -> float:
        return self.lo + (self.hi - self.lo) * self.slider.value() / 1000

    def set_threshold(self, value: float) -> None:
        self.slider.setValue(int(round(1000 * (value - self.lo) / (self.hi - self.lo))))


class QaWidget(JobDock):
    """The Subtomogram QA dock (module text)."""

    job_buttons = ("inputs.run_btn", "inputs.load_btn")

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.qa = None  # the last ParticleQA
        self.particles = None  # TomoParticles shown (the list, or the refined ones after a job)
        self.scores: np.ndarray | None = None
        self.selected: int | None = None
        self.last_click_ms: float | None = None
        root = QVBoxLayout(self)
        self.inputs = QaInputGroup(self._browse)
        self.inputs.load_btn.clicked.connect(self.load_particles)
        self.inputs.run_btn.clicked.connect(self.run)
        self.status = self._head(root, self.inputs)
        self.panel = ParticlePanel()
        root.addWidget(self.panel)
        self.threshold = ThresholdGroup()
        self.threshold.slider.valueChanged.connect(self._threshold_changed)
        self.threshold.write_btn.clicked.connect(self.write_kept)
        root.addWidget(self.threshold)
        gallery = QGroupBox("Gallery: aligned particles, best correlation first (central x–y slabs)")
        g = QVBoxLayout(gallery)
        self.gallery_canvas, (self.gallery_ax,) = canvas(2.0)
        self.gallery_canvas.mpl_connect("button_press_event", self._gallery_click)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.gallery_canvas)
        scroll.setMinimumHeight(150)
        g.addWidget(scroll)
        root.addWidget(gallery)
        root.addStretch(1)
        self._gallery_order: np.ndarray | None = None
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------ inputs
    def _refresh_layers(self, *_):
        from napari.layers import Image

        names = [ly.name for ly in self.viewer.layers if isinstance(ly, Image) and ly.ndim == 3]
        refresh_combo(self.inputs.tomogram, [n for n in names if not n.startswith("qa:")])
        refresh_combo(self.inputs.reference, names)

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "Particle list", "", "Particle lists (*.star *.tbl *.txt *.coords)")
        if path:
            self.inputs.particles.setText(path)

    def _tomogram(self):
        layer = self._named_layer(self.inputs.tomogram.currentText())
        if layer is None:
            raise ValueError("open a tomogram (a 3-D image layer) first")
        return layer

    def _read_list(self):
        from cryoforge.io.tomo_particles import particles_of, read_particle_list

        layer = self._tomogram()
        path = self.inputs.particles.text().strip()
        if not path:
            raise ValueError("give the particle list of the tomogram")
        vs = voxel_size_of(layer)
        parts = read_particle_list(path, vs, layer.data.shape, layer.name)
        return layer, vs, particles_of(parts, layer.name, layer.name)

    def load_particles(self) -> bool:
        """Show the list's particles and orientations (coloured by ``cfCorrelation`` when it has it)."""
        try:
            layer, vs, parts = self._read_list()
        except (ValueError, OSError) as err:
            report_error(f"Subtomogram QA: {err}")
            return False
        scores = parts.table["cfCorrelation"].to_numpy(np.float64) if "cfCorrelation" in parts.table else None
        self.qa = None
        self._show_particles(layer, parts, scores)
        self.status.setText(f"{len(parts)} particles of {layer.name}"
                            + ("" if scores is None else " (coloured by the list's cfCorrelation)"))
        return True

    # ------------------------------------------------------------------ the job
    def run(self) -> None:
        """Extract, average and score in the background (:func:`cryoforge.particle_qa.qa_job`)."""
        if self._busy():
            return
        from cryoforge.particle_qa import qa_job

        try:
            layer, vs, parts = self._read_list()
            mode = self.inputs.pose_mode()
            reference = None
            if mode == "reference":
                ref = self._named_layer(self.inputs.reference.currentText())
                if ref is None:
                    raise ValueError("choose the reference layer")
                from cryoforge.sim.sources import resample_map

                reference = resample_map(np.asarray(ref.data, np.float32), voxel_size_of(ref), vs,
                                         self.inputs.box.value())
            tilt = (self.inputs.tilt_min.value(), self.inputs.tilt_max.value())
            job = qa_job(np.asarray(layer.data), vs, parts, self.inputs.box.value(), tilt_range=tilt, poses=mode,
                         reference=reference)
        except (ValueError, OSError) as err:
            report_error(f"Subtomogram QA: {err}")
            return
        self._show_particles(layer, parts, None)
        self.status.setText(f"extracting and averaging {len(parts)} particles…")
        self._start(job, "Subtomogram QA", lambda qa: self._show_result(layer, qa), self._on_event)

    def _on_event(self, event) -> None:
        from cryoforge.jobs import Log

        if isinstance(event, Log):
            self.status.setText(event.message)

    def _show_result(self, layer, qa) -> None:
        self.qa = qa
        vs = qa.subtomograms.voxel_size
        avg = qa.average
        self._set_layer("qa: average", avg.average, vs, colormap="magma", visible=False)
        self.status.setText(f"{len(qa.scores)} particles, poses: {qa.poses}; gold-standard FSC 0.143 at "
                            f"{avg.resolution:.1f} Å; correlation median {np.median(qa.scores):.3f}")
        yield  # one heavy step per event-loop turn (napari_cryoforge._jobs.in_turns)
        self._show_particles(layer, qa.refined, qa.scores)
        yield
        self._draw_gallery()
        yield
        self.select(int(np.argmax(qa.scores)))

    # ------------------------------------------------------------------ layers
    def _show_particles(self, layer, parts, scores) -> None:
        """Points at the particles (voxel coordinates on the tomogram's scale) and vectors along each particle's z
        axis; colours from ``scores``."""
        self.particles, self.scores, self.selected = parts, scores, None
        vs = voxel_size_of(layer)
        zyx = parts.voxels(vs, layer.data.shape)[:, ::-1]
        box = self.inputs.box.value()
        axis_z = parts.rotations[:, :, 2][:, ::-1] * box / 2  # the particle's z axis, (z, y, x) voxels
        kw = {"scale": layer.scale, "translate": layer.translate}
        if POINTS in self.viewer.layers:
            pts = self.viewer.layers[POINTS]
            pts.data = zyx
            pts.scale, pts.translate = layer.scale, layer.translate
        else:
            pts = self.viewer.add_points(zyx, name=POINTS, size=box * 0.6, border_width=0.08,
                                         projection_mode="rescale_spherical", units=("angstrom",) * 3, **kw)
            pts.mouse_drag_callbacks.append(self._on_click)
        vec = np.stack([zyx, axis_z], axis=1)
        if VECTORS in self.viewer.layers:
            self.viewer.layers[VECTORS].data = vec
        else:
            self.viewer.add_vectors(vec, name=VECTORS, edge_width=1.5, edge_color="yellow", projection_mode="fade",
                                    units=("angstrom",) * 3, **kw)
        thick_slice(self.viewer, float(layer.scale[-3]) * box)
        if scores is not None:
            self.threshold.set_scores(scores)
            self.threshold.set_threshold(float(np.quantile(scores, 0.1)))
        self._recolour()
        self.viewer.layers.selection.active = pts

    def _recolour(self) -> None:
        if POINTS not in self.viewer.layers or self.particles is None:
            return
        from matplotlib import colormaps

        pts = self.viewer.layers[POINTS]
        n = len(self.particles)
        if self.scores is None:
            colours = np.tile([0.2, 0.9, 1.0, 0.8], (n, 1))
            kept = np.ones(n, bool)
        else:
            lo, hi = self.threshold.lo, self.threshold.hi
            colours = colormaps["viridis"]((self.scores - lo) / (hi - lo))
            kept = self.scores >= self.threshold.threshold()
            colours[~kept] = [0.55, 0.55, 0.55, 0.5]
            self.threshold.label.setText(f"{self.threshold.threshold():.3f}: {int(kept.sum())} of {n} kept")
            if self.threshold.line is not None:
                self.threshold.line.set_xdata([self.threshold.threshold()] * 2)
                self.threshold.hist_canvas.draw_idle()
        pts.face_color = colours
        border = np.tile([0.0, 0.0, 0.0, 0.0], (n, 1))
        if self.selected is not None:
            border[self.selected] = [1.0, 0.2, 0.2, 1.0]
        pts.border_color = border
        pts.size = np.where(kept, 1.0, 0.6) * self.inputs.box.value() * 0.6

    def _threshold_changed(self, *_):
        self._recolour()

    # ------------------------------------------------------------------ clicks
    def _on_click(self, layer, event):
        """Select the particle nearest the click (world position, within half a box)."""
        if event.type != "mouse_press" or self.particles is None:
            return
        if len(getattr(event, "dims_displayed", ())) == 3:  # 3-D: the point under the cursor along the view ray
            hit = layer.get_value(event.position, view_direction=event.view_direction,
                                  dims_displayed=event.dims_displayed, world=True)
            if hit is not None:
                self.select(int(hit))
            return
        data_pos = np.asarray(layer.world_to_data(event.position), float)[-3:]  # 2-D: z is the slice shown
        dist = np.sqrt(((layer.data - data_pos) ** 2).sum(1))
        i = int(np.argmin(dist))
        if dist[i] <= self.inputs.box.value() / 2:
            self.select(i)

    def select(self, i: int) -> None:
        """Show particle ``i``: its planes with the average in its pose, its correlation and shift."""
        t0 = time.perf_counter()
        self.selected = int(i)
        n = len(self.particles)
        if self.qa is None:
            p = self.particles.positions[i]
            self.panel.label.setText(f"particle {i + 1} of {n} at ({p[0]:.0f}, {p[1]:.0f}, {p[2]:.0f}) Å from the "
                                     "tomogram centre; run the QA to see its subtomogram")
        else:
            from cryoforge.align.particle_sets import posed_average
            from cryoforge.fourier import lowpass
            from cryoforge.particle_qa import display_resolution

            qa = self.qa
            vs = qa.subtomograms.voxel_size
            shown = display_resolution(qa.average.resolution, vs)
            box = lowpass(qa.subtomograms.subtomograms[i], shown, vs).numpy()
            model = posed_average(qa.average.average, qa.average.rotations[i], qa.average.shifts[i])[0].numpy()
            shift = np.linalg.norm(qa.average.shifts[i]) * vs
            edge = float(qa.edge_fraction[i])
            rank = int((qa.scores > qa.scores[i]).sum()) + 1
            self.panel.show_particle(box, model, f"particle {i + 1} of {n}: correlation {qa.scores[i]:.3f} (rank {rank}), "
                                                 f"shift {shift:.1f} Å"
                                                 + (f", {100 * edge:.0f} % outside the tomogram" if edge else "")
                                                 + f"; at {shown:.0f} Å; red: the average in its pose")
        self._recolour()
        self.last_click_ms = 1000 * (time.perf_counter() - t0)

    # ------------------------------------------------------------------ gallery
    def _draw_gallery(self) -> None:
        qa = self.qa
        order = np.argsort(-qa.scores)[:GALLERY_MAX]
        self._gallery_order = order
        slabs = qa.slabs[order]
        n = slabs.shape[-1]
        cols = GALLERY_COLUMNS
        rows = (len(order) + cols - 1) // cols
        montage = np.full((rows * n, cols * n), np.nan, np.float32)
        for k, img in enumerate(slabs):
            img = (img - img.mean()) / (img.std() + 1e-6)
            r, c = divmod(k, cols)
            montage[r * n:(r + 1) * n, c * n:(c + 1) * n] = img
        fig = self.gallery_canvas.figure
        height = max(2.0, 0.42 * rows)
        fig.set_size_inches(4.2, height)
        self.gallery_canvas.setMinimumHeight(int(height * 90))
        ax = self.gallery_ax
        ax.clear()
        ax.imshow(montage, cmap="gray", vmin=-2.5, vmax=2.5, origin="lower", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        extra = f" (best {GALLERY_MAX} of {len(qa.scores)})" if len(qa.scores) > GALLERY_MAX else ""
        ax.set_title(f"best → worst, {cols} per row{extra}; click one to select it", fontsize=7)
        self.gallery_canvas.draw_idle()

    def _gallery_click(self, event) -> None:
        if self._gallery_order is None or event.xdata is None or self.qa is None:
            return
        n = self.qa.slabs.shape[-1]
        k = int(event.ydata // n) * GALLERY_COLUMNS + int(event.xdata // n)
        if 0 <= k < len(self._gallery_order):
            self.select(int(self._gallery_order[k]))

    # ------------------------------------------------------------------ output
    def kept_particles(self):
        """The refined particles at or above the threshold (all when nothing was scored)."""
        if self.qa is not None:
            return self.qa.kept(self.threshold.threshold())
        if self.particles is not None and self.scores is not None:
            return self.particles.take(self.scores >= self.threshold.threshold())
        return self.particles

    def write_kept(self, path: str | None = None) -> Path | None:
        """Write the kept particles as a RELION 5 STAR (``path``, else asked; default in cryoforge_output/)."""
        from cryoforge.io.tomo_particles import write_relion5

        kept = self.kept_particles()
        if kept is None:
            report_error("Subtomogram QA: no particles yet")
            return None
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Write kept particles", default_output("kept_particles.star"),
                                                  "RELION 5 STAR (*.star)")
        if not path:
            return None
        layer = self._named_layer(self.inputs.tomogram.currentText())
        vs = kept.voxel_size or (voxel_size_of(layer) if layer is not None else 1.0)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        out = write_relion5(path, kept, vs)
        report_info(f"wrote {len(kept)} particles to {out}")
        return out
