"""Latent explorer dock: open a generative model (3D-WGAN, cryoDRGN run, analytic demo) and walk its latent space.

Sliders move the latent point along the first principal components of the model's data latents (or along the
first latent dimensions); every change is decoded **live** on a worker, latest request only (a dragged slider
never queues decodes; cryoforge.manifold.live.LatestOnly). The scatter shows the data latents in PCA space: a
click decodes the nearest point, a shift-click adds it as a waypoint. *Preview path* decodes the waypoint path
(linear, spherical or k-NN graph through the data) into a ``(T, Z, Y, X)`` layer that napari's frame slider
scrubs; *Movie* writes it with napari-animation (the z path beside the movie). The nearest known structure
(shipped template set) is named under the volume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
)

from .._jobs import start_job
from .._notify import describe, report_error, report_info
from ._dock import JobDock
from .controls import canvas, default_output, dspin, ispin

N_SLIDERS = 4
SLIDER_RANGE = 100  # ±100 ticks = ±3 standard deviations
MODELS = ("wgan", "mcgan", "analytic", "analytic:4")
VOLUME, PATH = "explorer: volume", "explorer: path"


class ModelGroup(QGroupBox):
    """Which generative model to explore (shipped name, checkpoint, cryoDRGN run), Load, and what it is."""

    def __init__(self, on_browse, on_load):
        super().__init__("Model")
        f = QFormLayout(self)
        row = QHBoxLayout()
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(MODELS)
        self.model.setToolTip("'wgan': the shipped 3D-WGAN (+ regressor); 'mcgan': the shipped Multi-CryoGAN (AdK, "
                              "α ∈ [0, 1]); 'analytic[:D]': a closed-form demo; or a cryoforge checkpoint (.pt) or "
                              "cryoDRGN run (folder or weights.N.pkl)")
        browse = QPushButton("…")
        browse.clicked.connect(on_browse)
        self.load_btn = QPushButton("Load")
        self.load_btn.clicked.connect(lambda: on_load(self.model.currentText()))
        for w in (self.model, browse, self.load_btn):
            row.addWidget(w)
        f.addRow(row)
        self.info = QLabel("no model loaded")
        self.info.setWordWrap(True)
        f.addRow(self.info)


class LatentGroup(QGroupBox):
    """The latent point: sliders along principal components or latent dimensions, and a status line."""

    def __init__(self, on_axes, on_move):
        super().__init__("Latent point")
        g = QGridLayout(self)
        self.axes_mode = QComboBox()
        self.axes_mode.addItems(["principal components", "latent dimensions"])
        self.axes_mode.currentIndexChanged.connect(lambda *_: on_axes())
        g.addWidget(QLabel("sliders move along"), 0, 0)
        g.addWidget(self.axes_mode, 0, 1, 1, 2)
        self.sliders, self.slider_labels = [], []
        for i in range(N_SLIDERS):
            s = QSlider(Qt.Orientation.Horizontal)
            s.setRange(-SLIDER_RANGE, SLIDER_RANGE)
            s.valueChanged.connect(lambda *_: on_move())
            lab = QLabel(f"PC{i + 1}")
            self.sliders.append(s)
            self.slider_labels.append(lab)
            g.addWidget(lab, i + 1, 0)
            g.addWidget(s, i + 1, 1, 1, 2)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        g.addWidget(self.status, N_SLIDERS + 1, 0, 1, 3)


class PathGroup(QGroupBox):
    """A path through the latent space (linear, spherical, graph; frames; waypoints) and its movie."""

    def __init__(self, on_preview, on_clear, on_movie, cancel_btn):
        super().__init__("Path and movie")
        f = QFormLayout(self)
        row = QHBoxLayout()
        self.path_method = QComboBox()
        self.path_method.addItems(["linear", "spherical", "graph"])
        self.path_method.setToolTip("graph: shortest path through the data latents' k-NN graph")
        self.frames = ispin(20, 2, 1000, " frames")
        row.addWidget(self.path_method)
        row.addWidget(self.frames)
        f.addRow("path", row)
        self.waypoint_label = QLabel("shift-click the scatter to add waypoints")
        f.addRow(self.waypoint_label)
        row = QHBoxLayout()
        self.path_btn = QPushButton("Preview path")
        self.path_btn.clicked.connect(on_preview)
        clear = QPushButton("Clear waypoints")
        clear.clicked.connect(on_clear)
        row.addWidget(self.path_btn)
        row.addWidget(clear)
        f.addRow(row)
        row = QHBoxLayout()
        self.movie_out = QLineEdit(default_output("latent_path.mp4"))
        self.movie_out.setToolTip("movie file (.mp4 or .gif); the z path is saved beside it")
        self.rotate = dspin(0, -360, 360, 15, "°", 0, "camera turn over the movie")
        self.movie_btn = QPushButton("Movie")
        self.movie_btn.clicked.connect(on_movie)
        for w in (self.movie_out, self.rotate, self.movie_btn):
            row.addWidget(w)
        f.addRow("movie", row)
        f.addRow(cancel_btn)


class DisplayGroup(QGroupBox):
    """How the decoded volume is drawn (isosurface, threshold, colormap) and the nearest known structure."""

    def __init__(self, on_style):
        super().__init__("Display")
        f = QFormLayout(self)
        row = QHBoxLayout()
        self.iso = QCheckBox("isosurface")
        self.iso.toggled.connect(lambda *_: on_style())
        self.threshold = dspin(0.5, 0, 1, 0.05, "", 2, "isosurface threshold, as a fraction of the contrast range")
        self.threshold.valueChanged.connect(lambda *_: on_style())
        self.colormap = QComboBox()
        self.colormap.addItems(["gray", "magma", "viridis", "turbo", "cyan"])
        self.colormap.currentTextChanged.connect(lambda *_: on_style())
        self.threshold.setPrefix("at ")
        self.threshold.setSuffix(" of range")
        self.iso_value = QLabel("")  # the layer's own iso threshold, the value napari's layer controls show
        self.iso_value.setToolTip("the isosurface threshold in the volume's values, as the layer controls show it")
        for w in (self.iso, self.threshold, self.iso_value, self.colormap):
            row.addWidget(w)
        f.addRow(row)
        self.nearest = QLabel("nearest known structure: –")
        f.addRow(self.nearest)


class LatentExplorer(JobDock):
    """The Latent explorer dock: decode latent points live, walk paths, write interpolation movies."""

    job_buttons = ("paths.path_btn", "paths.movie_btn")

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        from cryoforge.manifold.live import LatestOnly

        self.manifold = None
        self.live = LatestOnly(self._start_decode)
        self.live_job = None
        self.current_z = None
        self.shown_z = None
        self.decode_ms = []
        self.waypoints: list[np.ndarray] = []
        self.path_z = None
        self._axes = None
        self._templates = None
        root = QVBoxLayout(self)
        self.models = ModelGroup(self._browse, self.load)
        root.addWidget(self.models)
        self.latent = LatentGroup(self._set_axes, self._from_sliders)
        root.addWidget(self.latent)
        self.canvas, (self.ax,) = canvas(2.6)
        self.canvas.mpl_connect("button_press_event", self._clicked)
        root.addWidget(self.canvas)
        self.paths = PathGroup(self.preview_path, self.clear_waypoints, self.write_movie, self.cancel_btn)
        root.addWidget(self.paths)
        self.display = DisplayGroup(self._style)
        root.addWidget(self.display)
        root.addStretch(1)

    # ------------------------------------------------------------------ model
    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "Generative model", "", "Models (*.pt *.pkl);;All files (*)")
        if path:
            self.models.model.setCurrentText(path)

    def load(self, spec: str) -> bool:
        """Open ``spec`` as a manifold (main thread: loading is quick), reset the sliders and decode its origin."""
        from cryoforge.manifold import open_manifold

        try:
            m = open_manifold(spec.strip() or "wgan")
        except Exception as err:  # noqa: BLE001 - every failure is one clear notification
            report_error(f"Latent explorer: cannot open {spec!r}: {describe(err)}")
            return False
        self.manifold = m
        if spec.strip() and self.models.model.currentText() != spec:
            self.models.model.setCurrentText(spec)
        self.waypoints, self.path_z = [], None
        self._templates = self._load_templates(m)
        self.models.info.setText(m.describe())
        self._set_axes()
        self._draw_scatter()
        return True

    @staticmethod
    def _load_templates(m):
        from cryoforge.manifold.loaders import shipped_templates

        t = shipped_templates()
        same_grid = t is not None and t[0].shape[-1] == m.box and abs(t[2] - m.voxel_size) < 1e-3
        return t if same_grid else None

    def _set_axes(self):
        """Slider directions: the data's principal components (σ from their variances) or unit latent axes."""
        m = self.manifold
        if m is None:
            return
        data = m.data_latents if m.data_latents is not None and len(m.data_latents) > 2 else m.sample(500, 0)
        use_pcs = self.latent.axes_mode.currentIndex() == 0 and m.latent_dim > 1  # a 1-D latent is its own axis
        if use_pcs:
            from cryoforge.manifold.analysis import pca

            _, fit = pca(data, min(N_SLIDERS, m.latent_dim))
            dirs, sig = fit.components_, np.sqrt(fit.explained_variance_)
            self._pca = fit
        else:
            k = min(N_SLIDERS, m.latent_dim)
            dirs, sig = np.eye(m.latent_dim)[:k], np.asarray(data).std(0)[:k]
        self._axes = (np.asarray(dirs, np.float32), np.asarray(sig, np.float32) + 1e-6)
        for i, (s, lab) in enumerate(zip(self.latent.sliders, self.latent.slider_labels, strict=True)):
            s.setEnabled(i < len(dirs))
            s.setVisible(i < len(dirs))  # a 1-D manifold (Multi-CryoGAN's α) gets one slider
            lab.setVisible(i < len(dirs))
            lab.setText(_axis_name(m) if m.latent_dim == 1 else f"{'PC' if use_pcs else 'z'}{i + 1}")
            s.blockSignals(True)
            s.setValue(0)
            s.blockSignals(False)
        self.request(m.origin())

    # ------------------------------------------------------------------ live decoding
    def _from_sliders(self):
        if self.manifold is None or self._axes is None:
            return
        dirs, sig = self._axes
        t = np.array([s.value() / SLIDER_RANGE * 3.0 for s in self.latent.sliders[: len(dirs)]], np.float32)
        self.request(self.manifold.origin() + (t * sig) @ dirs)

    def request(self, z) -> None:
        """Ask for the volume at ``z``: decoded now if idle, else after the running decode (newest request only)."""
        self.current_z = np.asarray(z, np.float32)
        self.live.submit(self.current_z)

    def _start_decode(self, z):
        from cryoforge.jobs import Metrics
        from cryoforge.manifold.live import decode_job

        def on_event(ev):
            if isinstance(ev, Metrics):
                self.decode_ms.append(ev.values["decode_ms"])

        self.live_job = start_job(decode_job(self.manifold, z), "Decoding latent point", on_event=on_event,
                                  on_result=self._show_volume, on_finish=lambda _h: self.live.done())

    def _show_volume(self, result):
        z, vol = result
        self.shown_z = z
        layer = self._set_layer(VOLUME, vol, self.manifold.voxel_size, self.display.colormap.currentText())
        layer.metadata["latent"] = z.tolist()
        self._style()
        text = f"decode {self.decode_ms[-1]:.0f} ms" if self.decode_ms else ""
        if self.live.dropped:
            text += f" · {self.live.dropped} stale request(s) skipped"
        self.latent.status.setText(text)
        if self._templates is not None:
            from cryoforge.manifold.analysis import nearest_structure

            name, score, _ = nearest_structure(vol, self._templates[0], self._templates[1])
            self.display.nearest.setText(f"nearest known structure: {name} (r = {score:.2f})")
        self._draw_marker()

    def _style(self):
        for name in (VOLUME, PATH):
            ly = self._named_layer(name)
            if ly is None:
                continue
            ly.colormap = self.display.colormap.currentText()
            ly.rendering = "iso" if self.display.iso.isChecked() else "mip"
            lo, hi = ly.contrast_limits
            ly.iso_threshold = lo + self.display.threshold.value() * (hi - lo)
            if name == VOLUME or ly.visible:  # the path's value once the path is what the canvas shows
                self.display.iso_value.setText(f"= {ly.iso_threshold:.3g}")

    # ------------------------------------------------------------------ scatter
    def _scatter_points(self):
        m = self.manifold
        pts = m.data_latents if m.data_latents is not None and len(m.data_latents) else m.sample(300, 0)
        return np.asarray(pts, np.float32)

    def _project(self, z):
        from cryoforge.manifold.analysis import pca

        if self.manifold is not None and self.manifold.latent_dim == 1:  # drawn along its one axis, not a PCA
            z = np.atleast_2d(np.asarray(z, np.float32))
            return np.column_stack([z[:, 0], np.zeros(len(z), np.float32)])
        if getattr(self, "_scatter_fit", None) is None:
            self._scatter_fit = pca(self._scatter_points(), 2)[1]
        p = self._scatter_fit.transform(np.atleast_2d(z))
        return np.pad(p, ((0, 0), (0, 2 - p.shape[1])))

    def _draw_scatter(self):
        self._scatter_fit = None
        pts = self._scatter_points()
        xy = self._project(pts)
        self._xy = xy
        ax = self.ax
        ax.clear()
        m = self.manifold
        src = "data latents" if m.data_latents is not None else "samples of N(0, I)"
        ax.scatter(xy[:, 0], xy[:, 1], s=8 if len(xy) > 50 else 30, c="tab:blue", alpha=0.6)
        if m.data_labels and len(m.data_labels) <= 30:
            ends = len(m.data_labels) > 15  # many labels: only the first and last stay readable
            mid = float(np.median(xy[:, 0]))
            for i, ((x, y), lab) in enumerate(zip(xy, m.data_labels, strict=False)):
                if not ends or i in (0, len(m.data_labels) - 1):  # labels point inwards: none leaves the axes
                    right = x > mid
                    ax.annotate(lab, (x, y), xytext=(-3 if right else 3, 2), textcoords="offset points",
                                fontsize=6, alpha=0.8, ha="right" if right else "left")
        ax.margins(0.12)
        if m.latent_dim == 1:
            ax.set_title(f"{src} along {_axis_name(m)} · click: decode · shift-click: waypoint", fontsize=7)
            ax.set_xlabel(_axis_name(m), fontsize=7)
            ax.set_yticks([])
        else:
            ax.set_title(f"{src} (PCA) · click: decode · shift-click: waypoint", fontsize=7)
            ax.set_xlabel("PC1", fontsize=7)
            ax.set_ylabel("PC2", fontsize=7)
        ax.tick_params(labelsize=6)
        self._marker = None
        self.canvas.draw_idle()

    def _draw_marker(self):
        if self.manifold is None or self.shown_z is None:
            return
        for art in getattr(self, "_overlay", []):
            art.remove()
        p = self._project(self.shown_z)[0]
        self._overlay = [self.ax.plot(p[0], p[1], "*", color="orange", ms=12, mec="k")[0]]
        if self.waypoints:
            w = self._project(np.stack(self.waypoints))
            self._overlay.append(self.ax.plot(w[:, 0], w[:, 1], "o-", color="red", ms=5)[0])
            self._overlay += [self.ax.annotate(str(i + 1), tuple(q), color="red", fontsize=7) for i, q in enumerate(w)]
        self.canvas.draw_idle()

    def point_at(self, x: float, y: float) -> np.ndarray:
        """The latent point whose PCA position is nearest ``(x, y)``."""
        i = int(np.argmin(((self._xy[:, :2] - [x, y]) ** 2).sum(1)))
        return self._scatter_points()[i]

    def _clicked(self, event):
        if self.manifold is None or event.inaxes is not self.ax or event.xdata is None:
            return
        z = self.point_at(event.xdata, event.ydata)
        if event.key == "shift":
            self.add_waypoint(z)
        else:
            self.request(z)

    def add_waypoint(self, z):
        self.waypoints.append(np.asarray(z, np.float32))
        self.paths.waypoint_label.setText(f"{len(self.waypoints)} waypoint(s); shift-click to add more")
        self._draw_marker()

    def clear_waypoints(self):
        self.waypoints = []
        self.paths.waypoint_label.setText("shift-click the scatter to add waypoints")
        self._draw_marker()

    # ------------------------------------------------------------------ path and movie
    def preview_path(self):
        """Decode the waypoint path into the ``(T, Z, Y, X)`` layer 'explorer: path' (frame axis first)."""
        from cryoforge.manifold.live import path_job
        from cryoforge.manifold.paths import make_path

        if self.manifold is None or self._busy():
            return
        try:
            self.path_z = make_path(np.stack(self.waypoints) if self.waypoints else np.zeros((0, 1)),
                                    self.paths.frames.value(), self.paths.path_method.currentText(), self.manifold.data_latents)
        except Exception as err:  # noqa: BLE001
            report_error(f"Latent explorer: {describe(err)}")
            return
        self._start(path_job(self.manifold, self.path_z), "Decoding the latent path", self._show_path)

    def _show_path(self, volumes):
        vs = self.manifold.voxel_size
        if PATH in self.viewer.layers:
            del self.viewer.layers[PATH]
        layer = self.viewer.add_image(volumes, name=PATH, scale=(1, vs, vs, vs), colormap=self.display.colormap.currentText(),
                                      axis_labels=("frame", "z", "y", "x"), units=("angstrom",) * 4)
        layer.metadata["latent_path"] = self.path_z.tolist()
        self._style()
        self.viewer.dims.set_current_step(0, 0)
        report_info(f"Latent explorer: path of {len(volumes)} frames; scrub it with the frame slider")

    def write_movie(self):
        """Write the previewed path as a movie with napari-animation (the viewer as shown), z path beside it."""
        from cryoforge.manifold.movie import MOVIE_SUFFIXES, save_path

        from ..movie import animate_layer

        if self.path_z is None or PATH not in self.viewer.layers:
            report_error("Latent explorer: preview a path first (add two waypoints, then Preview path)")
            return
        out = Path(self.paths.movie_out.text()).expanduser()
        if out.suffix not in MOVIE_SUFFIXES:
            report_error(f"Latent explorer: a movie ends in {' or '.join(MOVIE_SUFFIXES)}, not {out.suffix or '(none)'}")
            return
        for ly in self.viewer.layers:
            ly.visible = ly.name == PATH
        if self.viewer.dims.ndisplay != 3:
            self.viewer.dims.ndisplay = 3
        try:
            n = animate_layer(self.viewer, len(self.path_z), out, rotate=self.paths.rotate.value())
        except Exception as err:  # noqa: BLE001
            report_error(f"Latent explorer: movie failed: {describe(err)}")
            return
        save_path(out, self.path_z, {"model": self.manifold.name, "frames": n, "renderer": "napari",
                                     "path_method": self.paths.path_method.currentText()})
        self.last_movie = out
        report_info(f"Latent explorer: wrote {out} ({n} frames) and {out.name}.z.txt")


def _axis_name(m) -> str:
    """The name of a 1-D manifold's latent axis: α for Multi-CryoGAN (its generator's segment coordinate)."""
    return "α" if m.kind == "multicryogan" else "z"
