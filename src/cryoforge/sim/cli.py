"""``cryoforge simulate map|subtomos|particles`` (defaults from seeds 000–003)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..cliargs import non_negative, positive

if TYPE_CHECKING:
    import argparse


DEFAULT_SUBTOMO_SOURCES = ["phantom:proteasome", "phantom:ribosome", "phantom:ferritin", "phantom:multiblob"]


def _map_args(s, box: int, voxel: float):
    s.add_argument("--box", type=positive("voxels", int), default=box, help=f"box size in voxels (default {box})")
    s.add_argument("--voxel-size", type=positive("Å"), default=voxel, help=f"Å per voxel (default {voxel:g})")
    s.add_argument("--method", choices=["peng", "gaussian"], default="peng",
                   help="peng: 5-Gaussian electron form factors; gaussian: Situs/molmap blur (needs --resolution)")
    s.add_argument("--resolution", type=float, help="extra Gaussian blur to this resolution in Å")
    s.add_argument("--bfactor", type=float, default=0.0, help="global B-factor in Å² (default 0)")


def _spec(args):
    from .sources import MapSpec

    return MapSpec(args.box, args.voxel_size, args.method, args.resolution, args.bfactor)


def _provenance(out: Path, args: argparse.Namespace, record: str = "dataset.json") -> None:
    """Add the command line to the output's JSON record (the provenance of shipped data)."""
    cmd = "cryoforge " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
    info = json.loads((out / record).read_text())
    info["command"] = cmd
    (out / record).write_text(json.dumps(info, indent=1, default=float))


def _cmd_map(args) -> int:
    from ..io.mrc import write_mrc
    from .sources import load_map

    vol = load_map(args.source, _spec(args), seed=args.seed)
    print(write_mrc(args.out, vol, args.voxel_size))
    return 0


def _cmd_subtomos(args) -> int:
    import numpy as np

    from ..jobs import run_cli
    from .params import TomoParams
    from .sources import load_map, source_name
    from .subtomo import simulate_pairs_job

    spec = _spec(args)
    sources = args.sources or DEFAULT_SUBTOMO_SOURCES
    maps = np.stack([load_map(s, spec, seed=args.seed) for s in sources])
    params = TomoParams(voxel_size=args.voxel_size, tilt_step=args.tilt_step, cs=args.cs,
                        defocus_min=args.defocus[0] * 1e4, defocus_max=args.defocus[1] * 1e4,
                        amplitude_contrast=args.amplitude_contrast, bfactor=args.ctf_bfactor,
                        snr=None if args.snr == 0 else args.snr, reconstruction=args.reconstruction,
                        mtf=not args.no_mtf, ctf_correction=args.ctf_correction)
    if args.snr < 0:
        raise ValueError(f"snr must be positive (0 for noise-free); got {args.snr}")
    job = simulate_pairs_job(maps, [source_name(s) for s in sources], args.n_pairs, params, args.wedge_a,
                             args.wedge_b, args.max_shift, args.seed, out_dir=args.out, storage=args.storage)
    ds = run_cli(job)
    _provenance(Path(args.out), args)
    print(f"wrote {len(ds)} pairs to {args.out}")
    return 0


def _cmd_particles(args) -> int:
    from ..jobs import run_cli
    from .params import ParticleParams
    from .particles import Ensemble, simulate_particles_job, snr_from_db
    from .sources import continuous_ensemble, discrete_ensemble, load_map, source_name, trajectory_ensemble

    spec = _spec(args)
    if args.dcd:
        ens = trajectory_ensemble(args.sources[0], args.dcd, spec, args.stride)
    elif args.weights:
        if len(args.weights) != len(args.sources):
            raise ValueError(f"--weights needs one weight per source ({len(args.sources)}); got {len(args.weights)}")
        ens = discrete_ensemble(args.sources, args.weights, spec)
    elif len(args.sources) == 2:
        ens = continuous_ensemble(args.sources[0], args.sources[1], args.states, spec)
    elif len(args.sources) == 1:
        ens = Ensemble(load_map(args.sources[0], spec, seed=args.seed), names=[source_name(args.sources[0])])
    else:
        raise ValueError("give one source (homogeneous), two (continuous path, or discrete with --weights), "
                         "several with --weights, or a topology with --dcd")
    snr = snr_from_db(args.snr_db) if args.snr_db is not None else args.snr
    params = ParticleParams(pixel_size=args.voxel_size, cs=args.cs, amplitude_contrast=args.amplitude_contrast,
                            defocus_min=args.defocus[0] * 1e4, defocus_max=args.defocus[1] * 1e4,
                            astigmatism=args.astigmatism, bfactor=args.ctf_bfactor, max_shift=args.max_shift,
                            snr=None if snr == 0 else snr)
    run_cli(simulate_particles_job(ens, args.n, params, args.seed, out_dir=args.out, storage=args.storage))
    _provenance(Path(args.out), args)
    print(f"wrote {args.n} particles to {args.out}")
    return 0


