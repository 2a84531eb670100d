"""``cryoforge extract``: subtomograms of a tomogram's particles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..cliargs import positive

if TYPE_CHECKING:
    import argparse


def _tilt_range(args: argparse.Namespace) -> tuple[float, float] | None:
    if args.tlt:
        import numpy as np

        angles = np.loadtxt(args.tlt, ndmin=1)
        if angles.size == 0 or not np.isfinite(angles).all():
            raise ValueError(f"{Path(args.tlt).name}: a .tlt file holds one tilt angle (degrees) per line")
        return float(angles.min()), float(angles.max())
    if args.tilt_range:
        lo, hi = args.tilt_range
        if not -90 <= lo < hi <= 90:
            raise ValueError(f"--tilt-range takes MIN < MAX within ±90°; got {lo:g} {hi:g}")
        return float(lo), float(hi)
    return None


def _cmd_extract(args: argparse.Namespace) -> int:
    from ..io.atomic import check_output_dir
    from ..io.mrc import read_mrc
    from ..io.tomo_particles import read_particle_list
    from ..jobs import run_cli
    from .extract import extract_job

    check_output_dir(args.out, "subtomograms.star")  # before the work
    tilt_range = _tilt_range(args)
    data, info = read_mrc(args.tomogram, mmap=True, layout="volume", finite=True)
    vs = args.voxel_size or float(info.voxel_size[0])
    name = args.name or Path(args.tomogram).stem
    particles = read_particle_list(args.particles, vs, data.shape, name)
    names = sorted(set(particles.tomograms.tolist()))
    if len(names) > 1:  # a list of several tomograms: this tomogram's particles (by --name, else the file's stem)
        if name not in names:
            raise ValueError(f"{Path(args.particles).name} holds particles of {len(names)} tomograms "
                             f"({', '.join(names[:6])}{', …' if len(names) > 6 else ''}); say which is "
                             f"{Path(args.tomogram).name} with --name")
        particles = particles.take(particles.tomograms == name)
        print(f"{len(particles)} of the list's particles are in {name}")
    res = run_cli(extract_job(data, vs, particles, args.box, args.bin, tilt_range,
                              None if args.defocus is None else args.defocus * 1e4, args.out))
    edge = int((res.edge_fraction > 0).sum())
    print(f"wrote {len(res.subtomograms)} subtomograms of {args.box}³ at {res.voxel_size:g} Å to {args.out}"
          + (f"; {edge} reach past the tomogram's edge (cfEdgeFraction in the STAR)" if edge else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cryoforge extract`` to the CLI."""
    s = sub.add_parser("extract", help="subtomograms of a tomogram's particles (RELION 5/3/4 STAR, Dynamo .tbl, "
                                       "x y z text) as an MRC volume stack with a RELION 5 STAR and the wedge mask")
    s.add_argument("tomogram", help="the tomogram (MRC); its header gives the voxel size")
    s.add_argument("particles", help="particle list of that tomogram")
    s.add_argument("--box", type=positive("voxels", int), default=32,
                   help="box size of the subtomograms in voxels, after --bin (default %(default)s)")
    s.add_argument("--bin", type=positive("×", int), default=1, help="Fourier-crop bin×box voxels to box (default 1)")
    s.add_argument("--voxel-size", type=positive("Å"), help="Å per tomogram voxel (default: the header's)")
    tilt = s.add_mutually_exclusive_group()
    tilt.add_argument("--tlt", help="the tilt angles (IMOD .tlt, one per line): the wedge mask")
    tilt.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="tilt range in degrees")
    s.add_argument("--defocus", type=positive("µm"),
                   help="every particle's defocus (µm) unless the list has rlnDefocusU")
    s.add_argument("--name", help="the tomogram's name in the list (rlnTomoName): picks its particles from a list of "
                                  "several tomograms, names a list without one (default: the tomogram file's stem)")
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_cmd_extract)
