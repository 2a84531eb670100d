"""Atomic models: PDB / mmCIF with gemmi, CHARMM/NAMD DCD trajectories, and coordinate interpolation.

Coordinates are ``(N, 3)`` float32 in Å, ``(x, y, z)`` (:mod:`cryoforge.conventions`). Elements
come from the file's element column when it is trustworthy and are inferred from the atom name
otherwise: files written by CHARMM (e.g. the AdK models) have no element column, and gemmi then
guesses calcium for ``CA`` and 'X' for ``HT1``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..hints import PathLike, Tensorish


# Elements inferred from the first letter of a name in polymer residues and water.
_POLYMER_ELEMENTS = {"C", "N", "O", "S", "H", "P"}
_NAME_RE = re.compile(r"[A-Za-z]+")
# Force-field residue names gemmi does not tabulate (CHARMM/AMBER protonation states).
_RESIDUE_ALIASES = {"HSD": "HIS", "HSE": "HIS", "HSP": "HIS", "HSC": "HIS", "HID": "HIS", "HIE": "HIS",
                    "HIP": "HIS", "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS", "TIP3": "HOH"}


class ModelError(ValueError):
    """An atomic model cannot be used; the message says which file and why."""


@dataclass
class AtomicModel:
    """Atoms of one model. ``coords`` (N, 3) Å; ``elements`` symbols; ``occupancy``; ``bfactor`` Å²."""

    coords: np.ndarray
    elements: list[str]
    occupancy: np.ndarray
    bfactor: np.ndarray
    name: str = "model"

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def masses(self) -> np.ndarray:
        import gemmi

        table = {e: gemmi.Element(e).weight for e in set(self.elements)}
        return np.array([table[e] for e in self.elements], dtype=np.float64) * self.occupancy

    def center_of_mass(self) -> np.ndarray:
        m = self.masses
        return (self.coords.astype(np.float64) * m[:, None]).sum(0) / m.sum()

    def radius(self, centre: Tensorish | None = None) -> float:
        """Largest distance (Å) of an atom from ``centre`` (default: the centre of mass)."""
        c = self.center_of_mass() if centre is None else np.asarray(centre)
        return float(np.linalg.norm(self.coords - c, axis=1).max())

    def with_coords(self, coords: Tensorish, name: str | None = None) -> AtomicModel:
        coords = np.asarray(coords, dtype=np.float32)
        if coords.shape != self.coords.shape:
            raise ModelError(f"coordinates of shape {coords.shape} do not fit a model of {len(self)} atoms")
        return AtomicModel(coords, self.elements, self.occupancy, self.bfactor, name or self.name)


def infer_element(atom_name: str, residue_name: str, given: str = "") -> str:
    """Element of an atom from its name: first letter in polymers/water (``CA`` → C, ``HT1`` → H,
    ``1HB`` → H); otherwise the given element, or the leading letters of the name (``MG`` → Mg)."""
    import gemmi

    match = _NAME_RE.search(atom_name)
    letters = match.group(0).upper() if match else ""
    info = gemmi.find_tabulated_residue(_RESIDUE_ALIASES.get(residue_name, residue_name))
    polymer = info is not None and (info.is_amino_acid() or info.is_nucleic_acid() or info.is_water())
    if polymer and letters[:1] in _POLYMER_ELEMENTS:
        return letters[0]
    if given and given.upper() not in ("X", ""):
        return given.capitalize()
    for n in (2, 1):
        cand = letters[:n].capitalize()
        if cand and gemmi.Element(cand).atomic_number > 0:
            return cand
    raise ModelError(f"cannot tell the element of atom {atom_name!r} in residue {residue_name!r}")


def read_model(path: PathLike, model_index: int = 0, skip_hydrogens: bool = False) -> AtomicModel:
    """Read one model of a PDB / mmCIF file (gzip allowed) with gemmi.

    The asymmetric unit as deposited (cryo-EM entries such as 4V1W hold the whole complex).
    Alternative conformations: the first is kept. Waters are dropped.
    """
    import gemmi

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    try:
        st = gemmi.read_structure(str(path))
    except Exception as err:  # noqa: BLE001 - gemmi raises RuntimeError/ValueError for bad files
        raise ModelError(f"{path.name}: not a readable PDB/mmCIF file ({err})") from err
    st.remove_alternative_conformations()
    st.remove_waters()
    if len(st) == 0:
        raise ModelError(f"{path.name}: the file holds no model (no atoms)")
    if model_index >= len(st):
        raise ModelError(f"{path.name}: model {model_index} requested but the file has {len(st)}")
    model = st[model_index]
    coords, elements, occ, bfac = [], [], [], []
    for chain in model:
        for res in chain:
            for atom in res:
                el = infer_element(atom.name, res.name, atom.element.name)
                if skip_hydrogens and el in ("H", "D"):
                    continue
                p = atom.pos
                coords.append((p.x, p.y, p.z))
                elements.append("H" if el == "D" else el)
                occ.append(atom.occ)
                bfac.append(atom.b_iso)
    if not coords:
        raise ModelError(f"{path.name}: the model has no atoms")
    name = path.name.split(".")[0]
    return AtomicModel(np.asarray(coords, np.float32), elements, np.asarray(occ, np.float64),
                       np.asarray(bfac, np.float32), name=name)


def read_dcd(path: PathLike) -> np.ndarray:
    """Frames of a CHARMM / NAMD / X-PLOR DCD trajectory as ``(F, N, 3)`` float32 Å (fixed atoms unsupported)."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise ModelError(f"{Path(path).name}: too short to be a DCD file")
    for endian in ("<", ">"):
        if struct.unpack(endian + "i", raw[:4])[0] == 84 and raw[4:8] == b"CORD":
            break
    else:
        raise ModelError(f"{Path(path).name}: not a DCD file (no CORD header)")
    pos = 0

    def record() -> bytes:
        nonlocal pos
        (n,) = struct.unpack_from(endian + "i", raw, pos)
        data = raw[pos + 4: pos + 4 + n]
        (n2,) = struct.unpack_from(endian + "i", raw, pos + 4 + n)
        if n != n2:
            raise ModelError(f"{Path(path).name}: corrupt DCD record at byte {pos}")
        pos += n + 8
        return data

    head = record()
    icntrl = struct.unpack(endian + "20i", head[4:84])
    n_fixed, charmm, has_cell = icntrl[8], icntrl[19], icntrl[10]
    if n_fixed:
        raise ModelError(f"{Path(path).name}: DCD files with fixed atoms are not supported")
    record()  # title
    (natom,) = struct.unpack(endian + "i", record())
    frames: list[np.ndarray] = []
    while pos < len(raw):
        if charmm and has_cell:
            record()
        xyz = [np.frombuffer(record(), dtype=endian + "f4") for _ in range(3)]
        if any(len(a) != natom for a in xyz):
            raise ModelError(f"{Path(path).name}: frame {len(frames)} does not hold {natom} atoms")
        frames.append(np.stack(xyz, axis=1))
    if not frames:
        raise ModelError(f"{Path(path).name}: the trajectory has no frames")
    return np.stack(frames).astype(np.float32)


