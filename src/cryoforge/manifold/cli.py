"""``cryoforge movie`` (latent interpolation movies of any manifold) and ``cryoforge drgn eval|analyze`` (real cryoDRGN runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..cliargs import positive

if TYPE_CHECKING:
    import argparse

    from ..hints import PathLike
    from ..latent import Manifold



def _open(args):
    from .loaders import open_manifold

    return open_manifold(args.model, args.device, getattr(args, "config", None), getattr(args, "z", None),
                         getattr(args, "voxel_size", None))


def resolve_point(manifold: Manifold, text: str) -> np.ndarray:
    """A latent point from ``text``: a data label (e.g. ``4v5d``), ``#N`` (data point N), or numbers."""
    from ..latent import ManifoldError
    from .paths import parse_point

    labels = manifold.data_labels or []
    if text in labels and manifold.data_latents is not None:
        return np.asarray(manifold.data_latents[labels.index(text)], np.float32)
    if text.startswith("#"):
        if manifold.data_latents is None:
            raise ManifoldError(f"{text}: this model carries no data latents to index")
        i = int(text[1:])
        if not 0 <= i < len(manifold.data_latents):
            raise ManifoldError(f"{text}: data point index out of range 0..{len(manifold.data_latents) - 1}")
        return np.asarray(manifold.data_latents[i], np.float32)
    try:
        return parse_point(text, manifold.latent_dim)
    except ManifoldError:
        if labels and not any(c.isdigit() for c in text):
            import difflib

            close = difflib.get_close_matches(text, labels, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ManifoldError(f"{text!r} is not a data label of this model; {hint}its labels: "
                                f"{', '.join(labels)} (or give numbers, or #N for data point N)") from None
        raise


def _cmd_movie(args) -> int:
    from ..jobs import run_cli
    from ..resources import check_allocation
    from .movie import movie_job
    from .paths import make_path

    m = _open(args)
    check_allocation(args.frames * m.box ** 3 * 4 * 2, f"{args.frames} frames of {m.box}³", "make fewer frames")
    pts = [resolve_point(m, t) for t in [args.start, *(args.via or []), args.end]]
    path = make_path(np.stack(pts), args.frames, args.path, m.data_latents, args.k)
    rec = {"command": "cryoforge movie " + " ".join(args.argv[1:]), "path_method": args.path,
           "waypoints": [p.tolist() for p in pts]}
    res = run_cli(movie_job(m, path, args.out, args.fps, args.renderer, args.rotate, args.iso, args.colormap, rec))
    print(f"wrote {res.movie} ({res.frames} frames, {res.renderer} renderer); z path {res.z_path}")
    return 0


def read_zfile(path: PathLike, latent_dim: int) -> np.ndarray:
    """Latent points ``(M, latent_dim)`` from a text file, one per line; a file of another width is an error that
    names both widths (cryoDRGN reshapes it silently)."""
    from ..latent import ManifoldError

    try:
        z = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise ManifoldError(f"{path}: not a table of numbers, one latent point per line ({err})") from None
    if z.size == 0:
        raise ManifoldError(f"{path}: no latent points in it")
    if z.shape[1] != latent_dim:
        raise ManifoldError(f"{path}: {z.shape[1]} numbers per line, but the model's latent space has {latent_dim} "
                            "dimensions")
    return z


def _cmd_drgn_eval(args) -> int:
    from ..io.mrc import write_mrc

    m = _open(args)
    if args.zfile:
        z = read_zfile(args.zfile, m.latent_dim)
    elif args.zval:
        z = resolve_point(m, " ".join(args.zval))[None]
    else:
        z = m.origin()[None]
        if m.latent_dim:
            print(f"no --zval or --zfile: decoding the latent origin z = ({', '.join(f'{v:g}' for v in z[0])})")
    if args.voxel_size is None and getattr(m, "voxel_size_known", True) is False:
        print(f"voxel size: {m.voxel_size:g} Å written to the header (the run does not record one; pass "
              "--voxel-size)")
    out = Path(args.out)
    if args.zfile is None and out.suffix == ".mrc":
        if not args.world.main:
            return 0
        print(write_mrc(out, m.decode(z).numpy()[0], m.voxel_size))
        return 0
    import time

    from ..jobs.distributed import gather, shard

    rows = shard(len(z), args.world, 8)  # under torchrun each process decodes and writes its blocks of 8 rows
    t0 = time.perf_counter()
    for start in range(rows.start, rows.stop, 8):
        block = range(start, min(start + 8, rows.stop))
        # cryodrgn eval_vol's names: the same file name holds the same latent row
        for i, v in zip(block, m.decode(z[block.start:block.stop]).numpy(), strict=True):
            print(write_mrc(out / f"{args.prefix}{i + args.vol_start_index:03d}.mrc", v, m.voxel_size))
    seconds = gather(time.perf_counter() - t0, args.world)
    if seconds is not None:
        s = max(seconds)
        print(f"decoded {len(z)} volumes in {s:.2f} s ({len(z) / max(s, 1e-9):.3g} volumes/s"
              + (f", {args.world.size} processes)" if args.world.size > 1 else ")"))
    return 0


def _cmd_drgn_analyze(args) -> int:
    from ..io.atomic import atomic_dir
    from ..io.mrc import write_mrc
    from .analysis import kmeans_centres, pc_traversal, pca

    m = _open(args)
    if m.data_latents is None:
        raise ValueError("this run has no z file (z.N.pkl); give it with --z")
    out = Path(args.out)
    z = m.data_latents
    coords, fit = pca(z, 2)
    centres, labels = kmeans_centres(z, args.ksample, args.seed)
    with atomic_dir(out, "analysis.json") as tmp:  # complete or absent: a cancel leaves no half folder
        for i, v in enumerate(m.decode(z[centres]).numpy()):
            write_mrc(tmp / f"kmeans{args.ksample}" / f"vol_{i:03d}.mrc", v, m.voxel_size)
        np.savetxt(tmp / f"kmeans{args.ksample}" / "centers.txt", z[centres], fmt="%.6g")
        np.savetxt(tmp / f"kmeans{args.ksample}" / "centers_ind.txt", centres, fmt="%d")
        for pc in range(min(args.pc, m.latent_dim)):
            path = pc_traversal(z, pc, args.n_per_pc)
            for i, v in enumerate(m.decode(path).numpy()):
                write_mrc(tmp / f"pc{pc + 1}" / f"vol_{i:03d}.mrc", v, m.voxel_size)
            np.savetxt(tmp / f"pc{pc + 1}" / "z_pc.txt", path, fmt="%.6g")
        summary = {"model": m.name, "n": int(len(z)),
                   "explained_variance_ratio": fit.explained_variance_ratio_.tolist(),
                   "kmeans_centre_indices": centres.tolist(), "cluster_sizes": np.bincount(labels).tolist()}
        np.save(tmp / "z_pca.npy", coords)
        (tmp / "analysis.json").write_text(json.dumps(summary, indent=1))  # the completion marker
    print(f"wrote {out}: k-means {args.ksample} volumes, {min(args.pc, m.latent_dim)} PC traversals, analysis.json")
    return 0


def _particle_metadata(args, images, info):
    """Poses, CTF and pixel size for ``drgn train`` from ``--poses`` / ``--ctf`` / ``--apix``, matched to the stack;
    prints what was used (the CTF's file above all)."""
    from ..io.particles import match_stack, read_particle_metadata, with_ctf

    n, box = images.shape[0], images.shape[-1]
    meta = None
    if args.poses is not None:
        meta = read_particle_metadata(args.poses, args.pixel_size, box, args.use_ctf_envelope)
        if meta.rotations is None:
            raise ValueError(f"{args.poses}: no poses in it (rlnAngleRot/Tilt/Psi, alignments3D/pose or rotations)")
    if args.ctf:
        meta = (read_particle_metadata(args.ctf, args.pixel_size, box, args.use_ctf_envelope) if meta is None
                else with_ctf(meta, args.ctf, args.pixel_size, args.use_ctf_envelope))
        if meta.ctf is None:
            raise ValueError(f"{args.ctf}: no CTF parameters in it")
    if meta is None:
        return None
    meta = match_stack(meta, args.particles, n, info.pixel_size, info.voxel_size_missing)
    print(f"metadata for {n} images of {box}² px:")
    for note in meta.notes:
        print(f"  {note}")
    return meta


def _cmd_drgn_train(args) -> int:
    from ..drgn.config import DrgnConfig, DrgnTrainConfig, PoseSearchConfig
    from ..drgn.data import ParticleImages, backproject
    from ..drgn.train import train_drgn_job
    from ..io.mrc import read_mrc
    from ..jobs.trainer import Schedule, train_cli

    images, info = read_mrc(args.particles, mmap=True, layout="stack", finite=True)
    if images.ndim != 3:
        raise ValueError(f"{args.particles}: expected a particle stack (N, D, D), got shape {images.shape}")
    if args.poses is None and not args.pose_search:
        raise ValueError("no poses given: pass --poses (a STAR, .cs or pose .pkl), or --pose-search to find them")
    if args.pose_search and args.l_end is not None and args.l_end < args.l_start:
        raise ValueError(f"--l-end {args.l_end:g} is below --l-start {args.l_start:g} (Fourier px): the band limit "
                         "grows from l-start to l-end")
    meta = _particle_metadata(args, images, info)
    rot = trans = ctf = None
    if meta is not None:
        rot, trans = meta.rotations, meta.shifts_px()
        ctf = None if meta.ctf is None else {k: np.asarray(v) for k, v in meta.ctf.as_dict().items()}
    if args.no_ctf:
        if ctf is not None:
            print("  --no-ctf: the CTF is not used")
        ctf = None
    elif ctf is None:
        raise ValueError("no CTF given: pass --ctf ctf.pkl (or a STAR/.cs file with CTF columns), or --no-ctf to "
                         "train without one (e.g. simulated images without CTF)")
    if meta is not None and meta.pixel_sizes is not None:
        px = meta.pixel_sizes
    elif args.pixel_size:
        px = args.pixel_size
    elif ctf is None and not info.voxel_size_missing:  # without a CTF the pixel size only labels the maps
        px = float(info.voxel_size[0])
        print(f"  pixel size {px:g} Å from the header of {Path(args.particles).name}")
    else:
        raise ValueError(f"no pixel size in {args.ctf or args.poses} (rlnImagePixelSize, rlnPixelSize, "
                         "rlnDetectorPixelSize with rlnMagnification, blob/psize_A, or a CTF .pkl); the CTF needs "
                         "one: pass --apix Å (an image header is not trusted for it, as cryoDRGN does not)")
    data = ParticleImages(images, rot, trans, ctf, px, invert=args.invert)
    cfg = DrgnConfig(zdim=args.zdim, players=args.layers, pdim=args.dim, domain=args.domain, pe_type=args.pe_type)
    train = DrgnTrainConfig(batch=args.batch, lr=args.lr, seed=args.seed)
    search = None
    if args.pose_search:
        search = PoseSearchConfig(pretrain_images=args.pretrain, every_epochs=args.ps_every, l_start=args.l_start,
                                  l_end=args.l_end, ramp_epochs=args.l_ramp_epochs, t_extent=args.t_extent,
                                  t_ngrid=args.t_ngrid)
    ref = backproject(data) if args.validate_backprojection else None
    job = train_drgn_job(data, cfg, train, Schedule(steps=args.steps, validate_every=args.validate_every),
                         checkpoint=args.checkpoint, device=args.world.device(args.device), reference=ref,
                         pose_search=search, world=args.world)
    train_cli(job, args.checkpoint, args.argv, args.world)
    return 0


def _model_args(p, drgn: bool = False):
    p.add_argument("model", help="a cryoforge checkpoint (.pt), a cryoDRGN run (folder or weights.N.pkl), "
                                 "'wgan' (the shipped 3D-WGAN) or 'analytic[:D]'")
    p.add_argument("-c", "--config", help="cryoDRGN config.yaml (default: beside the weights)")
    p.add_argument("--z", help="cryoDRGN z.N.pkl (default: the one of the same epoch)")
    p.add_argument("--voxel-size", type=positive("Å"), help="Å per voxel of the decoded maps (cryoDRGN runs do not store it)")
    p.add_argument("--device", default="cpu")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cryoforge movie|analyze|drgn`` to the CLI."""
    p = sub.add_parser("movie", help="latent interpolation movie of a generative model (MP4 or GIF)")
    _model_args(p)
    p.add_argument("--from", dest="start", required=True,
                   help="start: numbers ('0.1,0,…' or one number for all), a data label (e.g. proteasome) or #N")
    p.add_argument("--to", dest="end", required=True, help="end point, same forms as --from")
    p.add_argument("--via", nargs="*", help="waypoints between start and end")
    p.add_argument("--frames", type=positive("frames", int), default=30, help="number of frames (default 30)")
    p.add_argument("--path", choices=["linear", "spherical", "graph"], default="linear",
                   help="linear, spherical (slerp), or graph (shortest k-NN path through the data latents)")
    p.add_argument("--k", type=int, default=10, help="neighbours of the graph path (default 10)")
    p.add_argument("--out", required=True, help="movie file, .mp4 or .gif (the z path goes beside it)")
    p.add_argument("--fps", type=positive("frames/s", int), default=10)
    p.add_argument("--renderer", default="auto", choices=["auto", "gl", "slices", "projection"],
                   help="gl: 3-D rendering in the viewer plugin (needs a display or Xvfb); slices/projection: no GL "
                        "needed (auto: gl when a display is there)")
    p.add_argument("--rotate", type=float, default=0.0, help="camera turn over the movie in degrees (gl renderer)")
    p.add_argument("--iso", type=float, help="isosurface threshold (gl renderer; default: volume rendering)")
    p.add_argument("--colormap", default="gray")
    p.set_defaults(func=_cmd_movie)

    d = sub.add_parser("drgn", help="cryoDRGN runs: decode volumes and analyse the latent space")
    dsub = d.add_subparsers(dest="drgn_command", metavar="ACTION", required=True)
    e = dsub.add_parser("eval", help="decode volumes (all slices in one pass, many z at once), like cryodrgn eval_vol")
    _model_args(e)
    e.add_argument("-z", "--zval", nargs="+", help="one latent point (numbers)")
    e.add_argument("--zfile", help="text file of latent points, one per line (as many numbers as latent dimensions)")
    e.add_argument("-o", "--out", required=True, help="vol.mrc for one point, else a folder")
    e.add_argument("--prefix", default="vol_", help="file name prefix in the folder (default %(default)s)")
    e.add_argument("--vol-start-index", type=int, default=1,
                   help="number of the first volume, as cryodrgn eval_vol (default %(default)s): "
                        "row k of --zfile is PREFIX{k+start:03d}.mrc")
    e.set_defaults(func=_cmd_drgn_eval, distributed=True)
    t = dsub.add_parser("train", help="train a cryoDRGN model (homogeneous, or a VAE with --zdim) with known poses "
                                      "or with pose search (--pose-search, as cryodrgn abinit_homo/abinit_het)")
    t.add_argument("particles", help="particle stack (.mrcs)")
    t.add_argument("--poses", help="poses: a RELION .star or cryoSPARC .cs (CTF included), or a cryoDRGN pose .pkl "
                                   "(rotations, or (rotations, translations)); with --pose-search only a reference "
                                   "that validation compares the found poses with")
    t.add_argument("--ctf", help="CTF: a cryoDRGN CTF .pkl (N, 9), a STAR or a cryoSPARC .cs file; it replaces the CTF "
                                 "of the --poses file (the command says which it uses)")
    t.add_argument("--use-ctf-envelope", action="store_true",
                   help="apply rlnCtfBfactor / rlnCtfScalefactor (capped at 1); cryoDRGN ignores them, and so does "
                        "the default")
    from ..drgn.config import DOMAINS, PE_TYPES, DrgnConfig, DrgnTrainConfig, PoseSearchConfig

    model, train, search = DrgnConfig(), DrgnTrainConfig(), PoseSearchConfig()
    ps = t.add_argument_group("pose search (branch and bound over SO(3) × shifts with frequency marching)")
    ps.add_argument("--pose-search", action="store_true", help="find the poses while training")
    ps.add_argument("--pretrain", type=int, default=search.pretrain_images,
                    help="images trained at random poses first (default %(default)s)")
    ps.add_argument("--ps-every", type=float, default=search.every_epochs,
                    help="search each image again every N epochs (default %(default)s)")
    ps.add_argument("--l-start", type=positive("Fourier px"), default=search.l_start,
                    help="band limit of the first searches (Fourier px; default %(default)s)")
    ps.add_argument("--l-end", type=positive("Fourier px"), help="final band limit (default D/2)")
    ps.add_argument("--l-ramp-epochs", type=float, default=search.ramp_epochs,
                    help="epochs over which the band limit grows (default %(default)s)")
    ps.add_argument("--t-extent", type=float, default=search.t_extent,
                    help="shift search range ± (pixels; default %(default)s)")
    ps.add_argument("--t-ngrid", type=int, default=search.t_ngrid,
                    help="shift grid points per axis in the first round (default %(default)s)")
    t.add_argument("--no-ctf", action="store_true", help="train without a CTF (images without one)")
    t.add_argument("--checkpoint", required=True, help="checkpoint .pt (resumed when it exists)")
    t.add_argument("--zdim", type=int, default=model.zdim, help="latent dimension (0: homogeneous; default %(default)s)")
    t.add_argument("--layers", type=int, default=model.players, help="decoder hidden layers (default %(default)s)")
    t.add_argument("--dim", type=positive("units", int), default=model.pdim, help="decoder width (default %(default)s)")
    t.add_argument("--domain", choices=DOMAINS, default=model.domain, help="decoder output (default %(default)s)")
    t.add_argument("--pe-type", choices=PE_TYPES, default=model.pe_type,
                   help="positional encoding (default %(default)s)")
    t.add_argument("--batch", type=int, default=train.batch, help="images per step (default %(default)s)")
    t.add_argument("--lr", type=float, default=train.lr, help="Adam learning rate (default %(default)s)")
    t.add_argument("--steps", type=int, default=1000, help="optimisation steps (default %(default)s)")
    t.add_argument("--seed", type=int, default=train.seed, help="seed of the initial weights (default %(default)s)")
    t.add_argument("--invert", action="store_true", help="invert the images' contrast")
    t.add_argument("--apix", "--pixel-size", dest="pixel_size", type=positive("Å"),
                   help="Å per pixel; overrides the metadata's (default: the metadata's, else the stack's header)")
    t.add_argument("--validate-every", type=int, default=100)
    t.add_argument("--validate-backprojection", action="store_true",
                   help="report the FSC against a direct backprojection of the images with their poses")
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=_cmd_drgn_train, distributed=True)
    a = dsub.add_parser("analyze", help="PCA, k-means centre volumes and PC traversals, like cryodrgn analyze")
    _model_args(a)
    a.add_argument("-o", "--out", required=True, help="output folder")
    a.add_argument("--ksample", type=int, default=20, help="k-means clusters (default 20)")
    a.add_argument("--pc", type=int, default=2, help="PCs to traverse (default 2)")
    a.add_argument("--n-per-pc", type=int, default=10, help="volumes per PC traversal (default 10)")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=_cmd_drgn_analyze)
