"""DCT spectral pooling (Gum-Net, seed 004) as a differentiable linear layer.

A feature map of ``n`` voxels per axis is transformed with the orthonormal DCT-II, its first ``size``
coefficients are kept (the pooling: output ``size`` voxels per axis), of those only the first ``keep``
are passed (the low-pass filtering), and the orthonormal inverse DCT of length ``size`` gives the pooled
map. The amplitude is rescaled by ``sqrt(size / n)`` per axis so that a constant map stays the same
constant. Along one axis the whole operation is one ``(size, n)`` matrix, so the 3-D layer is three
small matrix products — exact, cheap on CPU and GPU, and differentiable by construction.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (``n × n``): ``X = D @ x`` (scipy ``dct(x, norm='ortho')``)."""
    k = torch.arange(n, dtype=dtype)[:, None]
    i = torch.arange(n, dtype=dtype)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def spectral_pool_matrix(n: int, size: int, keep: int | None = None,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ``(size, n)`` matrix of DCT → keep ``size`` coefficients → zero beyond ``keep`` → IDCT(size)."""
    keep = size if keep is None else keep
    if not 0 < keep <= size <= n:
        raise ValueError(f"spectral pooling needs 0 < keep ≤ size ≤ n; got keep={keep}, size={size}, n={n}")
    filt = torch.zeros(size, dtype=dtype)
    filt[:keep] = 1.0
    return dct_matrix(size, dtype).T @ (filt[:, None] * dct_matrix(n, dtype)[:size]) * math.sqrt(size / n)


class SpectralPool3d(nn.Module):
    """DCT spectral pooling and filtering of ``(B, C, n, n, n)`` maps to ``(B, C, size, size, size)``."""

    matrix: torch.Tensor

    def __init__(self, n: int, size: int, keep: int | None = None) -> None:
        super().__init__()
        self.n, self.size, self.keep = n, size, size if keep is None else keep
        self.register_buffer("matrix", spectral_pool_matrix(n, size, keep).to(torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-3:]) != (self.n,) * 3:
            raise ValueError(f"SpectralPool3d expects {self.n}³ maps, got {tuple(x.shape[-3:])}")
        mt = self.matrix.to(x.dtype).T
        x = x @ mt  # along X
        x = (x.transpose(-1, -2) @ mt).transpose(-1, -2)  # along Y
        return (x.transpose(-1, -3) @ mt).transpose(-1, -3)  # along Z

    def extra_repr(self) -> str:
        return f"{self.n}³ → {self.size}³, keeping {self.keep}³ coefficients"
