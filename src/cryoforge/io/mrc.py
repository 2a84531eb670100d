"""MRC / MRCS / MAP / REC files with mrcfile: permissive reading, float32 atomic writing.

Data come back as ``(Z, Y, X)`` volumes or ``(N, Y, X)`` stacks (:mod:`cryoforge.conventions`),
reordered when the header's MAPC/MAPR/MAPS say the file is stored in another axis order.

Volume or image stack — the one rule (:func:`data_layout`), first match wins:

1. the user's choice (``layout="volume"``, ``"stack"``; ``cryoforge info --as``, ``cryoforge view --as``);
2. 4-D data (MRC2014 ISPG 401) → a stack of volumes ``(N, Z, Y, X)``;
3. 2-D data → a stack of one image;
4. extension ``.mrcs``, ``.st``, ``.ali`` → an image stack;
5. a cube (``nz == ny == nx``) → a volume, whatever the ISPG (many tools write maps with ISPG 0; cryoDRGN
   reads a cubic ``.mrc`` as a volume);
6. ISPG 0 → an image stack (MRC2014: 0 means images);
7. ISPG ≥ 1 but no cell length along z (``cella.z == 0``) while ``nz > 1`` → an image stack: a volume has a
   z extent, and stacks written without a cell size (e.g. 7 × 320 × 320 with ISPG 1) otherwise pass for
   thin volumes;
8. otherwise a volume.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mrcfile
import numpy as np

from .atomic import atomic_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import ArrayLike, PathLike


MRC_EXTENSIONS = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali")
STACK_EXTENSIONS = (".mrcs", ".st", ".ali")


class MrcError(ValueError):
    """A file could not be read or written as MRC; the message says why in plain words."""


MRC_LAYOUTS = ("auto", "volume", "stack")


def data_layout(suffix: str, shape: tuple[int, ...], ispg: int, cell_z: float, layout: str = "auto") -> tuple[str, str]:
    """``('volume' | 'stack' | 'volume stack', reason)`` by the module's rule, for data of ``shape`` as stored."""
    if layout not in MRC_LAYOUTS:
        raise MrcError(f"layout must be one of {MRC_LAYOUTS}; got {layout!r}")
    if len(shape) == 4:
        if layout == "volume":
            raise MrcError(f"the file holds a stack of volumes {tuple(shape)}; it cannot be read as one volume")
        return "volume stack", "4-D data (ISPG 401)"
    if len(shape) == 2:
        if layout == "volume":
            raise MrcError(f"the file holds one 2-D image {tuple(shape)}; it cannot be read as a volume")
        return "stack", "a single 2-D image"
    if layout != "auto":
        return layout, "as asked"
    if suffix.lower() in STACK_EXTENSIONS:
        return "stack", f"extension {suffix}"
    if shape[0] == shape[1] == shape[2]:
        return "volume", "a cube" + (" (ISPG 0 notwithstanding)" if ispg == 0 else "")
    if ispg == 0:
        return "stack", "ISPG 0 (images)"
    if cell_z == 0 and shape[0] > 1:
        return "stack", f"ISPG {ispg} but no cell length along z"
    return "volume", f"ISPG {ispg}"


class MrcWarning(UserWarning):
    """Something in an MRC file is unusual but readable (NaN values, missing voxel size, old header)."""


@dataclass
class MrcInfo:
    """What an MRC header says: shape, voxel size (Å), origin, mode, and whether the data is a stack."""

    path: str
    shape: tuple[int, ...]  # (Z, Y, X), (N, Y, X), or (N, Z, Y, X) for a volume stack
    voxel_size: tuple[float, float, float]  # Å, (x, y, z)
    origin: tuple[float, float, float]  # Å, (x, y, z)
    is_stack: bool
    file_dtype: str
    has_nonfinite: bool
    voxel_size_missing: bool = False
    is_volume_stack: bool = False
    layout_reason: str = ""  # why the data was read as a volume or a stack (the module's rule)

    @property
    def layout(self) -> str:
        """``'volume'``, ``'stack'`` (of images) or ``'volume stack'``."""
        return "volume stack" if self.is_volume_stack else "stack" if self.is_stack else "volume"

    @property
    def pixel_size(self) -> float:
        """The x voxel size in Å (the one used where a single value is needed)."""
        return self.voxel_size[0]

    def layer_scale(self) -> tuple[float, ...]:
        """Layer ``scale`` for this data: voxel size per axis, the particle axis of a stack scaled 1."""
        vx, vy, vz = self.voxel_size
        if self.is_volume_stack:
            return (1.0, vz, vy, vx)
        return (1.0, vy, vx) if self.is_stack else (vz, vy, vx)


MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}  # real modes; 3 and 4 are complex, 101 packed 4-bit
COMPLEX_MODES = (3, 4)


def header_check(path: Path) -> str | None:
    """Why the file is not MRC by its own header (``None`` when it is): the data mode must be one MRC defines and
    ``1024 + NSYMBT + NX·NY·NZ·bytes`` must be the file's length. Reads 1024 bytes, allocates nothing more."""
    size = path.stat().st_size
    if size < 1024:
        return f"{size} bytes, shorter than an MRC header (1024)"
    if size < 4096:
        head = path.read_bytes()[:1024]
    else:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    for order in ("<", ">"):
        words = np.frombuffer(head, dtype=f"{order}i4")
        nx, ny, nz, mode, nsymbt = (int(words[i]) for i in (0, 1, 2, 3, 23))
        if mode in MODE_BYTES or mode in COMPLEX_MODES or mode == 101:
            break
    else:
        return "its header names no MRC data mode (not an MRC file?)"
    if min(nx, ny, nz) < 1 or nsymbt < 0:
        return f"its header gives sizes {nx} × {ny} × {nz} (not an MRC file?)"
    if mode in COMPLEX_MODES:
        return f"complex data (mode {mode}); cryoforge reads real maps only, and would lose the imaginary part"
    bits = 4 if mode == 101 else 8 * MODE_BYTES[mode]
    expected = 1024 + nsymbt + (nx * bits + 7) // 8 * ny * nz if mode == 101 else 1024 + nsymbt + nx * ny * nz * bits // 8
    if size < expected:
        return (f"it holds {size} bytes where its header announces {expected}: truncated (an incomplete copy or "
                "download), or not an MRC file")
    if size > expected:
        return f"it holds {size} bytes where its header announces {expected}: not an MRC file, or a damaged one"
    return None


def _open(path: Path, mmap: bool, permissive: bool = False):
    opener = mrcfile.mmap if mmap else mrcfile.open
    notes: list[str] = []
    bad = header_check(path)
    if bad and not permissive:
        raise MrcError(f"{path.name}: not a readable MRC file: {bad}")
    try:
        return opener(path, mode="r"), notes
    except ValueError as strict_error:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                mrc = opener(path, mode="r", permissive=True)
            except (ValueError, EOFError, OSError):
                mrc = None
        notes = [str(w.message) for w in caught]
        if mrc is None or mrc.data is None:
            if mrc is not None:
                mrc.close()
            raise MrcError(
                f"{path.name}: not a readable MRC file ({strict_error}). "
                "It may be truncated (an incomplete copy or download) or not an MRC file at all."
            ) from None
        return mrc, notes


def _axis_permutation(header) -> tuple[int, ...] | None:
    order = (int(header.maps), int(header.mapr), int(header.mapc))  # axis (1=X,2=Y,3=Z) of array dims 0,1,2
    if order == (3, 2, 1) or sorted(order) != [1, 2, 3]:
        return None
    return tuple(int(i) for i in np.argsort([-a for a in order]))


