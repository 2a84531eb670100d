"""What the project understood from a particle metadata file: ``cryoforge metadata``'s table and JSON.

The JSON holds, per particle, the values every job uses (RELION's names in the units of
:mod:`cryoforge.conventions`): pixel size, CTF, the RELION ``A`` matrix and the shifts; ``ctf_nonfinite``
counts the particles whose CTF has a non-finite value on the image grid.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np

from .particles import ctf_nonfinite, parse_image_name
from .star import ParticleMetadata, StarError

CTF_JSON = {"defocus_u": "defocus_u_A", "defocus_v": "defocus_v_A", "defocus_angle": "defocus_angle_deg",
            "voltage": "voltage_kV", "cs": "cs_mm", "amplitude_contrast": "amplitude_contrast",
            "phase_shift": "phase_shift_deg"}


def _find_stack(name: str, base: Path) -> Path | None:
    for cand in (Path(name), base / name, base / Path(name).name, base.parent / name):
        if cand.is_file():
            return cand
    return None


def check_image_stacks(meta: ParticleMetadata, base: Path) -> tuple[int | None, float | None]:
    """Check every ``rlnImageName`` against the stack it names (found as given, beside the file, or one folder
    up). Returns the image size and the header's voxel size of the first stack found; notes what it did."""
    if meta.image_names is None:
        return None, None
    parsed = [parse_image_name(x) for x in meta.image_names]
    stacks: dict[str, list[int]] = {}
    for row, (_, stack) in enumerate(parsed):
        stacks.setdefault(stack, []).append(row)
    size = voxel = None
    missing = []
    for stack, rows in stacks.items():
        path = _find_stack(stack, base)
        if path is None:
            missing.append(stack)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # header oddities are read_mrc's to report; only the shape is read here
            with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                shape: tuple[int, ...] = mrc.data.shape if mrc.data is not None else ()
                vs = float(mrc.voxel_size.x)
        n = shape[0] if len(shape) == 3 else 1
        idx = np.array([parsed[r][0] for r in rows])
        past = np.nonzero(idx >= n)[0]
        if len(past):
            r = rows[int(past[0])]
            raise StarError(f"{meta.source}: row {r + 1} (rlnImageName {meta.image_names[r]}) points to image "
                            f"{parsed[r][0] + 1} of {path.name}, which holds {n} images ({len(past)} rows point "
                            "past it)")
        if size is None and len(shape) >= 2:
            size, voxel = int(shape[-1]), vs
    found = len(stacks) - len(missing)
    if found:
        meta.notes.append(f"rlnImageName checked against {found} image stack(s): every index lies in its stack")
    if missing:
        meta.notes.append(f"{len(missing)} image stack(s) not found (e.g. {missing[0]}): their indices not checked")
    return size, voxel


def metadata_report(meta: ParticleMetadata, box: int | None = None) -> dict:
    """The JSON object of ``cryoforge metadata``: per-particle lists and ``n``, ``ctf_nonfinite``, ``notes``."""
    n = len(meta)
    out: dict = {"source": meta.source, "n": n}
    out["pixel_size_A"] = None if meta.pixel_sizes is None else np.asarray(meta.pixel_sizes, float).tolist()
    if meta.optics_groups is not None:
        out["optics_group"] = np.asarray(meta.optics_groups).tolist()
    if meta.ctf is not None:
        for field, key in CTF_JSON.items():
            out[key] = np.broadcast_to(np.asarray(getattr(meta.ctf, field), float), (n,)).tolist()
    if meta.rotations is not None:
        out["rotation"] = np.asarray(meta.rotations, float).tolist()
    if meta.shifts is not None or meta.pixel_shifts is not None:
        px = meta.shifts_px()
        out["shift_px"] = None if px is None else np.asarray(px, float).tolist()
        out["shift_A"] = None if meta.shifts is None else np.asarray(meta.shifts, float).tolist()
    out["box"] = box
    out["ctf_nonfinite"] = ctf_nonfinite(meta, box) if meta.ctf is not None and box else (0 if meta.ctf is None
                                                                                         else None)
    out["notes"] = list(meta.notes)
    return out


def _range(v, fmt: str = "{:.6g}") -> str:
    v = np.asarray(v, float)
    lo, hi = np.nanmin(v), np.nanmax(v)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)} … {fmt.format(hi)}"


def summary_text(meta: ParticleMetadata, report: dict) -> str:
    """The terminal table: particles, optics groups, CTF ranges, poses, and the notes."""
    n = report["n"]
    lines = [f"{meta.source}: {n} particles"]
    groups = np.asarray(meta.optics_groups) if meta.optics_groups is not None else np.ones(n, int)
    px = meta.pixel_sizes
    lines.append(f"  {'optics group':>12} {'particles':>9} {'pixel Å':>8} {'kV':>6} {'Cs mm':>6} {'ampl.':>6} "
                 f"{'image px':>8}")
    c = meta.ctf

    def val(x, rows, fmt="{:g}"):
        return "—" if x is None else _range(np.broadcast_to(np.asarray(x), (n,))[rows], fmt)

    for g in np.unique(groups):
        r = np.nonzero(groups == g)[0]
        lines.append(f"  {g:>12} {len(r):>9} {val(px, r):>8} {val(c and c.voltage, r):>6} {val(c and c.cs, r):>6} "
                     f"{val(c and c.amplitude_contrast, r):>6} {val(meta.image_sizes, r):>8}")
    if meta.ctf is not None:
        c = meta.ctf
        lines.append(f"  defocus U {_range(c.defocus_u, '{:.0f}')} Å, V {_range(c.defocus_v, '{:.0f}')} Å, "
                     f"angle {_range(c.defocus_angle, '{:.1f}')}°, phase shift {_range(c.phase_shift, '{:.1f}')}°")
        bad = report["ctf_nonfinite"]
        lines.append(f"  CTF at {report['box']}² px: {bad} particles with non-finite values" if bad is not None
                     else "  CTF not evaluated: give the image size (--box)")
    else:
        lines.append("  no CTF")
    if meta.rotations is not None:
        sh = meta.shifts_px()
        lines.append("  poses: yes" + ("" if sh is None else f", shifts {_range(sh, '{:.2f}')} px"))
    else:
        lines.append("  poses: none")
    lines.append("  what was read:")
    lines += [f"    - {note}" for note in meta.notes]
    return "\n".join(lines)
