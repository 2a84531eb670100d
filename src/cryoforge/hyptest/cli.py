"""``cryoforge hyptest templates|train-gan|train-regressor|export|calibrate|test``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cliargs import non_negative, positive
from ..resources import PRECISIONS

if TYPE_CHECKING:
    import argparse



def _cmd_templates(args) -> int:
    from ..sim.sources import MapSpec
    from .templates import build_templates, known_sources, write_template_set

    sources = list(args.sources) or known_sources(args.structures)
    maps, names = build_templates(sources, MapSpec(box=args.box, voxel_size=args.voxel_size))
    if args.blur:  # the paper's templates: infinite SNR, a Gaussian blur of σ Å
        from ..fourier import gaussian_filter

        maps = gaussian_filter(maps, args.blur, args.voxel_size, ndim=3).numpy()
    out = write_template_set(args.out, maps, names, args.voxel_size, sources, blur=args.blur)
    print(f"wrote {out}/templates.mrc ({len(maps)} maps, {args.box}³ at {args.voxel_size} Å"
          + (f", Gaussian blur σ {args.blur:g} Å" if args.blur else "") + f"): {', '.join(names)}")
    return 0


def _cmd_train_gan(args) -> int:
    from ..jobs.trainer import Schedule, train_cli
    from .config import GANTrainConfig, WGANConfig
    from .templates import read_template_set
    from .train import train_wgan_job

    maps, names, _ = read_template_set(args.templates)
    cfg = WGANConfig(box=maps.shape[-1], zdim=args.zdim, width=args.width)
    train = GANTrainConfig(batch=args.batch, lr=args.lr, n_critic=args.n_critic, rotations=args.rotations,
                           seed=args.seed)
    schedule = Schedule(steps=args.steps, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
                        resume=not args.restart)
    train_cli(train_wgan_job(maps, cfg, train, schedule, checkpoint=args.checkpoint, names=names, device=args.device,
                             world=args.world), args.checkpoint, args.argv, args.world)
    return 0


def _cmd_train_regressor(args) -> int:
    from ..jobs.trainer import Schedule, train_cli
    from .config import RegressorTrainConfig
    from .templates import read_template_set
    from .train import train_regressor_job

    maps, names, _ = read_template_set(args.templates)
    train = RegressorTrainConfig(batch=args.batch, lr=args.lr, rotations=args.rotations, seed=args.seed)
    schedule = Schedule(steps=args.steps, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
                        resume=not args.restart)
    train_cli(train_regressor_job(args.gan, maps, train, schedule, checkpoint=args.checkpoint, names=names,
                                  device=args.device, world=args.world), args.checkpoint, args.argv, args.world)
    return 0


def _cmd_export(args) -> int:
    from ..io.checkpoint import export_checkpoint
    from .train import KIND, REGRESSOR_KIND

    path = export_checkpoint(args.checkpoint, args.out, (KIND, REGRESSOR_KIND), half=not args.float32)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, weights only)")
    return 0


def _cmd_test(args) -> int:
    from ..jobs import run_cli
    from ..samples import HYPTEST_MODEL, sample_path
    from .config import HypTestConfig, ScoreConfig
    from .montecarlo import HypothesisTester
    from .subtomograms import read_subtomograms
    from .templates import bin_to_templates, read_template_set

    maps, names, template_vs = read_template_set(args.templates)
    subtomos, mask, truth_names, vs = read_subtomograms(args.subtomograms, args.tilt_range)
    if args.limit:
        subtomos = subtomos[: args.limit]
    n = maps.shape[-1]
    binned, binned_mask = bin_to_templates(subtomos, mask, vs, template_vs, n)
    if binned.shape != subtomos.shape:
        print(f"binning the {subtomos.shape[-1]}³ subtomograms at {vs:g} Å to the templates' {n}³ at {template_vs:g} Å")
    subtomos = binned
    transfers = None
    if args.defocus:
        from .score import radial_transfer

        if len(args.defocus) not in (1, len(subtomos)):
            raise ValueError(f"--defocus takes one value or one per subtomogram ({len(subtomos)}); "
                             f"got {len(args.defocus)}")
        dfs = args.defocus * len(subtomos) if len(args.defocus) == 1 else args.defocus
        transfers = [radial_transfer(n, template_vs, d * 1e4, args.voltage, args.cs, args.amplitude_contrast,
                                     pixel_size=vs) for d in dfs]
    truths = None
    if truth_names is not None:
        index = {n: i for i, n in enumerate(names)}
        truths = [index.get(str(t), -1) for t in truth_names[: len(subtomos)]]
    score = ScoreConfig(n_rotations=args.rotations)
    cfg = HypTestConfig(n_pseudo=args.n_pseudo, prior=args.prior, alpha=args.alpha, seed=args.seed,
                        null_spread=args.null_spread, score=score, precision=args.precision)
    calibration = None
    if args.calibration:
        from .calibration import Calibration

        calibration = Calibration.read(args.calibration)
    tester = HypothesisTester.from_checkpoint(args.model or sample_path(HYPTEST_MODEL), maps, names, cfg,
                                              args.world.device(args.device), calibration)
    from .montecarlo import p_text

    if calibration is not None:
        print(f"p-values calibrated against {calibration.cases} simulated H0 cases ({args.calibration}; "
              f"the smallest is 1/{calibration.cases + 1})")

    table = run_cli(tester.dataset_job(subtomos, binned_mask, truths, transfers, world=args.world), show_metrics=False)
    if table is None:  # another rank than 0: rank 0 reports and writes
        return 0
    for row in table.rows:
        extra = f"  truth {row.truth}" if table.truth_known else ""
        p_hat = p_text(row.p_hat, row.B) + ("" if row.p_cal is None else f"  p {row.p_cal:.4g}")
        print(f"#{row.index:<4d} best {row.best:<12s} c={row.score:.3f}  p̂ {p_hat}  "
              f"q={row.q:.4f}  Gaussian p={row.p_gauss:.2e} ({row.z_sigma:.1f}σ)  "
              f"{'significant' if row.significant else 'not significant'}{extra}")
    if args.out:
        print(f"wrote {table.write(args.out)}")
    return 0


def _cmd_calibrate(args) -> int:
    from ..jobs import run_cli
    from ..samples import HYPTEST_MODEL, sample_path
    from ..sim.tomo import centred_wedge
    from .acquisition import acquire_structures
    from .calibration import Calibration, ks_summary
    from .config import HypTestConfig, ScoreConfig
    from .h0 import calibration_settings, h0_job
    from .montecarlo import HypothesisTester
    from .score import radial_transfer
    from .templates import read_template_set

    maps, names, vs = read_template_set(args.templates)
    n = maps.shape[-1]
    acq = args.acquisition_voxel or vs
    n_acq = int(round(n * vs / acq))
    cfg = HypTestConfig(prior=args.prior, alpha=args.alpha, null_spread=args.null_spread,
                        score=ScoreConfig(n_rotations=args.rotations), precision=args.precision)
    tester = HypothesisTester.from_checkpoint(args.model or sample_path(HYPTEST_MODEL), maps, names, cfg, args.device)
    tilt = tuple(args.tilt_range)
    reference = None
    if args.check:  # refused before any work: another null, or the same H0 cases
        reference = Calibration.read(args.check)
        reference.check(args.null_spread, args.prior, args.alpha, n)
        if reference.settings.get("seed") == args.seed:
            raise ValueError(f"{args.check} was made with --seed {args.seed}: the same H0 cases, so not a check out "
                             "of sample; give another --seed")

    def make(structures, seed):
        return acquire_structures(structures, n_acq, args.snr, seed, acq, vs, n, args.defocus, args.cs, tilt,
                                  voltage=args.voltage, amplitude_contrast=args.amplitude_contrast)

    def transfer(df):  # as `hyptest test` scores: through |CTF|·MTF when the defocus is given
        return None if args.defocus is None else radial_transfer(n, vs, df, args.voltage, args.cs,
                                                                 args.amplitude_contrast, pixel_size=acq)

    null = "the paper's prior null" if args.null_spread is None else f"the neighbour null at τ = {args.null_spread:g}"
    print(f"{args.cases} H0 cases with {null}: GAN structures at SNR {args.snr:g}, {n_acq}³ at {acq:g} Å"
          + (f" binned to {n}³ at {vs:g} Å" if n_acq != n else "") + f", tilts {tilt[0]:g}…{tilt[1]:g}°"
          + (f", defocus {args.defocus:g} µm" if args.defocus is not None else ", defocus 2–5 µm, scored without CTF"))
    mask = centred_wedge(n, *tilt).numpy()
    p_hats, _ = run_cli(h0_job(tester, args.cases, args.seed, make, transfer, mask, args.pseudo, args.rotations))
    cal = Calibration(p_hats, calibration_settings(
        tester, args.cases, args.seed, args.pseudo, args.rotations, snr=args.snr, defocus_um=args.defocus,
        cs_mm=args.cs, voltage_kv=args.voltage, tilt_range=list(tilt), acquisition_voxel=acq, template_voxel=vs,
        model=str(args.model or "shipped")))
    k = ks_summary(p_hats)
    print(f"H0 p̂: mean {k['mean']:.3f} (0.5 if already calibrated), {k['fraction_le_0.05']:.0%} at ≤ 0.05, "
          f"KS against U(0, 1) p = {k['ks_p']:.3g}")
    if reference is not None:
        c = ks_summary(reference.p_values(p_hats))
        print(f"out of sample, {args.check}'s calibrated p of these {args.cases} H0 cases: mean {c['mean']:.3f}, "
              f"{c['fraction_le_0.05']:.0%} at ≤ 0.05, KS against U(0, 1) p = {c['ks_p']:.3g} (uniform if the "
              "reference holds for these settings)")
    spread = "" if args.null_spread is None else f" --null-spread {args.null_spread:g}"
    print(f"wrote {cal.write(args.out)}: use it with `cryoforge hyptest test …{spread} --calibration {args.out}`")
    return 0


def _common_train(t, steps: int, every: int, train) -> None:
    """The options GAN and regressor training share; defaults from ``train`` (their training config)."""
    t.add_argument("--templates", help="template folder or MRC stack (default: the shipped known set)")
    t.add_argument("--checkpoint", required=True, help="checkpoint file (resumed when it exists)")
    t.add_argument("--steps", type=int, default=steps, help="generator/regressor steps (default %(default)s)")
    t.add_argument("--batch", type=int, default=train.batch, help="maps per step (default %(default)s)")
    t.add_argument("--lr", type=float, default=train.lr, help="Adam learning rate (default %(default)s)")
    t.add_argument("--rotations", type=positive("rotations", int), default=train.rotations,
                   help="rotated copies per template (default %(default)s; paper 600)")
    t.add_argument("--checkpoint-every", type=int, default=every)
    t.add_argument("--validate-every", type=int, default=every)
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    t.add_argument("--seed", type=int, default=train.seed, help="seed of the data and the initial weights (default %(default)s)")
    t.add_argument("--device", default="cpu")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cryoforge hyptest templates|train-gan|train-regressor|export|test`` to the CLI."""
    p = sub.add_parser("hyptest", help="template-matching hypothesis tests with 3D-WGAN pseudo-complexes")
    s = p.add_subparsers(dest="hyptest_command", metavar="ACTION", required=True)

    t = s.add_parser("templates", help="build a known-template set (templates.mrc + templates.json)")
    t.add_argument("sources", nargs="*", help="phantom:KIND[@SEED], PDB/mmCIF or MRC (default: the 15 known complexes)")
    t.add_argument("--structures", default="../shared/structures", help="folder of the real entries (default set)")
    t.add_argument("--box", type=positive("voxels", int), default=32)
    t.add_argument("--voxel-size", type=positive("Å"), default=12.0, help="Å (default 12)")
    t.add_argument("--blur", type=non_negative("Å"), default=0.0,
                   help="Gaussian blur of every map, σ in Å (the paper's templates: 2; default 0, none)")
    t.add_argument("--out", required=True)
    t.set_defaults(func=_cmd_templates)

    from .config import GANTrainConfig, HypTestConfig, RegressorTrainConfig, ScoreConfig, WGANConfig

    net, gan, test, score = WGANConfig(), GANTrainConfig(), HypTestConfig(), ScoreConfig()
    t = s.add_parser("train-gan", help="train the 3D-WGAN-GP on rotated copies of the known templates")
    _common_train(t, 1500, 50, gan)
    t.add_argument("--width", type=int, default=net.width,
                   help="channels of the finest level, ×2 per level (default %(default)s)")
    t.add_argument("--zdim", type=int, default=net.zdim, help="latent dimension (default %(default)s)")
    t.add_argument("--n-critic", type=int, default=gan.n_critic, help="critic steps per generator step (default %(default)s)")
    t.set_defaults(func=_cmd_train_gan, distributed=True)

    t = s.add_parser("train-regressor", help="train the regressor (inverse generator) of a trained GAN")
    _common_train(t, 1000, 100, RegressorTrainConfig())
    t.add_argument("--gan", required=True, help="the GAN checkpoint (cryoforge hyptest train-gan)")
    t.set_defaults(func=_cmd_train_regressor, distributed=True)

    t = s.add_parser("export", help="slim fp16 copy of a GAN or regressor checkpoint (for shipping; cannot resume)")
    t.add_argument("checkpoint")
    t.add_argument("out")
    t.add_argument("--float32", action="store_true")
    t.set_defaults(func=_cmd_export)

    t = s.add_parser("test", help="Monte-Carlo p-values of the best known template for subtomograms")
    t.add_argument("subtomograms", help="MRC volume or volume stack, or a pair-dataset folder (its s_b)")
    t.add_argument("--templates", help="template folder or MRC stack (default: the shipped known set)")
    t.add_argument("--model", help="regressor checkpoint holding the generator (default: the shipped one)")
    t.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="tilt range of MRC input in degrees (default -60 60)")
    t.add_argument("--n-pseudo", type=int, default=test.n_pseudo, help="pseudo-complexes in the null set (default %(default)s)")
    t.add_argument("--prior", type=float, default=test.prior, help="π of the rejection region (default %(default)s)")
    t.add_argument("--null-spread", type=positive(), metavar="TAU",
                   help="the neighbour null: pseudo-complexes drawn at spread TAU (the prior's standard deviations) "
                        "around the best template's own latent codes, its rejection region kept, instead of from "
                        "the whole GAN prior (the paper); a deviation from the paper whose raw p̂ is not calibrated "
                        "(anti-conservative with the shipped 32³ model): use it with --calibration from `cryoforge "
                        "hyptest calibrate --null-spread TAU` (docs/benchmarks.md)")
    t.add_argument("--alpha", type=float, default=test.alpha, help="significance threshold (default %(default)s)")
    t.add_argument("--calibration", metavar="JSON",
                   help="calibrated p-values: each p̂ referred to the simulated H0 cases of `cryoforge hyptest "
                        "calibrate` (made with the same null, prior and acquisition); Cond.2 and the q-values then "
                        "use p = (1 + #{H0 p̂ ≤ p̂}) / (M + 1)")
    t.add_argument("--rotations", type=positive("rotations", int), default=score.n_rotations,
                   help="SO(3) grid of the coarse search (default %(default)s)")
    t.add_argument("--defocus", type=float, nargs="+", metavar="UM",
                   help="defocus of the phase-flipped subtomograms in µm (one value, or one per subtomogram): "
                        "templates are then scored through |CTF|·MTF, as the signal in the subtomograms is")
    t.add_argument("--voltage", type=float, default=300.0, help="kV, with --defocus (default 300)")
    t.add_argument("--cs", type=non_negative("mm"), default=2.7, help="spherical aberration in mm, with --defocus (default 2.7)")
    t.add_argument("--amplitude-contrast", type=float, default=0.07, help="with --defocus (default 0.07)")
    t.add_argument("--limit", type=positive("subtomograms", int), help="test only the first N subtomograms")
    t.add_argument("--out", help="decision table (.csv or .star)")
    t.add_argument("--seed", type=int, default=test.seed, help="seed of the null sample (default %(default)s)")
    t.add_argument("--precision", choices=PRECISIONS, default=test.precision,
                   help="the networks' inference: bf16 where the CPU computes it natively under auto (default "
                        "%(default)s), fp32 for the training-time numbers")
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=_cmd_test, distributed=True)

    t = s.add_parser("calibrate", help="simulated H0 cases whose p̂ calibrate `hyptest test --calibration`",
                     description="Simulates H0 cases as the data are acquired: a GAN sample as the tested template, a "
                                 "subtomogram of a structure drawn as the null's pseudo-complexes are; records p̂ of "
                                 "each (cryoforge.hyptest.calibration). Use the settings of the data to be tested.")
    t.add_argument("--templates", help="template folder or MRC stack (default: the shipped known set)")
    t.add_argument("--model", help="regressor checkpoint holding the generator (default: the shipped one)")
    t.add_argument("--out", required=True, help="calibration JSON")
    t.add_argument("--cases", type=positive("cases", int), default=200,
                   help="H0 cases M; the smallest calibrated p is 1/(M+1), so M ≥ 1/α − 1 (default %(default)s)")
    t.add_argument("--null-spread", type=positive(), metavar="TAU", help="the neighbour null's τ, as the test's")
    t.add_argument("--prior", type=float, default=test.prior, help="π of the rejection region (default %(default)s)")
    t.add_argument("--alpha", type=float, default=test.alpha, help="the test's threshold (default %(default)s)")
    t.add_argument("--snr", type=positive(), default=0.03, help="per-voxel SNR of the subtomograms (default 0.03)")
    t.add_argument("--acquisition-voxel", type=positive("Å"),
                   help="Å the subtomograms are simulated at before binning to the templates (default: theirs)")
    t.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"), default=[-60.0, 60.0],
                   help="degrees (default -60 60)")
    t.add_argument("--defocus", type=positive("µm"), metavar="UM",
                   help="defocus in µm, scored through |CTF|·MTF as `hyptest test --defocus` does (default: drawn "
                        "in 2–5 µm, scored without it)")
    t.add_argument("--voltage", type=float, default=300.0, help="kV (default 300)")
    t.add_argument("--cs", type=non_negative("mm"), default=2.7, help="mm (default 2.7)")
    t.add_argument("--amplitude-contrast", type=float, default=0.07, help="default 0.07")
    t.add_argument("--pseudo", type=positive("pseudo-complexes", int), default=test.n_pseudo,
                   help="null set per H0 case: as the test's (default %(default)s), so that p̂ = 0 means the same in "
                        "both (with 200, p̂ = 0 of an H0 case is 5× likelier than in a test of 985)")
    t.add_argument("--rotations", type=positive("rotations", int), default=1000,
                   help="SO(3) grid of each H0 case's coarse search (default %(default)s; with the test's 4 000 the "
                        "H0 p̂ of 100 cases were distributed alike, two-sample KS p 0.97: docs/benchmarks.md)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--check", metavar="REFERENCE",
                   help="a calibration to check out of sample on these H0 cases (another --seed): the KS of its "
                        "calibrated p over them")
    t.add_argument("--precision", choices=PRECISIONS, default=test.precision)
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=_cmd_calibrate)
