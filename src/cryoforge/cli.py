"""The ``cryoforge`` command line.

Built-in subcommands: ``info``, ``fsc``, ``sample``, ``bench``, ``simulate`` (:mod:`cryoforge.sim.cli`). Other installed packages add subcommands through
the ``cryoforge.commands`` entry-point group (the viewer package adds ``view``): each entry point
names a function ``register(subparsers)`` that adds a parser with ``set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .bench import BENCH_JOBS
from .cliargs import OneLineParser, check_finite, non_negative, positive

if TYPE_CHECKING:
    from collections.abc import Sequence



def _cmd_info(args) -> int:
    from .io.mrc import data_stats, read_mrc

    for f in args.files:
        data, info = read_mrc(f, mmap=True, layout=args.layout, permissive=args.permissive)
        stats = data_stats(data)
        kind = {"stack": "image stack (N, Y, X)", "volume": "volume (Z, Y, X)",
                "volume stack": "volume stack (N, Z, Y, X)"}[info.layout]
        vx, vy, vz = info.voxel_size
        extent = [n * v for n, v in zip(info.shape[::-1], (vx, vy, vz), strict=False)]  # a stack has more axes
        print(f"{f}")
        print(f"  type        {kind}, stored as {info.file_dtype}  ({info.layout_reason})")
        print(f"  shape       {info.shape}")
        print(f"  voxel size  x {vx:.4g} Å, y {vy:.4g} Å, z {vz:.4g} Å"
              + ("  (missing in header; assumed)" if info.voxel_size_missing else ""))
        if not info.is_stack:
            print(f"  extent      {extent[0]:.1f} × {extent[1]:.1f} × {extent[2]:.1f} Å (x × y × z)")
        print(f"  origin      {tuple(round(o, 3) for o in info.origin)} Å")
        if stats["n"]:
            print(f"  min/max     {stats['min']:.5g} / {stats['max']:.5g}")
            print(f"  mean ± std  {stats['mean']:.5g} ± {stats['std']:.5g}")
        n_bad = int(np.prod(data.shape)) - stats["n"]
        if n_bad:
            print(f"  WARNING     {n_bad} NaN/inf values")
    return 0


def _cmd_particles(args: argparse.Namespace) -> int:
    from .io.tomo_particles import ParticleListError, read_particle_list, write_dynamo, write_relion5

    if args.out and Path(args.out).suffix not in (".star", ".tbl"):
        raise ParticleListError(f"{Path(args.out).name}: write a RELION 5 .star or a Dynamo .tbl")
    shape, voxel = args.shape[::-1] if args.shape else None, args.voxel_size
    if args.tomogram:
        from .io.mrc import read_mrc

        _, info = read_mrc(args.tomogram, mmap=True, layout="volume")
        shape, voxel = info.shape, voxel or float(info.voxel_size[0])
    parts = read_particle_list(args.particles, voxel, shape, args.name)
    voxel = voxel or parts.voxel_size
    names = sorted(set(parts.tomograms.tolist()))
    lo, hi = parts.positions.min(0), parts.positions.max(0)
    turned = int((abs(parts.rotations - np.eye(3)).reshape(len(parts), -1).max(1) > 1e-6).sum())
    print(f"{args.particles}: {len(parts)} particles in {len(names)} tomogram(s) ({', '.join(names[:5])}"
          f"{', …' if len(names) > 5 else ''})")
    print(f"  position    x {lo[0]:.0f} … {hi[0]:.0f} Å, y {lo[1]:.0f} … {hi[1]:.0f} Å, z {lo[2]:.0f} … {hi[2]:.0f} Å from the tomogram centre"
          )
    print(f"  rotations   {turned} of {len(parts)} not the identity")
    if len(parts.table.columns):
        print(f"  kept        {', '.join(map(str, parts.table.columns[:8]))}")
    if args.out:
        out = Path(args.out)
        if out.suffix == ".star":
            if voxel is None:
                raise ParticleListError("a RELION 5 STAR records the voxel size: give --voxel-size Å or --tomogram")
            write_relion5(out, parts, voxel)
        else:
            if voxel is None or shape is None:
                raise ParticleListError("a Dynamo table is in tomogram voxels: give --tomogram TOMO.mrc (or "
                                        "--voxel-size and --shape)")
            write_dynamo(out, parts, voxel, shape)
        print(f"wrote {out}")
    return 0


def _cmd_metadata(args) -> int:
    from .io.atomic import atomic_path
    from .io.particles import read_particle_metadata, with_ctf
    from .io.report import check_image_stacks, metadata_report, summary_text

    path = Path(args.file)
    if args.json:
        from .io.atomic import check_output_file

        check_output_file(args.json)
    meta = read_particle_metadata(path, args.apix, args.box, args.use_ctf_envelope)
    if args.ctf:
        meta = with_ctf(meta, args.ctf, args.apix, args.use_ctf_envelope)
    stack_size, stack_voxel = check_image_stacks(meta, path.parent)
    if stack_voxel and meta.pixel_size and abs(stack_voxel - meta.pixel_size) > 1e-3 * meta.pixel_size:
        meta.notes.append(f"the image stack's header says {stack_voxel:g} Å per pixel; the metadata's "
                          f"{meta.pixel_size:g} Å is used")
    box = args.box or stack_size
    if box is None and meta.image_sizes is not None:
        box = int(meta.image_sizes[0])
    if meta.pixel_sizes is None and meta.ctf is not None:
        raise ValueError(f"{path.name}: no pixel size (rlnImagePixelSize, rlnPixelSize, rlnDetectorPixelSize with "
                         "rlnMagnification, blob/psize_A); give it with --apix Å")
    report = metadata_report(meta, box)
    print(summary_text(meta, report))
    if args.json:
        report["command"] = "cryoforge " + " ".join(getattr(args, "argv", []))
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(report))
        print(f"wrote {args.json}")
    return 0


def _cmd_fsc(args) -> int:
    from .fourier import spherical_mask
    from .io.atomic import check_output_file
    from .io.mrc import read_mrc
    from .metrics import GOLD_STANDARD, HALF, fsc

    for out in (args.json, args.plot):
        if out:
            check_output_file(out)
    a, ia = read_mrc(args.a, finite=True)
    b, ib = read_mrc(args.b, finite=True)
    if not np.allclose(ia.voxel_size, ib.voxel_size, rtol=1e-3):
        print(f"warning: voxel sizes differ ({ia.voxel_size[0]:.4g} vs {ib.voxel_size[0]:.4g} Å); using the first",
              file=sys.stderr)
    vs = args.voxel_size or ia.voxel_size[0]
    mask = None
    if args.mask_radius:
        mask = spherical_mask(a.shape, args.mask_radius / vs, args.soft_edge / vs)
    curve = fsc(a, b, vs, mask)
    print(f"{'shell':>5} {'1/Å':>9} {'Å':>9} {'FSC':>8}")
    for i, (f, c) in enumerate(zip(curve.frequency, curve.fsc, strict=True)):
        res = f"{1 / f:9.2f}" if f > 0 else f"{'inf':>9}"
        print(f"{i:5d} {f:9.4f} {res} {c:8.4f}")
    r143, r05 = curve.resolution(GOLD_STANDARD), curve.resolution(HALF)
    print(f"resolution at FSC=0.143: {r143:.2f} Å   at FSC=0.5: {r05:.2f} Å   (voxel size {vs:.4g} Å, "
          f"Nyquist {2 * vs:.2f} Å)")
    if args.json:
        from .io.atomic import atomic_path

        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(curve.as_dict(), indent=1))
    if args.plot:
        from .plots import plot_fsc

        plot_fsc(curve, args.plot, title=f"{Path(args.a).name} vs {Path(args.b).name}")
    return 0


def _cmd_sample(args) -> int:
    from .io.mrc import write_mrc
    from .phantom import blob_phantom, noisy_half_maps

    out = Path(args.outdir)
    vol = blob_phantom(args.size, args.voxel_size, seed=args.seed)
    h1, h2 = noisy_half_maps(vol, args.snr, seed=args.seed + 1)
    for name, arr in (("phantom.mrc", vol), ("phantom_half1.mrc", h1), ("phantom_half2.mrc", h2)):
        print(write_mrc(out / name, arr, args.voxel_size))
    return 0


def _cmd_bench(args) -> int:
    from .bench import bench_job, bench_settings
    from .io.atomic import atomic_path
    from .jobs import run_cli

    options = {}
    for item in args.option or []:
        key, _, value = item.partition("=")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    settings = bench_settings(args.name, options)
    if args.out:
        from .io.atomic import check_output_file

        check_output_file(args.out)
    report = run_cli(bench_job(args.name)(settings, device=args.device))
    report["command"] = "cryoforge " + " ".join(getattr(args, "argv", []))
    text = json.dumps(report, indent=1)
    if args.out:
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _open_tomogram(args: argparse.Namespace):
    """``align … TOMO --particles LIST``: extract first (:func:`cryoforge.particle_qa.open_tomogram_cli`; imported
    when used, so ``--help`` stays light)."""
    from .particle_qa import open_tomogram_cli

    return open_tomogram_cli(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``cryoforge`` argument parser with every family's commands and the plugins' (entry points)."""
    p = OneLineParser(prog="cryoforge", description="cryo-EM / cryo-ET machine-learning engine")
    p.add_argument("--version", action="version", version=f"cryoforge {__version__}")
    p.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="shape, voxel size and statistics of MRC files")
    s.add_argument("files", nargs="+")
    s.add_argument("--as", dest="layout", choices=["auto", "volume", "stack"], default="auto",
                   help="read as a volume or an image stack (default auto: the rule in cryoforge.io.mrc, by "
                        "extension, shape and header)")
    s.add_argument("--permissive", action="store_true",
                   help="read a file whose header does not describe its length (damaged, or not MRC) as far as "
                        "mrcfile can")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("metadata", help="what cryoforge reads from a STAR, cryoSPARC .cs or cryoDRGN .pkl file: "
                                        "optics groups, pixel sizes, CTF, poses, fields used or ignored")
    s.add_argument("file", help="RELION 3.0/3.1/5 .star, cryoSPARC .cs, or a cryoDRGN pose or CTF .pkl")
    s.add_argument("--apix", type=positive("Å"), help="pixel size in Å; overrides the file's")
    s.add_argument("--box", type=positive("px", int), help="image size in pixels (default: the image stack's, else rlnImageSize); "
                                           "the CTF is checked on this grid")
    s.add_argument("--ctf", help="a second file whose CTF replaces this one's (e.g. a cryoDRGN ctf.pkl)")
    s.add_argument("--use-ctf-envelope", action="store_true",
                   help="apply rlnCtfBfactor / rlnCtfScalefactor (capped at 1); ignored by default, as cryoDRGN does")
    s.add_argument("--json", help="write per-particle values (pixel_size_A, defocus_u_A, …, rotation, shift_px, "
                                  "shift_A) to this JSON file")
    s.set_defaults(func=_cmd_metadata)

    s = sub.add_parser("particles", help="read a tomogram particle list (RELION 5 / 3 / 4 STAR, Dynamo .tbl, x y z "
                                         "text), say what it holds, and write it as RELION 5 STAR or Dynamo .tbl")
    s.add_argument("particles", help="particle list: .star, .tbl, .txt/.coords/.xyz")
    s.add_argument("--tomogram", help="the tomogram (MRC): its shape and voxel size place voxel coordinates")
    s.add_argument("--voxel-size", type=positive("Å"), help="Å per tomogram voxel (default: the file's, else the "
                                                            "tomogram's)")
    s.add_argument("--shape", type=positive("voxels", int), nargs=3, metavar=("X", "Y", "Z"),
                   help="tomogram size in voxels, without --tomogram")
    s.add_argument("--name", help="tomogram name for a list that has none (default: the file's stem)")
    s.add_argument("--out", help="write the particles: .star (RELION 5) or .tbl (Dynamo)")
    s.set_defaults(func=_cmd_particles)

    s = sub.add_parser("fsc", help="Fourier shell correlation of two maps, resolution at 0.143 and 0.5")
    s.add_argument("a")
    s.add_argument("b")
    s.add_argument("--voxel-size", type=positive("Å"), help="Å per voxel (default: from the first file)")
    s.add_argument("--mask-radius", type=positive("Å"), help="soft spherical mask radius in Å")
    s.add_argument("--soft-edge", type=non_negative("Å"), default=6.0, help="mask edge width in Å (default 6)")
    s.add_argument("--json", help="write the curve and resolutions to this JSON file")
    s.add_argument("--plot", help="save a plot of the curve (PNG/PDF/SVG)")
    s.set_defaults(func=_cmd_fsc)

    s = sub.add_parser("sample", help="write the synthetic phantom map and two noisy half maps")
    s.add_argument("outdir")
    s.add_argument("--size", type=positive("voxels", int), default=64)
    s.add_argument("--voxel-size", type=positive("Å"), default=2.0)
    s.add_argument("--snr", type=positive(), default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_sample)

    s = sub.add_parser("bench", help="run a benchmark and write its figures as JSON")
    s.add_argument("name", choices=list(BENCH_JOBS),
                   help="core: FSC and CTF throughput of the field libraries; sim: simulator throughput; "
                        "align: Gum-Net / classical / hybrid accuracy and averaging; "
                        "hyptest: template-matching hypothesis tests; explorer: live-decode latency of each "
                        "manifold kind; drgn: cryoDRGN with known poses on the AdK stack; mcgan: Multi-CryoGAN "
                        "projectors, continuous and discrete AdK manifolds")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    s.add_argument("--out", help="JSON file to write (default: print)")
    s.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="bench option, value as JSON (e.g. -o n_pairs=100 -o averaging=false)")
    s.set_defaults(func=_cmd_bench)

    from .align.cli import register as register_align
    from .candidate_tests import add_test_arguments
    from .hyptest.cli import register as register_hyptest
    from .manifold.cli import register as register_manifold
    from .matching.cli import register as register_match
    from .multicryogan.cli import register as register_mcgan
    from .sim.cli import register as register_simulate
    from .tomograms.cli import register as register_tomograms

    register_simulate(sub)
    register_tomograms(sub)
    register_match(sub, add_test_arguments)
    register_align(sub, _open_tomogram)
    register_hyptest(sub)
    register_manifold(sub)
    register_mcgan(sub)

    for ep in entry_points(group="cryoforge.commands"):
        try:
            ep.load()(sub)
        except Exception as err:  # noqa: BLE001 - a broken add-on must not break the core CLI
            print(f"warning: subcommand '{ep.name}' unavailable: {err}", file=sys.stderr)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cryoforge``; returns the exit status (0 done, 1 internal error, 2 a usage or input error, 130
    cancelled)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["match"] and len(argv) > 1 and argv[1] not in ("run", "extract", "-h", "--help"):
        argv = ["match", "run", *argv[1:]]  # `cryoforge match TOMO TEMPLATE …` is `match run`
    try:  # argument errors: one line and status 2, returned like every other error of main()
        args = parser.parse_args(argv)
        check_finite(args)
    except SystemExit as stop:
        return int(stop.code or 0)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from .jobs import distributed

    args.world = distributed.World.from_env()
    if args.world.size > 1:
        if not getattr(args, "distributed", False):
            print(f"cryoforge {args.command}: error: this command runs as one process; under torchrun "
                  "(WORLD_SIZE > 1) run `align train`, `align run` on a pair dataset, `drgn train` with known poses, "
                  "`drgn eval --zfile`, `hyptest train-gan|train-regressor|test` or `mcgan train`",
                  file=sys.stderr)
            return 2
        if getattr(args, "device", None) is not None:
            args.device = args.world.device(args.device)  # cuda → cuda:LOCAL_RANK, one GPU per process
        distributed.start(args.world, getattr(args, "device", "cpu"))
        if not args.world.main:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - rank 0 prints the results
    import warnings

    from .io.checkpoint import CheckpointError
    from .io.mrc import MrcError, MrcWarning
    from .io.star import StarError, StarWarning
    from .jobs import Cancelled, JobError
    from .latent import ManifoldError

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (MrcWarning, StarWarning)):
            print(f"cryoforge {args.command}: warning: {message}", file=sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    default_show, warnings.showwarning = warnings.showwarning, show
    try:
        status = int(args.func(args) or 0)
        distributed.stop(args.world)  # under torchrun: every rank finished, they leave together
        return status
    except (MrcError, StarError, CheckpointError, JobError, ManifoldError, ValueError, FileNotFoundError,
            IsADirectoryError, NotADirectoryError, PermissionError, pickle.UnpicklingError) as err:
        if args.debug:
            raise
        print(f"cryoforge {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print(f"cryoforge {args.command}: cancelled", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - an internal error: one line; --debug shows the traceback
        if args.debug:
            raise
        print(f"cryoforge {args.command}: internal error: {type(err).__name__}: {_one_line(err)} (run again with "
              "--debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = default_show
        distributed.stop(args.world, wait=False)  # a failure: nothing to wait for (done already after a success)


def _one_line(err: BaseException) -> str:
    lines = [x.strip() for x in str(err).splitlines() if x.strip()]
    return "; ".join(lines) if len(lines) <= 3 else "; ".join(lines[:3]) + " …"


def run() -> int:
    """The ``cryoforge`` program (console script and ``python -m cryoforge.cli``): :func:`main` in a process of its
    own, whose large tensors come and go, so freed memory is kept for reuse (:func:`cryoforge.resources.
    keep_freed_memory`). Not done by :func:`main`, which other programs (and the tests) call in their process."""
    from .resources import keep_freed_memory

    keep_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(run())
