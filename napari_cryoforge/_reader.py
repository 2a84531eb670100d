"""npe2 reader: MRC-family files → image layers with ``scale`` from the voxel size (Å)."""

from __future__ import annotations

import warnings
from pathlib import Path

from ._notify import report_error, report_warning

EXTENSIONS = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali")
# Unit of index axes (particle, subtomogram): napari compares units per world axis across layers and stops
# rendering units with a warning when a stack's index axis ("pixel") meets a volume's z ("angstrom"), so index
# axes carry the spatial unit too; their scale is 1 and their axis label says what they count.
INDEX_UNIT = "angstrom"
NULL_LAYER = [(None,)]
MMAP_BYTES = 256 << 20  # maps larger than this are memory-mapped, not read whole  # napari's sentinel for "nothing to add": no second reader, no traceback


def get_reader(path):
    """Return :func:`read_mrc_layers` for one MRC-family path, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str) or Path(path).suffix.lower() not in EXTENSIONS:
        return None
    return read_mrc_layers


def layer_data(data, info, name: str):
    """The LayerData tuple for an array and its :class:`cryoforge.io.mrc.MrcInfo`."""
    meta = {
        "name": name,
        "scale": info.layer_scale(),
        "colormap": "gray",
        "metadata": {"cryoforge": {"voxel_size": info.voxel_size, "is_stack": info.is_stack, "path": info.path,
                                   "origin": info.origin, "is_volume_stack": info.is_volume_stack}},
    }
    if info.is_volume_stack:
        meta["axis_labels"] = ("subtomogram", "z", "y", "x")
        meta["units"] = (INDEX_UNIT, "angstrom", "angstrom", "angstrom")
    elif info.is_stack:
        meta["axis_labels"] = ("particle", "y", "x")
        meta["units"] = (INDEX_UNIT, "angstrom", "angstrom")
    else:
        meta["axis_labels"] = ("z", "y", "x")
        meta["units"] = ("angstrom",) * 3
    return (data, meta, "image")


def read_mrc_layers(path, layout: str = "auto"):
    """Read one file; on a bad file show a clear message and add nothing. ``layout`` (``volume``, ``stack``)
    overrides the volume-or-stack rule of :mod:`cryoforge.io.mrc`."""
    from cryoforge.io.mrc import MrcError, read_mrc

    path = path[0] if isinstance(path, list) else path
    p = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # stacks and large maps are memory-mapped: napari reads only the planes it shows
            big = p.is_file() and p.stat().st_size > MMAP_BYTES
            data, info = read_mrc(p, mmap=big or p.suffix.lower() in (".mrcs", ".st", ".ali"), layout=layout)
    except MrcError as err:
        report_error(f"Cannot open {p.name}: {err}")
        return NULL_LAYER
    except MemoryError:
        report_error(f"Cannot open {p.name}: not enough memory to read it")
        return NULL_LAYER
    for w in caught:
        if not issubclass(w.category, ResourceWarning):  # the interpreter's housekeeping, not news about the file
            report_warning(str(w.message))
    return [layer_data(data, info, p.stem)]
