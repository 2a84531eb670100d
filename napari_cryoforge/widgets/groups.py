"""Group widgets the docks are composed of: each a titled box that owns its controls and turns them into the
engine's settings (a :class:`~cryoforge.jobs.trainer.Schedule`, a checkpoint path) or shows what a job yields."""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtWidgets import QFormLayout, QGroupBox, QLabel, QLineEdit, QPushButton, QWidget

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
