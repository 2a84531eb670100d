"""Particle lists of tomograms in and out: RELION 5 and RELION 3/4 STAR, Dynamo tables, plain ``x y z`` text.

One in-memory form, :class:`TomoParticles`: per particle the name of its tomogram, its position in Å from the
tomogram's centre (``x, y, z``: RELION 5's centred coordinates, every origin shift applied) and its rotation (a 3×3
matrix of :mod:`cryoforge.conventions`: the particle is the reference rotated by ``R``), beside the file's other
columns. Each format's convention, stated once here (:mod:`cryoforge.conventions` points here):

RELION 5 (``rlnCenteredCoordinate{X,Y,Z}Angst``)
    Å from the centre of the tomogram, the centre being the point ``size / 2`` of the unbinned tomogram in
    0-based voxel coordinates (RELION's ``TomogramSet``: ``centre = (w, h, d) / 2``). As RELION's
    ``ParticleSet`` reads a particle: rotation ``A_subtomogram · A_particle`` and position ``p − A_subtomogram · o``,
    with ``A = euler_zyz_to_matrix(rot, tilt, psi)`` of ``rlnTomoSubtomogram{Rot,Tilt,Psi}`` (identity when
    absent) and of ``rlnAngle{Rot,Tilt,Psi}``, ``o = rlnOrigin{X,Y,Z}Angst``. Written with the subtomogram angles
    and origins folded in (``rlnAngle*`` only, no ``rlnOrigin*``), which RELION reads as the same particles.
RELION 3/4 (``rlnCoordinate{X,Y,Z}``)
    0-based voxel coordinates of the tomogram (as RELION 5 reads a RELION 4 set), the origin subtracted the same
    way (``rlnOrigin{X,Y,Z}Angst``, or RELION 3.0's ``rlnOrigin{X,Y,Z}`` in voxels). Centring them needs the voxel
    size (``rlnTomoTiltSeriesPixelSize``, ``rlnImagePixelSize`` or ``rlnPixelSize`` of the file, else given) and
    the tomogram's size.
Dynamo ``.tbl`` (Dynamo's ``dthelp`` columns: 4–6 ``dx dy dz``, 7–9 ``tdrot tilt narot``, 20 ``tomo``, 24–26 ``x y z``)
    Position ``(x + dx, y + dy, z + dz)`` in voxels, read like RELION 4 coordinates (no ±1: converters between the
    two copy the numbers). Rotation ``(Rz(narot) · Rx(tilt) · Rz(tdrot))ᵀ``: Dynamo's matrix aligns the particle
    onto the reference, ours the reference onto the particle. The pair Dynamo ``(−47.273, 1.1777, −132.3)`` =
    RELION ``(137.7, 1.1777, 42.727)`` (the eulerangles package's test of the two programs) holds for these
    formulas; a test checks it.
Plain text (``.txt``, ``.coords``, ``.xyz``)
    One particle per line, ``x y z`` in voxels (like RELION 4); no rotations (identity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..conventions import euler_zyz_to_matrix, matrix_to_euler_zyz
from .atomic import atomic_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import ArrayLike, PathLike

CENTRED = ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst")
COORDINATES = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
SUBTOMOGRAM_ANGLES = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
ORIGINS_A = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
ORIGINS_PX = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")
PIXEL_SIZE_COLUMNS = ("rlnTomoTiltSeriesPixelSize", "rlnImagePixelSize", "rlnPixelSize")
# columns a reader turns into positions, rotations, names and the voxel size (the rest stays in the table)
HANDLED_COLUMNS = set(CENTRED + COORDINATES + ANGLES + SUBTOMOGRAM_ANGLES + ORIGINS_A + ORIGINS_PX
                      + ("rlnTomoName", "rlnOpticsGroup") + PIXEL_SIZE_COLUMNS)
DYNAMO_COLUMNS = 35  # Dynamo's table width (columns past 35 are free)
TEXT_SUFFIXES = (".txt", ".coords", ".xyz")


class ParticleListError(ValueError):
    """A particle list that cannot be read as asked; the message says what is missing and how to give it."""


@dataclass
class TomoParticles:
    """Particles in tomograms: ``positions`` ``(N, 3)`` Å from the tomogram centre (x, y, z), ``rotations``
    ``(N, 3, 3)``, ``tomograms`` ``(N,)`` names, the file's other columns (``table``, one row per particle), where
    they came from (``source``) and the tomograms' voxel size in Å when the file records it (or it was given)."""

    positions: np.ndarray
    rotations: np.ndarray
    tomograms: np.ndarray
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    source: str = ""
    voxel_size: float | None = None

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, np.float64).reshape(-1, 3)
        n = len(self.positions)
        self.rotations = np.asarray(self.rotations, np.float64).reshape(n, 3, 3)
        self.tomograms = np.asarray(self.tomograms, dtype=object).reshape(n)
        if len(self.table) not in (0, n):
            raise ParticleListError(f"{len(self.table)} table rows for {n} particles")
        bad = ~np.isfinite(self.positions).all(1) | ~np.isfinite(self.rotations).reshape(n, -1).all(1)
        if bad.any():
            raise ParticleListError(f"{self.source or 'particle list'}: {int(bad.sum())} particles have NaN or "
                                    f"infinite positions or angles (first: row {int(np.argmax(bad)) + 1})")

    def __len__(self) -> int:
        return len(self.positions)

    @classmethod
    def from_voxels(cls, xyz: ArrayLike, voxel_size: float, shape: Sequence[int], rotations: ArrayLike | None = None,
                    tomograms: Sequence[str] | np.ndarray | str = "tomogram", table: pd.DataFrame | None = None,
                    source: str = "") -> TomoParticles:
        """Particles at voxel coordinates ``xyz`` ``(N, 3)`` (x, y, z; 0-based) of a tomogram of ``shape``
        ``(Z, Y, X)`` sampled at ``voxel_size`` Å."""
        xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        n = len(xyz)
        rot = np.broadcast_to(np.eye(3), (n, 3, 3)) if rotations is None else np.asarray(rotations, np.float64)
        names = np.full(n, tomograms, dtype=object) if isinstance(tomograms, str) else np.asarray(tomograms, object)
        return cls((xyz - tomogram_centre(shape)) * _voxel(voxel_size), rot, names,
                   pd.DataFrame() if table is None else table.reset_index(drop=True), source, float(voxel_size))

    def voxels(self, voxel_size: float, shape: Sequence[int]) -> np.ndarray:
        """Positions as 0-based voxel coordinates ``(N, 3)`` (x, y, z) of a tomogram of ``shape`` ``(Z, Y, X)``
        sampled at ``voxel_size`` Å."""
        return self.positions / _voxel(voxel_size) + tomogram_centre(shape)

    def take(self, rows: ArrayLike) -> TomoParticles:
        """The particles ``rows`` (indices or a boolean mask), in that order."""
        idx = np.arange(len(self))[np.asarray(rows)]
        table = self.table.iloc[idx].reset_index(drop=True) if len(self.table) else self.table
        return TomoParticles(self.positions[idx], self.rotations[idx], self.tomograms[idx], table, self.source,
                             self.voxel_size)


