"""RELION STAR particle metadata (poses and CTF) with starfile.

Reads RELION 3.0 (single table, origins in pixels) and 3.1+ (optics + particles, origins in Å);
writes RELION 3.1 with an optics table. Euler angles become rotation matrices here, at the I/O
boundary (:func:`cryoforge.conventions.euler_zyz_to_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from ..conventions import euler_zyz_to_matrix, matrix_to_euler_zyz
from ..ctf import CTFParams
from .atomic import atomic_path

# CTFParams field -> RELION column, default when the column is absent (None: required for a CTF)
CTF_COLUMNS = {
    "defocus_u": ("rlnDefocusU", None),
    "defocus_v": ("rlnDefocusV", None),
    "defocus_angle": ("rlnDefocusAngle", 0.0),
    "voltage": ("rlnVoltage", None),
    "cs": ("rlnSphericalAberration", None),
    "amplitude_contrast": ("rlnAmplitudeContrast", 0.1),
    "bfactor": ("rlnCtfBfactor", 0.0),
    "phase_shift": ("rlnPhaseShift", 0.0),
}
OPTICS_COLUMNS = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnImagePixelSize")
ANGLE_COLUMNS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")


class StarError(ValueError):
    """A STAR file lacks what was asked of it; the message names the missing columns."""


@dataclass
class ParticleMetadata:
    """Per-particle poses and CTF. ``rotations`` (N, 3, 3) follow :mod:`cryoforge.conventions`;
    ``shifts`` are (N, 2) ``(x, y)`` in Å (RELION's origin: image centre minus particle centre)."""

    image_names: list[str] | None = None
    rotations: np.ndarray | None = None
    shifts: np.ndarray | None = None
    ctf: CTFParams | None = None
    pixel_size: float | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __len__(self) -> int:
        for x in (self.image_names, self.rotations, self.shifts):
            if x is not None:
                return len(x)
        return len(self.table)


def _particle_table(blocks: dict) -> pd.DataFrame:
    if "particles" in blocks:
        parts = blocks["particles"]
        optics = blocks.get("optics")
        if optics is not None and "rlnOpticsGroup" in parts and "rlnOpticsGroup" in optics:
            keep = [c for c in optics.columns if c not in parts.columns or c == "rlnOpticsGroup"]
            parts = parts.merge(optics[keep], on="rlnOpticsGroup", how="left")
        return parts
    tables = [v for v in blocks.values() if isinstance(v, pd.DataFrame) and len(v)]
    if not tables:
        raise StarError("no particle table found")
    return max(tables, key=len)


def read_particles_star(path, pixel_size: float | None = None) -> ParticleMetadata:
    """Read poses, shifts (Å) and CTF per particle from a RELION STAR file.

    ``pixel_size`` (Å) overrides the file's and is needed for RELION 3.0 origins given in pixels.
    """
    path = Path(path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # noqa: BLE001 - starfile raises many kinds; say it plainly
        raise StarError(f"{path.name}: not a readable STAR file ({err})") from err
    try:
        t = _particle_table(blocks).reset_index(drop=True)
    except StarError as err:
        raise StarError(f"{path.name}: {err}") from None
    if pixel_size is None:
        for col in ("rlnImagePixelSize", "rlnPixelSize", "rlnDetectorPixelSize"):
            if col in t:
                pixel_size = float(t[col].iloc[0])
                break
    meta = ParticleMetadata(table=t, pixel_size=pixel_size)
    if "rlnImageName" in t:
        meta.image_names = t["rlnImageName"].astype(str).tolist()
    if all(c in t for c in ANGLE_COLUMNS):
        ang = t[list(ANGLE_COLUMNS)].to_numpy(dtype=np.float64)
        meta.rotations = euler_zyz_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2]).numpy().astype(np.float32)
    if "rlnOriginXAngst" in t and "rlnOriginYAngst" in t:
        meta.shifts = t[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(dtype=np.float32)
    elif "rlnOriginX" in t and "rlnOriginY" in t:
        if pixel_size is None:
            raise StarError(f"{path.name}: origins are in pixels (RELION 3.0) and no pixel size is known; "
                            "pass pixel_size")
        meta.shifts = t[["rlnOriginX", "rlnOriginY"]].to_numpy(dtype=np.float32) * np.float32(pixel_size)
    if "rlnDefocusU" in t:
        values = {}
        for name, (col, default) in CTF_COLUMNS.items():
            if col in t:
                values[name] = t[col].to_numpy(dtype=np.float32)
            elif col == "rlnDefocusV":
                values[name] = t["rlnDefocusU"].to_numpy(dtype=np.float32)
            elif default is None:
                raise StarError(f"{path.name}: has defocus but no {col} column")
            else:
                values[name] = np.full(len(t), default, dtype=np.float32)
        meta.ctf = CTFParams(**values)
    return meta


def write_particles_star(path, meta: ParticleMetadata) -> Path:
    """Write RELION 3.1 STAR (optics + particles) atomically. Needs ``pixel_size``."""
    path = Path(path)
    n = len(meta)
    if meta.pixel_size is None:
        raise StarError("writing a RELION 3.1 STAR file needs the pixel size (Å)")
    parts = pd.DataFrame(index=range(n))
    if meta.image_names is not None:
        parts["rlnImageName"] = meta.image_names
    if meta.rotations is not None:
        ang = matrix_to_euler_zyz(np.asarray(meta.rotations, dtype=np.float64)).numpy()
        for i, col in enumerate(ANGLE_COLUMNS):
            parts[col] = ang[:, i]
    if meta.shifts is not None:
        sh = np.asarray(meta.shifts, dtype=np.float64)
        parts["rlnOriginXAngst"], parts["rlnOriginYAngst"] = sh[:, 0], sh[:, 1]
    for col in meta.table.columns:  # extra per-particle columns (e.g. rlnClassNumber) pass through
        if col not in parts and col.startswith("rln") and len(meta.table) == n:
            parts[col] = meta.table[col].to_numpy()
    optics_keys = np.zeros((n, 3))
    if meta.ctf is not None:
        for name, (col, _) in CTF_COLUMNS.items():
            vals = np.broadcast_to(np.asarray(getattr(meta.ctf, name), dtype=np.float64), (n,))
            if col in OPTICS_COLUMNS:
                optics_keys[:, ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast").index(col)] = vals
            else:
                parts[col] = vals
    groups, inverse = np.unique(optics_keys, axis=0, return_inverse=True)
    parts["rlnOpticsGroup"] = inverse.reshape(-1) + 1
    optics = pd.DataFrame({
        "rlnOpticsGroup": np.arange(1, len(groups) + 1),
        "rlnOpticsGroupName": [f"opticsGroup{i + 1}" for i in range(len(groups))],
        "rlnImagePixelSize": float(meta.pixel_size),
        "rlnImageDimensionality": 2,
    })
    if meta.ctf is not None:
        optics["rlnVoltage"], optics["rlnSphericalAberration"], optics["rlnAmplitudeContrast"] = groups.T
    with atomic_path(path) as tmp:
        starfile.write({"optics": optics, "particles": parts}, tmp, overwrite=True)
    return path
