"""Training cryoDRGN models with known poses on the shared loop (:func:`cryoforge.jobs.trainer.train_job`).

Homogeneous (``zdim = 0``): a coordinate decoder fitted to the images' central slices. Heterogeneous: a VAE whose
encoder maps each masked Hartley image to ``q(z|x) = N(μ, σ²)``; the loss is the per-pixel MSE of the CTF-weighted
slice against the (shift-corrected) image plus ``β·KL`` (β = 1/zdim by default, cryoDRGN's choice). Batches are
drawn from ``seed + step``, so a resumed run sees the images an uninterrupted one would. The checkpoint (kind
``cryodrgn_vae``) opens in the latent explorer as a :class:`~cryoforge.latent.Manifold`.

With a :class:`~.poses.PoseSearchConfig` the poses are found during training instead (cryoDRGN's ``abinit_homo`` /
``abinit_het``): random poses while pretraining, then branch and bound with the current model (at each image's
latent for a VAE) on the schedule of :class:`~.poses.PoseSchedule`; the pose table is saved with the checkpoint.
Poses the images carry are then only a reference: validation reports the found poses' errors against them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..configs import to_dict
from ..jobs import Preview
from ..jobs.distributed import World, all_gather, block, parallel_loss
from ..jobs.trainer import Schedule, train_job
from ..latent import Manifold
from ..rng import seeded
from .config import DrgnConfig, DrgnTrainConfig, PoseSearchConfig
from .data import ParticleImages, translate_ht
from .model import CoordinateDecoder, Encoder, decode_lowpass, decode_volumes
from .poses import PoseSchedule, PoseTable, pose_errors
from .posesearch import HartleySlices, pose_search

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from ..hints import Device, PathLike, Tensorish
    from ..jobs import Event


KIND = "cryodrgn_vae"
PREVIEW_BOX = 128  # validation previews of larger boxes are low-passed to this size (decode cost ∝ box³)


def _decoder(cfg: DrgnConfig) -> CoordinateDecoder:
    assert cfg.D is not None and cfg.pe_dim is not None, "a resolved architecture (DrgnConfig.resolved)"
    return CoordinateDecoder(cfg.D, cfg.zdim, cfg.players, cfg.pdim, cfg.domain, cfg.pe_type, cfg.pe_dim,
                             cfg.activation, cfg.feat_sigma)


def _encoder_mask(coords: torch.Tensor, radius_px: int, D: int) -> torch.Tensor:
    m = coords[:, :2].norm(dim=1) <= radius_px / (D // 2) * 0.5
    m[len(m) // 2] = False
    return m


class DrgnTrainer:
    """A :class:`cryoforge.jobs.trainer.Trainable`; ``reference`` (a volume) adds its FSC to validation."""

    kind = KIND

    def __init__(self, data: ParticleImages, cfg: DrgnConfig | None = None, train: DrgnTrainConfig | None = None,
                 device: str = "cpu", reference: Tensorish | None = None,
                 pose_search: PoseSearchConfig | None = None) -> None:
        train = train or DrgnTrainConfig()
        if data.rot is None and pose_search is None:
            raise ValueError("training needs a rotation per image (a pose .pkl or STAR file), or pose search "
                             "(--pose-search) to find them")
        self.data, self.train_cfg, self.device = data, train, torch.device(device)
        D = data.D
        self.architecture = arch = (cfg or DrgnConfig()).resolved(D)
        assert arch.enc_mask is not None
        with seeded(train.seed):  # the same seed gives the same initial weights
            self.dec = _decoder(arch).to(self.device)
            self.modules: dict[str, nn.Module] = {"decoder": self.dec}
            self.enc_mask = _encoder_mask(data.coords, arch.enc_mask, D)
            if arch.zdim:
                self.enc = Encoder(int(self.enc_mask.sum()), arch.qlayers, arch.qdim, arch.zdim, arch.encode_mode,
                                   arch.activation).to(self.device)
                self.modules["encoder"] = self.enc
        params = [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]
        self.optimizers = {"model": torch.optim.Adam(params, lr=train.lr)}
        self.beta = train.beta if train.beta is not None else (1.0 / arch.zdim if arch.zdim else 0.0)
        self.config = {"architecture": to_dict(arch), "train": to_dict(train), "norm": list(data.norm),
                       "voxel_size": data.pixel_size, "n_images": data.n}
        self.schedule: PoseSchedule | None = None
        if pose_search is not None:
            self.schedule = PoseSchedule(pose_search, data.n, train.batch, D)
            self.poses = PoseTable(data.n).to(self.device)
            self.modules["poses"] = self.poses
            self.config["pose_search"] = to_dict(pose_search)
        self.reference = None if reference is None else torch.as_tensor(np.asarray(reference, np.float32))
        self.mask = data.mask
        self.world = World()
        self.step_loss = self.loss

    def distribute(self, world: World) -> None:
        """Train as one of ``world``'s processes: each rank takes its block of every step's batch (the batch of a
        single process, so an epoch reads every image once in all) and the gradients are averaged (DDP)."""
        if self.train_cfg.batch % world.size:
            raise ValueError(f"the batch ({self.train_cfg.batch} images) must split evenly over {world.size} "
                             "processes")
        nets = {k: m for k, m in self.modules.items() if k != "poses"}  # the pose table is shared by all_gather
        self.world, self.step_loss = world, parallel_loss(nets, self.loss, world)

    def _indices(self, step: int) -> np.ndarray:
        g = torch.Generator().manual_seed(self.train_cfg.seed * 1_000_003 + step)
        return torch.randint(0, self.data.n, (self.train_cfg.batch,), generator=g).numpy()

    def _targets(self, idx, trans=None):
        y = self.data.hartley(idx).to(self.device)
        if trans is not None:
            y = translate_ht(y, trans.to(self.device), self.data.coords.to(self.device))
        return y

    def _poses(self, idx, step: int, search: bool = True):
        """Rotations and shifts for images ``idx`` at ``step``: the known poses, or (pose search) random poses
        while pretraining, else the table's, searching those that are due first (when ``search``)."""
        if self.schedule is None:
            assert self.data.rot is not None  # checked at construction: known poses without a search
            return self.data.rot[idx], None if self.data.trans is None else self.data.trans[idx]
        if search and self.schedule.pretraining(step):  # the global batch's draws, this rank's block of them
            return block(self.schedule.random_poses(len(idx) * self.world.size, self.train_cfg.seed, step),
                         self.world), None
        if search:
            self._search_due(idx, step)
        return self.poses.rot[idx].cpu(), self.poses.trans[idx].cpu()

    def _search_due(self, idx, step: int) -> None:
        """Search the poses of the images of ``idx`` (this rank's block) that are due, then give every rank the
        poses every rank found, so that all hold the same table (an image one rank searched may be in another's
        next block). Every rank calls this at every step past pretraining, whether it has images due or not."""
        assert self.schedule is not None
        due = self.schedule.due(self.poses.searched[idx].cpu(), step).numpy()
        todo = np.unique(np.asarray(idx)[due])
        found = self._search(todo, step) if len(todo) else None
        if self.world.size == 1:
            return
        for part in all_gather(found, self.world):
            if part is not None:
                i, rot, t = (x.to(self.device) for x in part)
                self.poses.rot[i], self.poses.trans[i], self.poses.searched[i] = rot, t, step

    @torch.no_grad()
    def _search(self, idx, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Search images ``idx`` now, put their poses in the table and return ``(idx, rotations, shifts)``."""
        assert self.schedule is not None
        cfg = self.schedule.cfg
        for mod in self.modules.values():
            mod.eval()
        k_start, k_end = self.schedule.band(step)
        y, coords = self._targets(idx), self.data.coords.to(self.device)
        mu = None
        if self.architecture.zdim:  # encode the image as training does: moved by its current shift
            mu = self.latent(translate_ht(y, self.poses.trans[idx], coords), False)[2]
        model = HartleySlices.from_decoder(self.dec, mu, self.data.D, k_end)
        ctf = self.data.ctf_values(idx)
        rot, t, _ = pose_search(model, y, coords, self.data.D,
                                cfg.n_global, cfg.keep, cfg.rounds, k_start, k_end, cfg.shift_grid(),
                                None if ctf is None else ctf.to(self.device))
        self.poses.rot[idx], self.poses.trans[idx], self.poses.searched[idx] = rot, t, step
        for mod in self.modules.values():
            mod.train()
        return torch.as_tensor(idx), rot.cpu(), t.cpu()

    def latent(self, y: torch.Tensor, sample: bool, step: int = 0) -> tuple[torch.Tensor | None, torch.Tensor,
               torch.Tensor | None]:
        if not self.architecture.zdim:
            return None, torch.zeros((), device=self.device), None
        mu, logvar = self.enc(y[:, self.enc_mask.to(y.device)])
        z = mu
        if sample:
            g = torch.Generator().manual_seed(self.train_cfg.seed * 7 + step)
            z = mu + torch.randn(mu.shape, generator=g).to(mu) * torch.exp(0.5 * logvar)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
        return z, kl, mu

    def loss(self, idx: Tensorish, sample: bool = True, step: int = 0, search: bool = True) -> tuple[torch.Tensor,
             torch.Tensor, torch.Tensor, torch.Tensor | None]:
        rot, trans = self._poses(idx, step, search)
        y = self._targets(idx, trans)
        z, kl, mu = self.latent(y, sample, step)
        m = self.mask.to(self.device)
        if self.schedule is not None and self.schedule.cfg.band_loss and search:
            m = m & (self.data.coords[:, :2].norm(dim=1) * self.data.D <= self.schedule.band(step)[1]).to(self.device)
        k = self.data.coords.to(self.device)[m] @ rot.to(self.device)  # (B, P, 3): slice at k @ R
        yhat = self.dec.hartley(k, z)
        ctf = self.data.ctf_values(idx)
        if ctf is not None:
            yhat = yhat * ctf.to(self.device)[:, m]
        gen = (yhat - y[:, m]).pow(2).mean()
        return gen + self.beta * kl / int(m.sum()), gen, kl, mu

    def train_step(self, step: int) -> dict:
        for mod in self.modules.values():
            mod.train()
        loss, gen, kl, _ = self.step_loss(block(self._indices(step), self.world), True, step)
        opt = self.optimizers["model"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "mse": float(gen.detach()), "kl": float(kl.detach())}

    def pose_metrics(self) -> dict:
        """The fraction of images searched so far and, when the data carry reference poses, the found poses'
        errors against them (up to the global rotation and hand)."""
        done = (self.poses.searched >= 0).cpu().numpy()
        out = {"searched_fraction": float(done.mean())}
        if self.data.rot is not None and done.sum() >= 3:
            ref_t = None if self.data.trans is None else self.data.trans[done]
            err = pose_errors(self.poses.rot[done].cpu(), self.data.rot[done],
                              None if ref_t is None else self.poses.trans[done].cpu(), ref_t)
            out.update({k: v for k, v in err.items() if k in ("rot_median_deg", "trans_median_px")})
            self.frame = torch.tensor(err["frame"])
        return out

    @torch.no_grad()
    def latents(self, chunk: int = 200) -> np.ndarray:
        """``μ`` of every image (its current shift applied), ``(N, zdim)``."""
        out = []
        for s in range(0, self.data.n, chunk):
            idx = np.arange(s, min(s + chunk, self.data.n))
            mu = self.latent(self._targets(idx, self._poses(idx, 0, search=False)[1]), False)[2]
            assert mu is not None, "a heterogeneous model (zdim > 0) has latents"
            out.append(mu.cpu().numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def volume(self, z: Tensorish | None = None, reference_frame: bool = False,
               size: int | None = None) -> torch.Tensor:
        """The volume at ``z``; with ``reference_frame`` (pose search) in the frame and hand of the data's reference
        poses, as found by the last :meth:`pose_metrics`; with ``size`` < D, a low-pass view of ``size``³."""
        for mod in self.modules.values():
            mod.eval()
        zt = None if z is None else torch.as_tensor(np.asarray(z, np.float32)).reshape(1, -1).to(self.device)
        if size is not None and not reference_frame:
            return decode_lowpass(self.dec, zt, self.data.norm, size)[0].cpu()
        frame = getattr(self, "frame", None) if reference_frame else None
        return decode_volumes(self.dec, zt, self.data.norm, frame=frame)[0].cpu()

    @torch.no_grad()
    def validate(self, step: int) -> tuple[dict[str, float], list[Preview]]:
        idx = np.linspace(0, self.data.n - 1, min(self.data.n, 64)).astype(int)
        _, gen, _, mu = self.loss(idx, sample=False, search=False)
        metrics = {"mse_fixed_images": float(gen)}
        if self.schedule is not None:
            metrics.update(self.pose_metrics())
        z = None if mu is None else mu.mean(0).cpu().numpy()
        if self.reference is not None:
            from ..metrics import fsc

            vol = self.volume(z)
            curve = fsc(self.volume(z, reference_frame=True) if self.schedule is not None else vol,
                        self.reference, 1.0)
            metrics["fsc_mean"] = float(np.mean(curve.fsc[1:]))
            metrics["fsc05_px"] = float(curve.resolution(0.5))
        else:  # a preview: boxes over 128 are shown low-passed to 128³ (a 256³ decode takes minutes on a CPU)
            vol = self.volume(z, size=PREVIEW_BOX)
        n = vol.shape[0]
        px = self.data.pixel_size * self.data.D / n
        previews = [Preview("cryoDRGN volume (central slices)",
                            torch.stack([vol[n // 2], vol[:, n // 2], vol[:, :, n // 2]]).numpy(), "stack"),
                    Preview("cryoDRGN volume", vol.numpy(), "volume", {"voxel_size": px})]
        return metrics, previews


def train_drgn_job(data: ParticleImages, cfg: DrgnConfig | None = None, train: DrgnTrainConfig | None = None,
                   schedule: Schedule | None = None, checkpoint: PathLike | None = None, device: str = "cpu",
                   reference: Tensorish | None = None,
                   pose_search: PoseSearchConfig | None = None, world: World | None = None) -> Iterator[Event]:
    """Job: train a cryoDRGN model with known poses, or with ``pose_search``; see
    :func:`cryoforge.jobs.trainer.train_job` (``world``: one of several processes)."""
    trainer = DrgnTrainer(data, cfg, train, device, reference, pose_search)
    return train_job(trainer, schedule, checkpoint, world)


class TrainedDrgnManifold(Manifold):
    """A ``cryodrgn_vae`` checkpoint of this project (heterogeneous) as a manifold."""

    kind = "cryodrgn"

    def __init__(self, path: PathLike, device: Device = "cpu", **_: Any) -> None:
        from ..io.checkpoint import config_section, load_checkpoint
        from ..latent import ManifoldError

        super().__init__(device)
        payload = load_checkpoint(path, kind=KIND, map_location=device)
        cfg = config_section(payload, DrgnConfig)
        if not cfg.zdim or cfg.D is None:
            raise ManifoldError(f"{path}: a homogeneous cryoDRGN model has no latent space to explore")
        self.dec = _decoder(cfg)
        self.dec.load_state_dict({k: v.float() for k, v in payload["state_dicts"]["decoder"].items()})
        self.dec.to(self.device).eval()
        self.latent_dim, self.box, self.norm = cfg.zdim, cfg.D - 1, tuple(payload["config"]["norm"])
        self.voxel_size = float(payload["config"].get("voxel_size", 1.0))
        self.name = f"cryoDRGN (cryoforge) {getattr(path, 'name', path)}"

    def _decode(self, z):
        return decode_volumes(self.dec, z, self.norm)
