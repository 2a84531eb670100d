"""``cryoforge mcgan train|eval`` (``cryoforge bench mcgan`` is in :mod:`.bench`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..cliargs import positive

if TYPE_CHECKING:
    import argparse



def _references(path):
    if not path:
        return None
    import numpy as np

    from ..io.mrc import read_mrc

    maps = np.asarray(read_mrc(path, finite=True)[0], np.float32)
    if maps.ndim != 4 or len(maps) < 2:
        raise ValueError(f"{path}: --references needs a stack of at least two volumes (the manifold's ends)")
    return maps[[0, -1]]


def _cmd_train(args) -> int:
    from ..jobs.trainer import Schedule, train_cli
    from .config import McganConfig, McganTrainConfig
    from .data import load_stack
    from .train import train_mcgan_job

    data = load_stack(args.particles, args.star, use_ctf=not args.no_ctf, pixel_size=args.pixel_size,
                      size=args.size)
    cfg = McganConfig(box=data.D, zdim=args.zdim, prior=args.prior, gwidth=args.gwidth, cwidth=args.cwidth,
                      seed=args.seed, mapping=args.mapping)
    tcfg = McganTrainConfig(batch=args.batch, poses=args.poses, n_critic=args.n_critic, lr=args.lr,
                            max_shift=args.max_shift, seed=args.seed)
    train_cli(train_mcgan_job(data, cfg, tcfg, Schedule(steps=args.steps, validate_every=args.validate_every),
                              checkpoint=args.checkpoint, device=args.device, references=_references(args.references),
                              world=args.world), args.checkpoint, args.argv, args.world)
    return 0


def _cmd_eval(args) -> int:
    import numpy as np

    from ..io.atomic import atomic_dir, check_output_dir
    from ..io.mrc import write_mrc
    from .fsccc import discrete_proportions, ends_fsc, fsc_area, fsccc_matrix
    from .train import McganManifold

    out = check_output_dir(args.out, "eval.json")  # before the work
    m = McganManifold(args.checkpoint, device=args.device)
    report: dict[str, Any] = {"checkpoint": str(args.checkpoint), "latent_dim": m.latent_dim, "voxel_size_A": m.voxel_size}
    if m.latent_dim != 1:
        raise ValueError("eval reads the FSCCC matrix along the latent segment: this model has a Gaussian prior")
    alphas = np.linspace(0, 1, args.points + 1, dtype=np.float32)
    vols = m.decode(alphas[:, None]).numpy()
    mat = fsccc_matrix(vols)
    fine = np.linspace(0, 1, 101, dtype=np.float32)
    fv = m.decode(fine[:, None]).numpy()
    rows = [[fsc_area(v, fv[0]) for v in fv], [fsc_area(v, fv[-1]) for v in fv]]
    report.update({"alphas": alphas.tolist(), "fsccc_matrix": mat.tolist(),
                   "proportions": discrete_proportions(rows[0], rows[1], tol=args.tol)})
    truth = None
    if args.references:
        from ..io.mrc import read_mrc
        from .fsccc import matrix_agreement

        truth = np.asarray(read_mrc(args.references, finite=True)[0], np.float32)
        if len(truth) == len(vols):
            report["agreement_with_reference_matrix"] = matrix_agreement(mat, fsccc_matrix(truth))
        else:
            truth = None
    report["ends_fsc"] = ends_fsc(vols, truth)
    from ..plots import plot_matrix

    with atomic_dir(out, "eval.json") as tmp:  # complete or absent
        write_mrc(tmp / "volumes.mrc", vols, m.voxel_size, stack=True)
        plot_matrix(mat, tmp / "fsccc.png", "FSC cross-conformation matrix", "m (α = m/L)")
        (tmp / "eval.json").write_text(json.dumps(report, indent=1))
    p = report["proportions"]
    print(f"wrote {out}/volumes.mrc ({len(vols)} volumes, α = 0 … 1), fsccc.png and eval.json; proportions "
          f"first {p['first']:.2f}, last {p['last']:.2f}, transition {p['transition']:.2f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cryoforge mcgan train|eval`` to the CLI."""
    from .config import PRIORS, McganConfig, McganTrainConfig

    arch, train = McganConfig(), McganTrainConfig()
    g = sub.add_parser("mcgan", help="Multi-CryoGAN: learn a conformation manifold from particle images without poses")
    gsub = g.add_subparsers(dest="mcgan_command", metavar="ACTION", required=True)
    t = gsub.add_parser("train", help="train generator and critic (WGAN-GP) against a particle stack")
    t.add_argument("particles", nargs="+", help="particle stack(s) (.mrcs), all of one image size")
    t.add_argument("--star", help="RELION STAR file of the particles: the CTF of each image")
    t.add_argument("--no-ctf", action="store_true", help="train without CTF (only for images that have none)")
    t.add_argument("--checkpoint", required=True, help="checkpoint .pt (resumed when it exists)")
    t.add_argument("--prior", choices=PRIORS, default=arch.prior,
                   help="segment: z = (1−α)z₀ + αz₁, α ~ U[0,1] (the paper); gaussian: z ~ N(0, I) "
                        "(default %(default)s)")
    t.add_argument("--zdim", type=int, default=arch.zdim, help="latent dimension (default %(default)s)")
    t.add_argument("--gwidth", type=int, default=arch.gwidth, help="generator channels at full size (default %(default)s)")
    t.add_argument("--cwidth", type=int, default=arch.cwidth, help="critic channels at its first level (default %(default)s)")
    t.add_argument("--mapping", type=int, default=arch.mapping,
                   help="hidden layers of the residual mapping network z → z + f(z) (default %(default)s)")
    t.add_argument("--batch", type=int, default=train.batch, help="images per step (default %(default)s)")
    t.add_argument("--poses", type=int, default=train.poses, help="poses per generated volume (default %(default)s)")
    t.add_argument("--n-critic", type=int, default=train.n_critic, help="critic steps per generator step (default %(default)s)")
    t.add_argument("--lr", type=float, default=train.lr, help="Adam learning rate (default %(default)s)")
    t.add_argument("--max-shift", type=float, default=train.max_shift,
                   help="px; simulated shifts, uniform in this disc (default %(default)s)")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--seed", type=int, default=train.seed, help="seed of the weights and the data draws (default %(default)s)")
    t.add_argument("--pixel-size", type=float, help="Å per pixel (default: STAR, else MRC header)")
    t.add_argument("--size", type=positive("px", int), help="downsample the images to this size by Fourier cropping (the model's box)")
    t.add_argument("--references", help="MRC stack whose first and last volumes are the true ends: validation "
                                        "reports their FSC after alignment")
    t.add_argument("--validate-every", type=int, default=250)
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=_cmd_train, distributed=True)
    e = gsub.add_parser("eval", help="volumes along α, the FSCCC matrix and the discrete proportions")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--points", type=int, default=20, help="L: the matrix has L+1 rows (α = m/L)")
    e.add_argument("--tol", type=float, default=0.2, help="proportions: tolerance of a state's plateau")
    e.add_argument("--references", help="MRC stack of the L+1 true volumes: correlation of the two matrices")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=_cmd_eval)
