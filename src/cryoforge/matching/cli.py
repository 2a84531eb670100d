"""``cryoforge match TOMO TEMPLATE …`` (also ``match run``) and ``cryoforge match extract DIR …``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..cliargs import non_negative, positive, tilt_range_of

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable


def _on_grid(path: str, voxel_size: float, what: str):
    """A map read and resampled to the tomogram's voxel size (its box scaled to keep the field of view, even)."""
    import numpy as np

    from ..io.mrc import read_mrc
    from ..sim.sources import resample_map

    data, info = read_mrc(path, layout="volume", finite=True)
    data = np.asarray(data, np.float32)
    if data.ndim != 3 or len(set(data.shape)) != 1:
        raise ValueError(f"{path}: the {what} must be a cubic volume; got shape {data.shape}")
    vs = float(info.voxel_size[0])
    if info.voxel_size_missing:
        raise ValueError(f"{path}: the header gives no voxel size; the {what} must say its sampling")
    if abs(vs - voxel_size) <= 1e-4 * voxel_size:
        return data
    box = max(4, 2 * round(data.shape[0] * vs / voxel_size / 2))
    return resample_map(data, vs, voxel_size, box)


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io.atomic import check_output_dir
    from ..io.mrc import read_mrc
    from ..jobs import Cancelled, run_cli
    from .config import MatchConfig
    from .job import match_folder_job

    out = Path(args.out)
    if args.world.main:
        check_output_dir(out, "job.json")
    tomo, info = read_mrc(args.tomogram, layout="volume", mmap=True, finite=True)
    vs = args.voxel_size or float(info.voxel_size[0])
    if info.voxel_size_missing and not args.voxel_size:
        raise ValueError(f"{args.tomogram}: the header gives no voxel size; pass --voxel-size Å")
    template = _on_grid(args.template, vs, "template")
    mask = None if args.mask is None else _on_grid(args.mask, vs, "mask")
    if mask is not None and mask.shape != template.shape:
        raise ValueError(f"{args.mask}: the mask is {mask.shape[0]}³ on the tomogram's grid but the template is "
                         f"{template.shape[0]}³; give them one box and voxel size")
    cfg = MatchConfig(angular_step=args.angular_step, symmetry=args.symmetry, mask_radius=args.mask_radius,
                      tilt_range=tilt_range_of(args.tlt, args.tilt_range),
                      defocus=None if args.defocus is None else args.defocus * 1e4, voltage=args.voltage, cs=args.cs,
                      amplitude_contrast=args.amplitude_contrast, phase_flipped=args.phase_flipped,
                      invert=args.invert, batch=args.batch, memory_gb=args.memory_gb)
    volume = np.asarray(tomo, np.float32)
    extra = {"tomogram": str(Path(args.tomogram).resolve()), "template": str(Path(args.template).resolve()),
             "tomogram_name": args.name or Path(args.tomogram).stem}
    try:  # the decoys first, the template last: its job.json marks the folder finished
        folder = run_cli(match_folder_job(volume, template, vs, cfg, out, mask, args.decoys, args.decoy_kind,
                                          args.seed, extra, args.world.device(args.device), args.world))
    except (Cancelled, KeyboardInterrupt):
        if args.world.main:
            print(f"cancelled: the rotations done are saved in {out}; the same command resumes",
                  file=__import__("sys").stderr)
        raise
    if folder is None:  # another rank than 0: rank 0 writes and reports
        return 0
    r = json.loads((out / "job.json").read_text())
    print(f"wrote {out}/scores.mrc, angles.mrc, job.json: {r['n_rotations']} rotations in {r['seconds']:.1f} s "
          f"({r['seconds_per_rotation']:.3g} s per rotation, {r['rotation_over_fft_pair']:.2f}× a forward + inverse "
          f"FFT of the tile); score σ {r['score_sigma']:.4f}")
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from ..io.atomic import check_output_file
    from ..io.tomo_particles import write_relion5
    from .candidates import match_candidates

    check_output_file(args.out)
    tested = args.target is not None
    found = match_candidates(args.folder, args.n, args.min_distance, args.edge, args.false_alarms,
                             args.above_threshold, None if tested else args.fdr)
    note = ""
    if tested:  # seed 000's test of every candidate, above this family (the CLI passes it in)
        found, tests = args.test_candidates(args, found)
        note = f"\n{tests.summary(args.fdr)}"
    write_relion5(args.out, found.particles, found.voxel_size)
    print(f"wrote {args.out}: {found.summary()}{note}")
    return 0


