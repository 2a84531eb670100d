"""Real particle images for Multi-CryoGAN: one or more stacks (memory-mapped, read a batch at a time: resident
memory follows the batch, not the files) and the CTF of each image.

The images are only ever compared as a distribution, so poses are not needed; the CTFs are: the simulator draws
each fake image's CTF from the data's own CTFs (the empirical defocus distribution). Training without CTF is
allowed only when asked (``use_ctf=False``), for CTF-free data. Images are normalised by one global mean and
standard deviation (over up to 1000 images), the same numbers for every image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ctf import CTFParams
from ..latent import ManifoldError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import PathLike, Tensorish
    from ..io.mrc import StoredStacks



def fourier_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Downsample ``(B, D, D)`` images to ``(B, size, size)`` by cropping their spectrum (pixel size × D/size)."""
    d = images.shape[-1]
    if size == d:
        return images
    f = torch.fft.fftshift(torch.fft.fft2(images), dim=(-2, -1))
    lo = d // 2 - size // 2
    f = f[..., lo:lo + size, lo:lo + size]
    return torch.fft.ifft2(torch.fft.ifftshift(f, dim=(-2, -1))).real * (size / d) ** 2


class ParticleStack:
    """Images ``(N, D, D)`` (a memmap works), their CTFs and pixel size; ``size`` < D downsamples every batch by
    Fourier cropping (the pixel size grows by D/size), so a 64² stack trains a 32³ model."""

    def __init__(self, images: Tensorish | StoredStacks, ctf: CTFParams | None, pixel_size: float | np.ndarray,
                 norm: tuple[float, float] | None = None, size: int | None = None) -> None:
        shape = np.shape(images)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ManifoldError(f"particle images must be a stack (N, D, D) of square images; got shape {shape}")
        size = size or shape[1]
        if size > shape[1] or size % 2:
            raise ManifoldError(f"images of {shape[1]}² can be downsampled to an even size ≤ {shape[1]}; got {size}")
        self.images, self.n, self.D, self.D_file = images, shape[0], size, shape[1]
        # one pixel size per image (optics groups): each image's CTF uses its own; the volumes use the first's
        self.pixel_sizes = np.broadcast_to(np.asarray(pixel_size, np.float64), (shape[0],)) * shape[1] / size
        self.ctf, self.pixel_size = ctf, float(self.pixel_sizes[0])
        if ctf is not None and len(np.atleast_1d(ctf.defocus_u)) != self.n:
            raise ManifoldError(f"{len(np.atleast_1d(ctf.defocus_u))} CTF rows for {self.n} images")
        self.norm = norm or self._norm()

    def _norm(self) -> tuple[float, float]:
        idx = np.linspace(0, self.n - 1, min(self.n, 1000)).astype(int)
        x = self._raw(idx).double()
        return float(x.mean()), float(x.std())

    def _raw(self, idx) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(self.images[np.asarray(idx)], np.float32))
        return fourier_crop(x, self.D)

    def batch(self, idx: Tensorish) -> torch.Tensor:
        """Normalised images ``(B, D, D)`` float32."""
        return (self._raw(idx) - self.norm[0]) / self.norm[1]

    def ctf_pixel_sizes(self, idx: Tensorish) -> float | np.ndarray:
        """Pixel sizes (Å) of images ``idx`` on the (downsampled) grid: one number when they share it."""
        px = self.pixel_sizes[np.asarray(idx)]
        return float(px[0]) if np.all(px == px[0]) else px

    def ctf_rows(self, idx: Tensorish) -> CTFParams | None:
        if self.ctf is None:
            return None
        return CTFParams(**{k: (np.asarray(v)[idx] if np.ndim(v) else v) for k, v in self.ctf.as_dict().items()})

    def background_sigma(self) -> float:
        """Standard deviation (normalised units) of the pixels outside 0.45·D of the centre: the noise level's
        first guess (the simulator then learns it)."""
        ax = np.arange(self.D) - self.D // 2
        outside = np.hypot(ax[:, None], ax[None]) > 0.45 * self.D
        x = self.batch(np.linspace(0, self.n - 1, min(self.n, 500)).astype(int)).numpy()
        return float(x[:, outside].std())


def load_stack(stacks: PathLike | Sequence[PathLike], star: PathLike | None = None, use_ctf: bool = True,
               pixel_size: float | None = None,
               size: int | None = None) -> ParticleStack:
    """Images from ``stacks`` (one path or several, all of one square size) with CTFs from ``star`` (RELION),
    optionally downsampled to ``size``."""
    from ..io.mrc import StoredStacks, read_mrc
    from ..io.particles import match_stack, read_particle_metadata

    paths = [Path(stacks)] if isinstance(stacks, str | os.PathLike) else [Path(p) for p in stacks]
    if not paths:
        raise ManifoldError("no particle stack given")
    arrays: list = []
    sizes: list[str] = []
    px: float | None = None  # the first stack's header
    missing = False
    for p in paths:
        data, info = read_mrc(p, mmap=True, layout="stack", finite=True)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3 or data.shape[1] != data.shape[2]:
            raise ManifoldError(f"{p.name}: expected a stack of square images (N, D, D); got shape {data.shape}")
        arrays.append(data)
        sizes.append(f"{p.name}: {data.shape[1]}²")
        px, missing = px or float(info.voxel_size[0]), missing or info.voxel_size_missing
    if len({a.shape[1] for a in arrays}) > 1:
        raise ManifoldError("the particle stacks have mixed image sizes (" + ", ".join(sizes) + "); resample them to "
                            "one size first (e.g. `relion_image_handler --new_box`)")
    images = StoredStacks(arrays)  # on disk: each batch reads its rows, whatever the stacks' total size
    ctf = None
    chosen: float | np.ndarray | None = px
    if star is not None:
        meta = read_particle_metadata(star, pixel_size)
        if len(paths) == 1:
            meta = match_stack(meta, paths[0], len(images), px, missing)
        elif len(meta) != len(images):
            raise ManifoldError(f"{Path(star).name}: {len(meta)} particles for {len(images)} images")
        if meta.pixel_sizes is not None:  # per particle; the user's pixel_size when given
            chosen = meta.pixel_sizes
        if use_ctf:
            if meta.ctf is None:
                raise ManifoldError(f"{Path(star).name}: no CTF columns (rlnDefocusU, rlnVoltage, "
                                    "rlnSphericalAberration, rlnAmplitudeContrast); the simulator needs the data's "
                                    "CTFs — pass --no-ctf only if the images have none")
            ctf = meta.ctf
    elif use_ctf:
        raise ManifoldError("the simulator draws CTFs from the data: give the particles' STAR file (--star), or "
                            "--no-ctf if the images have no CTF")
    if pixel_size and star is None:
        chosen = pixel_size
    if chosen is None:
        raise ManifoldError("the pixel size is unknown: pass pixel_size")
    return ParticleStack(images, ctf, chosen, size=size)
