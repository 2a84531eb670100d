"""npe2 writer: an image layer → float32 MRC with the voxel size taken from the layer's scale."""

from __future__ import annotations

from ._notify import report_error


def voxel_size_from_meta(meta: dict, ndim: int):
    """Voxel size ``(x, y, z)`` in Å from the layer's current ``scale`` (an edited scale is the truth; the voxel
    size recorded at read time is not used). The particle axis of a stack carries no length: its z is x."""
    rec = (meta.get("metadata") or {}).get("cryoforge") or {}
    scale = [float(v) for v in (meta.get("scale") or [1.0] * ndim)]
    x = scale[-1]
    y = scale[-2] if len(scale) > 1 else x
    image_stack = bool(rec.get("is_stack")) and not rec.get("is_volume_stack") and ndim == 3
    z = scale[-3] if len(scale) > 2 and not image_stack else x
    return (x, y, z)


def write_mrc(path: str, data, meta: dict) -> list[str]:
    import numpy as np

    from cryoforge.io.mrc import MrcError
    from cryoforge.io.mrc import write_mrc as engine_write

    arr = np.asarray(data)
    rec = (meta.get("metadata") or {}).get("cryoforge") or {}
    try:
        if arr.ndim > 4:
            raise MrcError(f"the layer holds {arr.ndim}-D data {arr.shape}; MRC files hold a volume, an image stack "
                           "or a stack of volumes")
        vs = voxel_size_from_meta(meta, arr.ndim)
        stack = bool(rec.get("is_stack")) or path.lower().endswith(".mrcs")
        engine_write(path, arr, vs, origin=rec.get("origin", (0.0, 0.0, 0.0)), stack=stack)
    except MrcError as err:
        report_error(f"Cannot save {meta.get('name', 'layer')}: {err}")
        return []
    return [path]