def register(sub: argparse._SubParsersAction,
             extract_test: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Add ``cryoforge match run|extract`` to the CLI (``cryoforge match TOMO …`` is ``match run``);
    ``extract_test(parser)`` adds ``match extract``'s hypothesis test of every candidate (``--target`` and its
    options, and ``test_candidates(args, found) → (found, tests)`` as a default; the test sits above this family:
    :func:`cryoforge.candidate_tests.add_test_arguments`)."""
    from .config import DECOY_KINDS, MatchConfig

    d = MatchConfig()
    m = sub.add_parser("match", help="template matching over a whole tomogram (match TOMO TEMPLATE …; match extract "
                                     "DIR …)")
    s = m.add_subparsers(dest="match_command", metavar="{run,extract}", required=True)
    r = s.add_parser("run", help="score a template at every voxel and rotation of a tomogram (the default: "
                                 "`cryoforge match TOMO TEMPLATE …`)")
    r.add_argument("tomogram", help="the tomogram (MRC); its header gives the voxel size")
    r.add_argument("template", help="the template (MRC), resampled to the tomogram's voxel size")
    r.add_argument("--angular-step", type=positive("°"), default=d.angular_step,
                   help="spacing of the uniform rotation set (degrees; default %(default)s)")
    r.add_argument("--symmetry", type=positive("n", int), default=d.symmetry,
                   help="the template's Cn symmetry about its z axis (default 1)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--mask", help="a mask map on the template's grid (rotates with it)")
    g.add_argument("--mask-radius", type=positive("Å"), help="a spherical mask (Å; default 0.4 of the template box)")
    tilt = r.add_mutually_exclusive_group()
    tilt.add_argument("--tlt", help="the tilt angles (IMOD .tlt): the missing wedge")
    tilt.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="tilt range in degrees")
    r.add_argument("--defocus", type=positive("µm"), help="defocus (µm): the template gets the CTF")
    r.add_argument("--voltage", type=positive("kV"), default=d.voltage, help="kV (default %(default)s)")
    r.add_argument("--cs", type=non_negative("mm"), default=d.cs, help="spherical aberration, mm (default %(default)s)")
    r.add_argument("--amplitude-contrast", type=non_negative(""), default=d.amplitude_contrast,
                   help="amplitude contrast fraction (default %(default)s)")
    r.add_argument("--phase-flipped", action="store_true", help="the tomogram was CTF phase-flipped: the template "
                                                                 "gets |CTF|")
    r.add_argument("--invert", action="store_true", help="multiply the template by −1 (dark protein, bright template)")
    r.add_argument("--voxel-size", type=positive("Å"), help="Å per tomogram voxel (default: the header's)")
    r.add_argument("--name", help="the tomogram's name in the STAR (rlnTomoName; default the file's stem)")
    r.add_argument("--batch", type=positive("rotations", int), default=d.batch,
                   help="rotations per batched FFT (default %(default)s)")
    r.add_argument("--memory-gb", type=positive("GB"), default=d.memory_gb,
                   help="memory a tile and its batch may take; larger tomograms are tiled (default %(default)s)")
    r.add_argument("--decoys", type=non_negative("maps", int), default=0,
                   help="also match this many decoys (see --decoy-kind) into OUT/decoyK: "
                        "`match extract` then gives each candidate a p-value and a q-value against them (default 0)")
    r.add_argument("--decoy-kind", choices=DECOY_KINDS, default=DECOY_KINDS[0],
                   help="shells: the template's concentric shells each turned at random (its radial profile and "
                        "texture, another arrangement); phases: its amplitudes with random phases (default shells)")
    r.add_argument("--seed", type=int, default=0, help="seed of the decoys (default 0)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--out", required=True, help="output folder (scores.mrc, angles.mrc, job.json)")
    r.set_defaults(func=_cmd_run, distributed=True)

    e = s.add_parser("extract", help="candidates of a matching run as RELION 5 STAR, with the Gaussian-null baseline")
    e.add_argument("folder", help="the output folder of `cryoforge match`")
    e.add_argument("--n", type=positive("candidates", int), default=100, help="at most this many (default %(default)s)")
    e.add_argument("--min-distance", type=positive("Å"),
                   help="no two candidates closer than this (Å; default the mask's diameter, about the particle's)")
    e.add_argument("--false-alarms", type=positive("per tomogram"), default=1.0,
                   help="the Gaussian-null threshold's expected false alarms per tomogram (default %(default)s)")
    e.add_argument("--above-threshold", action="store_true", help="keep only the candidates above that threshold")
    e.add_argument("--fdr", type=positive("q"), help="keep the candidates with q-value ≤ Q (the hypothesis test's with "
                                                     "--target, else against the decoys when the run matched some, "
                                                     "else the Gaussian null's)")
    e.add_argument("--edge", type=non_negative("voxels", int),
                   help="leave out voxels this close to the border (default half the template box)")
    e.add_argument("--out", required=True, help="the STAR file to write")
    e.set_defaults(func=_cmd_extract, target=None)
    if extract_test is not None:
        extract_test(e)