def trajectory_models(topology: AtomicModel, dcd_path: PathLike, stride: int = 1) -> list[AtomicModel]:
    """The frames of a DCD trajectory as models that share ``topology``'s atoms (same order and count)."""
    frames = read_dcd(dcd_path)[::stride]
    if frames.shape[1] != len(topology):
        raise ModelError(f"{Path(dcd_path).name}: {frames.shape[1]} atoms per frame, the topology has {len(topology)}")
    return [topology.with_coords(f, name=f"{topology.name}_frame{i * stride}") for i, f in enumerate(frames)]


def interpolate_coords(a: AtomicModel, b: AtomicModel, alphas: Tensorish) -> np.ndarray:
    """Coordinates ``(1-α) a + α b`` for each α: ``(len(alphas), N, 3)``. ``b`` is first superposed onto
    ``a`` (Kabsch, mass-weighted) so the path is a conformational change, not a rigid-body drift."""
    if len(a) != len(b):
        raise ModelError(f"{a.name} has {len(a)} atoms and {b.name} {len(b)}: interpolation needs the same atoms")
    if a.elements != b.elements:
        raise ModelError(f"{a.name} and {b.name} list different elements: the atoms are not in the same order")
    xb = superpose(b.coords, a.coords, a.masses)
    al = np.asarray(alphas, dtype=np.float32).reshape(-1, 1, 1)
    return ((1 - al) * a.coords[None] + al * xb[None]).astype(np.float32)


def superpose(mobile: np.ndarray, target: np.ndarray, weights: Tensorish | None = None) -> np.ndarray:
    """``mobile`` rigidly moved onto ``target`` (weighted Kabsch)."""
    w = np.ones(len(mobile)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    cm, ct = (mobile * w[:, None]).sum(0), (target * w[:, None]).sum(0)
    h = ((mobile - cm) * w[:, None]).T @ (target - ct)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return ((mobile - cm) @ rot.T + ct).astype(np.float32)