def tomogram_centre(shape: Sequence[int]) -> np.ndarray:
    """The centre ``(x, y, z)`` in 0-based voxel coordinates of a tomogram of ``shape`` ``(Z, Y, X)``: ``size / 2``
    per axis, as RELION 5 (for an even size, the voxel ``n // 2`` of :mod:`cryoforge.conventions`)."""
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ParticleListError(f"a tomogram shape is (Z, Y, X) with positive sizes; got {tuple(shape)}")
    return np.asarray(shape[::-1], np.float64) / 2.0


def _voxel(voxel_size: float | None) -> float:
    if voxel_size is None or not (float(voxel_size) > 0 and math.isfinite(float(voxel_size))):
        raise ParticleListError(f"the voxel size must be a positive number of Å; got {voxel_size!r}")
    return float(voxel_size)


def _rotation_zxz(phi: np.ndarray, theta: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """``Rz(psi) · Rx(theta) · Rz(phi)`` (degrees, active rotations on (x, y, z) column vectors)."""
    def rz(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        z, o = np.zeros_like(c), np.ones_like(c)
        return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*c.shape, 3, 3)

    def rx(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        z, o = np.zeros_like(c), np.ones_like(c)
        return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*c.shape, 3, 3)

    return rz(psi) @ rx(theta) @ rz(phi)


def dynamo_to_matrix(tdrot: ArrayLike, tilt: ArrayLike, narot: ArrayLike) -> np.ndarray:
    """Dynamo's ``(tdrot, tilt, narot)`` (ZXZ, degrees) → rotation matrices of :mod:`cryoforge.conventions`."""
    return np.swapaxes(_rotation_zxz(np.asarray(tdrot, np.float64), np.asarray(tilt, np.float64),
                                     np.asarray(narot, np.float64)), -1, -2)


def matrix_to_dynamo(matrix: ArrayLike) -> np.ndarray:
    """Rotation matrices → Dynamo's ``(tdrot, tilt, narot)`` in degrees, ``(..., 3)``; ``tilt`` in ``[0, 180]``."""
    m = np.swapaxes(np.asarray(matrix, np.float64), -1, -2)  # Dynamo's: Rz(narot) Rx(tilt) Rz(tdrot)
    sin_tilt = np.hypot(m[..., 2, 0], m[..., 2, 1])
    tilt = np.degrees(np.arctan2(sin_tilt, m[..., 2, 2]))
    lock = sin_tilt < 1e-12
    # m[2] = (sin t sin φ, sin t cos φ, cos t); m[:, 2] = (sin ψ sin t, −cos ψ sin t, cos t)
    tdrot = np.where(lock, 0.0, np.degrees(np.arctan2(m[..., 2, 0], m[..., 2, 1])))
    narot = np.where(lock, np.degrees(np.arctan2(m[..., 1, 0], m[..., 0, 0])),
                     np.degrees(np.arctan2(m[..., 0, 2], -m[..., 1, 2])))
    return np.stack([tdrot, tilt, narot], -1)


# ------------------------------------------------------------------------------------------------ reading
def read_particle_list(path: PathLike, voxel_size: float | None = None, shape: Sequence[int] | None = None,
                       tomogram: str | None = None) -> TomoParticles:
    """Read a particle list, its format told by its content: RELION 5 or RELION 3/4 STAR, a Dynamo ``.tbl``, or
    ``x y z`` text (module docstring). Voxel coordinates (RELION 3/4, Dynamo, text) need the tomogram's ``shape``
    ``(Z, Y, X)`` and the ``voxel_size`` (Å; a STAR file's own wins); ``tomogram`` names the tomogram of a list
    that does not (default: the file's stem)."""
    path = Path(path)
    if not path.is_file():
        raise ParticleListError(f"{path}: no such particle list")
    if path.suffix == ".star":
        return _read_star(path, voxel_size, shape, tomogram)
    if path.suffix == ".tbl":
        return _read_dynamo(path, voxel_size, shape, tomogram)
    if path.suffix in TEXT_SUFFIXES:
        return _read_text(path, voxel_size, shape, tomogram)
    raise ParticleListError(f"{path.name}: a particle list is a .star (RELION), .tbl (Dynamo) or "
                            f"{'/'.join(TEXT_SUFFIXES)} (x y z) file")


def particles_of(particles: TomoParticles, name: str, tomogram: str = "the tomogram") -> TomoParticles:
    """The particles of tomogram ``name`` from a list of several (all of a list of one); ``tomogram`` names the
    file in the message when ``name`` is not in the list."""
    names = sorted(set(particles.tomograms.tolist()))
    if len(names) <= 1:
        return particles
    if name not in names:
        raise ParticleListError(f"{Path(particles.source).name or 'the list'} holds particles of {len(names)} "
                                f"tomograms ({', '.join(names[:6])}{', …' if len(names) > 6 else ''}); say which is "
                                f"{tomogram} with --name")
    return particles.take(particles.tomograms == name)


def read_tomogram_particles(tomogram: PathLike, particles: PathLike, voxel_size: float | None = None,
                            name: str | None = None) -> tuple[np.ndarray, float, TomoParticles, int]:
    """A tomogram (memory-mapped ``(Z, Y, X)``), its voxel size (``voxel_size`` or the header's), its particles
    from ``particles`` (:func:`read_particle_list`, :func:`particles_of`; ``name`` default: the tomogram's stem)
    and how many particles the whole list holds."""
    from .mrc import read_mrc

    data, info = read_mrc(tomogram, mmap=True, layout="volume", finite=True)
    vs = voxel_size or float(info.voxel_size[0])
    label = name or Path(tomogram).stem
    whole = read_particle_list(particles, vs, data.shape, label)
    return data, vs, particles_of(whole, label, Path(tomogram).name), len(whole)


def _need_grid(path: Path, what: str, voxel_size: float | None, shape: Sequence[int] | None) -> tuple[float, tuple]:
    if voxel_size is None or shape is None:
        missing = " and ".join(n for n, v in (("the voxel size (--voxel-size Å)", voxel_size),
                                              ("the tomogram's shape (--tomogram TOMO.mrc)", shape)) if v is None)
        raise ParticleListError(f"{path.name}: {what} are tomogram voxels; to place them give {missing}")
    return _voxel(voxel_size), tuple(int(s) for s in shape)


def _particles_block(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # noqa: BLE001 - starfile raises many kinds on a damaged file
        raise ParticleListError(f"{path.name}: not a readable STAR file ({type(err).__name__}: {err})") from None
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    parts = tables.get("particles")
    if parts is None:
        parts = next((t for t in tables.values() if any(c in t for c in CENTRED + COORDINATES)), None)
    if parts is None:
        raise ParticleListError(f"{path.name}: no particle table (a data block with rlnCenteredCoordinate*Angst or "
                                "rlnCoordinate* columns)")
    return parts.reset_index(drop=True), tables.get("optics")


def _columns(path: Path, t: pd.DataFrame, names: Sequence[str], default: float | None = None) -> np.ndarray:
    missing = [c for c in names if c not in t]
    if missing and default is None:
        raise ParticleListError(f"{path.name}: missing column(s) {', '.join(missing)}")
    cols = [t[c].to_numpy(np.float64) if c in t else np.full(len(t), default, np.float64) for c in names]
    return np.stack(cols, -1)


def _star_pixel_size(t: pd.DataFrame, optics: pd.DataFrame | None) -> float | None:
    for table in (t, optics):
        if table is None:
            continue
        for col in PIXEL_SIZE_COLUMNS:
            if col in table and len(table):
                return float(table[col].iloc[0])
    return None


def _read_star(path: Path, voxel_size: float | None, shape: Sequence[int] | None,
               tomogram: str | None) -> TomoParticles:
    t, optics = _particles_block(path)
    a_particle = euler_zyz_to_matrix(*_columns(path, t, ANGLES, 0.0).T).double().numpy()
    a_sub = euler_zyz_to_matrix(*_columns(path, t, SUBTOMOGRAM_ANGLES, 0.0).T).double().numpy()
    rotations = a_sub @ a_particle
    names = t["rlnTomoName"].astype(str).to_numpy() if "rlnTomoName" in t else np.full(len(t), tomogram or path.stem)
    extra = t[[c for c in t.columns if c not in HANDLED_COLUMNS]].reset_index(drop=True)
    if all(c in t for c in CENTRED):
        origin = _columns(path, t, ORIGINS_A, 0.0)
        positions = _columns(path, t, CENTRED) - (a_sub @ origin[..., None])[..., 0]
        return TomoParticles(positions, rotations, names, extra, str(path), _star_pixel_size(t, optics) or voxel_size)
    if not all(c in t for c in COORDINATES):
        raise ParticleListError(f"{path.name}: no particle coordinates (rlnCenteredCoordinate{{X,Y,Z}}Angst of "
                                "RELION 5, or rlnCoordinate{X,Y,Z} of RELION 3/4)")
    px, dims = _need_grid(path, "its RELION 3/4 coordinates (rlnCoordinateX/Y/Z)",
                          _star_pixel_size(t, optics) or voxel_size, shape)
    if all(c in t for c in ORIGINS_A):
        origin_px = _columns(path, t, ORIGINS_A) / px
    else:
        origin_px = _columns(path, t, ORIGINS_PX, 0.0)
    xyz = _columns(path, t, COORDINATES) - (a_sub @ origin_px[..., None])[..., 0]
    return TomoParticles.from_voxels(xyz, px, dims, rotations, names, extra, str(path))


def _read_dynamo(path: Path, voxel_size: float | None, shape: Sequence[int] | None,
                 tomogram: str | None) -> TomoParticles:
    try:
        tbl = np.loadtxt(path, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise ParticleListError(f"{path.name}: not a Dynamo table (numbers only, one particle per row): {err}") from None
    if tbl.shape[1] < 26:
        raise ParticleListError(f"{path.name}: a Dynamo table has at least 26 columns (x y z are 24–26); "
                                f"this one has {tbl.shape[1]}")
    px, dims = _need_grid(path, "Dynamo's x y z", voxel_size, shape)
    xyz = tbl[:, 23:26] + tbl[:, 3:6]
    rotations = dynamo_to_matrix(tbl[:, 6], tbl[:, 7], tbl[:, 8])
    tomo = tbl[:, 19].astype(int)
    names = [tomogram or path.stem] * len(tbl) if len(set(tomo.tolist())) <= 1 else [str(k) for k in tomo]
    extra = pd.DataFrame({"dynamo_tag": tbl[:, 0].astype(int), "dynamo_cc": tbl[:, 9], "dynamo_class": tbl[:, 21]})
    return TomoParticles.from_voxels(xyz, px, dims, rotations, names, extra, str(path))


def _read_text(path: Path, voxel_size: float | None, shape: Sequence[int] | None,
               tomogram: str | None) -> TomoParticles:
    try:
        xyz = np.loadtxt(path, ndmin=2, dtype=np.float64, comments="#")
    except ValueError as err:
        raise ParticleListError(f"{path.name}: not an x y z list (three numbers per line): {err}") from None
    if xyz.shape[1] != 3:
        raise ParticleListError(f"{path.name}: an x y z list has three numbers per line; got {xyz.shape[1]}")
    px, dims = _need_grid(path, "its x y z", voxel_size, shape)
    return TomoParticles.from_voxels(xyz, px, dims, None, tomogram or path.stem, None, str(path))


# ------------------------------------------------------------------------------------------------ writing
def write_relion5(path: PathLike, particles: TomoParticles, voxel_size: float) -> Path:
    """Write a RELION 5 particle STAR (optics block with ``rlnTomoTiltSeriesPixelSize`` = ``voxel_size`` Å;
    particles with ``rlnTomoName``, centred coordinates in Å, ``rlnAngle*``, the table's other columns),
    atomically."""
    import starfile

    path = Path(path)
    angles = matrix_to_euler_zyz(particles.rotations).numpy()
    data: dict[str, Any] = {"rlnTomoName": [str(n) for n in particles.tomograms]}
    data.update({c: particles.positions[:, i] for i, c in enumerate(CENTRED)})
    data.update({c: angles[:, i] for i, c in enumerate(ANGLES)})
    data["rlnOpticsGroup"] = np.ones(len(particles), int)
    df = pd.DataFrame(data)
    for c in particles.table.columns:
        if c not in df:
            df[c] = particles.table[c].to_numpy()
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnTomoTiltSeriesPixelSize": [_voxel(voxel_size)]})
    with atomic_path(path) as tmp:
        starfile.write({"optics": optics, "particles": df}, tmp, overwrite=True)
    return path


def write_dynamo(path: PathLike, particles: TomoParticles, voxel_size: float, shape: Sequence[int]) -> Path:
    """Write a Dynamo ``.tbl``: voxel coordinates in columns 24–26 (no shifts), ``tdrot tilt narot``, tomograms
    numbered 1, 2, … in their order of appearance (column 20), atomically."""
    path = Path(path)
    xyz = particles.voxels(voxel_size, shape)
    names = list(dict.fromkeys(particles.tomograms.tolist()))
    tbl = np.zeros((len(particles), DYNAMO_COLUMNS))
    tbl[:, 0] = np.arange(1, len(particles) + 1)
    tbl[:, 1:3] = 1  # aligned, averaged
    tbl[:, 6:9] = matrix_to_dynamo(particles.rotations)
    tbl[:, 19] = [names.index(n) + 1 for n in particles.tomograms]
    tbl[:, 23:26] = xyz
    fmt = ["%.6f"] * DYNAMO_COLUMNS
    for col in (0, 1, 2, 19, 20, 21, 22):  # tag, aligned, averaged, tomo, region, class, annotation
        fmt[col] = "%d"
    with atomic_path(path) as tmp:
        np.savetxt(tmp, tbl, fmt=fmt)
    return path


@dataclass
class SubtomogramSet:
    """A folder of extracted subtomograms (``cryoforge extract``): the stack ``(N, n, n, n)``, the centred Fourier
    sampling mask ``(n, n, n)`` (all ones when the folder has none), the voxel size (Å) and the particles (their
    positions are the boxes' centres)."""

    subtomograms: np.ndarray
    mask: np.ndarray
    voxel_size: float
    particles: TomoParticles
    folder: str


def is_subtomogram_set(path: PathLike) -> bool:
    """Whether ``path`` is a folder written by ``cryoforge extract`` (it holds ``subtomograms.star``)."""
    return (Path(path) / "subtomograms.star").is_file()


def read_subtomogram_set(folder: PathLike) -> SubtomogramSet:
    """Read a folder written by ``cryoforge extract``: the STAR's ``rlnImageName`` (``k@stack.mrcs``) picks each
    particle's subtomogram."""
    from .mrc import read_mrc

    folder = Path(folder)
    if not is_subtomogram_set(folder):
        raise ParticleListError(f"{folder}: not an extracted subtomogram set (no subtomograms.star; make one with "
                                "cryoforge extract)")
    particles = read_particle_list(folder / "subtomograms.star")
    if "rlnImageName" not in particles.table:
        raise ParticleListError(f"{folder.name}/subtomograms.star: no rlnImageName column pointing at the stack")
    refs = [str(r).split("@", 1) for r in particles.table["rlnImageName"]]
    stacks: dict[str, np.ndarray] = {}
    voxel = particles.voxel_size
    for _, name in refs:
        if name not in stacks:
            data, info = read_mrc(folder / name, finite=True)
            stacks[name] = data if data.ndim == 4 else data[None]
            voxel = voxel or float(info.voxel_size[0])
    try:
        subs = np.stack([stacks[name][int(k) - 1] for k, name in refs]).astype(np.float32)
    except (IndexError, ValueError) as err:
        raise ParticleListError(f"{folder.name}/subtomograms.star: rlnImageName points past its stack ({err})") from None
    n = subs.shape[-1]
    mask = np.ones((n, n, n), np.float32)
    if (folder / "mask.mrc").is_file():
        mask = read_mrc(folder / "mask.mrc", finite=True)[0].astype(np.float32)
    if voxel is None:
        raise ParticleListError(f"{folder.name}: no voxel size in the STAR or the stack's header")
    return SubtomogramSet(subs, mask, float(voxel), particles, str(folder))
