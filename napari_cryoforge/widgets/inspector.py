"""Volume inspector dock: orthogonal slices and histogram of the active layer, and an FSC panel.

The FSC panel runs the engine's mask-corrected FSC job (cryoforge.metrics.masked_fsc_job) in a worker;
it only gathers parameters and draws what the job yields.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from .._notify import report_error
from ._dock import JobDock
from .controls import canvas, layer_combo, voxel_size_of

MAX_HIST_SAMPLES = 2_000_000


class FscGroup(QGroupBox):
    """The FSC of two maps: the layers, the soft mask's radius (Å), the phase-randomisation repeats, Compute and
    Cancel, the resolution text and the curve."""

    def __init__(self, cancel_btn):
        super().__init__("Fourier shell correlation")
        form = QFormLayout(self)
        self.map_a, self.map_b = layer_combo(), layer_combo()
        form.addRow("map A", self.map_a)
        form.addRow("map B", self.map_b)
        self.mask_radius = QDoubleSpinBox()
        self.mask_radius.setRange(0, 10000)
        self.mask_radius.setDecimals(1)
        self.mask_radius.setSuffix(" Å")
        self.mask_radius.setSpecialValueText("auto (0.4 × box)")
        self.mask_radius.setToolTip("radius of the soft spherical mask; 'auto' uses 0.4 of the box edge")
        form.addRow("mask radius", self.mask_radius)
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 100000)
        self.repeats.setValue(4)
        self.repeats.setToolTip("phase-randomisation repeats for the mask correction (Chen et al. 2013)")
        form.addRow("randomisation repeats", self.repeats)
        buttons = QHBoxLayout()
        self.compute_btn = QPushButton("Compute FSC")
        buttons.addWidget(self.compute_btn)
        buttons.addWidget(cancel_btn)
        form.addRow(buttons)
        self.fsc_label = QLabel("")
        self.fsc_label.setWordWrap(True)
        form.addRow(self.fsc_label)
        self.fsc_canvas, (self.fsc_ax,) = canvas(2.4)
        form.addRow(self.fsc_canvas)


class VolumeInspector(JobDock):
    """Slices, histogram and FSC of image layers."""

    job_buttons = ("fsc.compute_btn",)

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.last_result = None
        root = QVBoxLayout(self)

        self.info = QLabel("Select an image layer")
        self.info.setWordWrap(True)
        root.addWidget(self.info)
        self.slice_canvas, self.slice_axes = canvas(1.7, 3)
        root.addWidget(self.slice_canvas)
        self.hist_canvas, (self.hist_ax,) = canvas(1.6)
        root.addWidget(self.hist_canvas)

        self.fsc = FscGroup(self.cancel_btn)
        root.addWidget(self.fsc)
        root.addStretch(1)

        self.fsc.compute_btn.clicked.connect(self.compute_fsc)
        self.viewer.layers.selection.events.active.connect(self._on_active)
        self.viewer.layers.events.inserted.connect(self._refresh_layer_lists)
        self.viewer.layers.events.removed.connect(self._refresh_layer_lists)
        self.viewer.dims.events.current_step.connect(self._on_active)
        self._refresh_layer_lists()
        self._on_active()

    # ---- layer lists and the active layer -------------------------------------------------------
    def image_layers(self):
        from napari.layers import Image

        return [ly for ly in self.viewer.layers if isinstance(ly, Image)]

    def _refresh_layer_lists(self, *_):
        names = [ly.name for ly in self.image_layers()
                 if ly.ndim == 3 and not ((ly.metadata or {}).get("cryoforge") or {}).get("is_stack")]
        for combo, default in ((self.fsc.map_a, 0), (self.fsc.map_b, 1)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            elif len(names) > default:
                combo.setCurrentIndex(default)
            combo.blockSignals(False)

    def _on_active(self, *_):
        from napari.layers import Image

        layer = self.viewer.layers.selection.active
        if not isinstance(layer, Image) or layer.rgb or layer.ndim not in (2, 3):
            self.info.setText("Select a 2-D or 3-D image layer")
            return
        self.show_layer(layer)

    def _current_index(self, layer) -> list[int]:
        pos = layer.world_to_data(self.viewer.dims.point[-layer.ndim:]) if self.viewer.dims.ndim >= layer.ndim \
            else [s // 2 for s in layer.data.shape]
        return [int(np.clip(round(float(p)), 0, s - 1)) for p, s in zip(pos, layer.data.shape, strict=False)]

    def show_layer(self, layer) -> None:
        rec = (layer.metadata or {}).get("cryoforge") or {}
        is_stack = bool(rec.get("is_stack"))
        vs = voxel_size_of(layer)
        shape = tuple(layer.data.shape)
        idx = self._current_index(layer)
        if layer.ndim == 3 and not is_stack:
            z, y, x = idx
            data = layer.data
            panels = [(np.asarray(data[z]), f"XY  z={z}"), (np.asarray(data[:, y, :]), f"XZ  y={y}"),
                      (np.asarray(data[:, :, x]), f"YZ  x={x}")]
            sample = np.asarray(data)
        else:
            img = np.asarray(layer.data[idx[0]] if layer.ndim == 3 else layer.data)
            panels = [(img, f"particle {idx[0]}" if layer.ndim == 3 else "image")]
            sample = img
        flat = sample.ravel()
        if flat.size > MAX_HIST_SAMPLES:
            flat = flat[:: flat.size // MAX_HIST_SAMPLES + 1]
        finite = flat[np.isfinite(flat)]
        kind = "stack (N, Y, X)" if is_stack else ("volume (Z, Y, X)" if layer.ndim == 3 else "image (Y, X)")
        stats = (f"min {finite.min():.4g}, max {finite.max():.4g}, mean {finite.mean():.4g}, std {finite.std():.4g}"
                 if finite.size else "no finite values")
        nan_note = f" — {flat.size - finite.size} NaN/inf values!" if finite.size < flat.size else ""
        self.info.setText(f"<b>{layer.name}</b>: {kind} {shape}, voxel {vs:.4g} Å<br>{stats}{nan_note}")
        for ax in self.slice_axes:
            ax.clear()
            ax.set_axis_off()
        for ax, (img, title) in zip(self.slice_axes, panels, strict=False):
            h, w = img.shape
            ax.imshow(img, cmap="gray", origin="upper", extent=(0, w * vs, h * vs, 0))
            ax.set_title(title, fontsize=7)
            ax.set_axis_on()
            ax.tick_params(labelsize=6)
        self.slice_axes[0].set_xlabel("Å", fontsize=7)
        self.slice_canvas.draw_idle()

        ax = self.hist_ax
        ax.clear()
        if finite.size:
            ax.hist(finite, bins=128, color="0.35", log=True)
            for c in layer.contrast_limits:
                ax.axvline(c, color="tab:orange", lw=1)
        ax.set_xlabel("density value (orange: contrast limits)", fontsize=7)
        ax.set_ylabel("voxels", fontsize=7)
        ax.tick_params(labelsize=6)
        self.hist_canvas.draw_idle()
        self.hist_counts = len(finite)

    # ---- FSC ------------------------------------------------------------------------------------
    def _layer(self, name: str):
        for ly in self.image_layers():
            if ly.name == name:
                return ly
        return None

    def compute_fsc(self) -> None:
        from cryoforge.metrics import masked_fsc_job

        a, b = self._layer(self.fsc.map_a.currentText()), self._layer(self.fsc.map_b.currentText())
        if a is None or b is None:
            self._fail("Pick two 3-D image layers for the FSC")
            return
        da, db = np.asarray(a.data, dtype=np.float32), np.asarray(b.data, dtype=np.float32)
        problem = None
        if da.shape != db.shape:
            problem = f"the maps differ in shape: {da.shape} vs {db.shape}"
        elif len(set(da.shape)) != 1:
            problem = f"FSC needs cubic maps; {a.name} is {da.shape} (Z, Y, X)"
        elif not (np.isfinite(da).all() and np.isfinite(db).all()):
            problem = "a map contains NaN or infinite values"
        if problem:
            self._fail(f"FSC: {problem}")
            return
        vs = voxel_size_of(a)
        radius = None if self.fsc.mask_radius.value() == 0 else self.fsc.mask_radius.value() / vs
        job = masked_fsc_job(da, db, vs, mask_radius=radius, n_repeats=self.fsc.repeats.value(), seed=0)
        self.fsc.fsc_label.setText("computing…")
        self._start(job, f"FSC {a.name} vs {b.name}", self._show_fsc, self._on_fsc_event)

    def _fail(self, message: str) -> None:
        self.fsc.fsc_label.setText(message)
        report_error(message)

    def _on_fsc_event(self, event) -> None:
        from cryoforge.jobs import Preview
        from cryoforge.metrics import FSCCurve
        from cryoforge.plots import draw_fsc

        if isinstance(event, Preview) and event.view == "curve":
            f, c = event.array
            draw_fsc(self.fsc.fsc_ax, {event.name: FSCCurve(f, c, event.meta["voxel_size"])})
            self.fsc.fsc_canvas.draw_idle()

    def _show_fsc(self, result) -> None:
        from cryoforge.metrics import GOLD_STANDARD, HALF
        from cryoforge.plots import draw_fsc

        self.last_result = result
        draw_fsc(self.fsc.fsc_ax, {"unmasked": result.unmasked, "mask-corrected": result.corrected})
        self.fsc.fsc_canvas.draw_idle()
        c, u = result.corrected, result.unmasked
        self.fsc.fsc_label.setText(
            f"<b>{c.resolution(GOLD_STANDARD):.2f} Å</b> at FSC 0.143 (mask-corrected; unmasked "
            f"{u.resolution(GOLD_STANDARD):.2f} Å) · {c.resolution(HALF):.2f} Å at 0.5 · "
            f"phases randomised beyond {result.randomize_beyond_A:.1f} Å"
        )

    def _finished(self, handle) -> None:
        super()._finished(handle)
        if handle.cancelled:
            self.fsc.fsc_label.setText("cancelled")
        elif handle.error is not None:
            self.fsc.fsc_label.setText(f"failed: {handle.error}")