def release_pages(data: object) -> None:
    """Drop the pages of a memory-mapped array from this process's resident memory (``madvise(MADV_DONTNEED)`` on a
    read-only file map: they stay in the OS's page cache, and a later read maps them again). What keeps the memory
    of a job reading a stack bounded by its batch rather than by the part of the file it has read so far. Does
    nothing for an array in memory."""
    import mmap

    mm = getattr(data, "_mmap", None)  # numpy.memmap (and its views) keep the map here
    if isinstance(mm, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED") and not mm.closed:
        mm.madvise(mmap.MADV_DONTNEED)


def read_rows(data: Any, rows: Any, chunk: int = 64) -> np.ndarray:
    """Rows ``rows`` of a (memory-mapped) stack as float32, releasing the map's pages every ``chunk`` rows: a page
    fault may map a whole large folio of the file (≈ 1 MiB on this machine's ext4), so 1 000 rows spread through a
    1.6 GB stack left 1.1 GB resident when read at once; read this way the peak grew by 97 MiB."""
    rows = np.atleast_1d(np.asarray(rows))
    out = np.empty((len(rows), *data.shape[1:]), np.float32)
    for s in range(0, len(rows), chunk):
        for k, i in enumerate(rows[s:s + chunk], start=s):
            out[k] = data[int(i)]
        release_pages(data)
    return out


class StoredStack:
    """A stack on disk read by memory map, never whole: indexing with a slice gives another lazy stack, with an
    integer or an index array the rows as float32 (``× scale + offset``: the quantised storage of a pair dataset),
    after which the map's pages are released (:func:`release_pages`). ``np.asarray`` reads all of it."""

    def __init__(self, data: np.ndarray, scale: float = 1.0, offset: float = 0.0) -> None:
        self.data, self.scale, self.offset = data, np.float32(scale), np.float32(offset)
        self.shape: tuple[int, ...] = tuple(data.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return StoredStack(self.data[key], float(self.scale), float(self.offset))
        if np.ndim(key) == 0:
            out = np.asarray(self.data[key], np.float32)
            release_pages(self.data)
        else:
            out = read_rows(self.data, key)
        return out * self.scale + self.offset

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[np.arange(len(self))] if len(self) else np.zeros(self.shape, np.float32)
        return out if dtype is None else out.astype(dtype, copy=False)


class StoredStacks:
    """Several stacks on disk (memory maps of one image shape) read as one, never whole: an integer or an index
    array gives the rows as float32 from the stacks that hold them, their pages released after (:func:`read_rows`).
    ``np.asarray`` reads all of it."""

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        if not parts or len({tuple(p.shape[1:]) for p in parts}) != 1:
            raise ValueError("StoredStacks joins one or more stacks of one image shape")
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape: tuple[int, ...] = (int(self.starts[-1]), *parts[0].shape[1:])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = np.asarray(key)
        flat = np.atleast_1d(rows).astype(np.int64)
        if flat.size and (flat.min() < -len(self) or flat.max() >= len(self)):
            raise IndexError(f"rows {flat.min()}…{flat.max()} of a stack of {len(self)}")
        flat = flat % max(len(self), 1)
        part = np.searchsorted(self.starts, flat, side="right") - 1
        out = np.empty((len(flat), *self.shape[1:]), np.float32)
        for k in np.unique(part):
            sel = part == k
            out[sel] = read_rows(self.parts[k], flat[sel] - self.starts[k])
        return out[0] if rows.ndim == 0 else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype, copy=False)


def data_stats(data: np.ndarray, chunk_bytes: int = 64 << 20) -> dict:
    """``n`` (finite values), min, max, mean and std of the finite values of a (memory-mapped) array, a few
    sections at a time (never the whole array in float64; a memory map's pages released after each)."""
    flat = data.reshape(-1, *data.shape[-2:]) if data.ndim > 2 else data[None]
    per = max(1, chunk_bytes // max(1, flat[0].size * 8))
    n, lo, hi, s1, s2 = 0, np.inf, -np.inf, 0.0, 0.0
    for i in range(0, len(flat), per):
        block = np.asarray(flat[i:i + per], dtype=np.float64)
        v = block[np.isfinite(block)]
        if v.size:
            n, lo, hi = n + v.size, min(lo, float(v.min())), max(hi, float(v.max()))
            s1, s2 = s1 + float(v.sum()), s2 + float((v * v).sum())
        release_pages(data)
    mean = s1 / n if n else float("nan")
    std = float(np.sqrt(max(s2 / n - mean * mean, 0.0))) if n else float("nan")
    return {"n": n, "size": int(np.prod(data.shape)), "min": lo, "max": hi, "mean": mean, "std": std}


def read_mrc(path: PathLike, mmap: bool = False, layout: str = "auto", permissive: bool = False,
             finite: bool = False) -> tuple[np.ndarray, MrcInfo]:
    """Read an MRC-family file → ``(data, info)``; ``data`` is float32, or a read-only memmap when ``mmap``.

    A stack of volumes (MRC2014 ISPG 401) comes back as ``(N, Z, Y, X)`` with ``info.is_volume_stack``.
    Volume or image stack follows the module's rule; ``layout`` (``'volume'``, ``'stack'``) overrides it.
    A file whose header does not describe it (:func:`header_check`: data mode, sizes against the file's length)
    is refused unless ``permissive``; one with a valid layout but a non-standard header is read with a warning.
    With ``finite`` (the inputs of jobs), NaN or infinite values are an error instead of a warning: no job turns
    them into a result.
    Raises :class:`MrcError` with a clear message for missing, truncated or non-MRC files;
    warns (:class:`MrcWarning`) about NaN/inf values and a missing voxel size.
    """
    path = Path(path)
    if path.is_dir():
        raise MrcError(f"{path}: is a folder, not an MRC file")
    if not path.is_file():
        raise MrcError(f"{path}: no such file")
    mrc, notes = _open(path, mmap, permissive)
    with mrc:
        if notes:
            warnings.warn(f"{path.name}: header is not MRC2014-compliant, read permissively ({notes[0]})",
                          MrcWarning, stacklevel=2)
        raw = mrc.data
        what, reason = data_layout(path.suffix, raw.shape, int(mrc.header.ispg), float(mrc.header.cella.z), layout)
        volume_stack, is_stack = what == "volume stack", what == "stack"
        vs = tuple(float(v) for v in (mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z))
        origin = tuple(float(v) for v in (mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z))
        perm = _axis_permutation(mrc.header) if raw.ndim == 3 else None
        data: np.ndarray
        if mmap:
            data = np.memmap(path, dtype=raw.dtype, mode="r", offset=int(mrc.header.nsymbt) + 1024, shape=raw.shape)
        else:
            data = np.asarray(raw, dtype=np.float32).copy()
        file_dtype = str(raw.dtype)
    if raw.ndim == 2:
        data = data[None]
    if perm is not None:
        data = np.transpose(data, perm)
    missing = not all(v > 0 for v in (vs[:2] if is_stack else vs))  # a stack's z spacing is not a length
    if missing:
        warnings.warn(f"{path.name}: no voxel size in the header; assuming 1 Å", MrcWarning, stacklevel=2)
        vs = (1.0, 1.0, 1.0)
    if is_stack:
        vs = (vs[0], vs[1], vs[0])  # z spacing of a stack is meaningless; keep x
    if finite:
        stats = data_stats(data)
        if stats["n"] < stats["size"]:
            raise MrcError(f"{path.name}: {stats['size'] - stats['n']} NaN or infinite values; cryoforge computes on "
                           "finite data only (fill or mask them first)")
    probe = data[:1] if mmap else data
    nonfinite = not bool(np.isfinite(probe).all())
    if nonfinite:
        warnings.warn(f"{path.name}: contains NaN or infinite values", MrcWarning, stacklevel=2)
    info = MrcInfo(str(path), tuple(data.shape), (vs[0], vs[1], vs[2]), (origin[0], origin[1], origin[2]), is_stack, file_dtype, nonfinite, missing, volume_stack,
                   reason)
    return data, info


WRITE_DTYPES = ("float32", "float16", "int8")


def write_mrc(path: PathLike, data: ArrayLike, voxel_size: float = 1.0, origin: Sequence[float] = (0.0, 0.0, 0.0),
              stack: bool | None = None,
              dtype: str = "float32") -> Path:
    """Write ``data`` as MRC, atomically (temp file + rename).

    ``data``: (Z, Y, X), (N, Y, X), (Y, X) or a stack of volumes (N, Z, Y, X) (MRC2014 ISPG 401).
    ``voxel_size`` in Å (a number or ``(x, y, z)``); ``stack`` defaults to True for ``.mrcs``.
    ``dtype``: float32 (mode 2), float16 (mode 12) or int8 (mode 0; values must be integers in
    [-128, 127], e.g. data already quantised by the caller).
    """
    path = Path(path)
    arr = np.asarray(data)
    if arr.ndim not in (2, 3, 4):
        raise MrcError(f"cannot write {arr.ndim}-D data {arr.shape} as MRC: need (Z, Y, X), (N, Y, X), (Y, X) "
                       "or a stack of volumes (N, Z, Y, X)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise MrcError(f"cannot write data of type {arr.dtype} as MRC (need real numbers)")
    if dtype not in WRITE_DTYPES:
        raise MrcError(f"dtype must be one of {WRITE_DTYPES}; got {dtype!r}")
    if dtype == "int8" and (np.any(arr != np.round(arr)) or arr.min() < -128 or arr.max() > 127):
        raise MrcError("int8 MRC data must be integers in [-128, 127]; quantise before writing")
    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
    if not np.isfinite(arr).all():
        warnings.warn(f"{path.name}: writing data that contain NaN or infinite values", MrcWarning, stacklevel=2)
    stack = path.suffix.lower() in STACK_EXTENSIONS if stack is None else stack
    vs = tuple(float(v) for v in np.broadcast_to(np.asarray(voxel_size, dtype=float), (3,)))
    if not all(np.isfinite(v) and v > 0 for v in vs):
        raise MrcError(f"the voxel size must be positive numbers of Å; got {voxel_size!r}")
    if not all(np.isfinite(float(o)) for o in origin):
        raise MrcError(f"the origin must be finite numbers of Å; got {origin!r}")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(arr)
            if stack and arr.ndim == 3:
                mrc.set_image_stack()
            mrc.voxel_size = vs
            mrc.header.origin = tuple(float(o) for o in origin)
            mrc.update_header_stats()
    return path
