"""Controls every dock shares: spin boxes with units, path rows, layer choosers, plot canvases, output folders."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLineEdit, QPushButton, QSpinBox


def default_output(name: str) -> str:
    """Where a dock writes ``name`` unless told otherwise: ``cryoforge_output/`` in the folder napari was started
    from (not the home folder), created when something is written."""
    from pathlib import Path

    return str(Path.cwd() / "cryoforge_output" / name)


def refresh_combo(combo: QComboBox, names: list[str], hint: str | None = None) -> None:
    """Refill a layer chooser, keeping its choice when it still exists, else the first name starting with ``hint``."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    hinted = next((n for n in names if hint and n.startswith(hint)), None)
    pick = current if current in names and (hint is None or current.startswith(hint) or hinted is None) else hinted
    if pick:
        combo.setCurrentText(pick)
    combo.blockSignals(False)


def layer_combo(min_chars: int = 24) -> QComboBox:
    """A layer chooser whose width does not grow with long layer names (the dock would push the canvas away)."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(min_chars)
    return combo


def voxel_size_of(layer) -> float:
    """The voxel size (Å) of a layer: the one cryoforge recorded, else the layer's scale."""
    rec = (layer.metadata or {}).get("cryoforge") or {}
    if "voxel_size" in rec:
        return float(rec["voxel_size"][0])
    return float(layer.scale[-1])


def canvas(height: float, ncols: int = 1):
    """A matplotlib canvas ``height`` inches tall with ``ncols`` axes side by side: ``(canvas, axes)``."""
    fig = Figure(figsize=(4.2, height), dpi=90, layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumHeight(int(height * 90))
    canvas.draw()  # now, as the dock opens: a process's first draw loads fonts (≈ 60 ms), not while a job shows results
    return canvas, axes


def dspin(value, lo, hi, step, suffix, decimals=2, tip=""):
    """A float spin box with its range, step, unit suffix and tooltip."""
    w = QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setDecimals(decimals)
    w.setSingleStep(step)
    w.setValue(value)
    w.setSuffix(suffix)
    w.setToolTip(tip)
    return w


def ispin(value, lo, hi, suffix="", tip=""):
    """An integer spin box with its range, unit suffix and tooltip."""
    w = QSpinBox()
    w.setRange(lo, hi)
    w.setValue(value)
    w.setSuffix(suffix)
    w.setToolTip(tip)
    return w


def path_row(placeholder: str, on_browse, button: str = "Browse…"):
    """A line edit for a path with a browse button beside it: ``(layout, line_edit)``."""
    row = QHBoxLayout()
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    browse = QPushButton(button)
    browse.clicked.connect(on_browse)
    row.addWidget(edit)
    row.addWidget(browse)
    return row, edit


def thick_slice(viewer, thickness: float) -> None:
    """A slab of ``thickness`` Å along the sliced axis (the tomogram's z in the 2-D view): points within half of it
    show (smaller with distance, with ``projection_mode="rescale_spherical"``); an image layer stays one plane (its
    projection mode is none)."""
    dims = viewer.dims
    if dims.ndisplay != 2 or dims.ndim < 3:
        return
    t = list(dims.thickness)
    for axis in dims.not_displayed:
        t[axis] = thickness if axis == dims.ndim - 3 else t[axis]
    dims.thickness = tuple(t)


def tilt_range_row(what: str = "the missing wedge"):
    """Two spin boxes side by side for the lowest and highest tilt (°, default ±60°): ``(layout, low, high)``."""
    row = QHBoxLayout()
    low = dspin(-60.0, -90.0, 0.0, 1.0, "°", 1, f"lowest tilt: {what}")
    high = dspin(60.0, 0.0, 90.0, 1.0, "°", 1, "highest tilt")
    row.addWidget(low)
    row.addWidget(high)
    return row, low, high
