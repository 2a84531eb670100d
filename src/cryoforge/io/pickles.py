"""Reading cryoDRGN's files without running pickled code.

``weights.N.pkl`` is a ``torch.save`` dict; it loads with ``weights_only=True``, allowing only numpy's array
reconstruction (cryoDRGN stores ``search_pose`` as numpy arrays). ``z.N.pkl``, pose and CTF ``.pkl`` files are
plain pickles of numpy arrays (``z.pkl``: two consecutive pickles, ``z_mu`` then ``z_logvar``); they go through
:class:`SafeUnpickler`, which refuses every global except numpy arrays, dtypes and scalars.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Any

    from ..hints import PathLike


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks to build an object that is not a plain array, number, string, list or dict."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays, plain containers and scalars; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module.startswith("numpy") and name.endswith("DType")):
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load {module}.{name}: only numpy arrays and plain containers are "
                                "read from cryoDRGN pickles (no code is run)")


MAX_DEPTH = 32
MAX_ELEMENTS = 1_000_000


def check_plain(obj: Any, what: str) -> None:
    """Refuse containers that would expand without bound: a list, tuple or dict met twice (shared references —
    a few KB of pickle can nest them into 2³⁰ elements), nested deeper than ``MAX_DEPTH`` or holding more than
    ``MAX_ELEMENTS`` items. cryoDRGN's files never share containers. Runs in time linear in the file."""
    seen: set[int] = set()
    count = 0
    stack = [(obj, 0)]
    while stack:
        x, depth = stack.pop()
        if not isinstance(x, (list, tuple, dict)):
            continue
        if id(x) in seen:
            raise UnsafePickleError(f"{what}: the same container appears twice (a pickle that expands without "
                                    "bound); cryoDRGN does not write such files")
        seen.add(id(x))
        if depth > MAX_DEPTH:
            raise UnsafePickleError(f"{what}: containers nested deeper than {MAX_DEPTH} levels")
        items = list(x.keys()) + list(x.values()) if isinstance(x, dict) else list(x)
        count += len(items)
        if count > MAX_ELEMENTS:
            raise UnsafePickleError(f"{what}: more than {MAX_ELEMENTS} items in lists, tuples or dicts; cryoDRGN "
                                    "stores its arrays as numpy arrays")
        stack.extend((i, depth + 1) for i in items)


def check_arrays(obj: Any, what: str, max_arrays: int = 2) -> None:
    """A cryoDRGN array file holds a numpy array, or a tuple / list of at most ``max_arrays`` of them."""
    parts = obj if isinstance(obj, (tuple, list)) else (obj,)
    if len(parts) > max_arrays or not all(isinstance(a, np.ndarray) for a in parts):
        kinds = ", ".join(type(a).__name__ for a in parts[:4])
        raise UnsafePickleError(f"{what}: expected numpy arrays (as cryoDRGN writes them), found {kinds}")


def load_pickles(path: PathLike, max_items: int = 2) -> list:
    """Up to ``max_items`` consecutive pickles from ``path``, read with :class:`SafeUnpickler` and checked with
    :func:`check_plain` (no unbounded containers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out: list = []
    with open(path, "rb") as fh:
        while len(out) < max_items:
            try:
                out.append(SafeUnpickler(fh).load())
            except EOFError:
                break
            except UnsafePickleError as err:
                raise UnsafePickleError(f"{path.name}: {err}") from None
            except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as err:
                raise pickle.UnpicklingError(f"{path.name}: not a readable pickle ({err})") from None
    if not out:
        raise pickle.UnpicklingError(f"{path.name}: empty pickle file")
    for item in out:
        check_plain(item, path.name)
    return out


def load_z(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """``(z_mu, z_logvar)`` of a cryoDRGN ``z.N.pkl`` (``z_logvar`` is None when the file holds only ``z_mu``)."""
    items = load_pickles(path)
    for item in items:
        check_arrays(item, Path(path).name, 1)
    mu = np.asarray(items[0], dtype=np.float32)
    if mu.ndim == 1:
        mu = mu[:, None]
    logvar = np.asarray(items[1], dtype=np.float32).reshape(mu.shape) if len(items) > 1 else None
    return mu, logvar


def load_poses(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """``(rotations (N, 3, 3), translations (N, 2) or None)`` of a cryoDRGN pose pickle (translations as stored:
    a fraction of the box in cryoDRGN ≥ 0.8)."""
    obj = load_pickles(path, 1)[0]
    check_arrays(obj, Path(path).name)
    if isinstance(obj, (tuple, list)):
        rot = np.asarray(obj[0], np.float32)
        trans = np.asarray(obj[1], np.float32) if len(obj) > 1 else None
    else:
        rot, trans = np.asarray(obj, np.float32), None
    if rot.ndim != 3 or rot.shape[1:] != (3, 3):
        raise ValueError(f"{Path(path).name}: expected rotation matrices (N, 3, 3), got {rot.shape}")
    return rot, trans


CTF_COLUMNS = ("D", "Apix", "dfu", "dfv", "dfang", "volt", "cs", "w", "phase_shift")


def load_ctf(path: PathLike) -> dict[str, np.ndarray]:
    """A cryoDRGN CTF pickle ``(N, 9)`` as named columns: image size, Å/px, defocus U/V (Å), angle (°), kV, Cs (mm),
    amplitude contrast, phase shift (°)."""
    obj = load_pickles(path, 1)[0]
    check_arrays(obj, Path(path).name, 1)
    arr = np.asarray(obj, np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(CTF_COLUMNS):
        raise ValueError(f"{Path(path).name}: expected a cryoDRGN CTF table (N, 9), got {arr.shape}")
    return {name: arr[:, i] for i, name in enumerate(CTF_COLUMNS)}


def refusal_reason(err: BaseException) -> str:
    """Why a ``weights_only`` load failed, in a few words and without torch's advice to load unsafely."""
    import re

    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    if m:
        return f"it asks to build {m.group(1)}: refused, no code was run"
    return f"{type(err).__name__}: not a plain torch.save of tensors and containers"


def load_weights(path: PathLike) -> dict:
    """A cryoDRGN ``weights.pkl`` as a dict, with ``weights_only=True`` (numpy arrays allowed, nothing else)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    dtypes = {type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")}
    allowed: list = [(_reconstruct, "numpy.core.multiarray._reconstruct"), (_reconstruct, "numpy._core.multiarray._reconstruct"),
               np.ndarray, np.dtype, *dtypes]
    try:
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"{path.name}: not a cryoDRGN weights file that loads safely ({refusal_reason(err)})") \
            from None
    if not isinstance(ckpt, dict) or "model_state_dict" not in ckpt:
        raise ValueError(f"{path.name}: no 'model_state_dict' in it; is this a cryoDRGN weights.pkl?")
    return ckpt
