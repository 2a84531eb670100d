"""``cryoforge bench tomo``: the tomogram path end to end, against the simulator's truth.

Per case (a structure — an atomic model from ../shared/structures, as the other benches take them, or a phantom):
simulate a crowded tomogram (:mod:`cryoforge.sim.tomogram`), extract the true list (:mod:`cryoforge.tomograms.
extract`; subtomograms/s), average with the true poses and without a reference (:mod:`cryoforge.align.
particle_sets`), then again from positions jittered by up to ``jitter`` voxels per axis; write the refined poses as
RELION 5 STAR and Dynamo ``.tbl`` and read them back. Reports simulation time, extraction rate, FSC-0.143 / 0.5 of
each average against the true map (reference-free ones rotated onto it first), rotation errors (after the one global
rotation a reference-free frame may differ by) and shift errors (after the common offset), and the round trips'
largest differences.
"""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .align.config import AverageConfig
from .align.particle_sets import average_set_job, reconstruct_job, refined_particles
from .conventions import rotation_angle_deg
from .geometry import transform_volumes
from .io.tomo_particles import TomoParticles, read_particle_list, write_dynamo, write_relion5
from .jobs import Log, Metrics, Progress, Result, stage
from .metrics import fsc
from .particle_qa import extracted_set
from .search import SearchConfig, classical_align
from .sim.sources import MapSpec, load_map, source_name
from .sim.tomogram import TomogramParams, simulate_tomogram_job
from .tomograms.extract import extract_job

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .align.average import AverageResult
    from .jobs import Event


@dataclass(frozen=True)
class TomoBench:
    """Settings of the tomogram bench. ``sources``: atomic models (a name found in ``shared``/structures, or a path)
    or ``phantom:KIND``; the rest as ``cryoforge simulate tomogram`` and ``align average`` take them."""

    sources: tuple[str, ...] = ("4v5d.cif.gz", "phantom:assembly")
    shared: str | None = None  # the ../shared folder (default: beside the working folder or the checkout)
    shape: tuple[int, int, int] = (512, 512, 128)  # X Y Z voxels
    voxel_size: float = 10.0
    n_particles: int = 220
    box: int = 40
    snr: float = 0.1
    defocus: float = 3.0
    thickness: float = 1250.0
    tilt_range: tuple[float, float] = (-60.0, 60.0)
    tilt_step: float = 2.0
    jitter: float = 2.0  # voxels, uniform per axis
    iterations: int = 8
    global_iterations: int = 3
    own_global_iterations: int = 1
    seed: int = 0


def _resolve(source: str, shared: str | None) -> str:
    if source.startswith("phantom:") or Path(source).is_file():
        return source
    places = [Path(shared)] if shared else [Path.cwd().parent / "shared", Path(__file__).resolve().parents[3] / "shared"]
    for p in places:
        if (p / "structures" / source).is_file():
            return str(p / "structures" / source)
    raise FileNotFoundError(f"bench tomo: {source} is not a file, a phantom:KIND or a file in "
                            f"{' or '.join(str(p / 'structures') for p in places)} (-o shared=DIR)")


def pose_errors(truth: TomoParticles, found: TomoParticles, voxel_size: float,
                same_frame: bool = False) -> dict[str, float]:
    """Rotation errors (degrees) of ``found`` against ``truth`` after the global rotation most particles agree on
    (none when ``same_frame``), and position errors (voxels) after their median offset (the average's centre)."""
    rt, rf = torch.from_numpy(truth.rotations), torch.from_numpy(found.rotations)
    g = torch.eye(3, dtype=rt.dtype)
    if not same_frame:
        rel = rt.transpose(-1, -2) @ rf
        votes = [int((rotation_angle_deg(rel, r.expand_as(rel)) < 15).sum()) for r in rel]
        g = rel[int(np.argmax(votes))]
    err = rotation_angle_deg(rt @ g, rf).numpy()
    d = (found.positions - truth.positions) / voxel_size
    d = d - (0 if same_frame else np.median(d, 0))
    shift = np.linalg.norm(d, axis=1)
    return {"rotation_error_deg_mean": float(err.mean()), "rotation_error_deg_median": float(np.median(err)),
            "fraction_within_10deg": float((err < 10).mean()), "shift_error_vox_mean": float(shift.mean()),
            "shift_error_vox_max": float(shift.max())}


def _fsc_vs_truth(average: np.ndarray, truth: np.ndarray, voxel_size: float, align: bool) -> dict[str, float]:
    a, t = torch.from_numpy(np.asarray(average, np.float32)), torch.from_numpy(np.asarray(truth, np.float32))
    if align:  # a reference-free average sits in its own frame: rotate it onto the truth (t ≈ T(r, s) a)
        r, s, _ = classical_align(a[None], t[None], None, None, SearchConfig(global_rotations=4000, candidates=8))
        a = transform_volumes(a, r[0], s[0])
    c = fsc(a, t, voxel_size)
    return {"fsc0143_vs_truth_A": c.resolution(0.143), "fsc05_vs_truth_A": c.resolution(0.5)}


def _average(res: AverageResult, truth_map: np.ndarray, truth: TomoParticles, listed: TomoParticles,
             voxel_size: float, free: bool) -> dict[str, Any]:
    out = {"gold_standard_A": res.resolution, **_fsc_vs_truth(res.average, truth_map, voxel_size, free)}
    out.update(pose_errors(truth, refined_particles(listed, res), voxel_size, same_frame=not free))
    return out


