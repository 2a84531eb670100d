"""``cryoforge extract``: subtomograms of a tomogram's particles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cliargs import add_tomogram_options, tilt_range_of

if TYPE_CHECKING:
    import argparse


def _cmd_extract(args: argparse.Namespace) -> int:
    from ..io.atomic import check_output_dir
    from ..io.tomo_particles import read_tomogram_particles
    from ..jobs import run_cli
    from .extract import extract_job

    if args.world.main:
        check_output_dir(args.out, "subtomograms.star")  # before the work
    tilt_range = tilt_range_of(args.tlt, args.tilt_range)
    data, vs, particles, total = read_tomogram_particles(args.tomogram, args.particles, args.voxel_size, args.name)
    if len(particles) < total and args.world.main:
        print(f"{len(particles)} of the list's particles are in {particles.tomograms[0]}")
    res = run_cli(extract_job(data, vs, particles, args.box, args.bin, tilt_range,
                              None if args.defocus is None else args.defocus * 1e4, args.out, world=args.world))
    if not args.world.main:  # rank 0 wrote the folder and reports
        return 0
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
    add_tomogram_options(s)
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_cmd_extract, distributed=True)
