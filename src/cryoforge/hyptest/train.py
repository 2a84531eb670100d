"""Training the 3D-WGAN-GP and its regressor with the shared loop (:func:`cryoforge.jobs.trainer.train_job`).

The data are the known complexes, each rotated ``rotations`` times (the paper: 15 × 600), put in
``[-1, 1]``. Each generator step follows ``n_critic`` critic steps; batches are drawn from
``seed + step`` so a resumed run sees the data an uninterrupted one would. Validation compares 64
generated volumes with 64 data volumes by rotation-invariant statistics (radial power spectrum,
occupied fraction) and previews central slices of fixed latent codes.

The regressor (inverse generator) mirrors the generator and is trained with the generator frozen, on
the summed squared error ``‖G(R(x)) − x‖²`` of reconstructed volumes, half data and half ``G(z)``.
Its checkpoint holds a copy of the generator, so one file serves the hypothesis test.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..configs import to_dict
from ..fourier import freq_radius
from ..gan import critic_loss
from ..io.checkpoint import CheckpointError, config_section, load_checkpoint
from ..jobs import Preview
from ..jobs.distributed import World, block, parallel_loss
from ..jobs.trainer import Schedule, train_job
from ..rng import seeded
from .config import GANTrainConfig, RegressorTrainConfig, WGANConfig
from .templates import check_templates, rotated_pool
from .wgan import CHANNELS_LAST, Critic, Generator, generate, to_unit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from ..hints import Device, PathLike, Tensorish
    from ..jobs import Event


KIND = "wgan3d"
REGRESSOR_KIND = "wgan3d_regressor"


class Regressor(nn.Module):
    """The generator's mirror: four stride-2 convolutions (BN, LeakyReLU) → linear → ``z``."""

    def __init__(self, cfg: WGANConfig) -> None:
        super().__init__()
        w, s = cfg.width, cfg.box // 16
        layers, c_in = [], 1
        for c_out in (w, 2 * w, 4 * w, 8 * w):
            layers += [nn.Conv3d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.net.to(memory_format=CHANNELS_LAST)  # type: ignore[call-overload]  # 1.4× a 64³ step on 2 CPU cores
        self.fc = nn.Linear(8 * w * s ** 3, cfg.zdim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x[:, None].contiguous(memory_format=CHANNELS_LAST)).flatten(1))


