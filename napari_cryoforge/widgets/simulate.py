"""Simulate dock: pick a source, set the physics, watch a live preview, generate a dataset in the background.

Engine jobs do the work (cryoforge.sim.preview.preview_job, cryoforge.sim.subtomo.simulate_pairs_job,
cryoforge.sim.particles.simulate_particles_job); this widget gathers parameters and shows what they yield.
A parameter change re-runs the preview after a short pause; a preview that is already running is
left to finish and its result replaced by the newest one (stale previews are never shown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from cryoforge.sim.phantoms import PHANTOMS  # numpy only: keeps torch out of the import

from .._jobs import start_job
from .._notify import report_error, report_info
from .._reader import INDEX_UNIT
from ._dock import JobDock
from .controls import canvas, dspin, ispin, layer_combo, path_row, voxel_size_of

FILE_ITEM = "PDB / mmCIF file…"
LAYER_PREFIX = "Layer: "


class SourceGroup(QGroupBox):
    """The structure to simulate (a phantom, an image layer or an atomic model file) and how its map is made: box,
    voxel size, density method, extra blur."""

    def __init__(self, on_browse):
        super().__init__("Source")
        f = QFormLayout(self)
        self.source = layer_combo()
        f.addRow("structure", self.source)
        row, self.path = path_row("path to .pdb / .cif (.gz)", on_browse)
        f.addRow("file", row)
        self.box = ispin(32, 8, 256, " vox", "box size of the simulated volumes")
        self.voxel = dspin(12.0, 0.1, 100.0, 1.0, " Å", tip="voxel size (seeds: 6–12 Å)")
        self.method = QComboBox()
        self.method.addItems(["peng", "gaussian"])
        self.method.setToolTip("peng: 5-Gaussian electron form factors; gaussian: Situs/molmap blur")
        self.resolution = dspin(0.0, 0.0, 200.0, 2.0, " Å", 1, "extra blur to this resolution (0: none)")
        for label, w in (("box", self.box), ("voxel size", self.voxel), ("density", self.method),
                         ("resolution", self.resolution)):
            f.addRow(label, w)

    def map_spec(self):
        """How the engine makes the map: :class:`cryoforge.sim.sources.MapSpec`."""
        from cryoforge.sim.sources import MapSpec

        res = self.resolution.value() or None
        method = self.method.currentText()
        if method == "gaussian" and res is None:
            res = 2 * self.voxel.value()
        return MapSpec(self.box.value(), self.voxel.value(), method, res)


class PhysicsGroup(QGroupBox):
    """What is simulated and how it is imaged: subtomogram pairs or particles, SNR, wedge and tilts, CTF, MTF,
    shifts, reconstruction; turned into the engine's TomoParams / ParticleParams."""

    def __init__(self):
        super().__init__("Physics")
        f = QFormLayout(self)
        self.mode = QComboBox()
        self.mode.addItems(["subtomogram pairs", "particle stack"])
        self.snr = dspin(0.1, 0.001, 100.0, 0.01, "", 3,
                         "subtomograms: c/(1−c) of two aligned noisy copies; particles: var(signal)/σ² per image")
        self.wedge = dspin(30.0, 0.0, 90.0, 5.0, " °", 1, "missing wedge of s_b (30° = tilts ±60°); s_a has none")
        self.tilt_step = dspin(1.0, 0.1, 30.0, 0.5, " °", 1, "tilt increment")
        self.defocus_min = dspin(2.0, 0.0, 20.0, 0.1, " µm", 2, "underfocus, lower end")
        self.defocus_max = dspin(5.0, 0.0, 20.0, 0.1, " µm", 2, "underfocus, upper end")
        self.cs = dspin(2.7, 0.0, 10.0, 0.1, " mm", 2, "spherical aberration")
        self.voltage = dspin(300.0, 60.0, 400.0, 100.0, " kV", 0)
        self.amp_contrast = dspin(0.07, 0.0, 0.99, 0.01, "", 2, "amplitude contrast fraction")
        self.mtf = QCheckBox("detector MTF sinc(πω/2)")
        self.mtf.setChecked(True)
        self.max_shift = dspin(7.0, 0.0, 64.0, 1.0, " vox", 1, "largest shift (s_b: voxels; particles: pixels)")
        self.reconstruction = QComboBox()
        self.reconstruction.addItems(["fourier", "wbp"])
        self.reconstruction.setToolTip("fourier: direct Fourier inversion (fast); wbp: weighted back-projection")
        for label, w in (("data", self.mode), ("SNR", self.snr), ("wedge", self.wedge), ("tilt step", self.tilt_step),
                         ("defocus min", self.defocus_min), ("defocus max", self.defocus_max), ("Cs", self.cs),
                         ("voltage", self.voltage), ("amp. contrast", self.amp_contrast), ("", self.mtf),
                         ("max shift", self.max_shift), ("reconstruction", self.reconstruction)):
            f.addRow(label, w)
        self.mode.currentIndexChanged.connect(self._mode_changed)

    @property
    def particles(self) -> bool:
        """Particle stacks (else subtomogram pairs)."""
        return self.mode.currentIndex() == 1

    def spins(self):
        """The spin boxes whose change asks for a new preview."""
        return (self.snr, self.wedge, self.tilt_step, self.defocus_min, self.defocus_max, self.cs, self.voltage,
                self.amp_contrast, self.max_shift)

    def _mode_changed(self, *_):
        for w in (self.wedge, self.tilt_step, self.reconstruction, self.mtf):
            w.setEnabled(not self.particles)
        if self.particles:  # seeds 002/003: defocus U[1, 2] µm, 0.1 amplitude contrast, 64² at 2 Å
            self.defocus_min.setValue(1.0), self.defocus_max.setValue(2.0), self.amp_contrast.setValue(0.1)
            self.max_shift.setValue(0.0)
        else:
            self.defocus_min.setValue(2.0), self.defocus_max.setValue(5.0), self.amp_contrast.setValue(0.07)
            self.max_shift.setValue(7.0)

    def tomo_params(self, voxel_size: float):
        """The tilt-series simulation's :class:`~cryoforge.sim.params.TomoParams` at ``voxel_size`` Å."""
        from cryoforge.sim.params import TomoParams

        return TomoParams(voxel_size=voxel_size, tilt_step=self.tilt_step.value(), voltage=self.voltage.value(),
                          cs=self.cs.value(), amplitude_contrast=self.amp_contrast.value(),
                          defocus_min=self.defocus_min.value() * 1e4, defocus_max=self.defocus_max.value() * 1e4,
                          mtf=self.mtf.isChecked(), snr=self.snr.value(),
                          reconstruction=self.reconstruction.currentText()).validate()

    def particle_params(self, pixel_size: float):
        """The particle simulation's :class:`~cryoforge.sim.params.ParticleParams` at ``pixel_size`` Å."""
        from cryoforge.sim.params import ParticleParams

        return ParticleParams(pixel_size=pixel_size, voltage=self.voltage.value(), cs=self.cs.value(),
                              amplitude_contrast=self.amp_contrast.value(),
                              defocus_min=self.defocus_min.value() * 1e4, defocus_max=self.defocus_max.value() * 1e4,
                              max_shift=self.max_shift.value(), snr=self.snr.value()).validate()


