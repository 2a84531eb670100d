"""cryoDRGN's coordinate-based decoders, evaluated on the whole lattice at once and batched over ``z``.

The modules keep cryoDRGN's parameter names (``decoder.decoder.main.N.(linear.)weight``, ``decoder.rand_freqs``)
so a ``weights.pkl`` loads with ``load_state_dict``. A decoder maps a frequency coordinate ``k ∈ [-0.5, 0.5]³``
(``(x, y, z)``, in cycles per box) plus a latent ``z`` to the Hartley transform ``H(k)`` of the volume:

* ``hartley`` domain (``PositionalDecoder``): one output, ``H(k)`` directly.
* ``fourier`` domain (``FTPositionalDecoder``/``FTSliceDecoder``): two outputs ``(a, b)``, evaluated on the
  half-space ``z < 0`` (and half of the ``z = 0`` plane); ``H(k) = a(k) − b(k)`` there and
  ``H(−k) = a(k) + b(k)`` by Hermitian symmetry, so only half of the lattice is evaluated.

Volumes are ``(Z, Y, X)`` (:mod:`cryoforge.conventions`): lattice index ``[i, j, l]`` holds ``k = (x_l, y_j, z_i)``,
the way cryoDRGN's ``eval_volume`` stacks its z-slices, followed by its inverse Hartley transform
(``ihtn_center`` of the ``(D−1)³`` lattice without the last +Nyquist row), so volumes match ``cryodrgn eval_vol``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from .config import PE_TYPES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import Device, Tensorish


ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}


class _Resid(nn.Module):
    """``x + W x``: cryoDRGN's ``ResidLinear`` (its parameters live under ``.linear``)."""

    def __init__(self, n: int):
        super().__init__()
        self.linear = nn.Linear(n, n)

    def forward(self, x) -> torch.Tensor:
        return self.linear(x) + x


class ResidMLP(nn.Module):
    """cryoDRGN's ``ResidLinearMLP``: in → hidden, ``nlayers`` residual hidden layers, → out."""

    def __init__(self, in_dim: int, nlayers: int, hidden: int, out_dim: int,
                 activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        layers = [_Resid(hidden) if in_dim == hidden else nn.Linear(in_dim, hidden), activation()]
        for _ in range(nlayers):
            layers += [_Resid(hidden), activation()]
        layers.append(_Resid(hidden) if out_dim == hidden else nn.Linear(hidden, out_dim))
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensorish) -> torch.Tensor:
        return self.main(x)


