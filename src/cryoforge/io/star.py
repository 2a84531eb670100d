"""RELION STAR particle metadata (poses and CTF) with starfile.

Reads RELION 3.0 (single table, origins in pixels) and 3.1+ (optics + particles, origins in Å);
writes RELION 3.1 with an optics table. Euler angles become rotation matrices here, at the I/O
boundary (:func:`cryoforge.conventions.euler_zyz_to_matrix`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import starfile

from ..conventions import euler_zyz_to_matrix, matrix_to_euler_zyz
from ..ctf import CTFParams
from .atomic import atomic_path

if TYPE_CHECKING:
    from ..hints import ArrayLike, PathLike


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
    "scale": ("rlnCtfScalefactor", 1.0),
}
ENVELOPE_FIELDS = ("bfactor", "scale")  # applied only when asked (use_ctf_envelope): cryoDRGN ignores them
OPTICS_COLUMNS = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnImagePixelSize")
ANGLE_COLUMNS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")


class StarError(ValueError):
    """A STAR file lacks what was asked of it; the message names the missing columns."""


class StarWarning(UserWarning):
    """A STAR field was ignored or looks wrong; the message says which and why."""


@dataclass
class ParticleMetadata:
    """Per-particle poses and CTF. ``rotations`` (N, 3, 3) follow :mod:`cryoforge.conventions`;
    ``shifts`` are (N, 2) ``(x, y)`` in Å (RELION's origin: image centre minus particle centre).

    ``pixel_sizes`` (N,) is each particle's pixel size in Å (its optics group's); ``pixel_size`` is one value
    for the image grid: the common one, or the first optics group's when they differ (as RELION does).
    ``notes`` says, in words, which fields were used or ignored and why.
    """

    image_names: list[str] | None = None
    rotations: np.ndarray | None = None
    shifts: np.ndarray | None = None
    ctf: CTFParams | None = None
    pixel_size: float | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    pixel_sizes: np.ndarray | None = None
    optics_groups: np.ndarray | None = None
    image_sizes: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    pixel_shifts: np.ndarray | None = None  # (N, 2) shifts in pixels as a file gave them (cryoDRGN pickles)

    def __len__(self) -> int:
        for x in (self.image_names, self.rotations, self.shifts, self.pixel_sizes):
            if x is not None:
                return len(x)
        if self.ctf is not None:
            return int(np.size(self.ctf.defocus_u))
        return len(self.table)

    def particle_pixel_sizes(self) -> np.ndarray:
        """``(N,)`` pixel sizes in Å; raises :class:`StarError` when the file gave none and none was passed."""
        if self.pixel_sizes is not None:
            return np.asarray(self.pixel_sizes, np.float64)
        if self.pixel_size is None:
            raise StarError(f"{self.source or 'the metadata'}: no pixel size (rlnImagePixelSize, rlnPixelSize, or "
                            "rlnDetectorPixelSize with rlnMagnification); give it (--apix Å)")
        return np.full(len(self), float(self.pixel_size))

    def shifts_px(self) -> np.ndarray | None:
        """Shifts ``(N, 2)`` in pixels, each particle by its own pixel size."""
        if self.shifts is None:
            return self.pixel_shifts
        return (np.asarray(self.shifts, np.float64) / self.particle_pixel_sizes()[:, None]).astype(np.float32)

    def check_finite(self) -> None:
        """Refuse metadata with NaN or infinite poses, shifts, pixel sizes or CTF values (a job would turn them into
        a NaN result): :class:`StarError` naming the fields and the first row."""
        fields = {"rotation": self.rotations, "shift": self.shifts, "pixel size": self.pixel_sizes}
        if self.ctf is not None:
            fields.update({f"CTF {k}": v for k, v in self.ctf.as_dict().items()})
        bad = []
        for name, v in fields.items():
            if v is None:
                continue
            a = np.asarray(v, np.float64)
            ok = np.isfinite(a).reshape(len(a), -1).all(1) if a.ndim else np.array([np.isfinite(a)])
            if not ok.all():
                bad.append(f"{name} (row {int(np.argmin(ok)) + 1}, {int((~ok).sum())} rows)")
        if bad:
            raise StarError(f"{self.source or 'the metadata'}: NaN or infinite values in " + ", ".join(bad))

    def take(self, rows: ArrayLike) -> ParticleMetadata:
        """The particles ``rows`` (indices), in that order."""
        rows = np.asarray(rows, dtype=np.int64)

        def pick(x):
            return None if x is None else np.asarray(x)[rows]

        ctf = None if self.ctf is None else CTFParams(**{k: (np.asarray(v)[rows] if np.ndim(v) else v)
                                                          for k, v in self.ctf.as_dict().items()})
        return ParticleMetadata(
            None if self.image_names is None else [self.image_names[i] for i in rows], pick(self.rotations),
            pick(self.shifts), ctf, self.pixel_size,
            self.table.iloc[rows].reset_index(drop=True) if len(self.table) == len(self) else self.table,
            pick(self.pixel_sizes), pick(self.optics_groups), pick(self.image_sizes), self.source, list(self.notes),
            pick(self.pixel_shifts))


def _merge_optics(path: Path, parts: pd.DataFrame, optics: pd.DataFrame | None, notes: list[str]) -> pd.DataFrame:
    """Every optics-group field onto its particles; a particle of a group the optics table lacks is an error."""
    if optics is None or not len(optics):
        return parts
    if "rlnOpticsGroup" not in parts:
        if len(optics) > 1:
            raise StarError(f"{path.name}: {len(optics)} optics groups but the particles have no rlnOpticsGroup "
                            "column: which group each particle belongs to is unknown")
        parts = parts.assign(rlnOpticsGroup=optics["rlnOpticsGroup"].iloc[0] if "rlnOpticsGroup" in optics else 1)
        notes.append("no rlnOpticsGroup column: every particle is in the only optics group")
    if "rlnOpticsGroup" not in optics:
        raise StarError(f"{path.name}: the optics table has no rlnOpticsGroup column")
    known = set(optics["rlnOpticsGroup"].tolist())
    missing = sorted(set(parts["rlnOpticsGroup"].tolist()) - known)
    if missing:
        bad = int(parts["rlnOpticsGroup"].isin(missing).sum())
        raise StarError(f"{path.name}: {bad} particles belong to optics group(s) {missing}, which the optics table "
                        f"does not define (it has {sorted(known)})")
    keep = [c for c in optics.columns if c not in parts.columns or c == "rlnOpticsGroup"]
    merged = parts.merge(optics[keep], on="rlnOpticsGroup", how="left", validate="many_to_one")
    shadowed = [c for c in optics.columns if c in parts.columns and c != "rlnOpticsGroup"]
    if shadowed:
        notes.append(f"per-particle {', '.join(shadowed)} take precedence over the optics table's")
    return merged


def _particle_table(path: Path, blocks: dict, notes: list[str]) -> tuple[pd.DataFrame, str]:
    if "particles" in blocks:
        parts = blocks["particles"]
        if not isinstance(parts, pd.DataFrame):
            raise StarError(f"{path.name}: data_particles is not a loop")
        optics = blocks.get("optics")
        kind = "RELION 5 (tomography)" if "rlnTomoName" in parts else "RELION 3.1+ (optics groups)"
        return _merge_optics(path, parts, optics if isinstance(optics, pd.DataFrame) else None, notes), kind
    tables = [v for v in blocks.values() if isinstance(v, pd.DataFrame) and len(v)]
    if not tables:
        raise StarError(f"{path.name}: no particle table found")
    return max(tables, key=len), "RELION 3.0 (one table)"


def _pixel_sizes(t: pd.DataFrame, override: float | None, notes: list[str]) -> np.ndarray | None:
    """Per-particle pixel size (Å): ``override``, else rlnImagePixelSize, rlnPixelSize, or detector µm / mag."""
    if override is not None:
        if not (np.isfinite(override) and override > 0):
            raise StarError(f"the pixel size must be a positive number of Å; got {override!r}")
        notes.append(f"pixel size {override:g} Å given by the user (the file's values are not used)")
        return np.full(len(t), float(override))
    px, used = None, None
    for col in ("rlnImagePixelSize", "rlnPixelSize"):
        if col in t:
            px, used = t[col].to_numpy(np.float64), col
            break
    if px is None and "rlnDetectorPixelSize" in t:
        if "rlnMagnification" in t:
            px = t["rlnDetectorPixelSize"].to_numpy(np.float64) * 1e4 / t["rlnMagnification"].to_numpy(np.float64)
            used = "rlnDetectorPixelSize (µm) × 10⁴ / rlnMagnification"
        else:
            notes.append("rlnDetectorPixelSize is the detector's pixel in µm, and without rlnMagnification it gives "
                         "no pixel size: ignored")
    if px is None:
        notes.append("no pixel size in the file (rlnImagePixelSize, rlnPixelSize, rlnDetectorPixelSize + "
                     "rlnMagnification)")
        return None
    if not (np.isfinite(px).all() and (px > 0).all()):
        raise StarError(f"{used} has values that are not positive numbers of Å")
    values = np.unique(np.round(px, 6))
    notes.append(f"pixel size from {used}: " + ", ".join(f"{v:g}" for v in values[:8]) + " Å"
                 + (f" (and {len(values) - 8} more)" if len(values) > 8 else ""))
    for col in ("rlnPixelSize", "rlnDetectorPixelSize"):
        if col in t and used is not None and not used.startswith(col):
            notes.append(f"{col} ignored: {used.split(' ')[0]} is preferred")
    return px


def _ctf(path: Path, t: pd.DataFrame, use_envelope: bool, notes: list[str]) -> CTFParams | None:
    if "rlnDefocusU" not in t:
        notes.append("no CTF (no rlnDefocusU column)")
        return None
    values = {}
    for name, (col, default) in CTF_COLUMNS.items():
        if col in t:
            values[name] = t[col].to_numpy(dtype=np.float32)
        elif col == "rlnDefocusV":
            values[name] = t["rlnDefocusU"].to_numpy(dtype=np.float32)
            notes.append("no rlnDefocusV: no astigmatism (V = U)")
        elif default is None:
            raise StarError(f"{path.name}: has defocus but no {col} column")
        else:
            values[name] = np.full(len(t), default, dtype=np.float32)
            if name == "amplitude_contrast":
                notes.append(f"no rlnAmplitudeContrast: {default} assumed")
    for name in ENVELOPE_FIELDS:
        col, neutral = CTF_COLUMNS[name]
        v = values[name]
        if col not in t or np.all(v == neutral):
            continue
        what = f"{col} ({np.nanmin(v):g} … {np.nanmax(v):g}{' Å²' if name == 'bfactor' else ''})"
        if use_envelope:
            notes.append(f"{what} applied, the envelope capped at 1")
        else:
            msg = f"{what} ignored, as cryoDRGN does; ask for it (--use-ctf-envelope) to apply it, capped at 1"
            notes.append(msg)
            warnings.warn(f"{path.name}: {msg}", StarWarning, stacklevel=3)
            values[name] = np.full(len(t), neutral, dtype=np.float32)
    swapped = int(np.sum(values["defocus_u"] < values["defocus_v"]))
    if swapped:
        notes.append(f"{swapped} particles have rlnDefocusU < rlnDefocusV: the same astigmatic CTF is computed "
                     "with U and V swapped and the angle + 90°")
    return CTFParams(**values)


def read_particles_star(path: PathLike, pixel_size: float | None = None,
                        use_ctf_envelope: bool = False) -> ParticleMetadata:
    """Read poses, shifts (Å), CTF and pixel size per particle from a RELION 3.0, 3.1 or 5 STAR file.

    Optics-group fields (pixel size, voltage, Cs, amplitude contrast, image size) are read per particle.
    The pixel size is, in order: ``pixel_size`` (Å, the user's), rlnImagePixelSize, rlnPixelSize,
    rlnDetectorPixelSize (µm) × 10⁴ / rlnMagnification; RELION 3.0 origins in pixels need one of them.
    rlnCtfBfactor and rlnCtfScalefactor are ignored (with a :class:`StarWarning`) unless ``use_ctf_envelope``.
    """
    path = Path(path)
    if not path.is_file():
        raise StarError(f"{path}: no such file")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # noqa: BLE001 - starfile raises many kinds; say it plainly
        raise StarError(f"{path.name}: not a readable STAR file ({err})") from err
    notes: list[str] = []
    t, kind = _particle_table(path, blocks, notes)
    t = t.reset_index(drop=True)
    px = _pixel_sizes(t, pixel_size, notes)
    meta = ParticleMetadata(table=t, pixel_sizes=px, source=f"{path.name} ({kind})", notes=notes)
    if px is not None:
        groups = t["rlnOpticsGroup"].to_numpy() if "rlnOpticsGroup" in t else None
        meta.pixel_size = float(px[0] if groups is None else px[np.argmin(groups)])
        if len(np.unique(px)) > 1:
            notes.append(f"pixel sizes differ between particles: each particle's CTF and shifts use its own; the "
                         f"image grid is taken as {meta.pixel_size:g} Å (the first optics group's)")
    if "rlnOpticsGroup" in t:
        meta.optics_groups = t["rlnOpticsGroup"].to_numpy(np.int64)
    if "rlnImageSize" in t:
        meta.image_sizes = t["rlnImageSize"].to_numpy(np.int64)
    if "rlnImageName" in t:
        meta.image_names = t["rlnImageName"].astype(str).tolist()
    if all(c in t for c in ANGLE_COLUMNS):
        ang = t[list(ANGLE_COLUMNS)].to_numpy(dtype=np.float64)
        meta.rotations = euler_zyz_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2]).numpy().astype(np.float32)
    if "rlnOriginXAngst" in t and "rlnOriginYAngst" in t:
        meta.shifts = t[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(dtype=np.float32)
    elif "rlnOriginX" in t and "rlnOriginY" in t:
        if px is None:
            raise StarError(f"{path.name}: origins are in pixels (RELION 3.0) and no pixel size is known; "
                            "pass pixel_size")
        meta.shifts = (t[["rlnOriginX", "rlnOriginY"]].to_numpy(dtype=np.float64) * px[:, None]).astype(np.float32)
        notes.append("rlnOriginX/Y are in pixels: converted to Å with each particle's pixel size")
    meta.ctf = _ctf(path, t, use_ctf_envelope, notes)
    return meta


def write_particles_star(path: PathLike, meta: ParticleMetadata) -> Path:
    """Write RELION 3.1 STAR (optics + particles) atomically. Needs ``pixel_size`` (or ``pixel_sizes``).

    One optics group per distinct (voltage, Cs, amplitude contrast, pixel size).
    """
    path = Path(path)
    n = len(meta)
    if meta.pixel_size is None and meta.pixel_sizes is None:
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
    optics_only = {*OPTICS_COLUMNS, "rlnOpticsGroup", "rlnOpticsGroupName", "rlnImageSize", "rlnImageDimensionality"}
    for col in meta.table.columns:  # extra per-particle columns (e.g. rlnClassNumber) pass through
        if col not in parts and col.startswith("rln") and col not in optics_only and len(meta.table) == n:
            parts[col] = meta.table[col].to_numpy()
    optics_keys = np.zeros((n, 4))
    optics_keys[:, 3] = meta.particle_pixel_sizes()
    if meta.ctf is not None:
        for name, (col, _) in CTF_COLUMNS.items():
            vals = np.broadcast_to(np.asarray(getattr(meta.ctf, name), dtype=np.float64), (n,))
            if col in OPTICS_COLUMNS:
                optics_keys[:, OPTICS_COLUMNS.index(col)] = vals
            else:
                parts[col] = vals
    groups, inverse = np.unique(optics_keys, axis=0, return_inverse=True)
    parts["rlnOpticsGroup"] = inverse.reshape(-1) + 1
    optics = pd.DataFrame({
        "rlnOpticsGroup": np.arange(1, len(groups) + 1),
        "rlnOpticsGroupName": [f"opticsGroup{i + 1}" for i in range(len(groups))],
        "rlnImagePixelSize": groups[:, 3],
        "rlnImageDimensionality": 2,
    })
    if meta.ctf is not None:
        optics["rlnVoltage"], optics["rlnSphericalAberration"], optics["rlnAmplitudeContrast"] = groups[:, :3].T
    with atomic_path(path) as tmp:
        starfile.write({"optics": optics, "particles": parts}, tmp, overwrite=True)
    return path
