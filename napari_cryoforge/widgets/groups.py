"""Group widgets the docks are composed of: each a titled box that owns its controls and turns them into the
engine's settings (a :class:`~cryoforge.jobs.trainer.Schedule`, a checkpoint path) or shows what a job yields."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qtpy.QtWidgets import QFormLayout, QGroupBox, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from cryoforge.jobs.trainer import Schedule

from .controls import canvas, default_output, ispin


class TrainingGroup(QGroupBox):
    """What every training dock shows: the model's own rows, steps, the checkpoint file (training resumes from it
    when it exists), the Train button, a status line and live curves of the training's metrics against its step."""

    def __init__(self, title: str, checkpoint_name: str, steps: int, steps_tip: str,
                 rows: Sequence[tuple[str, QWidget]] = (), ylabel: str = ""):
        super().__init__(title)
        self.form = QFormLayout(self)
        for label, widget in rows:
            self.form.addRow(label, widget)
        self.steps = ispin(steps, 1, 1_000_000, tip=steps_tip)
        self.form.addRow("steps", self.steps)
        self.checkpoint = QLineEdit(default_output(checkpoint_name))
        self.checkpoint.setToolTip("checkpoint file; training resumes from it when it exists")
        self.form.addRow("checkpoint", self.checkpoint)
        self.button = QPushButton("Train")
        self.form.addRow(self.button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.form.addRow(self.status)
        self.canvas, (self.ax,) = canvas(1.6)
        self.canvas.setVisible(False)  # shown with the first point
        self.form.addRow(self.canvas)
        self.ylabel = ylabel
        self.curves: dict[str, list[tuple[int, float]]] = {}
        self._lines: dict = {}  # curve name → its Line2D, updated in place

    def checkpoint_path(self) -> str | None:
        """The checkpoint file, or None when the field is empty (train without one)."""
        return self.checkpoint.text().strip() or None

    def schedule(self, **intervals: int) -> Schedule:
        """The training schedule: the steps asked for, with the dock's checkpoint / validation intervals."""
        return Schedule(steps=self.steps.value(), **intervals)

    def reset_curves(self) -> None:
        """Forget the curves of an earlier run (a new training starts)."""
        self.curves, self._lines = {}, {}
        self.ax.clear()

    def add_point(self, step: int, values: dict[str, float], colors: dict[str, str] | None = None) -> None:
        """Extend the curves named in ``values`` by one step and redraw them (a legend once there are two). The lines
        are updated in place: clearing the axes each time re-made every tick, twice the cost of a draw."""
        ax = self.ax
        new = False
        for name, value in values.items():
            self.curves.setdefault(name, []).append((int(step), float(value)))
            x, y = zip(*self.curves[name], strict=True)
            if name in self._lines:
                self._lines[name].set_data(x, y)
            else:
                (self._lines[name],) = ax.plot(x, y, color=(colors or {}).get(name), label=name)
                new = True
        if new:
            ax.set_xlabel("step", fontsize=7)
            if self.ylabel:
                ax.set_ylabel(self.ylabel, fontsize=7)
            ax.tick_params(labelsize=6)
            if len(self.curves) > 1:
                ax.legend(fontsize=6, loc="upper right")
        ax.relim()
        ax.autoscale_view()
        self.canvas.setVisible(True)
        self.canvas.draw_idle()


PLANES = (("x–y (z centre)", 0), ("x–z (y centre)", 1), ("y–z (x centre)", 2))


def _plane(vol: np.ndarray, axis: int) -> np.ndarray:
    """The central plane of a ``(Z, Y, X)`` box across ``axis``, as an image with the first remaining axis down."""
    return np.take(vol, vol.shape[axis] // 2, axis=axis)


class ParticlePanel(QGroupBox):
    """One particle: its subtomogram's three central planes (grey) with the average in its pose as contours."""

    def __init__(self, title: str = "Particle", hint: str = "click a particle in the viewer (or the gallery)"):
        super().__init__(title)
        v = QVBoxLayout(self)
        self.label = QLabel(hint)
        self.label.setWordWrap(True)
        v.addWidget(self.label)
        self.canvas, self.axes = canvas(1.9, 3)
        self.canvas.setFixedHeight(171)  # the three planes keep their size: the gallery below takes the rest
        v.addWidget(self.canvas)
        self.images = [None, None, None]
        for ax, (title, _) in zip(self.axes, PLANES, strict=True):
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])

    def show_particle(self, box: np.ndarray, model: np.ndarray, text: str) -> None:
        level = float(model.mean() + 2 * model.std())
        for k, (ax, (title, axis)) in enumerate(zip(self.axes, PLANES, strict=True)):
            img = _plane(box, axis)
            if self.images[k] is None:
                self.images[k] = ax.imshow(img, cmap="gray", origin="lower")
            else:
                self.images[k].set_data(img)
                self.images[k].set_clim(float(img.min()), float(img.max()))
            for c in list(ax.collections):
                c.remove()
            ax.contour(_plane(model, axis), levels=[level], colors="#ff3030", linewidths=0.8)
            ax.set_title(title, fontsize=7)
        self.label.setText(text)
        self.canvas.draw_idle()


