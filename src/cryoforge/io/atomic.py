"""Atomic file writes: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, keep_suffix: bool = False):
    """Yield a temporary path beside ``path``; on success rename it to ``path``, otherwise delete it.
    ``keep_suffix`` ends the temporary name with ``path``'s suffix (for writers that pick a format from it).

    A job cancelled inside the block (``GeneratorExit`` at a yield) or failing leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part" + (path.suffix if keep_suffix else ""))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
