"""Multi-CryoGAN training on the shared loop (:func:`cryoforge.jobs.trainer.train_job`), and the trained model as a
:class:`~cryoforge.latent.Manifold`.

One step: ``n_critic`` critic updates, then one generator update. Fake images: ``batch / poses`` coordinates from
the prior → generator volumes (one draw shared by the step's critic updates: the generator is the costly part) → each projected at ``poses`` uniform random poses (Fourier slice,
:mod:`.projector`) → random shift in a disc of ``max_shift`` px → the CTF of a random data image → Gaussian noise
of the learned level σ. Critic loss ``D(fake) − D(real) + λ·GP`` with the gradient penalty of
:func:`cryoforge.gan.critic_update` (one gradient norm per image — the public CryoGAN code's
per-pixel norm is the bug the paper's issue names); generator loss ``−D(fake)``. Adam (1e-4, β = (0.5, 0.9)).
All random draws come from ``seed + step``, so a resumed run sees what an uninterrupted one would.

Validation decodes fixed coordinates (α = 0, ¼, ½, ¾, 1), previews their central slices and real vs simulated
images, and, given reference end volumes, reports the FSC area / FSC=0.5 frequency of the aligned ends.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..configs import to_dict
from ..conventions import random_rotations
from ..gan import critic_loss
from ..jobs import Preview
from ..jobs.distributed import World, parallel_loss
from ..jobs.trainer import Schedule, train_job
from ..latent import Manifold
from ..rng import seeded
from .config import McganConfig, McganTrainConfig
from .data import ParticleStack
from .model import Critic, Generator
from .projector import form_images, project_fourier

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from ..hints import Device, PathLike, Tensorish
    from ..jobs import Event


KIND = "multicryogan"
PREVIEW_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _rng(seed: int, step: int, sub: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + step * 101 + sub)


class McganTrainer:
    """A :class:`cryoforge.jobs.trainer.Trainable`. ``references``: optional true volumes ``(2, n, n, n)`` of the
    manifold's two ends (in the data's units and frame is not needed: ends are aligned before the FSC)."""

    default_schedule = Schedule(checkpoint_every=200, validate_every=250, metrics_every=10)

    kind = KIND

    def __init__(self, data: ParticleStack, cfg: McganConfig | None = None, train: McganTrainConfig | None = None,
                 device: str = "cpu", references: Tensorish | None = None) -> None:
        cfg = cfg or McganConfig(box=data.D)
        if cfg.box != data.D:
            raise ValueError(f"the generator's box ({cfg.box}) must equal the image size ({data.D})")
        self.data, self.cfg, self.tcfg = data, cfg, train or McganTrainConfig()
        self.device = torch.device(device)
        with seeded(self.tcfg.seed):
            self.gen = Generator(cfg, noise_sigma=max(data.background_sigma(), 1e-3)).to(self.device)
            self.gen.log_noise.requires_grad_(self.tcfg.learn_noise)
            self.critic = Critic(cfg, data.D).to(self.device)
        self.modules = {"generator": self.gen, "critic": self.critic}
        t = self.tcfg
        self.optimizers = {
            "generator": torch.optim.Adam([p for p in self.gen.parameters() if p.requires_grad], lr=t.lr, betas=t.betas),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=t.lr, betas=t.betas)}
        self.architecture = cfg
        self.config = {"architecture": to_dict(cfg), "train": to_dict(t), "voxel_size": data.pixel_size,
                       "norm": list(data.norm), "n_images": data.n, "use_ctf": data.ctf is not None}
        self.references = None if references is None else np.asarray(references, np.float32)
        self.world = World()
        self.rank_cfg = self.tcfg  # this rank's share: its batch and its seed (the run's own in one process)
        self.critic_loss: Any = partial(critic_loss, self.critic)
        self.generator_loss: Any = self._generator_loss

    def distribute(self, world: World) -> None:
        """Train as one of ``world``'s processes: each rank simulates and reads ``batch / size`` images of every step
        from its own seed, and the critic's and the generator's gradients are averaged over the ranks (DDP; the
        critic's three passes, gradient penalty included, are one forward)."""
        t = self.tcfg
        share = t.batch // world.size
        if t.batch % world.size or share % t.poses or share < 2:
            raise ValueError(f"the batch ({t.batch} images) must split over {world.size} processes into shares that "
                             f"are multiples of the poses per volume ({t.poses})")
        self.world = world
        self.rank_cfg = replace(t, batch=share, seed=t.seed + 7_919 * world.rank)
        self.critic_loss = parallel_loss({"critic": self.critic}, self.critic_loss, world)
        self.generator_loss = parallel_loss({"generator": self.gen}, self._generator_loss, world)

    def _generator_loss(self, rng: torch.Generator, seed: int) -> torch.Tensor:
        return -self.critic(self.simulate(rng, seed)).mean()

    # -- the simulator
    def simulate(self, rng: torch.Generator, seed: int, volumes: torch.Tensor | None = None) -> torch.Tensor:
        """A batch of fake images: ``volumes`` (default: fresh draws from the prior) at ``poses`` poses each."""
        t = self.rank_cfg
        if volumes is None:
            volumes = self.gen(self.gen.sample_coords(t.batch // t.poses, rng).to(self.device))
        rots = random_rotations(t.poses, seed).to(self.device)
        proj = project_fourier(volumes, rots)
        n = len(proj)
        shifts = None
        if t.max_shift > 0:
            r = t.max_shift * torch.rand(n, generator=rng).sqrt()
            phi = 2 * np.pi * torch.rand(n, generator=rng)
            shifts = torch.stack([r * phi.cos(), r * phi.sin()], 1).to(self.device)
        rows = torch.randint(0, self.data.n, (n,), generator=rng).numpy()
        return form_images(proj, shifts, self.data.ctf_rows(rows), self.data.ctf_pixel_sizes(rows),
                           self.gen.noise_sigma, rng)

    def real(self, rng: torch.Generator) -> torch.Tensor:
        return self.data.batch(torch.randint(0, self.data.n, (self.rank_cfg.batch,), generator=rng).numpy()).to(self.device)

    # -- training
    def train_step(self, step: int) -> dict:
        t, seed = self.rank_cfg, self.rank_cfg.seed
        self.gen.train()
        self.critic.train()
        opt_d, opt_g = self.optimizers["critic"], self.optimizers["generator"]
        with torch.no_grad():  # one set of conformations for the critic's updates, new poses/CTF/noise each time
            vols = self.gen(self.gen.sample_coords(t.batch // t.poses, _rng(seed, step, 98)).to(self.device))
        for i in range(t.n_critic):
            rng = _rng(seed, step, i)
            real = self.real(rng)
            with torch.no_grad():
                fake = self.simulate(rng, seed * 1_000_003 + step * 101 + i, vols)
            loss_d, d_real, d_fake, gp = self.critic_loss(real, fake, t.gp_weight, rng)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        rng = _rng(seed, step, 99)
        self.critic.requires_grad_(False)
        try:
            loss_g = self.generator_loss(rng, seed * 1_000_003 + step * 101 + 99)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        return {"wasserstein": float((d_real - d_fake).detach()), "gp": float(gp.detach()), "loss_g": float(loss_g.detach()),
                "noise_sigma": float(self.gen.noise_sigma.detach())}

    @torch.no_grad()
    def volumes(self, coords: Tensorish) -> torch.Tensor:
        self.gen.eval()
        c = torch.as_tensor(np.asarray(coords, np.float32)).reshape(-1, self.cfg.latent_dim)
        return self.gen(c.to(self.device)).cpu()

    def preview_coords(self) -> np.ndarray:
        if self.cfg.prior == "segment":
            return np.asarray(PREVIEW_ALPHAS, np.float32)[:, None]
        return np.random.default_rng(0).standard_normal((5, self.cfg.zdim)).astype(np.float32)

    @torch.no_grad()
    def validate(self, step: int) -> tuple[dict[str, float], list[Preview]]:
        rng = _rng(self.tcfg.seed + 7, 0, 0)  # fixed batch: comparable across validations
        real = self.real(rng)
        fake = self.simulate(rng, 12345)
        metrics = {"wasserstein_fixed": float(self.critic(real).mean() - self.critic(fake).mean())}
        vols = self.volumes(self.preview_coords())
        if self.references is not None and self.cfg.prior == "segment":
            metrics.update(end_scores(vols[[0, -1]].numpy(), self.references, self.data.pixel_size))
        n = vols.shape[-1]
        slices = torch.cat([vols[:, n // 2], vols[:, :, n // 2]]).numpy()
        label = ", ".join(f"{a:g}" for a in PREVIEW_ALPHAS) if self.cfg.prior == "segment" else "5 z"
        px = {"voxel_size": self.data.pixel_size}
        previews = [Preview(f"G(α) central slices (α = {label}; z then y)", slices, "stack", px),
                    Preview("real vs simulated images", torch.cat([real[:8], fake[:8]]).cpu().numpy(), "stack", px),
                    Preview("G(α = 0.5)", vols[len(vols) // 2].numpy(), "volume",
                            {"voxel_size": self.data.pixel_size})]
        return metrics, previews


def end_scores(ends: Tensorish, references: Tensorish, pixel_size: float | None = None) -> dict:
    """FSC of the generator's two ends against the true end volumes, after alignment (rotation, shift, hand); the
    manifold's direction is free, so the better of the two pairings is reported. ``fsc05_freq_*`` is the last
    frequency (cycles/px, Nyquist 0.5) before FSC first falls below 0.5; given ``pixel_size`` (Å), also in Å.
    ``fsc05_crossing_*``: where FSC crosses 0.5, linear between shells (:meth:`cryoforge.metrics.FSCCurve.resolution`,
    as RELION reports it), in cycles/px: at most one shell (1/box) above ``fsc05_freq_*``."""
    from ..metrics import HALF, fsc
    from .fsccc import align_to_reference, fsc_area

    out = {}
    pairs = {}
    for i in range(2):
        for j in range(2):
            placed, _ = align_to_reference(ends[i], references[j])
            curve = fsc(placed, references[j])  # voxel size 1: its frequencies are in cycles/px
            shell = curve.crossing_shell(HALF)
            last = curve.frequency[-1] if shell is None else curve.frequency[shell - 1]
            pairs[i, j] = (fsc_area(placed, references[j]), float(last), float(1.0 / curve.resolution(HALF)))
    straight = pairs[0, 0][0] + pairs[1, 1][0]
    crossed = pairs[0, 1][0] + pairs[1, 0][0]
    a, b = ((0, 0), (1, 1)) if straight >= crossed else ((0, 1), (1, 0))
    out["fsc_area_end0"], out["fsc05_freq_end0"], out["fsc05_crossing_end0"] = pairs[a]
    out["fsc_area_end1"], out["fsc05_freq_end1"], out["fsc05_crossing_end1"] = pairs[b]
    for k in ("end0", "end1"):  # the same figure in Å, comparable across samplings
        if pixel_size and out[f"fsc05_freq_{k}"] > 0:
            out[f"fsc05_resolution_A_{k}"] = pixel_size / out[f"fsc05_freq_{k}"]
    out["ends_reversed"] = float(straight < crossed)
    return out


def train_mcgan_job(data: ParticleStack, cfg: McganConfig | None = None, train: McganTrainConfig | None = None,
                    schedule: Schedule | None = None, checkpoint: PathLike | None = None, device: str = "cpu",
                    references: Tensorish | None = None, world: World | None = None) -> Iterator[Event]:
    """Job: train Multi-CryoGAN; see :func:`cryoforge.jobs.trainer.train_job` (``world``: one of several
    processes)."""
    trainer = McganTrainer(data, cfg, train, device, references)
    return train_job(trainer, schedule, checkpoint, world)


def load_generator(path: PathLike, device: Device = "cpu") -> tuple[Generator, dict]:
    """The generator of a Multi-CryoGAN checkpoint and the checkpoint's config."""
    from ..io.checkpoint import config_section, load_checkpoint

    payload = load_checkpoint(path, kind=KIND, map_location=device)
    gen = Generator(config_section(payload, McganConfig))
    gen.load_state_dict({k: v.float() for k, v in payload["state_dicts"]["generator"].items()})
    return gen.to(device).eval(), payload


class McganManifold(Manifold):
    """A ``multicryogan`` checkpoint as a manifold: the coordinate is α ∈ [0, 1] (segment prior) or z."""

    kind = "multicryogan"

    def __init__(self, path: PathLike, device: Device = "cpu", **_: Any) -> None:
        super().__init__(device)
        self.gen, payload = load_generator(path, self.device)
        cfg = payload["config"]
        self.latent_dim, self.box = self.gen.cfg.latent_dim, self.gen.cfg.box
        self.voxel_size = float(cfg.get("voxel_size", 1.0))
        self.name = f"Multi-CryoGAN {getattr(path, 'name', path)}"
        if self.gen.cfg.prior == "segment":
            alphas = np.linspace(0, 1, 21, dtype=np.float32)
            self.data_latents = alphas[:, None]
            self.data_labels = [f"α={a:.2f}" for a in alphas]

    def _decode(self, z):
        return self.gen(z)