LABELLED = 4  # known-template lines that carry a "rank. name p̂" label


def null_histogram(ax, known: np.ndarray, pseudo: np.ndarray, names: list[str], alpha: float,
                   target: int | None = None, p_hat_level: float | None = None):
    """Seed 000's view of one test on ``ax``: the pseudo-complexes' scores as a histogram, every known template's
    score as a line (the best red, ``target`` orange when another one is best; labels with p̂ for the top
    :data:`LABELLED`), the α threshold green. With a calibration, ``p_hat_level`` is the p̂ that its calibrated
    p = α stands for (:meth:`cryoforge.hyptest.calibration.Calibration.p_hat_level`) and the green line is drawn
    there. Returns the bars and ``{line: known index}`` (for picking)."""
    from cryoforge.hyptest.montecarlo import p_text

    ax.clear()
    bars = ax.hist(pseudo, bins=40, color="tab:gray", picker=True)[2]
    best = int(np.argmax(known))
    null = np.concatenate([pseudo, np.delete(known, best)])
    order = np.argsort(-known)
    top = max(1.0, max(b.get_height() for b in bars))
    lines = {}
    lo, hi = float(min(pseudo.min(), known.min())), float(max(pseudo.max(), known.max()))
    for rank, k in enumerate(order):  # a line per known template; labels for the top LABELLED
        p = float((null >= known[k]).mean())
        colour = "red" if k == best else "tab:orange" if k == target else "tab:blue"
        line = ax.axvline(known[k], color=colour, lw=1.6 if k in (best, target) else 0.7, picker=5,
                          alpha=1.0 if rank < LABELLED or k == target else 0.5)
        lines[line] = k
        if rank < LABELLED:  # labels right of their line, or left of it in the right third (never clipped)
            right = known[k] > lo + 0.66 * (hi - lo)
            text = f"{rank + 1}. {names[k]} p̂ {p_text(p, len(null))}"
            ax.text(known[k], top * (0.97 - 0.11 * rank), f"{text} " if right else f" {text}", fontsize=6,
                    color=line.get_color(), va="top", ha="right" if right else "left")
    level, label = (alpha, f" p={alpha:g}") if p_hat_level is None else (p_hat_level, f" calibrated p={alpha:g}")
    if level <= 0:  # nothing is significant: the line right of every null score
        thr, label = float(null.max()), f"{label}: unreachable"
    else:
        thr = float(np.quantile(null, 1 - level))
    ax.axvline(thr, color="green", ls="--", lw=1)
    ax.text(thr, top * 0.05, label, color="green", fontsize=6)
    ax.set_xlabel("wedge-constrained correlation c(P, T(C))", fontsize=7)
    ax.set_ylabel("pseudo-complexes", fontsize=7)
    ax.tick_params(labelsize=6)
    return bars, lines
