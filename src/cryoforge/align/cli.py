"""``cryoforge align train|run|average|bench`` (Gum-Net, classical and hybrid alignment, averaging)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..cliargs import add_tomogram_options, non_negative, positive

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ..io.tomo_particles import SubtomogramSet
    from ..jobs import Event
    from .average import AverageResult

    OpenTomogram = Callable[[argparse.Namespace], Iterator[Event]]


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
                        loss=args.loss, curriculum_steps=args.curriculum, gate=args.gate, gate_factor=args.gate_factor,
                        start_angle=args.start_angle, wide_angle=args.wide_angle, max_angle=args.max_angle,
                        supervised_steps=args.supervised_steps, bank=args.bank or "", max_shift=args.max_shift)
    schedule = Schedule(steps=args.steps, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
                        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                        resume=not args.restart)
    train_cli(train_gumnet_job(maps, net, train, schedule, checkpoint=args.checkpoint, structures=names,
                               device=args.world.device(args.device), world=args.world),
              args.checkpoint, args.argv, args.world)
    return 0


def _cmd_bank(args) -> int:
    from ..io.atomic import check_output_dir
    from ..jobs import run_cli
    from .bank import MARKER, write_bank_job
    from .config import TrainConfig
    from .data import load_maps

    out = check_output_dir(args.out, MARKER)
    maps, names = load_maps(args.maps)
    train = TrainConfig()  # the simulator settings of on-the-fly training
    run_cli(write_bank_job(out, maps, args.pairs, train.tomo, args.snr, args.seed, train.wedge_b, args.max_shift,
                           args.max_angle, names))
    print(f"wrote {args.pairs} pairs to {out} (s_a.npy, s_b.npy float16; rotations, shifts, snr, angle_deg; {MARKER})")
    return 0


def _particle_set(args) -> SubtomogramSet | None:
    """The subtomogram set the command names: a tomogram with ``--particles`` (extracted by the job the top of the
    CLI gave ``register``), an extracted folder, or None (a pair dataset)."""
    from ..io.tomo_particles import is_subtomogram_set, read_subtomogram_set
    from ..jobs import run_cli

    if getattr(args, "particles", None):
        if args.open_tomogram is None:
            raise ValueError("extracting from a tomogram needs the full cryoforge command line")
        return run_cli(args.open_tomogram(args))
    if is_subtomogram_set(args.dataset):
        return read_subtomogram_set(args.dataset)
    return None


def _cmd_run(args) -> int:
    from ..io.atomic import check_output_dir
    from ..io.tomo_particles import is_subtomogram_set
    from ..jobs import run_cli

    if args.reference or args.particles or is_subtomogram_set(args.dataset):
        if not args.out:
            raise ValueError("aligning a particle set writes a folder: give --out DIR")
        out = check_output_dir(args.out, "average.json") if args.world.main else None
        s = _particle_set(args)
        if s is None:
            raise ValueError(f"{args.dataset}: --reference aligns an extracted set (cryoforge extract) or a "
                             "tomogram with --particles; a pair dataset is aligned pair by pair without it")
        if args.reference:
            from ..io.mrc import read_mrc
            from ..search import SearchConfig
            from ..sim.sources import resample_map
            from .particle_sets import reference_align_job

            ref, info = read_mrc(args.reference, layout="volume", finite=True)
            ref = resample_map(ref, float(info.voxel_size[0]), s.voxel_size, s.subtomograms.shape[-1])
            search = SearchConfig(global_rotations=args.rotations, candidates=args.candidates)
            res = run_cli(reference_align_job(s, ref, search, lowpass=args.lowpass,
                                              device=args.world.device(args.device), world=args.world))
        else:
            from .config import AverageConfig
            from .particle_sets import average_set_job

            res = run_cli(average_set_job(s, AverageConfig(), device=args.world.device(args.device), world=args.world))
        if out is None:  # another rank than 0: rank 0 writes and reports
            return 0
        _write_average(out, res, s)
        print(f"wrote {out}: average.mrc, half maps, FSC, particles.star (poses, cfCorrelation); gold-standard FSC "
              f"0.143 at {res.resolution:.1f} Å")
        return 0
    return _run_pairs(args)


def _run_pairs(args) -> int:
    from ..io.atomic import check_output_file
    from ..jobs import run_cli
    from ..search import SearchConfig
    from .pipeline import align_dataset_job, write_alignment

    if args.out and args.world.main:
        check_output_file(args.out)  # before the work, not after it
    search = SearchConfig(global_rotations=args.rotations, candidates=args.candidates)
    res = run_cli(align_dataset_job(args.dataset, args.method, args.checkpoint, device=args.world.device(args.device),
                                    limit=args.limit, search=search, adapt_norm=not args.stored_norm,
                                    batch=args.batch, world=args.world))
    if res is None:  # another rank than 0: rank 0 writes and reports
        return 0
    if args.out:
        print(f"wrote {write_alignment(res, args.out)}")
    summary = res.summary
    for k, v in summary.items():
        print(f"  {k:24s} {v:.4g}" if isinstance(v, float) else f"  {k:24s} {v}")
    return 0


def _write_average(out: Path, res: AverageResult, subtomograms: SubtomogramSet | None = None) -> None:
    """``average.mrc``, the half maps, the FSC (``fsc.json`` and ``fsc.png``), the refined particles with their
    correlation with the average (RELION 5 ``particles.star``, ``cfCorrelation``) when the set came with a list, and
    ``average.json`` last (the folder's marker)."""
    import numpy as np

    from ..io.atomic import atomic_dir
    from ..io.mrc import write_mrc
    from ..io.tomo_particles import write_relion5
    from ..metrics import FSCCurve
    from ..plots import plot_fsc
    from .particle_sets import particle_scores, refined_particles

    vs = res.voxel_size
    last = res.report["iterations"][-1]
    curve = FSCCurve(np.asarray(last["frequency_per_A"]), np.asarray(last["fsc"]), vs)
    with atomic_dir(out, "average.json") as tmp:
        write_mrc(tmp / "average.mrc", res.average, vs)
        write_mrc(tmp / "half1.mrc", res.half1, vs)
        write_mrc(tmp / "half2.mrc", res.half2, vs)
        (tmp / "fsc.json").write_text(json.dumps(curve.as_dict(), indent=1))
        plot_fsc(curve, tmp / "fsc.png", f"gold-standard FSC: {res.resolution:.1f} Å at 0.143")
        if subtomograms is not None:
            s = subtomograms
            res_a = res.resolution if np.isfinite(res.resolution) else None
            scores = particle_scores(s.subtomograms, s.mask, res.average, res.rotations, res.shifts, vs, res_a)
            write_relion5(tmp / "particles.star", refined_particles(s.particles, res, scores),
                          s.particles.voxel_size or vs)  # the tomogram's voxel size (binned boxes have larger)
        (tmp / "average.json").write_text(json.dumps(res.report, indent=1, default=float))


def _cmd_average(args) -> int:
    import numpy as np

    from ..io.atomic import check_output_dir
    from ..jobs import run_cli
    from .average import average_dataset_job
    from .config import AverageConfig
    from .particle_sets import average_set_job

    out = check_output_dir(args.out, "average.json") if args.world.main else None  # before the work
    cfg = AverageConfig(iterations=args.iterations, global_iterations=args.global_iterations,
                        own_global_iterations=args.own_global_iterations, seed=args.seed, lowpass=args.lowpass,
                        common_lowpass=args.common_lowpass, local_method=args.local,
                        global_rotations=args.rotations, candidates=args.candidates)
    subtomos = _particle_set(args)
    model = None
    if args.local == "gumnet":
        from ..samples import GUMNET_LOCAL_CHECKPOINT, sample_path
        from .train import load_gumnet

        model = load_gumnet(args.checkpoint or sample_path(GUMNET_LOCAL_CHECKPOINT),
                            device=args.world.device(args.device))
    if subtomos is not None and args.limit is not None:
        from dataclasses import replace

        subtomos = replace(subtomos, subtomograms=subtomos.subtomograms[:args.limit],
                           particles=subtomos.particles.take(np.arange(min(args.limit, len(subtomos.particles)))))
    device = args.world.device(args.device)
    if subtomos is not None:
        res = run_cli(average_set_job(subtomos, cfg, device=device, world=args.world, model=model))
    else:
        res = run_cli(average_dataset_job(args.dataset, cfg, side=args.side, device=device, world=args.world,
                                          limit=args.limit, model=model))
    if out is None:  # another rank than 0: rank 0 writes and reports
        return 0
    _write_average(out, res, subtomos)
    extra = ", particles.star (refined poses, cfCorrelation)" if subtomos is not None else ""
    print(f"wrote {out}/average.mrc, half1.mrc, half2.mrc, fsc.json, fsc.png{extra}, average.json; gold-standard "
          f"FSC 0.143 at {res.resolution:.1f} Å")
    return 0


def _cmd_reconstruct(args) -> int:
    from ..io.atomic import check_output_dir
    from ..jobs import run_cli
    from .particle_sets import reconstruct_job

    out = check_output_dir(args.out, "average.json")
    subtomos = _particle_set(args)
    if subtomos is None:
        raise ValueError(f"{args.dataset}: not an extracted set (cryoforge extract --out DIR); a tomogram needs "
                         "--particles LIST")
    res = run_cli(reconstruct_job(subtomos, seed=args.seed, device=args.device))
    _write_average(out, res, subtomos)
    print(f"wrote {out}/average.mrc, half1.mrc, half2.mrc, fsc.json, fsc.png, particles.star, average.json; "
          f"gold-standard FSC 0.143 at {res.resolution:.1f} Å (the STAR's poses, no search)")
    return 0


def _cmd_export(args) -> int:
    from .train import export_weights

    path = export_weights(args.checkpoint, args.out, half=not args.float32)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, weights only)")
    return 0