def radial_power(x: torch.Tensor) -> torch.Tensor:
    """Mean radially averaged power spectrum of volumes ``(N, n, n, n)`` (rotation invariant), ``(n//2,)``."""
    n = x.shape[-1]
    p = torch.fft.rfftn(x, dim=(-3, -2, -1)).abs().pow(2).mean(0).flatten()
    shell = (freq_radius((n, n, n), rfft=True) * n).round().long().flatten()
    keep = shell < n // 2
    out = torch.zeros(n // 2).index_add_(0, shell[keep], p[keep])
    return out / torch.bincount(shell[keep], minlength=n // 2).clamp_min(1)


def _batch_indices(n: int, size: int, seed: int, step: int, sub: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + step * 101 + sub)
    return torch.randint(0, n, (size,), generator=g)


def _z(n: int, zdim: int, seed: int, step: int, sub: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + step * 101 + sub + 50)
    return torch.randn(n, zdim, generator=g)


class _PoolData:
    def __init__(self, maps, rotations: int, seed: int, names=None):
        self.maps = check_templates(maps)
        self.names = list(names or [f"map{i}" for i in range(len(self.maps))])
        self.pool = to_unit(rotated_pool(self.maps, rotations, seed))


class WGANTrainer(_PoolData):
    """A :class:`cryoforge.jobs.trainer.Trainable` for the 3D-WGAN-GP."""

    default_schedule = Schedule(checkpoint_every=50, validate_every=50, metrics_every=5)

    kind = KIND

    def __init__(self, cfg: WGANConfig, train: GANTrainConfig, maps: Tensorish, names: Sequence[str] | None = None,
                 device: str = "cpu") -> None:
        if check_templates(maps).shape[-1] != cfg.box:
            raise ValueError(f"training maps are {check_templates(maps).shape[-1]}³ but the GAN is for {cfg.box}³")
        super().__init__(maps, train.rotations, train.seed, names)
        self.cfg, self.train_cfg, self.device = cfg, train, torch.device(device)
        with seeded(train.seed):
            self.gen, self.critic = Generator(cfg).to(self.device), Critic(cfg).to(self.device)
        self.modules = {"generator": self.gen, "critic": self.critic}
        self.optimizers = {name: torch.optim.Adam(m.parameters(), lr=train.lr, betas=train.betas)
                           for name, m in self.modules.items()}
        self.architecture = cfg
        self.config = {"architecture": to_dict(cfg), "train": to_dict(train), "structures": self.names}
        self.world = World()
        self.critic_loss: Callable[..., Any] = partial(critic_loss, self.critic)
        self.generator_loss = self._generator_loss

    def distribute(self, world: World) -> None:
        """Train as one of ``world``'s processes: each rank takes its block of every batch of real and generated
        volumes (the critic's minibatch discrimination then compares a sample with its rank's block), and the
        critic's and the generator's gradients are averaged over the ranks (DDP; the three critic passes of a step,
        gradient penalty included, are one forward)."""
        if self.train_cfg.batch % world.size:
            raise ValueError(f"the batch ({self.train_cfg.batch} volumes) must split evenly over {world.size} processes")
        self.world = world
        self.critic_loss = parallel_loss({"critic": self.critic}, self.critic_loss, world)
        self.generator_loss = parallel_loss({"generator": self.gen}, self._generator_loss, world)

    def _generator_loss(self, z: torch.Tensor) -> torch.Tensor:
        return -self.critic(self.gen(z)).mean()

    def _real(self, step, sub):
        idx = block(_batch_indices(len(self.pool), self.train_cfg.batch, self.train_cfg.seed, step, sub), self.world)
        return self.pool[idx].to(self.device)

    def train_step(self, step: int) -> dict:
        c, dev = self.train_cfg, self.device
        self.gen.train()
        opt_d, opt_g = self.optimizers["critic"], self.optimizers["generator"]
        g = torch.Generator().manual_seed(c.seed * 7 + step + 7_919 * self.world.rank)
        for i in range(c.n_critic):
            real = self._real(step, i)
            with torch.no_grad():
                fake = self.gen(block(_z(c.batch, self.cfg.zdim, c.seed, step, i), self.world).to(dev))
            loss_d, d_real, d_fake, gp = self.critic_loss(real, fake, c.gp_weight, g)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        self.critic.requires_grad_(False)  # the generator's step moves only the generator
        try:
            loss_g = self.generator_loss(block(_z(c.batch, self.cfg.zdim, c.seed, step, c.n_critic), self.world).to(dev))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        return {"wasserstein": float((d_real - d_fake).detach()), "gp": float(gp.detach()), "loss_g": float(loss_g.detach())}

    @torch.no_grad()
    def validate(self, step: int) -> tuple[dict[str, float], list[Preview]]:
        vols, _ = generate(self.gen, 64, seed=12345, device=self.device)
        fake = vols * 2 - 1
        real = self.pool[torch.arange(0, len(self.pool), max(1, len(self.pool) // 64))[:64]]
        pr, pf = radial_power(real), radial_power(fake)
        metrics = {"spectrum_err": float(((pf.log() - pr.log()).abs()).mean()),
                   "occupancy_real": float((real > 0).float().mean()), "occupancy_fake": float((fake > 0).float().mean())}
        n = self.cfg.box
        previews = [Preview("GAN samples (central slices)", vols[:16, n // 2].numpy(), "stack"),
                    Preview("GAN sample", vols[0].numpy(), "volume")]
        return metrics, previews


def train_wgan_job(maps: Tensorish, cfg: WGANConfig | None = None, train: GANTrainConfig | None = None,
                   schedule: Schedule | None = None, checkpoint: PathLike | None = None,
                   names: Sequence[str] | None = None, device: str = "cpu",
                   world: World | None = None) -> Iterator[Event]:
    """Job: train the 3D-WGAN-GP on rotated copies of ``maps``; see :func:`cryoforge.jobs.trainer.train_job`
    (``world``: one of several processes)."""
    maps = check_templates(maps)
    trainer = WGANTrainer(cfg or WGANConfig(box=maps.shape[-1]), train or GANTrainConfig(), maps, names, device)
    return train_job(trainer, schedule, checkpoint, world)


def generator_from(payload: dict, path: PathLike = "checkpoint", device: Device = "cpu") -> Generator:
    """The generator (eval mode) of a GAN or regressor checkpoint already read (``payload``)."""
    if payload["kind"] not in (KIND, REGRESSOR_KIND):
        raise CheckpointError(f"{path}: a '{payload['kind']}' checkpoint, not a 3D-WGAN ('{KIND}' or '{REGRESSOR_KIND}')")
    cfg = config_section(payload, WGANConfig)
    gen = Generator(cfg)
    gen.load_state_dict({k: v.float() for k, v in payload["state_dicts"]["generator"].items()})
    return gen.to(device).eval()


def load_generator(path: PathLike, device: str = "cpu") -> tuple[Generator, dict]:
    """The generator of a GAN or regressor checkpoint, in eval mode, and the checkpoint (read once)."""
    payload = load_checkpoint(path, map_location=device)
    return generator_from(payload, path, device), payload


class RegressorTrainer(_PoolData):
    """Trains the regressor with the generator (from ``gan_checkpoint``) frozen."""

    default_schedule = Schedule(checkpoint_every=100, validate_every=100, metrics_every=10)

    kind = REGRESSOR_KIND

    def __init__(self, gan_checkpoint: PathLike, train: RegressorTrainConfig, maps: Tensorish,
                 names: Sequence[str] | None = None, device: str = "cpu") -> None:
        super().__init__(maps, train.rotations, train.seed, names)
        self.gen, payload = load_generator(gan_checkpoint, device)
        for p in self.gen.parameters():
            p.requires_grad_(False)
        self.cfg, self.train_cfg, self.device = self.gen.cfg, train, torch.device(device)
        with seeded(train.seed):
            self.reg = Regressor(self.cfg).to(self.device)
        self.modules = {"regressor": self.reg, "generator": self.gen}
        self.optimizers = {"regressor": torch.optim.Adam(self.reg.parameters(), lr=train.lr, betas=(0.5, 0.99))}
        self.architecture = self.cfg
        self.config = {"architecture": to_dict(self.cfg), "train": to_dict(train), "structures": self.names,
                       "gan": {"step": payload["extra"].get("step"), "command": payload["extra"].get("command")}}

        self.world = World()
        self.step_loss = self._loss

    def distribute(self, world: World) -> None:
        """Train as one of ``world``'s processes: each rank takes its block of the batch's data and generated halves;
        the gradients are averaged over the ranks (DDP)."""
        c = self.train_cfg
        if (c.batch // 2) % world.size or (c.batch - c.batch // 2) % world.size:
            raise ValueError(f"both halves of the batch ({c.batch} volumes) must split evenly over {world.size} "
                             "processes")
        self.world, self.step_loss = world, parallel_loss({"regressor": self.reg}, self._loss, world)

    def _loss(self, x):
        return (self.gen(self.reg(x)) - x).pow(2).flatten(1).sum(1).mean()

    def train_step(self, step: int) -> dict:
        c = self.train_cfg
        half = c.batch // 2
        real = self.pool[block(_batch_indices(len(self.pool), c.batch - half, c.seed, step, 0), self.world)].to(self.device)
        with torch.no_grad():
            fake = self.gen(block(_z(half, self.cfg.zdim, c.seed, step, 1), self.world).to(self.device))
        self.reg.train()
        loss = self.step_loss(torch.cat([real, fake]))
        opt = self.optimizers["regressor"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"sse": float(loss.detach())}

    @torch.no_grad()
    def validate(self, step: int) -> tuple[dict[str, float], list[Preview]]:
        self.reg.eval()
        real = self.pool[torch.arange(0, len(self.pool), max(1, len(self.pool) // 32))[:32]].to(self.device)
        z = _z(32, self.cfg.zdim, 999, 0, 0).to(self.device)
        fake = self.gen(z)
        recon = self.gen(self.reg(real))
        corr = torch.nn.functional.cosine_similarity((recon - recon.mean((1, 2, 3), True)).flatten(1),
                                                     (real - real.mean((1, 2, 3), True)).flatten(1)).mean()
        metrics = {"sse_data": float(self._loss(real)), "sse_generated": float(self._loss(fake)),
                   "z_rmse_generated": float((self.reg(fake) - z).pow(2).mean().sqrt()), "recon_corr_data": float(corr)}
        n = self.cfg.box
        previews = [Preview("data vs G(R(data)) (central slices)",
                            torch.stack([real[:8, n // 2], recon[:8, n // 2]], 1).flatten(0, 1).cpu().numpy() * 0.5 + 0.5,
                            "stack")]
        return metrics, previews


def train_regressor_job(gan_checkpoint: PathLike, maps: Tensorish, train: RegressorTrainConfig | None = None,
                        schedule: Schedule | None = None, checkpoint: PathLike | None = None,
                        names: Sequence[str] | None = None, device: str = "cpu",
                        world: World | None = None) -> Iterator[Event]:
    """Job: train the regressor of the GAN in ``gan_checkpoint`` on rotated ``maps`` and generated volumes
    (``world``: one of several processes)."""
    trainer = RegressorTrainer(gan_checkpoint, train or RegressorTrainConfig(), maps, names, device)
    return train_job(trainer, schedule, checkpoint, world)


def regressor_from(payload: dict, path: PathLike = "checkpoint", device: Device = "cpu") -> tuple[Generator, Regressor]:
    """Generator and regressor (eval mode) of a regressor checkpoint already read (``payload``)."""
    if payload["kind"] != REGRESSOR_KIND:
        raise CheckpointError(f"{path}: a '{payload['kind']}' checkpoint, not a 3D-WGAN regressor ('{REGRESSOR_KIND}')")
    gen = generator_from(payload, path, device)
    reg = Regressor(gen.cfg)
    reg.load_state_dict({k: v.float() for k, v in payload["state_dicts"]["regressor"].items()})
    return gen, reg.to(device).eval()


def load_regressor(path: PathLike, device: str = "cpu") -> tuple[Generator, Regressor, dict]:
    """Generator and regressor (eval mode) of a regressor checkpoint, and the checkpoint (read once)."""
    payload = load_checkpoint(path, kind=REGRESSOR_KIND, map_location=device)
    gen, reg = regressor_from(payload, path, device)
    return gen, reg, payload