def _common_ctf(s, defocus, cs, ac):
    s.add_argument("--defocus", type=float, nargs=2, default=defocus, metavar=("MIN", "MAX"),
                   help=f"underfocus range in µm (default {defocus[0]:g} {defocus[1]:g})")
    s.add_argument("--cs", type=non_negative("mm"), default=cs, help=f"spherical aberration in mm (default {cs:g})")
    s.add_argument("--amplitude-contrast", type=float, default=ac, help=f"fraction (default {ac:g})")
    s.add_argument("--ctf-bfactor", type=float, default=0.0, help="CTF envelope B-factor in Å² (default 0)")
    s.add_argument("--seed", type=int, default=0)


def _cmd_tomogram(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io.atomic import check_output_dir
    from ..jobs import run_cli
    from .sources import MapSpec, load_map, source_name
    from .tomogram import TomogramParams, simulate_tomogram_job

    out = check_output_dir(args.out, "tomogram.json")  # before the work
    spec = MapSpec(args.box, args.voxel_size)
    maps = np.stack([load_map(s, spec, seed=args.seed) for s in args.sources])
    params = TomogramParams(shape=tuple(args.shape), voxel_size=args.voxel_size, n_particles=args.n_particles,
                            tilt_range=tuple(args.tilt_range), tilt_step=args.tilt_step,
                            snr=args.snr or None, defocus=args.defocus, thickness=args.thickness,
                            apply_ctf=not args.no_ctf, mtf=not args.no_mtf, seed=args.seed)
    res = run_cli(simulate_tomogram_job(maps, [source_name(s) for s in args.sources], params, out, args.name))
    _provenance(out, args, "tomogram.json")
    print(f"wrote {out}: {len(res.particles)} particles, {len(res.tilts)} tilts, {res.report['seconds']:.0f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cryoforge simulate map|pairs|particles`` to the CLI."""
    sim = sub.add_parser("simulate", help="simulate maps, subtomogram pairs or particle stacks")
    ssub = sim.add_subparsers(dest="what", metavar="WHAT", required=True)

    s = ssub.add_parser("map", help="density map of a phantom, PDB/mmCIF model or map file")
    s.add_argument("source", help="phantom:KIND[@SEED] (proteasome, ribosome, ferritin, multiblob, assembly), PDB/mmCIF or MRC")
    _map_args(s, 64, 2.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output .mrc")
    s.set_defaults(func=_cmd_map)

    s = ssub.add_parser("tomogram", help="a crowded tomogram: particles of the structures in a slab, a tilt series "
                                         "with CTF, MTF and noise, its back-projection, the true particle list")
    s.add_argument("sources", nargs="+", help="structures: phantom:KIND[@SEED], PDB/mmCIF or MRC (drawn in turn)")
    s.add_argument("--box", type=positive("voxels", int), default=32, help="box of the structures' maps (default 32)")
    s.add_argument("--shape", type=positive("voxels", int), nargs=3, default=[512, 512, 128], metavar=("X", "Y", "Z"),
                   help="tomogram size in voxels (default 512 512 128)")
    s.add_argument("--voxel-size", type=positive("Å"), default=10.0, help="Å per voxel (default 10)")
    s.add_argument("--n-particles", type=non_negative("particles", int), default=200, help="(default 200)")
    s.add_argument("--tilt-range", type=float, nargs=2, default=[-60.0, 60.0], metavar=("MIN", "MAX"),
                   help="degrees (default -60 60)")
    s.add_argument("--tilt-step", type=positive("°"), default=2.0, help="degrees (default 2)")
    s.add_argument("--snr", type=non_negative(), default=0.1,
                   help="particle SNR in the reconstruction, var(signal)/var(noise) in the boxes (default 0.1; 0: none)")
    s.add_argument("--defocus", type=non_negative("µm"), default=3.0, help="underfocus at the mid-plane (default 3)")
    s.add_argument("--thickness", type=positive("Å"), default=1000.0, help="slab thickness (default 1000)")
    s.add_argument("--no-ctf", action="store_true", help="perfect transfer (no CTF)")
    s.add_argument("--no-mtf", action="store_true", help="perfect detector (no sinc MTF)")
    s.add_argument("--name", default="TS_01", help="tomogram name in the particle list (default TS_01)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_cmd_tomogram)

    s = ssub.add_parser("subtomos", help="subtomogram pairs (s_a without wedge, s_b with wedge) + ground truth")
    s.add_argument("sources", nargs="*", help=f"structures (default: {' '.join(DEFAULT_SUBTOMO_SOURCES)})")
    _map_args(s, 32, 12.0)
    s.add_argument("--n-pairs", type=positive("pairs", int), default=100)
    s.add_argument("--snr", type=non_negative(), default=0.1, help="subtomogram SNR c/(1-c) (default 0.1; 0: noise-free)")
    s.add_argument("--wedge-a", type=float, default=0.0, help="missing wedge of s_a in degrees (default 0)")
    s.add_argument("--wedge-b", type=float, default=30.0, help="missing wedge of s_b in degrees (default 30: ±60°)")
    s.add_argument("--tilt-step", type=positive("°"), default=1.0, help="degrees (default 1)")
    s.add_argument("--max-shift", type=float, default=7.0, help="largest shift of s_b in voxels (default 7)")
    s.add_argument("--reconstruction", choices=["fourier", "wbp"], default="fourier")
    s.add_argument("--ctf-correction", choices=["none", "phase_flip"], default="none")
    s.add_argument("--no-mtf", action="store_true", help="perfect detector (no sinc MTF)")
    s.add_argument("--storage", choices=["float32", "float16", "int8"], default="float32")
    _common_ctf(s, [2.0, 5.0], 2.7, 0.07)
    s.add_argument("--out", required=True, help="output directory")
    s.set_defaults(func=_cmd_subtomos)

    s = ssub.add_parser("particles", help="particle stack (.mrcs + RELION .star), homogeneous or heterogeneous")
    s.add_argument("sources", nargs="+", help="one source; two for a continuous path (or discrete with --weights); "
                                              "a topology PDB with --dcd")
    _map_args(s, 64, 2.0)
    s.add_argument("-n", type=positive("particles", int), default=1000, help="number of particles (default 1000)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--snr", type=non_negative(), default=0.1, help="linear SNR (default 0.1; 0: noise-free)")
    g.add_argument("--snr-db", type=float, help="SNR in dB (e.g. -10)")
    s.add_argument("--states", type=int, default=21, help="states along a continuous path (default 21)")
    s.add_argument("--weights", type=float, nargs="+", help="discrete mixture weights, one per source")
    s.add_argument("--dcd", help="DCD trajectory whose frames are the states (sources: its topology PDB)")
    s.add_argument("--stride", type=int, default=1, help="use every STRIDE-th frame (default 1)")
    s.add_argument("--max-shift", type=float, default=0.0, help="largest particle shift in pixels (default 0)")
    s.add_argument("--astigmatism", type=float, default=0.0, help="largest |defocus U − V| in Å (default 0)")
    s.add_argument("--storage", choices=["float32", "float16"], default="float32", help="MRC mode of the stack")
    _common_ctf(s, [1.0, 2.0], 2.7, 0.1)
    s.add_argument("--out", required=True, help="output directory")
    s.set_defaults(func=_cmd_particles)
