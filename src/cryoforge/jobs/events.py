"""The typed events a job yields (see :mod:`cryoforge.jobs`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PREVIEW_VIEWS = ("volume", "image", "stack", "curve")


@dataclass
class Progress:
    """``step`` of ``total`` done; ``message`` says what is being done."""

    step: int
    total: int
    message: str = ""


@dataclass
class Metrics:
    """Named scalar figures (loss, resolution in Å, …) at ``step``."""

    values: dict[str, float]
    step: int | None = None


@dataclass
class Preview:
    """An array to show now. ``view``: 'volume' (Z,Y,X), 'image' (Y,X), 'stack' (N,Y,X),
    or 'curve' (2, n) rows x and y. ``meta`` may carry 'voxel_size' (Å), axis labels, …"""

    name: str
    array: np.ndarray
    view: str = "volume"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.view not in PREVIEW_VIEWS:
            raise ValueError(f"Preview view must be one of {PREVIEW_VIEWS}, got {self.view!r}")


@dataclass
class Log:
    """A message for the user (``level``: info or warning)."""

    message: str
    level: str = "info"


@dataclass
class Result:
    """The job's outcome; always the last event of a job that finished."""

    value: Any


Event = Progress | Metrics | Preview | Log | Result
