"""Poses and CTF for cryoDRGN training from RELION STAR, cryoSPARC ``.cs`` or cryoDRGN pickles.

cryoDRGN's rotation for a RELION particle (``R_from_relion``) is RELION's ``A`` matrix itself, i.e. exactly
``cryoforge.conventions.euler_zyz_to_matrix`` (checked against cryoDRGN 4.3.1 in the tests); its translation is
RELION's origin in pixels. For cryoSPARC, cryoDRGN takes the transpose of the pose's rotation-vector matrix and
the shift in pixels. All translations here are in pixels (cryoDRGN's pickles store a fraction of the box).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class PoseSet:
    rotations: np.ndarray  # (N, 3, 3), cryoDRGN convention (a slice at lattice coordinates k @ R)
    translations: np.ndarray | None  # (N, 2) pixels
    ctf: dict | None  # CTFParams field → (N,) arrays
    pixel_size: float | None


def from_star(path) -> PoseSet:
    from ...io.star import read_particles_star

    meta = read_particles_star(path)
    if meta.rotations is None:
        raise ValueError(f"{Path(path).name}: no rlnAngleRot/Tilt/Psi columns: this STAR file has no poses")
    px = meta.pixel_size
    trans = None if meta.shifts is None or px is None else np.asarray(meta.shifts, np.float32) / px
    ctf = None if meta.ctf is None else {k: np.asarray(v) for k, v in meta.ctf.as_dict().items()}
    return PoseSet(np.asarray(meta.rotations, np.float32), trans, ctf, px)


def from_cryosparc(path) -> PoseSet:
    from scipy.spatial.transform import Rotation

    cs = np.load(path)
    names = cs.dtype.names or ()
    key = "alignments3D" if "alignments3D/pose" in names else "alignments_class_0"
    if f"{key}/pose" not in names:
        raise ValueError(f"{Path(path).name}: no alignments3D/pose in this cryoSPARC file: it has no 3-D poses")
    rot = Rotation.from_rotvec(np.asarray(cs[f"{key}/pose"], np.float64)).as_matrix().transpose(0, 2, 1)
    trans = np.asarray(cs[f"{key}/shift"], np.float32)
    ctf = None
    if "ctf/df1_A" in names:
        ctf = {"defocus_u": cs["ctf/df1_A"], "defocus_v": cs["ctf/df2_A"],
               "defocus_angle": np.degrees(cs["ctf/df_angle_rad"]), "voltage": cs["ctf/accel_kv"],
               "cs": cs["ctf/cs_mm"], "amplitude_contrast": cs["ctf/amp_contrast"],
               "phase_shift": np.degrees(cs["ctf/phase_shift_rad"])}
    px = float(cs["blob/psize_A"][0]) if "blob/psize_A" in names else None
    return PoseSet(rot.astype(np.float32), trans, ctf, px)


def from_pickles(poses, ctf=None, box: int | None = None) -> PoseSet:
    from .pickles import load_poses

    rot, trans = load_poses(poses)
    if trans is not None:
        if box is None:
            raise ValueError("cryoDRGN pose pickles store shifts as a fraction of the box: give the image size")
        trans = trans * box
    c, px = read_ctf(ctf) if ctf is not None else (None, None)
    return PoseSet(rot, trans, c, px)


def read_ctf(path) -> tuple[dict | None, float | None]:
    """CTF parameters (CTFParams field → (N,) arrays) and pixel size from a cryoDRGN CTF ``.pkl`` or from a STAR
    file's CTF columns (no poses needed: for training with pose search)."""
    if Path(path).suffix == ".star":
        from ...io.star import read_particles_star

        meta = read_particles_star(path)
        if meta.ctf is None:
            raise ValueError(f"{Path(path).name}: no CTF columns (rlnDefocusU …) in this STAR file")
        return {k: np.asarray(v) for k, v in meta.ctf.as_dict().items()}, meta.pixel_size
    from .pickles import load_ctf

    t = load_ctf(path)
    c = {"defocus_u": t["dfu"], "defocus_v": t["dfv"], "defocus_angle": t["dfang"], "voltage": t["volt"],
         "cs": t["cs"], "amplitude_contrast": t["w"], "phase_shift": t["phase_shift"]}
    return c, float(t["Apix"][0])


def read_poses(path, ctf=None, box: int | None = None) -> PoseSet:
    """Poses (and CTF where the file has it) from ``.star``, ``.cs`` or a cryoDRGN ``.pkl`` (+ CTF ``.pkl``)."""
    suffix = Path(path).suffix
    if suffix == ".star":
        return from_star(path)
    if suffix == ".cs":
        return from_cryosparc(path)
    return from_pickles(path, ctf, box)