def _tomogram_input(p: argparse.ArgumentParser, open_tomogram: OpenTomogram | None) -> None:
    """``--particles LIST`` and the extraction options: the positional is then a tomogram, cut up first."""
    g = p.add_argument_group("a tomogram and its particles (instead of an extracted set)")
    g.add_argument("--particles", help="particle list of the tomogram given as DATASET (RELION 5/3/4 STAR, Dynamo "
                                       ".tbl, x y z text): its subtomograms are extracted first")
    add_tomogram_options(g)  # type: ignore[arg-type]  # an argument group takes add_argument as a parser does
    p.set_defaults(open_tomogram=open_tomogram)


def register(sub: argparse._SubParsersAction, open_tomogram: OpenTomogram | None = None) -> None:
    """Add ``cryoforge align train|run|average|reconstruct|export`` to the CLI. ``open_tomogram(args)``: the job
    that extracts a tomogram's particles (``--particles``) into a set — the top of the CLI passes it, as this family
    does not import the tomograms family."""
    p = sub.add_parser("align", help="subtomogram alignment: Gum-Net, classical, hybrid; reference-free averaging")
    s = p.add_subparsers(dest="align_command", metavar="ACTION", required=True)

    from .config import (
        CORRELATIONS,
        LOCAL_METHODS,
        LOSSES,
        POOLINGS,
        PRESETS,
        ROTATIONS,
        AverageConfig,
        GumNetConfig,
        TrainConfig,
    )

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
                   help="rotation output: axis_angle (a rotation vector), the paper's zyz angles or 6d (continuous, for the "
                        "supervised warm start; default %(default)s)")
    t.add_argument("--steps", type=int, default=2000, help="optimisation steps (default %(default)s)")
    t.add_argument("--max-minutes", type=float, help="stop (validated and checkpointed) after this much training time")
    t.add_argument("--batch", type=int, default=train.batch, help="pairs per step (default %(default)s)")
    t.add_argument("--lr", type=float, default=train.lr, help="Adam learning rate (default %(default)s)")
    t.add_argument("--curriculum", type=int, default=train.curriculum_steps,
                   help="steps over which pair rotations/shifts grow from 15°/1 voxel to 180°/7 voxels (0: off; "
                        "default %(default)s)")
    t.add_argument("--gate", type=non_negative(""), default=train.gate,
                   help="gate the curriculum on validation instead of --curriculum: widen the rotation range when the "
                        "held-out rotation error is below GATE × the range (guessing no rotation scores 0.5; e.g. 0.25; "
                        "default 0: the step ramp)")
    t.add_argument("--gate-factor", type=float, default=train.gate_factor,
                   help="gated curriculum: the range is multiplied by this when it widens (default %(default)s)")
    t.add_argument("--start-angle", type=float, default=train.start_angle,
                   help="gated curriculum: the first rotation range in degrees (default %(default)s)")
    t.add_argument("--wide-angle", type=float, default=train.wide_angle,
                   help="gated curriculum: only the highest --snr until the range reaches this (default %(default)s)")
    t.add_argument("--max-angle", type=positive("°"), default=train.max_angle,
                   help="largest relative rotation of the training and validation pairs, in degrees: a model for "
                        "local refinement (default %(default)s: all of SO(3))")
    t.add_argument("--max-shift", type=non_negative("voxels"), default=train.max_shift,
                   help="largest shift of the pairs in voxels (the gated curriculum grows shifts from 1 voxel to this; "
                        "default %(default)s)")
    t.add_argument("--supervised-steps", type=non_negative("steps", int), default=train.supervised_steps,
                   help="supervised warm start: the first N steps learn the simulated truth, then the unsupervised "
                        "loss (a deviation from the paper; best with --rotation 6d; default 0: unsupervised only)")
    t.add_argument("--bank", help="train on a pair bank (cryoforge align bank) instead of simulating every step's pairs")
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
    t.set_defaults(func=_cmd_train, distributed=True)

    r = s.add_parser("run", help="align the pairs of a dataset folder (errors against the truth when known), or the "
                                 "particles of an extracted set or a tomogram to a reference")
    r.add_argument("dataset", help="pair-dataset folder (cryoforge simulate subtomos), an extracted set (cryoforge "
                                   "extract --out DIR) or, with --particles, a tomogram")
    r.add_argument("--reference", help="align each particle of a set to this map (MRC; resampled to the set's box "
                                       "and voxel size); without it a set is averaged without a reference")
    r.add_argument("--lowpass", type=non_negative("Å"), default=0.0,
                   help="align a set to the reference low-passed to this (Å; default 0: all of it)")
    r.add_argument("--method", choices=METHODS, default="classical",
                   help="classical (default: the shipped Gum-Net has not learned rotations), gumnet or hybrid")
    r.add_argument("--checkpoint", help="Gum-Net checkpoint (default: the shipped one)")
    r.add_argument("--limit", type=positive("pairs", int), help="align only the first N pairs")
    r.add_argument("--stored-norm", action="store_true",
                   help="Gum-Net/hybrid: normalise with the statistics stored in training, not those of these pairs "
                        "(from 8 pairs on; cryoforge.align.adapt)")
    r.add_argument("--rotations", type=positive("rotations", int), default=4000,
                   help="global rotation grid of the classical search (default 4000, ≈ 11° apart; 1000 runs faster)")
    r.add_argument("--candidates", type=positive("candidates", int), default=8, help="grid optima refined per pair (default 8)")
    r.add_argument("--out", help="pairs: write the estimated poses as a STAR file; a set: the output folder")
    r.add_argument("--batch", type=positive("pairs", int), default=16,
                   help="pairs aligned together (default 16); under torchrun each process takes whole batches")
    r.add_argument("--device", default="cpu")
    _tomogram_input(r, open_tomogram)
    r.set_defaults(func=_cmd_run, distributed=True)

    b = s.add_parser("bank", help="pre-simulate training pairs to disk (memory-mapped float16) for align train --bank")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--pairs", type=positive("pairs", int), default=20_000, help="how many pairs (default %(default)s)")
    b.add_argument("--maps", help="pair-dataset folder or MRC (stack) of maps (default: the shipped 5 maps)")
    b.add_argument("--snr", type=positive(""), nargs="+", default=train.snrs,
                   help="SNRs, one per chunk of 64 pairs in turn (default %(default)s)")
    b.add_argument("--max-angle", type=positive("°"), default=train.max_angle,
                   help="largest relative rotation in degrees (default %(default)s)")
    b.add_argument("--max-shift", type=non_negative("voxels"), default=train.max_shift,
                   help="largest shift in voxels (default %(default)s)")
    b.add_argument("--seed", type=int, default=train.seed, help="seed of the pairs (default %(default)s)")
    b.set_defaults(func=_cmd_bank)

    e = s.add_parser("export", help="slim copy of a checkpoint: fp16 weights only (for shipping; cannot resume)")
    e.add_argument("checkpoint")
    e.add_argument("out")
    e.add_argument("--float32", action="store_true", help="keep float32 weights")
    e.set_defaults(func=_cmd_export)

    a = s.add_parser("average", help="reference-free iterative averaging with gold-standard half sets")
    a.add_argument("dataset", help="an extracted set (cryoforge extract --out DIR), a pair-dataset folder (its s_b "
                                   "subtomograms are averaged) or, with --particles, a tomogram")
    a.add_argument("--side", choices=["a", "b"], default="b", help="which subtomograms of the pairs (default b)")
    a.add_argument("--iterations", type=int, default=avg.iterations,
                   help="alignment/averaging iterations (default %(default)s)")
    a.add_argument("--global-iterations", type=int, default=avg.global_iterations,
                   help="first iterations that search all rotations against the shared low-resolution start "
                        "(default %(default)s)")
    a.add_argument("--own-global-iterations", type=non_negative("iterations", int), default=avg.own_global_iterations,
                   help="then iterations that search all rotations again, each half against its own average at "
                        "the last resolution; later ones refine locally (default %(default)s)")
    a.add_argument("--lowpass", type=non_negative("Å"), default=avg.lowpass, help="alignment low-pass in Å (0: from the FSC)")
    a.add_argument("--seed", type=int, default=avg.seed, help="seed of the half-set split (default %(default)s)")
    a.add_argument("--common-lowpass", type=non_negative("Å"), default=avg.common_lowpass,
                   help="the global iterations align both halves to their joint average low-passed to this "
                        "(default %(default)s Å; 0: each half on its own)")
    a.add_argument("--rotations", type=positive("rotations", int), default=avg.global_rotations,
                   help="rotations of the global searches' SO(3) grid (default %(default)s)")
    a.add_argument("--candidates", type=positive("candidates", int), default=avg.candidates,
                   help="best grid rotations of a global search refined locally (default %(default)s)")
    a.add_argument("--local", choices=LOCAL_METHODS, default=avg.local_method,
                   help="how the local iterations align: classical (local grids) or gumnet (one network pass per "
                        "subtomogram, kept where it raises the correlation; default %(default)s)")
    a.add_argument("--checkpoint", help="--local gumnet: the Gum-Net checkpoint (default: the shipped local model)")
    a.add_argument("--limit", type=positive("subtomograms", int),
                   help="average only the first N subtomograms (a quick look; default all)")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--device", default="cpu")
    _tomogram_input(a, open_tomogram)
    a.set_defaults(func=_cmd_average, distributed=True)

    c = s.add_parser("reconstruct", help="average an extracted set with the poses of its STAR (no search), in "
                                         "gold-standard half sets")
    c.add_argument("dataset", help="an extracted set (cryoforge extract --out DIR) or, with --particles, a tomogram")
    c.add_argument("--seed", type=int, default=avg.seed, help="seed of the half-set split (default %(default)s)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--device", default="cpu")
    _tomogram_input(c, open_tomogram)
    c.set_defaults(func=_cmd_reconstruct)
