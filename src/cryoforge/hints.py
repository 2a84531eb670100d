"""Type aliases the engine's signatures share (annotations only: nothing here is needed at run time).

``PathLike``: a file or folder path; ``ArrayLike``: anything :func:`numpy.asarray` takes (lists, arrays, CPU
tensors); ``Tensorish``: a NumPy array or a torch tensor, used as it is; ``Device``: a torch device or its name.
Arrays follow :mod:`cryoforge.conventions` (``(Z, Y, X)`` volumes, ``(N, Y, X)`` stacks).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeAlias, Union

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import torch

PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
Tensorish: TypeAlias = Union[np.ndarray, "torch.Tensor"]
Device: TypeAlias = Union[str, "torch.device"]

__all__ = ["ArrayLike", "Device", "PathLike", "Tensorish"]