class GenerateGroup(QGroupBox):
    """How many pairs or particles, the seed, the output folder, the Generate and Cancel buttons."""

    def __init__(self, cancel_btn):
        super().__init__("Generate dataset")
        f = QFormLayout(self)
        self.count = ispin(100, 1, 1_000_000, "", "pairs or particles")
        self.seed = ispin(0, 0, 2**31 - 1, "", "random seed (same seed, same data)")
        self.out_dir = QLineEdit()
        self.out_dir.setPlaceholderText("optional output folder (MRC + STAR + JSON)")
        f.addRow("count", self.count)
        f.addRow("seed", self.seed)
        f.addRow("save to", self.out_dir)
        row = QHBoxLayout()
        self.button = QPushButton("Generate")
        row.addWidget(self.button)
        row.addWidget(cancel_btn)
        f.addRow(row)


class SimulateWidget(JobDock):
    """Subtomogram pairs (s_a without wedge, s_b with wedge) or particle stacks from a phantom, layer or model."""

    job_buttons = ("generation.button",)

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.preview_job = None
        self.last_preview = None
        self.last_dataset = None
        self._preview_pending = False
        root = QVBoxLayout(self)
        self.sources = SourceGroup(self._browse)
        root.addWidget(self.sources)
        self.physics = PhysicsGroup()
        root.addWidget(self.physics)
        self.preview_label = QLabel("Preview")
        root.addWidget(self.preview_label)
        self.canvas, self.axes = canvas(1.9, 4)
        root.addWidget(self.canvas)
        self.generation = GenerateGroup(self.cancel_btn)
        self.generation.button.clicked.connect(self.generate)
        root.addWidget(self.generation)
        root.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(400)
        self._timer.timeout.connect(self.update_preview)
        src = self.sources
        for w in (src.box, src.voxel, src.resolution, *self.physics.spins(), self.generation.seed):
            w.valueChanged.connect(self.schedule_preview)
        for w in (src.source, src.method, self.physics.mode, self.physics.reconstruction):
            w.currentIndexChanged.connect(self.schedule_preview)
        self.physics.mtf.toggled.connect(self.schedule_preview)
        src.path.editingFinished.connect(self.schedule_preview)
        self.viewer.layers.events.inserted.connect(self._refresh_sources)
        self.viewer.layers.events.removed.connect(self._refresh_sources)
        self._refresh_sources()

    # ----------------------------------------------------------------- sources and parameters
    def _refresh_sources(self, *_):
        current = self.sources.source.currentText()
        items = [f"Phantom: {k}" for k in PHANTOMS]
        items += [LAYER_PREFIX + ly.name for ly in self.viewer.layers
                  if getattr(ly, "data", None) is not None and getattr(ly.data, "ndim", 0) == 3
                  and ly.__class__.__name__ == "Image" and not ly.name.startswith("sim:")]
        items.append(FILE_ITEM)
        self.sources.source.blockSignals(True)
        self.sources.source.clear()
        self.sources.source.addItems(items)
        if current in items:
            self.sources.source.setCurrentText(current)
        self.sources.source.blockSignals(False)

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "Atomic model", "", "Models (*.pdb *.cif *.ent *.gz)")
        if path:
            self.sources.path.setText(path)
            self.sources.source.setCurrentText(FILE_ITEM)
            self.schedule_preview()

    def source_spec(self):
        """``(source, source_voxel)`` for the engine: a source string, or a layer's array and voxel size."""
        text = self.sources.source.currentText()
        if text.startswith("Phantom: "):
            return "phantom:" + text.split(": ", 1)[1], None
        if text.startswith(LAYER_PREFIX):
            layer = self.viewer.layers[text[len(LAYER_PREFIX):]]
            return np.asarray(layer.data, np.float32), voxel_size_of(layer)
        path = self.sources.path.text().strip()
        if not path:
            raise ValueError("choose a PDB / mmCIF file (Browse…)")
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such file")
        return path, None

    # ----------------------------------------------------------------- preview
    def schedule_preview(self, *_):
        self._timer.start()

    def update_preview(self):
        from cryoforge.sim.preview import preview_job

        if self.preview_job is not None and self.preview_job.running:
            self._preview_pending = True  # run again with the newest parameters when this one ends
            return
        try:
            source, source_voxel = self.source_spec()
            particles = self.physics.particles
            job = preview_job(source, self.sources.map_spec(), "particles" if particles else "subtomogram",
                              None if particles else self.physics.tomo_params(self.sources.voxel.value()), self.physics.wedge.value(),
                              self.physics.particle_params(self.sources.voxel.value()) if particles else None, source_voxel, self.generation.seed.value())
        except ValueError as err:
            self.preview_label.setText(f"Preview: {err}")
            return
        self.preview_label.setText("Preview: computing…")
        self.preview_job = start_job(job, "Simulation preview", on_result=self._show_preview,
                                     on_finish=self._preview_finished)

    def _preview_finished(self, handle):
        if handle.error is not None:
            self.preview_label.setText(f"Preview failed: {handle.error}")
        if self._preview_pending:
            self._preview_pending = False
            self.update_preview()

    def _show_preview(self, out: dict):
        if self._preview_pending:
            return  # stale: parameters changed while it ran
        self.last_preview = out
        vs = self.sources.voxel.value()
        self._set_layer("sim: clean map", out.map, vs, visible=False)
        yield  # one layer per event-loop turn (napari_cryoforge._jobs.in_turns)
        for ax in self.axes:
            ax.clear()
            ax.set_xticks([]), ax.set_yticks([])
        if out.subtomogram is not None:
            sub = out.subtomogram
            c = sub.shape[0] // 2
            self._set_layer("sim: subtomogram", sub, vs)
            yield
            self._set_layer("sim: tilt 0°", out.tilt_noisy, vs, visible=False)
            yield
            panels = [(out.tilt_clean, "tilt 0° CTF+MTF"), (sub[c], "subtomo XY (z=c)"),
                      (sub[:, c, :], "subtomo XZ (y=c)"), (out.wedge[:, c, :] + 0.3 * out.fourier_amplitude
                                                           [:, c, :] / max(out.fourier_amplitude.max(), 1e-9),
                                                           "|F| + wedge (kx–kz)")]
            assert out.tilt_range is not None
            lo, hi = out.tilt_range
            self.preview_label.setText(f"Preview: one subtomogram, tilts {lo:g}…{hi:g}°, SNR {self.physics.snr.value():g} "
                                       f"(c/(1−c)), {vs:g} Å/voxel")
        else:
            imgs, clean = out.particles, out.particles_clean
            self._set_layer("sim: particles", imgs, vs, lead=1)
            yield
            panels = [(clean[0], "noise-free"), (imgs[0], "particle 1"), (imgs[1], "particle 2"),
                      (imgs[2], "particle 3")]
            self.preview_label.setText(f"Preview: 16 particles, SNR {self.physics.snr.value():g}, {vs:g} Å/pixel")
        for ax, (img, title) in zip(self.axes, panels, strict=True):
            ax.imshow(img, cmap="gray", origin="lower")
            ax.set_title(title, fontsize=7)
        self.canvas.draw_idle()

    def _set_layer(self, name, data, voxel_size: float, lead: int = 0, visible: bool = True):
        """Add or update an image layer; ``lead`` leading axes (particle, subtomogram) are not spatial."""
        spatial = data.ndim - lead
        scale = (1.0,) * lead + (voxel_size,) * spatial
        units = (INDEX_UNIT,) * lead + ("angstrom",) * spatial
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            layer.scale = scale
            layer.reset_contrast_limits()
        else:
            self.viewer.add_image(data, name=name, scale=scale, colormap="gray", visible=visible, units=units,
                                  metadata={"cryoforge": {"voxel_size": (voxel_size,) * 3, "is_stack": lead == 1
                                                          and spatial == 2}})

    # ----------------------------------------------------------------- generate
    def generate(self):
        from cryoforge.sim.particles import Ensemble, simulate_particles_job
        from cryoforge.sim.preview import source_volume
        from cryoforge.sim.subtomo import simulate_pairs_job

        if self.job is not None and self.job.running:
            return
        try:
            source, source_voxel = self.source_spec()
            spec = self.sources.map_spec()
            out = self.generation.out_dir.text().strip() or None
            name = source if isinstance(source, str) else self.sources.source.currentText()[len(LAYER_PREFIX):]
            name = name.split(":", 1)[-1] if isinstance(name, str) else "map"
            if not self.physics.particles:
                params = self.physics.tomo_params(self.sources.voxel.value())

                def job():
                    vol = source_volume(source, spec, source_voxel, self.generation.seed.value())
                    yield from simulate_pairs_job(vol[None], [Path(name).name.split(".")[0]], self.generation.count.value(),
                                                  params, 0.0, self.physics.wedge.value(), self.physics.max_shift.value(),
                                                  self.generation.seed.value(), out_dir=out)
                desc = f"Simulating {self.generation.count.value()} subtomogram pairs"
            else:
                params = self.physics.particle_params(self.sources.voxel.value())

                def job():
                    vol = source_volume(source, spec, source_voxel, self.generation.seed.value())
                    yield from simulate_particles_job(Ensemble(vol), self.generation.count.value(), params,
                                                      self.generation.seed.value(), out_dir=out)
                desc = f"Simulating {self.generation.count.value()} particles"
        except ValueError as err:
            report_error(f"Cannot simulate: {err}")
            return
        self._start(job(), desc, self._show_dataset)

    def _show_dataset(self, result):
        vs = self.sources.voxel.value()
        from cryoforge.sim.particles import ParticleSimulation

        if isinstance(result, ParticleSimulation):
            images = result.images
            self.last_dataset = result
            self._set_layer("sim: particle stack", images, vs, lead=1)
            report_info(f"Simulated {len(images)} particles" + (f" → {self.generation.out_dir.text()}" if self.generation.out_dir.text()
                                                                 else ""))
            return
        self.last_dataset = result
        self._set_layer("sim: s_a", result.s_a, vs, lead=1)
        yield  # one layer per event-loop turn (napari_cryoforge._jobs.in_turns)
        self._set_layer("sim: s_b", result.s_b, vs, lead=1)
        report_info(f"Simulated {len(result)} subtomogram pairs" + (f" → {self.generation.out_dir.text()}"
                                                                    if self.generation.out_dir.text() else ""))
