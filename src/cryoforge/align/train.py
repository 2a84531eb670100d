"""Gum-Net training on simulated pairs (unsupervised, optionally after a supervised warm start), checkpoint
loading and batched inference.

Training pairs are simulated on the fly (:func:`cryoforge.align.data.training_batch`) from any set of
maps — every step sees new rotations, shifts, defocus and noise; the SNR cycles through ``snrs``. The
loop is the shared :func:`cryoforge.jobs.trainer.train_job` (resumable checkpoints, live events).
Validation uses a fixed held-out set and reports rotation error (degrees and Frobenius) and
translation error (voxels) against the truth, which training itself never sees.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..configs import to_dict
from ..conventions import rotation_angle_deg, rotation_frobenius
from ..io.checkpoint import CheckpointError, config_section, load_checkpoint
from ..jobs import Preview
from ..jobs.distributed import World, parallel
from ..jobs.trainer import Schedule, train_job
from ..rng import seeded
from ..sim.tomo import centred_wedge
from .config import GumNetConfig, TrainConfig
from .data import curriculum, simulate_pairs, training_batch
from .gumnet import GumNet, gumnet_loss, standardize, supervised_loss
from .warp import params_to_pose

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from ..hints import PathLike, Tensorish
    from ..jobs import Event


KIND = "gumnet"
class GumNetTrainer:
    """A :class:`cryoforge.jobs.trainer.Trainable` for Gum-Net."""

    default_schedule = Schedule(checkpoint_every=100, validate_every=100, metrics_every=10)

    kind = KIND

    def __init__(self, net: GumNetConfig, train: TrainConfig, maps: Tensorish, structures: Sequence[str] | None = None,
                 device: str = "cpu") -> None:
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 4 or maps.shape[-1] != net.box or len(set(maps.shape[1:])) != 1:
            raise ValueError(f"training maps must be a (K, {net.box}, {net.box}, {net.box}) stack for a box-{net.box} "
                             f"Gum-Net; got shape {maps.shape}")
        self.net_cfg, self.train_cfg, self.maps, self.device = net, train, maps, torch.device(device)
        self.structures = list(structures or [f"map{i}" for i in range(len(maps))])
        self.params = train.tomo.validate()
        with seeded(train.seed):
            self.model = GumNet(net).to(self.device)
        self.modules = {"model": self.model}
        self.optimizers = {"model": torch.optim.Adam(self.model.parameters(), lr=train.lr)}
        self.architecture = net
        self.config = {"architecture": to_dict(net), "train": to_dict(train), "structures": self.structures}
        self.mask_b = centred_wedge(net.box, -90 + train.wedge_b, 90 - train.wedge_b).to(self.device)
        self._val: list[tuple[float, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self.angle = float(train.start_angle)  # the gated curriculum's rotation range (degrees; TrainConfig.gate)
        self.world = World()
        self.forward: torch.nn.Module = self.model
        self.bank = None
        if train.bank:
            from .bank import PairBank

            self.bank = PairBank.open(train.bank)
            if self.bank.info["box"] != net.box:
                raise ValueError(f"the pair bank {train.bank} holds {self.bank.info['box']}³ pairs; this Gum-Net takes "
                                 f"{net.box}³")

    def distribute(self, world: World) -> None:
        """Train as one of ``world``'s processes: the network in ``DistributedDataParallel``, each rank simulating
        ``batch / size`` pairs of every step from its own seed (rank 0's are those of a single process)."""
        if self.train_cfg.batch % world.size:
            raise ValueError(f"the batch ({self.train_cfg.batch} pairs) must split evenly over {world.size} "
                             "processes")
        self.world, self.forward = world, parallel(self.model, world)

    def extra_state(self) -> dict:
        """What a checkpoint keeps besides the weights: the gated curriculum's range."""
        return {"gated_angle": self.angle}

    def load_extra_state(self, state: dict) -> None:
        self.angle = float(state.get("gated_angle", self.angle))

    def training_range(self, step: int) -> tuple[float, float, list[float]]:
        """``(largest rotation °, largest shift voxels, SNRs)`` of the training pairs at ``step``: the step ramp, or
        the gated curriculum's range (shifts grow with it; only the highest SNR until the range is wide)."""
        c = self.train_cfg
        if c.gate <= 0:
            max_angle, max_shift = curriculum(step, c.curriculum_steps, max_shift=c.max_shift)
            return min(max_angle, c.max_angle), max_shift, list(c.snrs)
        top = min(180.0, c.max_angle)
        f = min(1.0, max(0.0, (self.angle - c.start_angle) / max(top - c.start_angle, 1e-9)))
        snrs = list(c.snrs) if self.angle >= min(c.wide_angle, top) else [max(c.snrs)]
        return min(self.angle, top), 1.0 + (c.max_shift - 1.0) * f, snrs

    def train_step(self, step: int) -> dict:
        c = self.train_cfg
        max_angle, max_shift, snrs = self.training_range(step)
        w = self.world
        seed = c.seed + 1_000_003 * w.rank
        if self.bank is not None:
            s_a, s_b, rel, shifts = self.bank.batch(c.batch // w.size, seed, step, max_angle, snrs)
        else:
            s_a, s_b, rel, shifts = training_batch(self.maps, c.batch // w.size, self.params, snrs, seed, step,
                                                   c.wedge_b, max_shift, max_angle)
        s_a, s_b = standardize(s_a.to(self.device)), standardize(s_b.to(self.device))
        self.model.train()
        if step <= c.supervised_steps:  # steps count from 1
            loss = supervised_loss(self.model, s_a, s_b, rel.to(self.device), shifts.to(self.device), self.forward)
        else:
            loss = gumnet_loss(self.model, s_a, s_b, self.mask_b, c.loss, forward=self.forward)
        opt = self.optimizers["model"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "max_angle_deg": max_angle,
                "supervised": float(step <= c.supervised_steps)}

    def validation_set(self) -> list[tuple[float, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        if self._val is None:
            c = self.train_cfg
            n = max(1, c.val_pairs // len(c.snrs))
            if c.max_angle < 180:  # a local model: held-out pairs within its range
                self._val = [(s, *training_batch(self.maps, n, self.params, [s], 10_000 + c.seed + i, 0, c.wedge_b,
                                                 c.max_shift, c.max_angle)) for i, s in enumerate(c.snrs)]
                return self._val
            sets = [simulate_pairs(self.maps, n, replace(c.tomo, snr=s), seed=10_000 + c.seed + i, wedge_b=c.wedge_b,
                                   max_shift=c.max_shift) for i, s in enumerate(c.snrs)]
            self._val = [(s, torch.from_numpy(d.s_a), torch.from_numpy(d.s_b), torch.from_numpy(d.rotations()),
                          torch.from_numpy(d.shifts())) for s, d in zip(c.snrs, sets, strict=True)]
        return self._val

    @torch.no_grad()
    def validate(self, step: int) -> tuple[dict[str, float], list[Preview]]:
        metrics: dict[str, float] = {"pairs_seen": float(step * self.train_cfg.batch)}  # the learning curve's x
        previews: list[Preview] = []
        from .adapt import recalibrated

        for snr, s_a, s_b, rot, sh in self.validation_set():
            a, b = standardize(s_a.to(self.device)), standardize(s_b.to(self.device))
            self.model.eval()
            # normalised with this SNR's statistics, as inference does (cryoforge.align.adapt)
            model = recalibrated(self.model, s_a, s_b, device=self.device, min_pairs=2)
            r_hat, t_hat, warped = model.align(a, b, self.mask_b)
            tag = f"snr{snr:g}"
            metrics[f"{tag}_rot_deg"] = float(rotation_angle_deg(r_hat.cpu(), rot).mean())
            metrics[f"{tag}_rot_frob"] = float(rotation_frobenius(r_hat.cpu(), rot).mean())
            metrics[f"{tag}_trans_vox"] = float(torch.linalg.norm(t_hat.cpu() - sh, dim=1).mean())
            metrics[f"{tag}_loss"] = float(gumnet_loss(model, a, b, self.mask_b, self.train_cfg.loss))
            if not previews:
                vs = {"voxel_size": self.params.voxel_size}
                previews = [Preview("s_a", a[0].cpu().numpy(), "volume", vs),
                            Preview("s_b", b[0].cpu().numpy(), "volume", vs),
                            Preview("aligned s_b", warped[0].cpu().numpy(), "volume", vs)]
        if self.train_cfg.gate > 0:
            metrics.update(self.gate(step))
        return metrics, previews

    @torch.no_grad()
    def gate(self, step: int) -> dict[str, float]:
        """The gated curriculum's validation: the mean rotation error on held-out pairs drawn within the current
        range at each SNR trained now (``gate_rot_deg``); the range widens by ``gate_factor`` when it is below
        ``gate`` × the range. Returns the metrics (the range before and after)."""
        c = self.train_cfg
        before = self.angle
        max_angle, max_shift, snrs = self.training_range(step)
        errors = []
        for i, snr in enumerate(snrs):
            s_a, s_b, rel, _ = training_batch(self.maps, c.val_pairs, self.params, [snr], c.seed + 7_919 + i, 0,
                                              c.wedge_b, max_shift, max_angle)  # the same pairs for a given range
            model = self.gate_model(s_a, s_b)
            r_hat, _ = gumnet_predict(model, s_a, s_b, batch=c.batch, device=str(self.device))
            errors.append(float(rotation_angle_deg(r_hat, rel).mean()))
        err = float(np.mean(errors))
        top = min(180.0, c.max_angle)
        if err < c.gate * self.angle and self.angle < top:
            self.angle = min(top, self.angle * c.gate_factor)
        return {"gate_rot_deg": err, "gate_range_deg": before, "gate_next_range_deg": self.angle}

    def gate_model(self, s_a: torch.Tensor, s_b: torch.Tensor) -> GumNet:
        """The model the gate measures: normalised with these pairs' statistics, as inference does."""
        from .adapt import recalibrated

        return recalibrated(self.model, s_a, s_b, device=self.device, min_pairs=2)


def train_gumnet_job(maps: Tensorish, net: GumNetConfig | None = None, train: TrainConfig | None = None,
                     schedule: Schedule | None = None, checkpoint: PathLike | None = None,
                     structures: Sequence[str] | None = None,
                     device: str = "cpu", world: World | None = None) -> Iterator[Event]:
    """Job: train Gum-Net on pairs simulated from ``maps`` ``(K, n, n, n)``; see :func:`train_job` (``world``: one
    of several processes; ``device`` then this rank's)."""
    trainer = GumNetTrainer(net or GumNetConfig(box=np.asarray(maps).shape[-1]), train or TrainConfig(), maps,
                            structures, device)
    return train_job(trainer, schedule, checkpoint, world)


def load_gumnet(path: PathLike, box: int | None = None, device: str = "cpu") -> GumNet:
    """A trained Gum-Net from a checkpoint (eval mode); ``box`` checks the data's size against the model's."""
    payload = load_checkpoint(path, kind=KIND, map_location=device)
    cfg = config_section(payload, GumNetConfig)
    if box is not None and box != cfg.box:
        raise CheckpointError(f"this Gum-Net checkpoint was trained for {cfg.box}³ subtomograms, but the data "
                              f"are {box}³; resample them to {cfg.box}³ or train a model for box {box}")
    model = GumNet(cfg)
    state = {k: v.float() for k, v in payload["state_dicts"]["model"].items()}
    model.load_state_dict(state)
    return model.to(device).eval()


@torch.no_grad()
def gumnet_predict(model: GumNet, s_a: Tensorish, s_b: Tensorish, batch: int = 32,
                   device: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched inference: ``(R (N,3,3), t (N,3))`` with ``s_b ≈ T(R, t) s_a`` (inputs standardised here)."""
    dev = next(model.parameters()).device if device is None else torch.device(device)
    s_a, s_b = torch.as_tensor(np.asarray(s_a), dtype=torch.float32), torch.as_tensor(np.asarray(s_b), dtype=torch.float32)
    if s_a.ndim == 3:
        s_a, s_b = s_a[None], s_b[None]
    model.check_input(s_a, s_b)
    model.eval()
    rots, shifts = [], []
    for i in range(0, len(s_a), batch):
        p = model(standardize(s_a[i:i + batch].to(dev)), standardize(s_b[i:i + batch].to(dev)))
        r, t = params_to_pose(p, model.cfg.box, model.cfg.rotation)
        rots.append(r.cpu())
        shifts.append(t.cpu())
    return torch.cat(rots), torch.cat(shifts)


def export_weights(src: PathLike, dst: PathLike, half: bool = True) -> Path:
    """A slim copy of a Gum-Net checkpoint (:func:`cryoforge.io.checkpoint.export_checkpoint`); loads with
    :func:`load_gumnet` but cannot resume training."""
    from ..io.checkpoint import export_checkpoint

    return export_checkpoint(src, dst, KIND, half)