def _round_trip(parts: TomoParticles, voxel_size: float, shape_zyx: tuple[int, ...]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        star = read_particle_list(write_relion5(Path(d) / "p.star", parts, voxel_size))
        tbl = read_particle_list(write_dynamo(Path(d) / "p.tbl", parts, voxel_size, shape_zyx), voxel_size, shape_zyx)
    out = {}
    for name, back in (("relion5", star), ("dynamo", tbl)):
        rot = rotation_angle_deg(torch.from_numpy(parts.rotations), torch.from_numpy(back.rotations))
        out[f"{name}_rotation_max_deg"] = float(rot.max())
        out[f"{name}_position_max_A"] = float(np.abs(back.positions - parts.positions).max())
    return out


def bench_tomo(settings: TomoBench | None = None, device: str = "cpu") -> Iterator[Event]:
    """Job: the tomogram bench (module text); ``Result`` is the report dict."""
    o = settings or TomoBench()
    cfg = AverageConfig(iterations=o.iterations, global_iterations=o.global_iterations,
                        own_global_iterations=o.own_global_iterations, seed=o.seed)
    report: dict[str, Any] = {"settings": {k: getattr(o, k) for k in o.__dataclass_fields__}, "cases": [],
                              "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}
    steps, done = 6 * len(o.sources), 0
    for source in o.sources:
        name = source_name(source)
        truth_map = load_map(_resolve(source, o.shared), MapSpec(o.box, o.voxel_size), seed=o.seed)
        params = TomogramParams(shape=o.shape, voxel_size=o.voxel_size, n_particles=o.n_particles,
                                tilt_range=o.tilt_range, tilt_step=o.tilt_step, snr=o.snr, defocus=o.defocus,
                                thickness=o.thickness, seed=o.seed)
        t = time.perf_counter()
        sim = yield from stage(simulate_tomogram_job(truth_map[None], [name], params))
        case: dict[str, Any] = {"source": name, "simulate_s": time.perf_counter() - t,
                                "n_particles": len(sim.particles), "particle_snr": sim.report.get("snr_in_particle_boxes")}
        done += 1
        yield Progress(done, steps, f"{name}: simulated")
        truth = sim.particles
        t = time.perf_counter()
        ex = yield from stage(extract_job(sim.tomogram, o.voxel_size, truth, o.box, tilt_range=o.tilt_range))
        case["extract_per_s"] = len(truth) / (time.perf_counter() - t)
        case["edge_particles"] = int((ex.edge_fraction > 0).sum())
        s = extracted_set(ex)
        done += 1
        yield Progress(done, steps, f"{name}: extracted")
        res = yield from stage(reconstruct_job(s, seed=o.seed, device=device))
        case["true_poses"] = _average(res, truth_map, truth, truth, o.voxel_size, free=False)
        done += 1
        yield Progress(done, steps, f"{name}: averaged with the true poses")
        t = time.perf_counter()
        res = yield from stage(average_set_job(s, cfg, device=device))
        case["reference_free"] = {"seconds": time.perf_counter() - t,
                                  **_average(res, truth_map, truth, truth, o.voxel_size, free=True)}
        free = refined_particles(truth, res)
        done += 1
        yield Progress(done, steps, f"{name}: reference-free average")
        rng = np.random.default_rng(o.seed + 1)
        jitter = rng.uniform(-o.jitter, o.jitter, truth.positions.shape) * o.voxel_size
        moved = TomoParticles(truth.positions + jitter, np.broadcast_to(np.eye(3), truth.rotations.shape),
                              truth.tomograms, truth.table, "jittered", o.voxel_size)
        ex = yield from stage(extract_job(sim.tomogram, o.voxel_size, moved, o.box, tilt_range=o.tilt_range))
        t = time.perf_counter()
        res = yield from stage(average_set_job(extracted_set(ex), cfg, device=device))
        case["jittered"] = {"jitter_vox": o.jitter, "seconds": time.perf_counter() - t,
                            "listed_shift_error_vox_mean": float(np.linalg.norm(jitter, axis=1).mean() / o.voxel_size),
                            **_average(res, truth_map, truth, moved, o.voxel_size, free=True)}
        done += 1
        yield Progress(done, steps, f"{name}: jittered positions averaged")
        case["round_trip"] = _round_trip(free, o.voxel_size, sim.tomogram.shape)
        done += 1
        yield Progress(done, steps, f"{name}: poses written and read back")
        rf, jt = case["reference_free"], case["jittered"]
        yield Metrics({"fsc0143_vs_truth_A": rf["fsc0143_vs_truth_A"], "rotation_error_deg_mean":
                       rf["rotation_error_deg_mean"], "jittered_rotation_error_deg_mean": jt["rotation_error_deg_mean"]})
        yield Log(f"{name}: {len(truth)} particles; true poses {case['true_poses']['fsc0143_vs_truth_A']:.1f} Å, "
                  f"reference-free {rf['fsc0143_vs_truth_A']:.1f} Å, rotation error mean "
                  f"{rf['rotation_error_deg_mean']:.1f}°, shift {rf['shift_error_vox_mean']:.2f} voxels; jittered "
                  f"±{o.jitter:g} voxels: {jt['rotation_error_deg_mean']:.1f}°, {jt['shift_error_vox_mean']:.2f} voxels")
        report["cases"].append(case)
    yield Result(report)
