"""Latest-only scheduling for live decoding: while one decode runs, newer requests replace each other and
only the newest is decoded next, so a dragged slider never builds a queue (the explorer's worker uses this)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..jobs import Metrics, Result

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..hints import Tensorish
    from ..jobs import Event
    from ..latent import Manifold



class LatestOnly:
    """``submit(request)`` runs ``start(request)`` now if idle, else keeps it as the one pending request (replacing
    and counting as dropped any older pending one). The caller reports the end of a run with ``done()``."""

    def __init__(self, start: Callable[[Any], None]) -> None:
        self._start = start
        self.busy = False
        self.pending = None
        self.started = 0
        self.dropped = 0

    def submit(self, request: Any) -> None:
        if self.busy:
            if self.pending is not None:
                self.dropped += 1
            self.pending = request
            return
        self._run(request)

    def _run(self, request) -> None:
        self.busy = True
        self.started += 1
        self._start(request)

    def done(self) -> None:
        self.busy = False
        if self.pending is not None:
            request, self.pending = self.pending, None
            self._run(request)


def decode_job(manifold: Manifold, z: Tensorish) -> Iterator[Event]:
    """Job: decode one latent point; yields the decode time (ms) and the ``(z, volume)`` result."""
    z = np.asarray(z, np.float32)
    t = time.perf_counter()
    vol = manifold.decode_one(z)
    yield Metrics({"decode_ms": (time.perf_counter() - t) * 1000.0})
    yield Result((z, vol))


def path_job(manifold: Manifold, path_z: Tensorish) -> Iterator[Event]:
    """Job: decode every point of a latent path ``(T, d)`` in batches; result ``(T, D, D, D)`` float32."""
    from ..jobs import Progress

    path_z = np.asarray(path_z, np.float32)
    out = np.empty((len(path_z),) + (manifold.box,) * 3, np.float32)
    step = max(1, manifold.decode_batch)
    for s in range(0, len(path_z), step):
        yield Progress(s, len(path_z), "decoding the path")
        out[s:s + step] = manifold.decode(path_z[s:s + step]).numpy()
    yield Progress(len(path_z), len(path_z), "decoded")
    yield Result(out)
