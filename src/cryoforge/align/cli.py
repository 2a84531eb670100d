"""``cryoforge align train|run|average|bench`` (Gum-Net, classical and hybrid alignment, averaging)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..cliargs import non_negative, positive

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from ..io.tomo_particles import TomoParticles
    from .average import AverageResult


METHODS = ("gumnet", "classical", "hybrid")


def _cmd_train(args) -> int:
    from ..jobs.trainer import Schedule, train_cli
    from .config import GumNetConfig, TrainConfig
    from .data import load_maps
    from .train import train_gumnet_job

    maps, names = load_maps(args.maps)
    net = GumNetConfig.preset(args.preset, box=maps.shape[-1], pooling=args.pooling, correlation=args.correlation,
                              rotation=args.rotation)
    train = TrainConfig(batch=args.batch, lr=args.lr, snrs=list(args.snr), seed=args.seed, val_pairs=args.val_pairs,
                        loss=args.loss, curriculum_steps=args.curriculum)
    schedule = Schedule(steps=args.steps, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
                        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                        resume=not args.restart)
    train_cli(train_gumnet_job(maps, net, train, schedule,
                               checkpoint=args.checkpoint, structures=names, device=args.device),
              args.checkpoint, args.argv)
    return 0


def _cmd_run(args) -> int:
    from ..io.atomic import check_output_file
    from ..jobs import run_cli
    from ..search import SearchConfig
    from .pipeline import align_dataset_job, write_alignment

    if args.out:
        check_output_file(args.out)  # before the work, not after it
    search = SearchConfig(global_rotations=args.rotations, candidates=args.candidates)
    res = run_cli(align_dataset_job(args.dataset, args.method, args.checkpoint, device=args.device,
                                    limit=args.limit, search=search))
    if args.out:
        print(f"wrote {write_alignment(res, args.out)}")
    summary = res.summary
    for k, v in summary.items():
        print(f"  {k:24s} {v:.4g}" if isinstance(v, float) else f"  {k:24s} {v}")
    return 0


def _write_average(out: Path, res: AverageResult, particles: TomoParticles | None = None) -> None:
    """``average.mrc``, the half maps, the FSC (``fsc.json`` and ``fsc.png``), the refined particles (RELION 5
    ``particles.star``) when the set came with a list, and ``average.json`` last (the folder's marker)."""
    import numpy as np

    from ..io.atomic import atomic_dir
    from ..io.mrc import write_mrc
    from ..io.tomo_particles import write_relion5
    from ..metrics import FSCCurve
    from ..plots import plot_fsc
    from .particle_sets import refined_particles

    vs = res.voxel_size
    last = res.report["iterations"][-1]
    curve = FSCCurve(np.asarray(last["frequency_per_A"]), np.asarray(last["fsc"]), vs)
    with atomic_dir(out, "average.json") as tmp:
        write_mrc(tmp / "average.mrc", res.average, vs)
        write_mrc(tmp / "half1.mrc", res.half1, vs)
        write_mrc(tmp / "half2.mrc", res.half2, vs)
        (tmp / "fsc.json").write_text(json.dumps(curve.as_dict(), indent=1))
        plot_fsc(curve, tmp / "fsc.png", f"gold-standard FSC: {res.resolution:.1f} Å at 0.143")
        if particles is not None:
            write_relion5(tmp / "particles.star", refined_particles(particles, res), vs)
        (tmp / "average.json").write_text(json.dumps(res.report, indent=1, default=float))


def _cmd_average(args) -> int:
    from ..io.atomic import check_output_dir
    from ..io.tomo_particles import is_subtomogram_set, read_subtomogram_set
    from ..jobs import run_cli
    from .average import average_dataset_job
    from .config import AverageConfig
    from .particle_sets import average_set_job

    out = check_output_dir(args.out, "average.json")  # before the work, not after it
    cfg = AverageConfig(iterations=args.iterations, global_iterations=args.global_iterations, seed=args.seed,
                        lowpass=args.lowpass, common_lowpass=args.common_lowpass)
    particles = None
    if is_subtomogram_set(args.dataset):
        subtomos = read_subtomogram_set(args.dataset)
        particles = subtomos.particles
        res = run_cli(average_set_job(subtomos, cfg, device=args.device))
    else:
        res = run_cli(average_dataset_job(args.dataset, cfg, side=args.side, device=args.device))
    _write_average(out, res, particles)
    extra = ", particles.star (refined poses)" if particles is not None else ""
    print(f"wrote {out}/average.mrc, half1.mrc, half2.mrc, fsc.json, fsc.png{extra}, average.json; gold-standard "
          f"FSC 0.143 at {res.resolution:.1f} Å")
    return 0


def _cmd_reconstruct(args) -> int:
    from ..io.atomic import check_output_dir
    from ..jobs import run_cli
    from .particle_sets import reconstruct_job

    out = check_output_dir(args.out, "average.json")
    res = run_cli(reconstruct_job(args.dataset, seed=args.seed, device=args.device))
    _write_average(out, res)
    print(f"wrote {out}/average.mrc, half1.mrc, half2.mrc, fsc.json, fsc.png, average.json; gold-standard FSC 0.143 "
          f"at {res.resolution:.1f} Å (the STAR's poses, no search)")
    return 0


def _cmd_export(args) -> int:
    from .train import export_weights

    path = export_weights(args.checkpoint, args.out, half=not args.float32)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, weights only)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cryoforge align train|run|average|export`` to the CLI."""
    p = sub.add_parser("align", help="subtomogram alignment: Gum-Net, classical, hybrid; reference-free averaging")
    s = p.add_subparsers(dest="align_command", metavar="ACTION", required=True)

    from .config import CORRELATIONS, LOSSES, POOLINGS, PRESETS, ROTATIONS, AverageConfig, GumNetConfig, TrainConfig

    net, train, avg = GumNetConfig(), TrainConfig(), AverageConfig()
    t = s.add_parser("train", help="train Gum-Net without supervision on pairs simulated from maps")
    t.add_argument("--maps", help="pair-dataset folder or MRC (stack) of maps (default: the shipped 5 maps)")
    t.add_argument("--checkpoint", required=True, help="checkpoint file (resumed when it exists)")
    t.add_argument("--preset", default="small", choices=list(PRESETS), help="architecture (default %(default)s)")
    t.add_argument("--pooling", default=net.pooling, choices=POOLINGS,
                   help="ablations MP/AP: max, avg (default %(default)s)")
    t.add_argument("--correlation", default=net.correlation, choices=CORRELATIONS,
                   help="ablation SC: single (default %(default)s)")
    t.add_argument("--rotation", default=net.rotation, choices=ROTATIONS,
                   help="rotation output: axis_angle (a rotation vector) or the paper's zyz angles (default %(default)s)")
    t.add_argument("--steps", type=int, default=2000, help="optimisation steps (default %(default)s)")
    t.add_argument("--max-minutes", type=float, help="stop (validated and checkpointed) after this much training time")
    t.add_argument("--batch", type=int, default=train.batch, help="pairs per step (default %(default)s)")
    t.add_argument("--lr", type=float, default=train.lr, help="Adam learning rate (default %(default)s)")
    t.add_argument("--curriculum", type=int, default=train.curriculum_steps,
                   help="steps over which pair rotations/shifts grow from 15°/1 voxel to 180°/7 voxels (0: off; "
                        "default %(default)s)")
    t.add_argument("--loss", default=train.loss, choices=LOSSES,
                   help="constrained: correlation over the sampled Fourier region; imputed: the paper's "
                        "(default %(default)s)")
    t.add_argument("--snr", type=float, nargs="+", default=train.snrs, help="SNRs cycled per step (default %(default)s)")
    t.add_argument("--val-pairs", type=int, default=train.val_pairs, help="held-out validation pairs (default %(default)s)")
    t.add_argument("--checkpoint-every", type=int, default=100)
    t.add_argument("--validate-every", type=int, default=100)
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    t.add_argument("--seed", type=int, default=train.seed, help="seed of the data and the initial weights (default %(default)s)")
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=_cmd_train)

    r = s.add_parser("run", help="align the pairs of a dataset folder; errors against the truth when known")
    r.add_argument("dataset", help="pair-dataset folder (cryoforge simulate subtomos)")
    r.add_argument("--method", choices=METHODS, default="classical",
                   help="classical (default: the shipped Gum-Net has not learned rotations), gumnet or hybrid")
    r.add_argument("--checkpoint", help="Gum-Net checkpoint (default: the shipped one)")
    r.add_argument("--limit", type=positive("pairs", int), help="align only the first N pairs")
    r.add_argument("--rotations", type=positive("rotations", int), default=4000,
                   help="global rotation grid of the classical search (default 4000, ≈ 11° apart; 1000 runs faster)")
    r.add_argument("--candidates", type=positive("candidates", int), default=8, help="grid optima refined per pair (default 8)")
    r.add_argument("--out", help="write the estimated poses as a STAR file")
    r.add_argument("--device", default="cpu")
    r.set_defaults(func=_cmd_run)

    e = s.add_parser("export", help="slim copy of a checkpoint: fp16 weights only (for shipping; cannot resume)")
    e.add_argument("checkpoint")
    e.add_argument("out")
    e.add_argument("--float32", action="store_true", help="keep float32 weights")
    e.set_defaults(func=_cmd_export)

    a = s.add_parser("average", help="reference-free iterative averaging with gold-standard half sets")
    a.add_argument("dataset", help="an extracted set (cryoforge extract --out DIR) or a pair-dataset folder (its s_b "
                                   "subtomograms are averaged)")
    a.add_argument("--side", choices=["a", "b"], default="b", help="which subtomograms of the pairs (default b)")
    a.add_argument("--iterations", type=int, default=avg.iterations,
                   help="alignment/averaging iterations (default %(default)s)")
    a.add_argument("--global-iterations", type=int, default=avg.global_iterations,
                   help="first iterations that search all rotations; later ones refine locally (default %(default)s)")
    a.add_argument("--lowpass", type=non_negative("Å"), default=avg.lowpass, help="alignment low-pass in Å (0: from the FSC)")
    a.add_argument("--seed", type=int, default=avg.seed, help="seed of the half-set split (default %(default)s)")
    a.add_argument("--common-lowpass", type=non_negative("Å"), default=avg.common_lowpass,
                   help="the global iterations align both halves to their joint average low-passed to this "
                        "(default %(default)s Å; 0: each half on its own)")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--device", default="cpu")
    a.set_defaults(func=_cmd_average)

    c = s.add_parser("reconstruct", help="average an extracted set with the poses of its STAR (no search), in "
                                         "gold-standard half sets")
    c.add_argument("dataset", help="an extracted set (cryoforge extract --out DIR)")
    c.add_argument("--seed", type=int, default=avg.seed, help="seed of the half-set split (default %(default)s)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--device", default="cpu")
    c.set_defaults(func=_cmd_reconstruct)
