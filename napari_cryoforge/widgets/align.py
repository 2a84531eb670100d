"""Align & average dock: Gum-Net / classical / hybrid alignment of subtomogram pairs, visual QA,
reference-free averaging with a live FSC, and Gum-Net training with a live loss plot.

Engine jobs do the work (cryoforge.align.pipeline.align_pairs_job, cryoforge.align.average.average_dataset_job,
cryoforge.align.train.train_gumnet_job); this widget gathers parameters and shows what they yield. Pair
stacks (N, Z, Y, X) — such as the *subtomograms* sample — are aligned pair by pair (the pair index
follows the viewer's slider) or all at once; when a layer comes from a pair dataset its wedge masks
and ground truth are used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from .._notify import report_error, report_info
from ._dock import JobDock
from .controls import canvas, ispin, layer_combo, path_row, refresh_combo, voxel_size_of
from .groups import TrainingGroup

METHODS = ("classical", "hybrid", "gumnet")  # classical first: the shipped Gum-Net is not yet accurate (sample_data/README.md)


class PairGroup(QGroupBox):
    """The pair to align: the s_a and s_b layers, the pair index, the method and Gum-Net checkpoint, the buttons
    and five lines of result."""

    def __init__(self, on_browse_checkpoint):
        super().__init__("Pair")
        f = QFormLayout(self)
        self.layer_a, self.layer_b = layer_combo(), layer_combo()
        f.addRow("s_a (reference)", self.layer_a)
        f.addRow("s_b (to align)", self.layer_b)
        self.pair = ispin(0, 0, 0, tip="index of the pair in (N, Z, Y, X) stacks; follows the viewer's slider")
        f.addRow("pair index", self.pair)
        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.method.setToolTip("hybrid: Gum-Net then local classical refinement; classical: global SO(3) search "
                               "with FFT translations and wedge-constrained correlation")
        f.addRow("method", self.method)
        row, self.checkpoint = path_row("shipped Gum-Net (32³, 12 Å)", on_browse_checkpoint, "…")
        f.addRow("checkpoint", row)
        buttons = QHBoxLayout()
        self.align_btn = QPushButton("Align pair")
        self.all_btn = QPushButton("Align all")
        self.all_btn.setToolTip("align every pair of the stacks; errors against the truth when known")
        self.limit = ispin(50, 1, 100000, tip="how many pairs 'Align all' takes")
        for w in (self.align_btn, self.all_btn, QLabel("first"), self.limit):
            buttons.addWidget(w)
        f.addRow(buttons)
        self.result_label = QLabel("\n" * 4)  # five lines reserved: method, angles, shift, correlation, error
        self.result_label.setWordWrap(True)
        self.result_label.setMinimumHeight(5 * self.result_label.fontMetrics().lineSpacing() + 4)
        f.addRow(self.result_label)


class AverageGroup(QGroupBox):
    """Reference-free averaging of the dataset's s_b: iterations, the button and the live gold-standard FSC."""

    def __init__(self):
        super().__init__("Reference-free average (s_b of the dataset)")
        g = QFormLayout(self)
        self.iterations = ispin(4, 1, 50, tip="alignment / averaging iterations")
        g.addRow("iterations", self.iterations)
        self.local = QComboBox()
        self.local.addItems(["classical", "gumnet"])
        self.local.setToolTip("how the local iterations (after the global searches) align: classical local grids, or "
                              "the shipped local Gum-Net (one network pass per subtomogram; a step is kept only where "
                              "it raises the correlation with the average)")
        g.addRow("local iterations", self.local)
        self.button = QPushButton("Average")
        g.addRow(self.button)
        self.fsc_canvas, (self.fsc_ax,) = canvas(1.7)
        self.fsc_canvas.setVisible(False)
        g.addRow(self.fsc_canvas)

    def add_fsc(self, frequency, fsc, iteration) -> None:
        """One iteration's gold-standard FSC (frequency in 1/Å) over the earlier ones, with the 0.143 line."""
        ax = self.fsc_ax
        ax.plot(frequency, fsc, label=f"it {iteration}")
        ax.axhline(0.143, color="green", lw=0.6, ls="--")
        ax.set_xlabel("spatial frequency (1/Å)", fontsize=7)
        ax.set_ylabel("gold-standard FSC", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
        self.fsc_canvas.setVisible(True)
        self.fsc_canvas.draw_idle()


class AlignWidget(JobDock):
    """The Align & average dock: align pairs (Gum-Net, classical, hybrid), average, train Gum-Net, and QA the poses."""

    job_buttons = ("pairs.align_btn", "pairs.all_btn", "averaging.button", "training.button")

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.last_result = None
        root = QVBoxLayout(self)
        self.pairs = PairGroup(self._browse_checkpoint)
        self.pairs.align_btn.clicked.connect(self.align_pair)
        self.pairs.all_btn.clicked.connect(self.align_all)
        root.addWidget(self.pairs)
        self.err_canvas, self.err_axes = canvas(1.6, 2)
        self.err_canvas.setVisible(False)  # shown with the first histogram
        root.addWidget(self.err_canvas)
        self.averaging = AverageGroup()
        self.averaging.button.clicked.connect(self.average)
        root.addWidget(self.averaging)
        self.training = TrainingGroup("Train Gum-Net (unsupervised, simulated pairs)", "gumnet.pt", 200,
                                      "optimisation steps (16 pairs each)", ylabel="1 − correlation")
        self.training.button.clicked.connect(self.train)
        root.addWidget(self.training)
        root.addWidget(self.cancel_btn)
        root.addStretch(1)

        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.dims.events.current_step.connect(self._follow_slider)
        self._refresh_layers()

    # ------------------------------------------------------------------ inputs
    def image_layers(self):
        from napari.layers import Image

        return [ly for ly in self.viewer.layers if isinstance(ly, Image) and ly.ndim in (3, 4)
                and not ly.name.startswith("align:")]

    def _refresh_layers(self, *_):
        names = [ly.name for ly in self.image_layers()]
        refresh_combo(self.pairs.layer_a, names, "s_a")
        refresh_combo(self.pairs.layer_b, names, "s_b")
        a, b = self._layer(self.pairs.layer_a.currentText()), self._layer(self.pairs.layer_b.currentText())
        if a is not None and b is not None and b.data.shape != a.data.shape:  # prefer an s_b that fits s_a
            fits = [n for n in names if n.startswith("s_b") and self._layer(n).data.shape == a.data.shape]
            if fits:
                self.pairs.layer_b.setCurrentText(fits[0])
        self.pairs.pair.setMaximum(max(0, a.data.shape[0] - 1) if a is not None and a.ndim == 4 else 0)

    def _follow_slider(self, *_):
        a = self._layer(self.pairs.layer_a.currentText())
        if a is not None and a.ndim == 4:
            self.pairs.pair.setValue(int(self.viewer.dims.current_step[0]))

    def _browse_checkpoint(self):
        path, _ = QFileDialog.getOpenFileName(self, "Gum-Net checkpoint", "", "Checkpoints (*.pt)")
        if path:
            self.pairs.checkpoint.setText(path)

    def _layer(self, name):
        return self._named_layer(name)

    def dataset(self):
        """The pair dataset behind the chosen s_b layer, if it came from one (sample or simulate)."""
        b = self._layer(self.pairs.layer_b.currentText())
        d = None if b is None else b.metadata.get("cryoforge", {}).get("dataset")
        return d if d and Path(d, "dataset.json").is_file() else None

    def _inputs(self, single: bool):
        a, b = self._layer(self.pairs.layer_a.currentText()), self._layer(self.pairs.layer_b.currentText())
        if a is None or b is None:
            raise ValueError("choose an s_a and an s_b image layer")
        da, db = np.asarray(a.data, np.float32), np.asarray(b.data, np.float32)
        if da.shape != db.shape:
            raise ValueError(f"s_a and s_b must have the same shape; got {da.shape} and {db.shape}")
        if da.ndim == 4:
            if single:
                i = self.pairs.pair.value()
                da, db = da[i:i + 1], db[i:i + 1]
            else:
                da, db = da[: self.pairs.limit.value()], db[: self.pairs.limit.value()]
        else:
            da, db = da[None], db[None]
        if len(set(da.shape[1:])) != 1:
            raise ValueError(f"subtomograms must be cubic (n, n, n); got {da.shape[1:]} (Z, Y, X)")
        return da, db, voxel_size_of(a)

    def _norm_pairs(self, count: int = 32):
        """``count`` pairs evenly through the chosen stacks: aligning one pair, the network normalises with their
        statistics (cryoforge.align.adapt; 32 pairs cost ≈ 1 s on 2 cores) instead of those stored in training."""
        a, b = (self._layer(self.pairs.layer_a.currentText()), self._layer(self.pairs.layer_b.currentText()))
        pick = np.unique(np.linspace(0, len(a.data) - 1, count).round().astype(int))
        return np.asarray(a.data[pick], np.float32), np.asarray(b.data[pick], np.float32)

    def _pairs(self, folder):
        """The pair dataset of ``folder``, read once per folder and modification time (not once per click)."""
        from pathlib import Path

        from cryoforge.sim.subtomo import read_pairs

        marker = Path(folder) / "dataset.json"
        key = (str(folder), marker.stat().st_mtime if marker.is_file() else None)
        if getattr(self, "_pairs_cache", (None, None))[0] != key:
            self._pairs_cache = (key, read_pairs(folder))
        return self._pairs_cache[1]

    def _truth_and_masks(self, offset: int, count: int, n: int):
        d = self.dataset()
        if d is None:
            return None, None, None, None
        from cryoforge.align.pipeline import dataset_symmetry
        from cryoforge.sim.subtomo import dataset_masks

        ds = self._pairs(d)
        if ds.s_a.shape[-1] != n:
            return None, None, None, None
        ma, mb = dataset_masks(ds)
        sl = slice(offset, offset + count)
        return (ds.rotations()[sl], ds.shifts()[sl]), ma, mb, dataset_symmetry(ds, sl)

    # ------------------------------------------------------------------ jobs
    def align_pair(self):
        self._align(single=True)

    def align_all(self):
        self._align(single=False)

    def _align(self, single: bool):
        from cryoforge.align.pipeline import align_pairs_job

        if self._busy():
            return
        try:
            s_a, s_b, vs = self._inputs(single)
            stack = self._layer(self.pairs.layer_a.currentText()).ndim == 4
            offset = self.pairs.pair.value() if single and stack else 0
            truth, ma, mb, symmetry = self._truth_and_masks(offset, len(s_a), s_a.shape[-1])
            method = self.pairs.method.currentText()
            norm = self._norm_pairs() if single and stack and method != "classical" else None
            ckpt = self.pairs.checkpoint.text().strip() or None
            model = None
            if method != "classical":
                from cryoforge.align.pipeline import _load_model

                model = _load_model(ckpt, s_a.shape[-1], "cpu")  # a wrong checkpoint fails here, clearly; loaded once
        except (ValueError, FileNotFoundError) as err:
            report_error(f"Cannot align: {err}")
            return
        job = align_pairs_job(s_a, s_b, ma, mb, method, ckpt, model=model, truth=truth, voxel_size=vs,
                              symmetry=symmetry, norm_pairs=norm)
        self._vs = vs
        self._start(job, f"{method} alignment of {len(s_a)} pair(s)",
                    lambda r: self._show_alignment(r, s_a, s_b, vs, single))

    def _show_alignment(self, result, s_a, s_b, voxel_size, single):
        import torch

        from cryoforge.conventions import matrix_to_euler_zyz

        self.last_result = result
        rot, sh = result.rotations, result.shifts
        self._set_layer("align: s_a", s_a[0], voxel_size, "gray")
        yield  # one layer per event-loop turn (napari_cryoforge._jobs.in_turns)
        self._set_layer("align: s_b", s_b[0], voxel_size, "gray", visible=False)
        yield
        self._set_layer("align: aligned s_b", result.aligned_first, voxel_size, "magenta", "additive")
        yield
        ang = matrix_to_euler_zyz(torch.from_numpy(rot[:1]).double()).numpy()[0]
        pps = result.pairs_per_s
        speed = f"{pps:.1f} pairs/s" if pps >= 1 else f"{1 / max(pps, 1e-9):.1f} s per pair"
        lines = [f"{result.method}: {result.n_pairs} pair(s), {speed}",
                 f"estimated rot/tilt/psi (ZYZ) {ang[0]:.1f}°, {ang[1]:.1f}°, {ang[2]:.1f}°",
                 f"estimated shift ({sh[0, 0]:.2f}, {sh[0, 1]:.2f}, {sh[0, 2]:.2f}) voxels (x, y, z)",
                 f"wedge-constrained correlation {float(np.mean(result.corr_before)):.3f} → "
                 f"{float(np.mean(result.corr_after)):.3f}"]
        e = result.errors
        if e is not None:
            sym = ""
            if "rot_deg_sym" in e and result.summary.get("pairs_turned_by_symmetry"):
                sym = f"; modulo the structure's symmetry {np.mean(e['rot_deg_sym']):.2f}°"
            lines.append(f"error vs truth: {np.mean(e['rot_deg']):.2f}° (‖ΔR‖_F {np.mean(e['rot_frob']):.3f}), "
                         f"{np.mean(e['trans_vox']):.2f} voxels" + ("" if single else " (means)") + sym)
        self.pairs.result_label.setText("\n".join(lines + [""] * (5 - len(lines))))
        if not single and e is not None:
            rot_key = "rot_deg_sym" if "rot_deg_sym" in e else "rot_deg"
            rot_unit = "rotation error modulo symmetry (°)" if rot_key == "rot_deg_sym" else "rotation error (°)"
            for ax, key, unit in zip(self.err_axes, (rot_key, "trans_vox"), (rot_unit, "shift error (voxels)"),
                                     strict=True):
                ax.clear()
                ax.hist(e[key], bins=30, color="tab:blue")
                ax.set_xlabel(unit, fontsize=7)
                ax.tick_params(labelsize=6)
            self.err_canvas.setVisible(True)
            self.err_canvas.draw_idle()

    def average(self):
        from cryoforge.align.average import average_dataset_job
        from cryoforge.align.config import AverageConfig

        if self._busy():
            return
        d = self.dataset()
        if d is None:
            report_error("Cannot average: the s_b layer does not come from a pair dataset "
                         "(open the 'subtomograms' sample or simulate pairs with an output folder)")
            return
        self.averaging.fsc_ax.clear()
        local = self.averaging.local.currentText()
        model = None
        if local == "gumnet":
            from cryoforge.align.train import load_gumnet
            from cryoforge.samples import GUMNET_LOCAL_CHECKPOINT, sample_path

            model = load_gumnet(sample_path(GUMNET_LOCAL_CHECKPOINT))
        job = average_dataset_job(d, AverageConfig(iterations=self.averaging.iterations.value(), local_method=local),
                                  model=model)
        self._start(job, "Reference-free averaging", self._show_average, self._on_average_event)

    def _on_average_event(self, event):
        from cryoforge.jobs import Preview

        if not isinstance(event, Preview):
            return
        vs = event.meta.get("voxel_size", 1.0)
        if event.view == "volume":
            self._set_layer("align: average", event.array, vs)
        elif event.view == "curve":
            f, c = event.array
            self.averaging.add_fsc(f, c, event.meta.get("iteration"))

    def _show_average(self, result):
        self.last_result = result
        self._set_layer("align: average", result.average, result.voxel_size)
        report_info(f"Average of {result.report['n']} subtomograms: gold-standard FSC 0.143 at "
                    f"{result.resolution:.1f} Å")

    def train(self):
        from cryoforge.align.config import GumNetConfig, TrainConfig
        from cryoforge.align.data import load_maps
        from cryoforge.align.train import train_gumnet_job

        if self._busy():
            return
        try:
            maps, names = load_maps(self.dataset())
            schedule = self.training.schedule(checkpoint_every=50, validate_every=50, metrics_every=5)
            job = train_gumnet_job(maps, GumNetConfig(box=maps.shape[-1]), TrainConfig(val_pairs=12), schedule,
                                   checkpoint=self.training.checkpoint_path(), structures=names)
        except (ValueError, FileNotFoundError) as err:
            report_error(f"Cannot train: {err}")
            return
        self.training.reset_curves()
        self._start(job, "Training Gum-Net", self._trained, self._on_train_event)

    def _on_train_event(self, event):
        from cryoforge.jobs import Metrics, Preview

        if isinstance(event, Metrics) and "loss" in event.values:
            self.training.add_point(event.step, {"loss": event.values["loss"]}, {"loss": "tab:red"})
        elif isinstance(event, Preview) and event.view == "volume":
            self._set_layer(f"align: train {event.name}", event.array, event.meta.get("voxel_size", 1.0),
                            visible=event.name == "aligned s_b")

    def _trained(self, result):
        self.last_result = result
        if result.checkpoint:
            self.pairs.checkpoint.setText(result.checkpoint)
        report_info(f"Gum-Net trained to step {result.step} → {result.checkpoint}")
