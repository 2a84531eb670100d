"""Training cryoDRGN models with known poses on the shared loop (:func:`cryoforge.jobs.trainer.train_job`).

Homogeneous (``zdim = 0``): a coordinate decoder fitted to the images' central slices. Heterogeneous: a VAE whose
encoder maps each masked Hartley image to ``q(z|x) = N(μ, σ²)``; the loss is the per-pixel MSE of the CTF-weighted
slice against the (shift-corrected) image plus ``β·KL`` (β = 1/zdim by default, cryoDRGN's choice). Batches are
drawn from ``seed + step``, so a resumed run sees the images an uninterrupted one would. The checkpoint (kind
``cryodrgn_vae``) opens in the latent explorer as a :class:`~cryoforge.manifold.base.Manifold`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ...jobs import Preview
from ...jobs.trainer import train_job
from ..base import Manifold
from .data import ParticleImages, translate_ht
from .model import CoordinateDecoder, Encoder, decode_volumes

KIND = "cryodrgn_vae"
ARCH_KEYS = ("D", "zdim", "players", "pdim", "domain", "pe_type", "pe_dim", "feat_sigma", "activation", "qlayers",
             "qdim", "encode_mode", "enc_mask")


@dataclass
class DrgnTrainConfig:
    zdim: int = 0
    players: int = 3
    pdim: int = 256
    domain: str = "hartley"
    pe_type: str = "gaussian"
    pe_dim: int | None = None  # default D//2, as cryoDRGN
    feat_sigma: float = 0.5
    activation: str = "relu"
    qlayers: int = 3
    qdim: int = 256
    encode_mode: str = "resid"
    enc_mask: int | None = None  # encoder's circle radius in pixels (default D//2)
    batch: int = 8
    lr: float = 1e-4
    beta: float | None = None
    seed: int = 0


def _decoder(cfg: dict) -> CoordinateDecoder:
    return CoordinateDecoder(cfg["D"], cfg["zdim"], cfg["players"], cfg["pdim"], cfg["domain"], cfg["pe_type"],
                             cfg["pe_dim"], cfg["activation"], cfg["feat_sigma"])


def _encoder_mask(coords: torch.Tensor, radius_px: int, D: int) -> torch.Tensor:
    m = coords[:, :2].norm(dim=1) <= radius_px / (D // 2) * 0.5
    m[len(m) // 2] = False
    return m


class DrgnTrainer:
    """A :class:`cryoforge.jobs.trainer.Trainable`; ``reference`` (a volume) adds its FSC to validation."""

    kind = KIND

    def __init__(self, data: ParticleImages, cfg: DrgnTrainConfig | None = None, device: str = "cpu", reference=None):
        cfg = cfg or DrgnTrainConfig()
        if data.rot is None:
            raise ValueError("training with known poses needs a rotation per image (a pose .pkl or STAR file)")
        self.data, self.train_cfg, self.device = data, cfg, torch.device(device)
        D = data.D
        arch = {**asdict(cfg), "D": D + 1, "pe_dim": cfg.pe_dim or D // 2, "enc_mask": cfg.enc_mask or D // 2}
        self.dec = _decoder(arch).to(self.device)
        self.modules = {"decoder": self.dec}
        self.enc_mask = _encoder_mask(data.coords, arch["enc_mask"], D)
        if cfg.zdim:
            self.enc = Encoder(int(self.enc_mask.sum()), cfg.qlayers, cfg.qdim, cfg.zdim, cfg.encode_mode,
                               cfg.activation).to(self.device)
            self.modules["encoder"] = self.enc
        params = [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]
        self.optimizers = {"model": torch.optim.Adam(params, lr=cfg.lr)}
        self.beta = cfg.beta if cfg.beta is not None else (1.0 / cfg.zdim if cfg.zdim else 0.0)
        self.config = {**arch, "norm": list(data.norm), "pixel_size": data.pixel_size, "n_images": data.n,
                       "architecture_keys": list(ARCH_KEYS)}
        self.reference = None if reference is None else torch.as_tensor(np.asarray(reference, np.float32))
        self.mask = data.mask

    def _indices(self, step: int) -> np.ndarray:
        g = torch.Generator().manual_seed(self.train_cfg.seed * 1_000_003 + step)
        return torch.randint(0, self.data.n, (self.train_cfg.batch,), generator=g).numpy()

    def _targets(self, idx):
        y = self.data.hartley(idx)
        if self.data.trans is not None:
            y = translate_ht(y, self.data.trans[idx], self.data.coords)
        return y.to(self.device)

    def latent(self, y: torch.Tensor, sample: bool, step: int = 0):
        if not self.train_cfg.zdim:
            return None, torch.zeros((), device=self.device), None
        mu, logvar = self.enc(y[:, self.enc_mask.to(y.device)])
        z = mu
        if sample:
            g = torch.Generator().manual_seed(self.train_cfg.seed * 7 + step)
            z = mu + torch.randn(mu.shape, generator=g).to(mu) * torch.exp(0.5 * logvar)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
        return z, kl, mu

    def loss(self, idx, sample: bool = True, step: int = 0):
        y = self._targets(idx)
        z, kl, mu = self.latent(y, sample, step)
        m = self.mask.to(self.device)
        k = self.data.coords.to(self.device)[m] @ self.data.rot[idx].to(self.device)  # (B, P, 3): slice at k @ R
        yhat = self.dec.hartley(k, z)
        ctf = self.data.ctf_values(idx)
        if ctf is not None:
            yhat = yhat * ctf.to(self.device)[:, m]
        gen = (yhat - y[:, m]).pow(2).mean()
        return gen + self.beta * kl / int(m.sum()), gen, kl, mu

    def train_step(self, step: int) -> dict:
        for mod in self.modules.values():
            mod.train()
        loss, gen, kl, _ = self.loss(self._indices(step), True, step)
        opt = self.optimizers["model"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "mse": float(gen.detach()), "kl": float(kl.detach())}

    @torch.no_grad()
    def volume(self, z=None) -> torch.Tensor:
        for mod in self.modules.values():
            mod.eval()
        zt = None if z is None else torch.as_tensor(np.asarray(z, np.float32)).reshape(1, -1).to(self.device)
        return decode_volumes(self.dec, zt, self.data.norm)[0].cpu()

    @torch.no_grad()
    def validate(self, step: int):
        idx = np.linspace(0, self.data.n - 1, min(self.data.n, 64)).astype(int)
        _, gen, _, mu = self.loss(idx, sample=False)
        metrics = {"mse_fixed_images": float(gen)}
        z = None if mu is None else mu.mean(0).cpu().numpy()
        vol = self.volume(z)
        if self.reference is not None:
            from ...metrics import fsc

            curve = fsc(vol, self.reference, 1.0)
            metrics["fsc_mean"] = float(np.mean(curve.fsc[1:]))
            metrics["fsc05_px"] = float(curve.resolution(0.5))
        n = vol.shape[0]
        previews = [Preview("cryoDRGN volume (central slices)", torch.stack([vol[n // 2], vol[:, n // 2], vol[:, :, n // 2]]).numpy(), "stack"),
                    Preview("cryoDRGN volume", vol.numpy(), "volume", {"voxel_size": self.data.pixel_size})]
        return metrics, previews


def train_drgn_job(data: ParticleImages, cfg: DrgnTrainConfig | None = None, steps: int = 1000, checkpoint=None,
                   resume: bool = True, device: str = "cpu", reference=None, checkpoint_every: int = 200,
                   validate_every: int = 100, metrics_every: int = 10):
    """Job: train a cryoDRGN model with known poses; see :func:`cryoforge.jobs.trainer.train_job`."""
    trainer = DrgnTrainer(data, cfg, device, reference)
    return train_job(trainer, steps, checkpoint, resume, checkpoint_every, validate_every, metrics_every)


class TrainedDrgnManifold(Manifold):
    """A ``cryodrgn_vae`` checkpoint of this project (heterogeneous) as a manifold."""

    kind = "cryodrgn"

    def __init__(self, path, device="cpu", **_):
        from ...io.checkpoint import load_checkpoint
        from ..base import ManifoldError

        super().__init__(device)
        payload = load_checkpoint(path, kind=KIND, map_location=device)
        cfg = payload["config"]
        if not cfg["zdim"]:
            raise ManifoldError(f"{path}: a homogeneous cryoDRGN model has no latent space to explore")
        self.dec = _decoder(cfg)
        self.dec.load_state_dict({k: v.float() for k, v in payload["state_dicts"]["decoder"].items()})
        self.dec.to(self.device).eval()
        self.latent_dim, self.box, self.norm = cfg["zdim"], cfg["D"] - 1, tuple(cfg["norm"])
        self.voxel_size = float(cfg.get("pixel_size", 1.0))
        self.name = f"cryoDRGN (cryoforge) {getattr(path, 'name', path)}"

    def _decode(self, z):
        return decode_volumes(self.dec, z, self.norm)
