"""Atomic writes: files and whole output folders appear complete or not at all; one writer at a time.

- :func:`atomic_path`: write to ``.NAME.PID-XXXX.part`` beside the target, then rename over it.
- :func:`atomic_dir`: build an output folder as ``.NAME.PID-XXXX.part`` and rename it into place at the end;
  a cancelled or failed job leaves the previous folder (or none) as it was, never a mix of two runs.
- :func:`exclusive_lock`: an advisory lock (``fcntl.flock`` on ``.NAME.lock``) that stops a second process from
  writing the same folder or training the same checkpoint.
- Temporary names carry the writer's process id: a ``.part`` left by a process that no longer runs (SIGKILL,
  power loss) is removed by the next write beside it (:func:`clean_stale_parts`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..hints import PathLike



class OutputError(ValueError):
    """An output cannot be written as asked (a folder of other files in the way, another writer at work)."""


def _part_name(path: Path, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_parts(path: PathLike) -> list[Path]:
    """Remove ``.NAME.PID-XXXX.part*`` files or folders beside ``path`` whose process no longer runs."""
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.glob(f".{path.name}.*.part*"):
        pid = p.name[len(path.name) + 2:].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def check_output_file(path: PathLike) -> Path:
    """Before any work: ``path`` can become a file (not a folder, its parent not a file)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{path}: {parent} is a file, not a folder")
            break
    return path


def check_output_dir(path: PathLike, marker: str) -> Path:
    """Before any work: ``path`` can become an output folder of :func:`atomic_dir` (absent, empty, or an earlier
    output holding ``marker``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; give a folder for the output")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise OutputError(f"{path}: holds other files and no {marker}: it is not an earlier output to replace; "
                          "choose a new or empty folder")
    check_output_file(path / marker)
    return path


@contextmanager
def atomic_path(path: PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, otherwise delete it.
    ``keep_suffix`` ends the temporary name with ``path``'s suffix (for writers that pick a format from it).

    A job cancelled inside the block (``GeneratorExit`` at a yield) or failing leaves ``path`` as it was.
    """
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_parts(path)
    tmp = _part_name(path, path.suffix if keep_suffix else "")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def exclusive_lock(path: PathLike, what: str = "written") -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (a file or folder, existing or not) while inside; a second
    holder gets :class:`OutputError` at once instead of mixing its output with the first's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fh = open(lock, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise OutputError(f"{path}: is being {what} by another process (pid {holder}); wait for it or choose "
                              "another path") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)
        finally:
            fh.close()  # closing releases the lock


@contextmanager
def atomic_dir(path: PathLike, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole, otherwise it is removed.

    ``marker`` names the file a finished output holds (``dataset.json``, ``analysis.json``): an existing ``path``
    is replaced only when it is empty or holds the marker (an earlier output of the same kind), never a folder of
    other files. The folder is locked (:func:`exclusive_lock`) while it is written.
    """
    path = check_output_dir(path, marker)
    with exclusive_lock(path):
        clean_stale_parts(path)
        tmp = _part_name(path)
        tmp.mkdir(parents=True)
        old = None
        try:
            yield tmp
            if not (tmp / marker).is_file():
                raise OutputError(f"{path}: the output was not completed (no {marker})")
            if path.exists():
                old = _part_name(path, ".old")
                os.replace(path, old)
            try:
                os.replace(tmp, path)
            except OSError:
                if old is not None:  # put the earlier output back
                    os.replace(old, path)
                    old = None
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and old.exists():
                shutil.rmtree(old, ignore_errors=True)
