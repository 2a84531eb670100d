"""What the job-running docks share: start/cancel a job with its buttons, layer choosers, result layers."""

from __future__ import annotations

from operator import attrgetter

from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from .._jobs import start_job


class JobDock(QWidget):
    """A dock that runs one engine job at a time; subclasses list their start buttons in ``job_buttons`` (attribute
    paths such as ``"training.button"`` for a button of a group widget) and in ``preload`` the modules their jobs import
    late: those are imported when the dock opens, because an import in the job's thread holds the interpreter lock for
    up to 300 ms at a time and the GUI cannot answer meanwhile."""

    job_buttons: tuple = ()
    preload: tuple[str, ...] = ()

    def __init__(self, napari_viewer):
        import importlib

        import pint

        super().__init__()
        for module in self.preload:
            importlib.import_module(module)
        # napari's unit registry reads its definitions at the first layer a process makes (150–290 ms): here, when
        # the dock opens, rather than when its first result is shown
        _ = pint.get_application_registry().angstrom
        self.viewer = napari_viewer
        self.job = None
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)

    def _head(self, root, inputs) -> QLabel:
        """The dock's first rows in ``root`` (a layout): its input group, the Cancel button and a status line, which
        is returned."""
        root.addWidget(inputs)
        root.addWidget(self.cancel_btn)
        status = QLabel("")
        status.setWordWrap(True)
        root.addWidget(status)
        return status

    def _buttons(self):
        return [attrgetter(name)(self) for name in self.job_buttons]

    def _start(self, job, desc, on_result, on_event=None):
        for b in self._buttons():
            b.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.job = start_job(job, desc, on_event=on_event, on_result=on_result, on_finish=self._finished)

    def _finished(self, handle):
        for b in self._buttons():
            b.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def cancel(self):
        if self.job is not None:
            self.job.cancel()

    def _busy(self) -> bool:
        return self.job is not None and self.job.running

    def _named_layer(self, name):
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def _set_layer(self, name, data, voxel_size, colormap="gray", blending="translucent", visible=True):
        """Update the result layer ``name`` in place, or add it with the voxel size (Å) as its scale."""
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            layer.reset_contrast_limits()
            return layer
        return self.viewer.add_image(data, name=name, scale=(voxel_size,) * 3, colormap=colormap, blending=blending,
                                     visible=visible, units=("angstrom",) * 3)