class CoordinateDecoder(nn.Module):
    """A cryoDRGN decoder for one ``domain`` and positional encoding ``pe_type`` (``none``: raw coordinates)."""

    def __init__(self, D: int, zdim: int, layers: int, dim: int, domain: str = "hartley", pe_type: str = "gaussian",
                 pe_dim: int | None = None, activation: str = "relu", feat_sigma: float = 0.5) -> None:
        super().__init__()
        if domain not in ("hartley", "fourier"):
            raise ValueError(f"unknown decoder domain {domain!r} (cryoDRGN has 'hartley' and 'fourier')")
        if pe_type not in PE_TYPES:
            raise ValueError(f"unknown positional encoding {pe_type!r}; cryoDRGN has {', '.join(PE_TYPES)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; cryoDRGN has {', '.join(ACTIVATIONS)}")
        self.D, self.D2, self.zdim, self.domain, self.pe_type = int(D), int(D) // 2, int(zdim), domain, pe_type
        self.layers, self.dim, self.activation, self.feat_sigma = int(layers), int(dim), activation, float(feat_sigma)
        self.enc_dim = self.D2 if (pe_dim is None or pe_type == "linear_lowf") else int(pe_dim)
        in_dim = 3 + self.zdim if pe_type == "none" else 6 * self.enc_dim + self.zdim
        if pe_type == "gaussian":  # a fixed parameter, saved in the checkpoint (cryoDRGN draws it at random)
            self.rand_freqs = nn.Parameter(torch.randn(3 * self.enc_dim, 3) * feat_sigma, requires_grad=False)
        self.decoder = ResidMLP(in_dim, layers, dim, 1 if domain == "hartley" else 2, ACTIVATIONS[activation])

    def _frequencies(self, device) -> torch.Tensor:
        n, e, dd = self.D2, self.enc_dim, 2 * self.D2
        f = torch.arange(e, dtype=torch.float32, device=device)
        if self.pe_type == "linear_lowf":
            return torch.arange(1, n + 1, dtype=torch.float32, device=device)
        r = f / max(e - 1, 1)
        return {"geom_ft": dd * math.pi * (2.0 / dd) ** r,
                "geom_full": dd * math.pi * (1.0 / dd / math.pi) ** r,
                "geom_lowf": n * (1.0 / n) ** r,
                "geom_nohighf": n * (2.0 * math.pi / n) ** r}[self.pe_type]

    def encode_coords(self, k: torch.Tensor) -> torch.Tensor:
        """Features of coordinates ``(..., 3)``."""
        if self.pe_type == "none":
            return k
        if self.pe_type == "gaussian":
            arg = k @ (self.rand_freqs * self.D2).T  # (..., 3·enc_dim)
            return torch.cat([torch.sin(arg), torch.cos(arg)], -1)
        arg = k[..., None] * self._frequencies(k.device)  # (..., 3, enc): per axis, sin block then cos block
        return torch.cat([torch.sin(arg), torch.cos(arg)], -1).flatten(-2)

    def forward(self, k: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Raw decoder outputs at coordinates ``(P, 3)`` (shared) or ``(B, P, 3)`` (per latent) for latents
        ``(B, zdim)``: ``(B, P, 1 or 2)``."""
        feats = self.encode_coords(k)  # (P, F) or (B, P, F)
        first = self.decoder.main[0]
        if self.zdim and isinstance(first, nn.Linear):
            assert z is not None, "a model with a latent space decodes at latent points"
            # W·[f; z] + b = W_f·f + (W_z·z + b): the latent part is one bias per z, not a (B, P, F + zdim) input
            nf = feats.shape[-1]
            h = feats @ first.weight[:, :nf].T
            h = (h if h.ndim == 3 else h[None]) + (z @ first.weight[:, nf:].T + first.bias)[:, None]
            return self.decoder.main[1:](h)
        b = (1 if z is None else len(z)) if k.ndim == 2 else len(k)
        x = feats.expand(b, *feats.shape[-2:])
        if self.zdim:
            assert z is not None, "a model with a latent space decodes at latent points"
            x = torch.cat([x, z[:, None, :].expand(b, x.shape[1], self.zdim)], -1)
        return self.decoder(x)

    def hartley(self, k: torch.Tensor, z: torch.Tensor | None, extent: float = 0.5,
                flip: torch.Tensor | None = None) -> torch.Tensor:
        """``H(k)`` at coordinates ``(P, 3)`` or ``(B, P, 3)``: ``(B, P)``. In the Fourier domain the points in
        ``flip`` (default ``k_z > 0``) are evaluated at ``−k`` and conjugated (``H = a + b`` there, ``a − b``
        elsewhere), and points beyond ``extent`` are 0, as cryoDRGN does."""
        if self.domain == "hartley":
            return self(k, z)[..., 0]
        flip = k[..., 2] > 0 if flip is None else flip
        ab = self(torch.where(flip[..., None], -k, k), z)
        h = torch.where(flip, ab[..., 0] + ab[..., 1], ab[..., 0] - ab[..., 1])
        return torch.where(k.pow(2).sum(-1) <= extent ** 2, h, torch.zeros_like(h))


class Encoder(nn.Module):
    """cryoDRGN's image encoder: masked Hartley image → ``(μ, log σ²)`` of ``q(z|x)`` (``resid`` or ``mlp``)."""

    def __init__(self, in_dim: int, layers: int, dim: int, zdim: int, mode: str = "resid",
                 activation: str = "relu") -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        if mode == "resid":
            self.main = ResidMLP(in_dim, layers, dim, 2 * zdim, act).main
        elif mode == "mlp":
            mods = [nn.Linear(in_dim, dim), act()]
            for _ in range(layers):
                mods += [nn.Linear(dim, dim), act()]
            self.main = nn.Sequential(*mods, nn.Linear(dim, 2 * zdim))
        else:
            raise ValueError(f"encoder mode {mode!r}: this build reads 'resid' and 'mlp'")
        self.zdim = zdim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.main(x)
        return out[:, : self.zdim], out[:, self.zdim:]


def lattice_coords(D: int, extent: float = 0.5, device: Device | None = None) -> torch.Tensor:
    """The ``(D, D, D, 3)`` lattice of ``(x, y, z)`` frequencies in ``[-extent, extent]`` (index order z, y, x)."""
    ax = (torch.arange(D, device=device) - D // 2) * (2 * extent / (D - 1))  # exactly 0 at D//2 and antisymmetric
    zz, yy, xx = torch.meshgrid(ax, ax, ax, indexing="ij")
    return torch.stack([xx, yy, zz], -1)


def centred_hartley(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Centred Hartley transform (DC at ``n//2``) over the last ``ndim`` axes: ``Re F − Im F`` of the shifted FFT."""
    dims = tuple(range(-ndim, 0))
    f = torch.fft.fftshift(torch.fft.fftn(torch.fft.fftshift(x, dim=dims), dim=dims), dim=dims)
    return f.real - f.imag


def htn_center(v: torch.Tensor) -> torch.Tensor:
    """Forward centred Hartley transform over the last three axes (the inverse of :func:`ihtn_center`)."""
    return centred_hartley(v, 3)


def ihtn_center(h: torch.Tensor) -> torch.Tensor:
    """Inverse centred Hartley transform over the last three axes (the Hartley transform is its own inverse up to
    ``1/N``)."""
    return centred_hartley(h, 3) / math.prod(h.shape[-3:])


@torch.no_grad()
def decode_hartley(decoder: CoordinateDecoder, z: torch.Tensor | None, extent: float = 0.5,
                   rows: int = 1 << 14, frame: torch.Tensor | None = None) -> torch.Tensor:
    """The ``(B, D, D, D)`` Hartley lattice of the decoder for latents ``z``: every z at once, the lattice in chunks
    of ``rows / B`` points (activations of ~``rows`` × hidden stay in cache on a CPU; raise ``rows`` on a GPU).
    ``frame`` (3×3, orthogonal, a mirror allowed) evaluates ``H(k @ frame)``: the volume in another frame, exactly
    (e.g. a pose-search reconstruction put in the reference's frame, :func:`~.poses.pose_errors`)."""
    D = decoder.D
    dev = next(decoder.parameters()).device
    k = lattice_coords(D, extent, dev).reshape(-1, 3)
    b = 1 if z is None else len(z)
    chunk_points = max(256, rows // b)
    out = torch.zeros(b, D ** 3, device=dev)
    if frame is not None:
        k = k @ torch.as_tensor(frame, dtype=k.dtype, device=dev)
        for s in range(0, len(k), chunk_points):
            out[:, s:s + chunk_points] = decoder.hartley(k[s:s + chunk_points], z, extent)
        return out.view(b, D, D, D)
    if decoder.domain == "hartley":
        for s in range(0, len(k), chunk_points):
            out[:, s:s + chunk_points] = decoder(k[s:s + chunk_points], z)[..., 0]
        return out.view(b, D, D, D)
    # Fourier domain: evaluate the lower half (flat index ≤ centre: z < 0, or z = 0 up to the centre), mirror the rest.
    # Points beyond the sphere of radius ``extent`` stay 0, as in cryoDRGN's eval_volume.
    centre = D ** 3 // 2
    keep = k.pow(2).sum(-1) <= extent ** 2
    lower = torch.nonzero(keep[: centre + 1])[:, 0]
    for s in range(0, len(lower), chunk_points):
        idx = lower[s:s + chunk_points]
        ab = decoder(k[idx], z)
        out[:, idx] = ab[..., 0] - ab[..., 1]
        out[:, D ** 3 - 1 - idx] = ab[..., 0] + ab[..., 1]  # flat index i ↔ −k at D³−1−i on an odd lattice
    out[:, centre] = 0.0
    ab = decoder(k[centre:centre + 1], z)
    out[:, centre] = ab[:, 0, 0] - ab[:, 0, 1]
    return out.view(b, D, D, D)


def hartley_to_volume(h: torch.Tensor, norm: Sequence[float]) -> torch.Tensor:
    """Volumes ``(B, D−1, D−1, D−1)`` from Hartley lattices ``(B, D, D, D)`` in normalised units (cryoDRGN's ``norm``)."""
    return ihtn_center(h[:, :-1, :-1, :-1] * norm[1] + norm[0])


def decode_lowpass(decoder: CoordinateDecoder, z: torch.Tensor | None, norm: Sequence[float], size: int,
                   extent: float = 0.5,
                   rows: int = 1 << 14) -> torch.Tensor:
    """Volumes ``(B, size, size, size)``: the decoder on the central ``(size+1)³`` of its lattice, a low-pass view
    at ``(D−1)/size`` times the voxel size — a preview that costs ``(size/(D−1))³`` of a full decode."""
    D = decoder.D
    if size >= D - 1 or size % 2:
        return decode_volumes(decoder, z, norm, extent)
    dev = next(decoder.parameters()).device
    lo = D // 2 - size // 2
    k = lattice_coords(D, extent, dev)[lo:lo + size + 1, lo:lo + size + 1, lo:lo + size + 1].reshape(-1, 3)
    b = 1 if z is None else len(z)
    out = torch.zeros(b, len(k), device=dev)
    step = max(256, rows // b)
    for s in range(0, len(k), step):
        out[:, s:s + step] = decoder.hartley(k[s:s + step], z, extent)
    n = size + 1
    return hartley_to_volume(out.view(b, n, n, n), norm) * (size / (D - 1)) ** 3


def decode_volumes(decoder: CoordinateDecoder, z: torch.Tensor | None, norm: Sequence[float], extent: float = 0.5,
                   frame: torch.Tensor | None = None) -> torch.Tensor:
    """Volumes ``(B, D−1, D−1, D−1)`` for latents ``z``: the full lattice, batched (CPU-sized chunks on a CPU)."""
    cpu = next(decoder.parameters()).device.type == "cpu"
    return hartley_to_volume(decode_hartley(decoder, z, extent, 1 << 14 if cpu else 1 << 20, frame), norm)
