"""Multi-CryoGAN dock: train a generator of volumes against a particle stack (no poses), watch it learn — the
critic's Wasserstein estimate and the noise level live, G(α) slices, real vs simulated images and G(α = ½) as
layers — then open the result in the Latent explorer.

The engine job is :func:`cryoforge.multicryogan.train.train_mcgan_job`; this widget gathers parameters
and shows what it yields. Cancel stops at the next step and keeps the checkpoint; Train again resumes from it.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QPushButton,
    QVBoxLayout,
)

from .._notify import report_error, report_info
from .._reader import INDEX_UNIT
from ._dock import JobDock
from .controls import ispin, path_row
from .groups import TrainingGroup

PREFIX = "mcgan: "


class ParticlesGroup(QGroupBox):
    """The particle stack to train on: the .mrcs, its STAR file (CTF), whether the images have a CTF, the box."""

    def __init__(self, on_browse_stack, on_browse_star):
        super().__init__("Particles (no poses needed)")
        f = QFormLayout(self)
        row, self.stack = path_row("shipped AdK particles (64², 1.5 Å)", on_browse_stack)
        f.addRow("stack (.mrcs)", row)
        row, self.star = path_row("with the stack: its .star", on_browse_star)
        f.addRow("STAR (CTF)", row)
        self.no_ctf = QCheckBox("images have no CTF")
        self.no_ctf.setToolTip("train without CTF: only right for CTF-free (e.g. simulated) images")
        f.addRow(self.no_ctf)
        self.size = ispin(32, 8, 512, " px", tip="the model's box: images are downsampled to it (Fourier crop)")
        f.addRow("box", self.size)


class McganWidget(JobDock):
    """The Multi-CryoGAN dock: train on a particle stack, watch the generator's volumes, open the result in the
    explorer."""

    job_buttons = ("training.button",)

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.last_result = None
        root = QVBoxLayout(self)
        self.particles = ParticlesGroup(self._browse_stack, self._browse_star)
        root.addWidget(self.particles)
        self.prior = QComboBox()
        self.prior.addItems(["segment", "gaussian"])
        self.prior.setToolTip("segment: z = (1−α)z₀ + αz₁, α ~ U[0, 1] — a 1-D manifold (the paper); "
                              "gaussian: z ~ N(0, I)")
        self.max_shift = ispin(1, 0, 32, " px", tip="simulated shifts, uniform in a disc of this radius")
        self.training = TrainingGroup("Model and training", "multicryogan.pt", 500,
                                      "generator steps (each after 4 critic steps, 32 images each)",
                                      rows=(("latent prior", self.prior), ("max shift", self.max_shift)))
        self.training.button.clicked.connect(self.train)
        self.explore_btn = QPushButton("Open in Latent explorer")
        self.explore_btn.setEnabled(False)
        self.explore_btn.clicked.connect(self.explore)
        self.training.form.addRow(self.explore_btn)
        root.addWidget(self.training)
        root.addWidget(self.cancel_btn)
        root.addStretch(1)

    # ------------------------------------------------------------------ inputs
    def _browse_stack(self):
        path, _ = QFileDialog.getOpenFileName(self, "Particle stack", "", "MRC stacks (*.mrcs *.mrc)")
        if path:
            self.particles.stack.setText(path)
            star = Path(path).with_suffix(".star")
            if star.is_file() and not self.particles.star.text().strip():
                self.particles.star.setText(str(star))

    def _browse_star(self):
        path, _ = QFileDialog.getOpenFileName(self, "STAR file", "", "STAR (*.star)")
        if path:
            self.particles.star.setText(path)

    def inputs(self):
        """``(stack path, star path or None)``; the shipped AdK particles when the stack is left empty."""
        stack, star = self.particles.stack.text().strip(), self.particles.star.text().strip() or None
        if not stack:
            from cryoforge.samples import sample_path

            d = sample_path("adk_continuous")
            return str(d / "particles.mrcs"), str(d / "particles.star")
        return stack, star

    # ------------------------------------------------------------------ training
    def train(self):
        from cryoforge.multicryogan.config import McganConfig, McganTrainConfig
        from cryoforge.multicryogan.data import load_stack
        from cryoforge.multicryogan.train import train_mcgan_job

        if self._busy():
            return
        try:
            stack, star = self.inputs()
            data = load_stack(stack, star, use_ctf=not self.particles.no_ctf.isChecked(),
                              size=self.particles.size.value())
            cfg = McganConfig(box=data.D, prior=self.prior.currentText())
            steps = self.training.steps.value()
            schedule = self.training.schedule(checkpoint_every=50, validate_every=max(10, min(100, steps // 2)),
                                              metrics_every=5)
            job = train_mcgan_job(data, cfg, McganTrainConfig(max_shift=float(self.max_shift.value())), schedule,
                                  checkpoint=self.training.checkpoint_path())
        except (ValueError, OSError) as err:  # ManifoldError, MrcError, StarError are ValueErrors
            text = str(err).replace("(--star)", "(the STAR field)").replace("--no-ctf", "'images have no CTF'")
            report_error(f"Cannot train Multi-CryoGAN: {text}")
            return
        self.training.reset_curves()
        self.training.status.setText(f"{data.n} images, {data.D}² at {data.pixel_size:.2f} Å/px, "
                            f"{'CTF from the STAR file' if data.ctf is not None else 'no CTF'}")
        self._start(job, "Training Multi-CryoGAN", self._trained, self.on_event)

    def on_event(self, event):
        from cryoforge.jobs import Log, Metrics, Preview

        if isinstance(event, Metrics) and "wasserstein" in event.values:
            self.training.add_point(event.step, {"Wasserstein estimate": event.values["wasserstein"],
                                                 "noise σ (norm. units)": event.values["noise_sigma"]},
                                    {"Wasserstein estimate": "tab:blue", "noise σ (norm. units)": "tab:green"})
        elif isinstance(event, Preview):
            name = PREFIX + event.name
            if event.view == "volume":
                self._set_layer(name, event.array, event.meta.get("voxel_size", 1.0), blending="additive")
            elif name in self.viewer.layers:
                self.viewer.layers[name].data = event.array
                self.viewer.layers[name].reset_contrast_limits()
            else:
                ps = event.meta.get("voxel_size", 1.0)
                self.viewer.add_image(event.array, name=name, colormap="gray", scale=(1.0, ps, ps),
                                      units=(INDEX_UNIT, "angstrom", "angstrom"))
        elif isinstance(event, Log):
            self.training.status.setText(event.message)

    def _trained(self, result):
        self.last_result = result
        self.explore_btn.setEnabled(bool(result.checkpoint))
        report_info(f"Multi-CryoGAN trained to step {result.step} ({result.wall_s:.0f} s) → "
                    f"{result.checkpoint}")

    def explore(self):
        """Dock the Latent explorer with the trained model loaded (α on the slider)."""
        from .explorer import LatentExplorer

        if not self.last_result or not self.last_result.checkpoint:
            return
        explorer = LatentExplorer(self.viewer)
        self.viewer.window.add_dock_widget(explorer, name="Latent explorer")
        explorer.models.model.setCurrentText(self.last_result.checkpoint)
        explorer.load(self.last_result.checkpoint)
        return explorer
