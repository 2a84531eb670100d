"""Particle metadata from any of the field's files, and its match with an image stack.

One entry point, :func:`read_particle_metadata`, reads RELION STAR (3.0, 3.1, 5; :mod:`.star`), cryoSPARC
``.cs`` and cryoDRGN pose / CTF pickles into :class:`~cryoforge.io.star.ParticleMetadata`: RELION's ``A``
matrices (:mod:`cryoforge.conventions`), RELION origins in Å, per-particle CTF and pixel size, and ``notes``
that say which fields were used or ignored. cryoSPARC and cryoDRGN conventions (checked against cryoDRGN
4.3.1's ``parse_pose_csparc`` / ``parse_ctf_csparc`` in tests/cryoforge/io/test_particles.py):

- cryoSPARC: ``A = expmap(pose)ᵀ``; ``alignments3D/shift`` is in pixels of ``blob/psize_A``, the same sign as
  RELION's origin; defocus angle and phase shift in radians.
- cryoDRGN pose pickle: ``(rotations, translations)``, rotations are ``A`` and translations a fraction of the
  box (cryoDRGN ≥ 0.8); CTF pickle: ``(N, 9)`` rows ``D, Å/px, U, V, angle°, kV, Cs, w, phase°``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ctf import CTFParams, ctf_2d
from .pickles import CTF_COLUMNS as DRGN_CTF_COLUMNS
from .pickles import check_arrays, load_pickles
from .star import ParticleMetadata, StarError, StarWarning, read_particles_star

if TYPE_CHECKING:
    from ..hints import PathLike


METADATA_SUFFIXES = (".star", ".cs", ".pkl")


def _positive(values, what: str, source: str) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if not (np.isfinite(v).all() and (v > 0).all()):
        raise StarError(f"{source}: {what} has values that are not positive numbers")
    return v


def read_cryosparc(path: PathLike, pixel_size: float | None = None) -> ParticleMetadata:
    """Poses (when refined), CTF and pixel size per particle from a cryoSPARC ``.cs`` file."""
    path = Path(path)
    try:
        cs = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        why = "it holds Python objects, which are not read" if "pickle" in str(err) else str(err).splitlines()[0]
        raise StarError(f"{path.name}: not a cryoSPARC .cs file (a numpy record array): {why}") from None
    if not isinstance(cs, np.ndarray):
        raise StarError(f"{path.name}: not a cryoSPARC .cs file: it is a numpy archive (.npz), not one record array")
    names = cs.dtype.names or ()
    if not names:
        raise StarError(f"{path.name}: not a cryoSPARC .cs file: it holds a plain array, not named fields")
    notes: list[str] = []
    meta = ParticleMetadata(source=f"{path.name} (cryoSPARC)", notes=notes)
    n = len(cs)
    if pixel_size is not None:
        meta.pixel_sizes = np.full(n, _positive(pixel_size, "the pixel size", path.name).item())
        notes.append(f"pixel size {pixel_size:g} Å given by the user (blob/psize_A not used)")
    elif "blob/psize_A" in names:
        meta.pixel_sizes = _positive(cs["blob/psize_A"], "blob/psize_A", path.name)
        notes.append("pixel size from blob/psize_A: " + ", ".join(f"{v:g}" for v in np.unique(meta.pixel_sizes)[:8])
                     + " Å")
    else:
        notes.append("no blob/psize_A: no pixel size")
    if meta.pixel_sizes is not None:
        meta.pixel_size = float(meta.pixel_sizes[0])
    if "blob/shape" in names:
        meta.image_sizes = np.asarray(cs["blob/shape"])[:, -1].astype(np.int64)
    if "blob/path" in names and "blob/idx" in names:
        meta.image_names = [f"{int(i) + 1:06d}@{p.decode() if isinstance(p, bytes) else p}"
                            for i, p in zip(cs["blob/idx"], cs["blob/path"], strict=True)]
    key = next((k for k in ("alignments3D", "alignments_class_0") if f"{k}/pose" in names), None)
    if key is None:
        notes.append("no alignments3D/pose: no poses")
    else:
        from scipy.spatial.transform import Rotation

        meta.rotations = Rotation.from_rotvec(np.asarray(cs[f"{key}/pose"], np.float64)).as_matrix() \
            .transpose(0, 2, 1).astype(np.float32)
        notes.append(f"poses from {key}/pose (rotation vectors; A = expmap(pose)ᵀ)")
        if f"{key}/shift" in names:
            if meta.pixel_sizes is None:
                raise StarError(f"{path.name}: shifts are in pixels and no pixel size is known; give it (--apix Å)")
            meta.shifts = (np.asarray(cs[f"{key}/shift"], np.float64) * meta.pixel_sizes[:, None]).astype(np.float32)
    fields = {"defocus_u": "ctf/df1_A", "defocus_v": "ctf/df2_A", "defocus_angle": "ctf/df_angle_rad",
              "voltage": "ctf/accel_kv", "cs": "ctf/cs_mm", "amplitude_contrast": "ctf/amp_contrast",
              "phase_shift": "ctf/phase_shift_rad"}
    missing = [f for f in fields.values() if f not in names]
    if "ctf/df1_A" not in names:
        notes.append("no ctf/df1_A: no CTF")
    elif missing:
        raise StarError(f"{path.name}: has ctf/df1_A but not {', '.join(missing)}")
    else:
        vals = {k: np.asarray(cs[f], np.float32) for k, f in fields.items()}
        vals["defocus_angle"] = np.degrees(vals["defocus_angle"]).astype(np.float32)
        vals["phase_shift"] = np.degrees(vals["phase_shift"]).astype(np.float32)
        meta.ctf = CTFParams(**vals)
        notes.append("CTF from ctf/df1_A, df2_A, df_angle_rad, accel_kv, cs_mm, amp_contrast, phase_shift_rad "
                     "(angles converted to degrees)")
        ignored = [f for f in ("ctf/bfactor", "ctf/scale") if f in names]
        if ignored:
            notes.append(f"{', '.join(ignored)} ignored, as cryoDRGN does")
    return meta


def _is_drgn_ctf(obj) -> bool:
    arr = np.asarray(obj) if not isinstance(obj, (tuple, list)) else None
    return arr is not None and arr.ndim == 2 and arr.shape[1] == len(DRGN_CTF_COLUMNS)


def _drgn_ctf(path: Path, arr, pixel_size: float | None, meta: ParticleMetadata) -> None:
    t = np.asarray(arr, np.float64)
    c = {name: t[:, i] for i, name in enumerate(DRGN_CTF_COLUMNS)}
    meta.ctf = CTFParams(defocus_u=c["dfu"].astype(np.float32), defocus_v=c["dfv"].astype(np.float32),
                         defocus_angle=c["dfang"].astype(np.float32), voltage=c["volt"].astype(np.float32),
                         cs=c["cs"].astype(np.float32), amplitude_contrast=c["w"].astype(np.float32),
                         phase_shift=c["phase_shift"].astype(np.float32))
    meta.image_sizes = c["D"].astype(np.int64)
    if pixel_size is None:
        meta.pixel_sizes = _positive(c["Apix"], "the Å/px column", path.name)
        meta.notes.append(f"CTF and pixel size from the cryoDRGN CTF table {path.name}")
    else:
        meta.pixel_sizes = np.full(len(t), float(pixel_size))
        meta.notes.append(f"CTF from the cryoDRGN CTF table {path.name}; pixel size {pixel_size:g} Å given by the user")
    meta.pixel_size = float(meta.pixel_sizes[0])


def read_drgn_pickle(path: PathLike, pixel_size: float | None = None, box: int | None = None) -> ParticleMetadata:
    """A cryoDRGN pose pickle (rotations, or (rotations, translations)) or CTF pickle ``(N, 9)``."""
    path = Path(path)
    obj = load_pickles(path, 1)[0]
    check_arrays(obj, path.name)
    meta = ParticleMetadata(source=f"{path.name} (cryoDRGN pickle)", notes=[])
    if _is_drgn_ctf(obj):
        _drgn_ctf(path, obj, pixel_size, meta)
        return meta
    rot, trans = (obj[0], obj[1] if len(obj) > 1 else None) if isinstance(obj, (tuple, list)) else (obj, None)
    rot = np.asarray(rot, np.float32)
    if rot.ndim != 3 or rot.shape[1:] != (3, 3):
        raise StarError(f"{path.name}: expected rotation matrices (N, 3, 3) or a CTF table (N, 9), got {rot.shape}")
    meta.rotations = rot
    meta.notes.append(f"rotations from the cryoDRGN pose pickle {path.name}")
    if pixel_size is not None:
        meta.pixel_sizes, meta.pixel_size = np.full(len(rot), float(pixel_size)), float(pixel_size)
    if trans is not None:
        trans = np.asarray(trans, np.float64)
        if trans.shape != (len(rot), 2):
            raise StarError(f"{path.name}: translations {trans.shape} for {len(rot)} rotations; expected "
                            f"({len(rot)}, 2)")
        if box is None:
            raise StarError(f"{path.name}: cryoDRGN stores shifts as a fraction of the box: give the image size")
        meta.notes.append(f"translations: fraction of the box × {box} px")
        meta.pixel_shifts = (trans * box).astype(np.float32)
        if meta.pixel_sizes is not None:
            meta.shifts = (trans * box * meta.pixel_sizes[:, None]).astype(np.float32)
    return meta


def read_particle_metadata(path: PathLike, pixel_size: float | None = None, box: int | None = None,
                           use_ctf_envelope: bool = False) -> ParticleMetadata:
    """Particle metadata from a ``.star``, cryoSPARC ``.cs`` or cryoDRGN ``.pkl`` file (chosen by suffix).

    ``pixel_size`` (Å) overrides the file's; ``box`` (pixels) is needed for a cryoDRGN pose pickle's shifts.
    """
    path = Path(path)
    if not path.is_file():
        raise StarError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    if suffix == ".star":
        return read_particles_star(path, pixel_size, use_ctf_envelope)
    if suffix == ".cs":
        return read_cryosparc(path, pixel_size)
    if suffix == ".pkl":
        return read_drgn_pickle(path, pixel_size, box)
    raise StarError(f"{path.name}: particle metadata is read from {', '.join(METADATA_SUFFIXES)} files")


def with_ctf(meta: ParticleMetadata, ctf_path: PathLike, pixel_size: float | None = None,
             use_ctf_envelope: bool = False) -> ParticleMetadata:
    """``meta`` with its CTF (and, unless given, pixel sizes) replaced by those of ``ctf_path``; says so in notes."""
    other = read_particle_metadata(ctf_path, pixel_size, use_ctf_envelope=use_ctf_envelope)
    if other.ctf is None:
        raise StarError(f"{Path(ctf_path).name}: no CTF parameters in it")
    n_ctf = int(np.size(other.ctf.defocus_u))
    if len(meta) and n_ctf != len(meta):
        raise StarError(f"{Path(ctf_path).name}: CTF for {n_ctf} particles, {meta.source} has {len(meta)}")
    had = meta.ctf is not None
    meta.ctf = other.ctf
    meta.notes.append(f"CTF from {other.source}" + (f" (the CTF in {meta.source} is not used)" if had else ""))
    if other.pixel_sizes is not None and (pixel_size is not None or meta.pixel_sizes is None):
        meta.pixel_sizes, meta.pixel_size = other.pixel_sizes, other.pixel_size
        meta.notes.append(f"pixel size from {other.source}")
    if meta.image_sizes is None:
        meta.image_sizes = other.image_sizes
    if meta.pixel_shifts is not None and meta.pixel_sizes is not None:
        meta.shifts = (meta.pixel_shifts * meta.pixel_sizes[:, None]).astype(np.float32)
    return meta


_NAME = re.compile(r"^\s*(\d+)@(.+?)\s*$")


def parse_image_name(name: str) -> tuple[int, str]:
    """``'000012@Extract/a.mrcs'`` → ``(11, 'Extract/a.mrcs')``: the 0-based image index and the stack path."""
    m = _NAME.match(name)
    if not m:
        return 0, name.strip()  # a single-image file
    return int(m.group(1)) - 1, m.group(2)


def ctf_nonfinite(meta: ParticleMetadata, box: int, batch: int = 512) -> int:
    """The number of particles whose CTF on a ``box``² grid has any non-finite value."""
    if meta.ctf is None:
        return 0
    n, px = len(meta), meta.particle_pixel_sizes()
    bad = 0
    for s in range(0, n, batch):
        rows = np.arange(s, min(n, s + batch))
        p = CTFParams(**{k: np.broadcast_to(np.asarray(v), (n,))[rows] for k, v in meta.ctf.as_dict().items()})
        c = ctf_2d(p, (box, box), px[rows])
        bad += int((~torch.isfinite(c).flatten(1).all(1)).sum())
    return bad


def match_stack(meta: ParticleMetadata, stack: PathLike, n_images: int, header_pixel_size: float | None = None,
                header_missing: bool = False) -> ParticleMetadata:
    """``meta``'s rows in the order of the stack's images, checked against it.

    When ``rlnImageName`` names one stack, every index must lie in this one (an index past its end is an error
    that names the row) and rows that list the images in another order are put in the stack's order; when it
    names several (per-micrograph stacks merged into this one), rows are matched to images in order. A stack header whose voxel size
    disagrees with the metadata's pixel size gives a :class:`StarWarning`.
    """
    stack = Path(stack)
    where = meta.source or "the metadata"
    meta.check_finite()
    if meta.image_names is not None:
        parsed = [parse_image_name(x) for x in meta.image_names]
        names = sorted({Path(p).name for _, p in parsed})
        if len(names) > 1:  # e.g. per-micrograph stacks merged (or downsampled) into this one: rows in order
            meta.notes.append(f"rlnImageName names {len(names)} stacks ({names[0]}, …): the rows are matched to "
                              f"the images of {stack.name} in order")
        else:
            idx = np.array([i for i, _ in parsed])
            past = np.nonzero((idx < 0) | (idx >= n_images))[0]
            if len(past):
                r = int(past[0])
                raise StarError(f"{where}: row {r + 1} (rlnImageName {meta.image_names[r]}) points to image "
                                f"{idx[r] + 1} of {stack.name}, which holds {n_images} images ({len(past)} rows "
                                "point past it)")
            if names[0] != stack.name:
                warnings.warn(f"{where}: rlnImageName names {names[0]}; its indices are read in {stack.name}",
                              StarWarning, stacklevel=2)
            if len(meta) == n_images and not np.array_equal(idx, np.arange(n_images)):
                if len(np.unique(idx)) != n_images:
                    raise StarError(f"{where}: rlnImageName lists some images of {stack.name} twice and others not")
                meta = meta.take(np.argsort(idx))
                meta.notes.append(f"rows put in the order of the images in {stack.name}")
    if len(meta) != n_images:
        raise StarError(f"{where}: {len(meta)} particles for the {n_images} images of {stack.name}")
    if meta.pixel_sizes is not None and header_pixel_size and not header_missing:
        ref = float(meta.pixel_size or meta.pixel_sizes[0])
        if abs(header_pixel_size - ref) > 1e-3 * ref:
            warnings.warn(f"{stack.name}: the header's voxel size {header_pixel_size:g} Å differs from the "
                          f"metadata's pixel size {ref:g} Å; the metadata's is used", StarWarning, stacklevel=2)
    return meta
