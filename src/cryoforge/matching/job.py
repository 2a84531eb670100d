"""The template-matching job: every rotation of a uniform SO(3) set (:func:`match_rotations`) scored over every voxel
of a tomogram (:class:`~.flcc.FLCC`), keeping per voxel the best score and the index of its rotation.

- **Rotations** — a super-Fibonacci grid (:func:`cryoforge.so3.so3_grid`) with the number of points that gives the
  asked angular step (:func:`cryoforge.so3.grid_spacing_deg`); a ``Cn`` template keeps the rotations whose last
  turn about the template's own z lies in ``[0°, 360°/n)``, the others being the same rotated template.
- **Batches and tiles** — rotations go ``batch`` at a time through batched FFTs; a tomogram too large for the
  memory budget is cut into tiles, each with a margin of half the template on every side (the tomogram's own voxels
  where it has them, its mean beyond its edges) and padded to an FFT-friendly size.
- **Resume** — the state (best scores, indices, the tile and the rotation reached, the score statistics) is saved
  atomically in ``OUT/partial/`` at most every ``save_every_s`` seconds and when the job is stopped; the same
  command continues from it.
- **Processes** — under ``torchrun`` each rank takes a contiguous block of whole rotation batches; rank 0 merges the
  ranks' maps in rank order (a later rotation replaces a kept one only with a higher score, as in one process), so
  the maps equal one process's.

Output (:func:`write_match`): ``scores.mrc`` (float32), ``angles.mrc`` (the rotation's index, float32; −1 nowhere
searched) and ``job.json`` (settings, the rotations as RELION ZYZ Euler angles, timing and the score statistics the
Gaussian-null threshold needs).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..conventions import matrix_to_euler_zyz
from ..jobs import Log, Metrics, Preview, Progress, Result
from ..jobs.distributed import World, gather, shard
from ..so3 import so3_grid
from .config import MatchConfig
from .flcc import FLCC, good_fft_size

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..hints import PathLike, Tensorish
    from ..jobs import Event

STATE_VERSION = 1


def match_rotations(angular_step: float, symmetry: int = 1) -> torch.Tensor:
    """The rotations searched ``(N, 3, 3)``: a uniform grid at ``angular_step`` degrees, reduced to the asymmetric
    unit of a ``C{symmetry}`` template (last turn about its z in ``[0, 360/symmetry)``)."""
    if not 0 < angular_step <= 90:
        raise ValueError(f"the angular step must be within (0°, 90°]; got {angular_step:g}°")
    if symmetry < 1:
        raise ValueError(f"the symmetry order must be at least 1 (C1); got {symmetry}")
    n = max(1, math.ceil(8 * math.pi ** 2 / (math.sqrt(2) * math.radians(angular_step)) ** 3))
    grid = so3_grid(n, torch.float64)
    if symmetry == 1:
        return grid.float()
    # R = Rz(a) Ry(b) Rz(c) acting on the template: c is its own turn about z; RELION's angles of Rᵀ give c as psi
    psi = matrix_to_euler_zyz(grid.transpose(-1, -2))[:, 2] % 360.0
    return grid[psi < 360.0 / symmetry].float()


@dataclass
class MatchResult:
    """Best score and rotation index per voxel ``(Z, Y, X)``, the rotations, the voxel size (Å) and the job record."""

    scores: np.ndarray
    angles: np.ndarray
    rotations: np.ndarray
    voxel_size: float
    record: dict[str, Any] = field(default_factory=dict)


def _tiles(shape: tuple[int, int, int], n: int, batch: int, memory_gb: float) -> list[tuple[slice, ...]]:
    """Interior regions of the tiles (each later grown by half the template): the whole tomogram when it fits the
    budget (≈ 20 bytes per voxel and rotation of the batch), else halves of the longest axis until each fits."""
    per_voxel = 20 * (batch + 1)
    sizes = list(shape)
    while math.prod(good_fft_size(s + n + 1) for s in sizes) * per_voxel > memory_gb * 2 ** 30:
        k = int(np.argmax(sizes))
        if sizes[k] <= n:
            raise ValueError(f"a tile of {sizes} voxels with a batch of {batch} rotations needs more than "
                             f"{memory_gb:g} GB; lower the batch or raise the memory budget")
        sizes[k] = -(-sizes[k] // 2)
    cuts = [list(range(0, s, t)) for s, t in zip(shape, sizes, strict=True)]
    return [(slice(z, min(z + sizes[0], shape[0])), slice(y, min(y + sizes[1], shape[1])),
             slice(x, min(x + sizes[2], shape[2]))) for z in cuts[0] for y in cuts[1] for x in cuts[2]]


def _tile_volume(tomo: np.ndarray, region: tuple[slice, ...], c: int, fill: float) -> torch.Tensor:
    """The tomogram over ``region`` grown by ``c`` voxels per side (``fill`` outside the tomogram), padded with
    ``fill`` up to an FFT-friendly size."""
    size = [good_fft_size(r.stop - r.start + 2 * c + 1) for r in region]
    out = np.full(size, fill, np.float32)
    src, dst = [], []
    for r, s in zip(region, tomo.shape, strict=True):
        lo, hi = max(0, r.start - c), min(s, r.stop + c)
        src.append(slice(lo, hi))
        dst.append(slice(lo - (r.start - c), hi - (r.start - c)))
    out[tuple(dst)] = tomo[tuple(src)]
    return torch.from_numpy(out)


def _state_path(out_dir: Path, world: World) -> Path:
    return out_dir / "partial" / f"rank{world.rank}-of-{world.size}.pt"


def input_digest(tomogram: Tensorish, template: Tensorish) -> str:
    """A digest of what is matched: the tomogram's shape and every 101st voxel (cheap on a large map on disk) and the
    whole template — so that a saved state or a finished decoy is reused only for the same inputs."""
    import hashlib

    tomo = np.asarray(tomogram)
    h = hashlib.sha256(json.dumps(list(tomo.shape)).encode())
    h.update(np.ascontiguousarray(tomo.reshape(-1)[::101], np.float32).tobytes())
    h.update(np.ascontiguousarray(np.asarray(template), np.float32).tobytes())
    return h.hexdigest()[:16]


def _fingerprint(cfg: MatchConfig, tomogram: Tensorish, template: np.ndarray, n_rot: int) -> str:
    import hashlib

    h = hashlib.sha256(json.dumps({**asdict(cfg), "save_every_s": 0, "n_rot": n_rot}, sort_keys=True).encode())
    h.update(input_digest(tomogram, template).encode())
    return h.hexdigest()[:16]


def transfer_of(cfg: MatchConfig, n: int, voxel_size: float) -> torch.Tensor | None:
    """The tomogram's signal transfer on the template's rfft grid: wedge × CTF (|CTF| when phase-flipped) × MTF;
    None with neither a tilt range nor a defocus."""
    if cfg.tilt_range is None and cfg.defocus is None:
        return None
    from ..ctf import CTFParams
    from ..sim.tomo import transfer_3d

    ctf = None if cfg.defocus is None else CTFParams(defocus_u=cfg.defocus, defocus_v=cfg.defocus,
                                                      voltage=cfg.voltage, cs=cfg.cs,
                                                      amplitude_contrast=cfg.amplitude_contrast)
    lo, hi = cfg.tilt_range or (-90.0, 90.0)
    t = transfer_3d((n, n, n), voxel_size, ctf, lo, hi, mtf=cfg.defocus is not None)
    t = t.reshape(n, n, n // 2 + 1)
    return t.abs() if cfg.phase_flipped else t


def match_job(tomogram: Tensorish, template: Tensorish, voxel_size: float, cfg: MatchConfig | None = None,
              mask: Tensorish | None = None, out_dir: PathLike | None = None, device: str = "cpu",
              world: World | None = None) -> Iterator[Event]:
    """Job: match ``template`` (``(n, n, n)`` at the tomogram's ``voxel_size``) over ``tomogram`` ``(Z, Y, X)``
    (module text); ``mask`` a map on the template's grid (None: a sphere of ``cfg.mask_radius``). With ``out_dir``
    the state is saved there for resuming. ``Result`` is a :class:`MatchResult` (on rank 0; None on the others)."""
    cfg = cfg or MatchConfig()
    world = world or World()
    dev = torch.device(device)
    tomo = np.asarray(tomogram, np.float32)
    if tomo.ndim != 3:
        raise ValueError(f"a tomogram is a (Z, Y, X) volume; got shape {tomo.shape}")
    tpl = np.asarray(template, np.float32)
    if tpl.ndim != 3 or len(set(tpl.shape)) != 1:
        raise ValueError(f"the template must be a cubic volume; got shape {tpl.shape}")
    n = tpl.shape[0]
    if min(tomo.shape) < n // 2 + 1:
        raise ValueError(f"the tomogram {tomo.shape} is thinner than half the template ({n} voxels)")
    if cfg.batch < 1:
        raise ValueError(f"the rotation batch must be at least 1; got {cfg.batch}")
    if not np.isfinite(tomo).all() or not np.isfinite(tpl).all():
        raise ValueError("the tomogram or the template holds NaN or infinite values")
    if cfg.invert:
        tpl = -tpl
    spherical = mask is None
    if spherical:
        from ..fourier import spherical_mask

        radius = (cfg.mask_radius / voxel_size) if cfg.mask_radius else 0.4 * n
        if not 1 <= radius <= n / 2:
            raise ValueError(f"the mask radius ({radius * voxel_size:g} Å = {radius:.1f} voxels) must lie within "
                             f"1 voxel and half the template box ({n / 2 * voxel_size:g} Å)")
        m = spherical_mask((n, n, n), radius)
    else:
        m = torch.as_tensor(np.asarray(mask, np.float32))
        if tuple(m.shape) != (n, n, n):
            raise ValueError(f"the mask is {tuple(m.shape)} voxels but the template is {(n, n, n)}")
        if float(m.sum()) < 1:
            raise ValueError("the mask is empty")
    rotations = match_rotations(cfg.angular_step, cfg.symmetry)
    n_rot = len(rotations)
    engine = FLCC(torch.from_numpy(tpl), m, transfer_of(cfg, n, voxel_size), spherical, cfg.batch, dev)
    tiles = _tiles(tomo.shape, n, cfg.batch, cfg.memory_gb)
    mine = shard(n_rot, world, cfg.batch)
    fill = float(tomo.mean())
    best = torch.full(tomo.shape, -torch.inf)
    index = torch.full(tomo.shape, -1, dtype=torch.int32)
    stats = torch.zeros(3, dtype=torch.float64)  # Σ s, Σ s², count over every rotation and voxel
    tile_k, pos = 0, mine.start
    key = _fingerprint(cfg, tomo, tpl, n_rot)
    state_file = None if out_dir is None else _state_path(Path(out_dir), world)
    elapsed = 0.0
    if state_file is not None and state_file.is_file():
        st = torch.load(state_file, map_location="cpu", weights_only=True)
        if st.get("version") == STATE_VERSION and st.get("key") == key:
            best, index, stats = st["best"], st["index"], st["stats"]
            tile_k, pos, elapsed = int(st["tile"]), int(st["pos"]), float(st["elapsed"])
            yield Log(f"resuming from {state_file.name}: tile {tile_k + 1} of {len(tiles)}, rotation "
                      f"{pos - mine.start} of {len(mine)}")
        else:
            yield Log(f"{state_file}: saved by another run (settings, tomogram or template differ); starting over",
                      "warning")
    c = n // 2
    yield Log(f"matching a {n}³ template over {tomo.shape[2]}×{tomo.shape[1]}×{tomo.shape[0]} voxels at "
              f"{voxel_size:g} Å: {n_rot} rotations ({cfg.angular_step:g}° step"
              + (f", C{cfg.symmetry}" if cfg.symmetry > 1 else "") + f"), {len(tiles)} tile(s), batches of "
              f"{cfg.batch}" + (f", {world.size} processes" if world.size > 1 else ""))
    total = len(tiles) * len(mine)
    t_start, last_save = time.perf_counter() - elapsed, time.perf_counter()
    fft_pair = None

    def save() -> None:
        if state_file is None:
            return
        from ..io.atomic import atomic_path

        state_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(state_file) as tmp:
            torch.save({"version": STATE_VERSION, "key": key, "best": best, "index": index, "stats": stats,
                        "tile": tile_k, "pos": pos, "elapsed": time.perf_counter() - t_start}, tmp)

    rotation_time = 0.0
    rotations_done = 0
    try:
        while tile_k < len(tiles):
            region = tiles[tile_k]
            vol = _tile_volume(tomo, region, c, fill)
            spectra = engine.prepare(vol)
            if fft_pair is None:
                fft_pair = _time_fft_pair(vol.to(dev))
            inner = tuple(slice(c, c + r.stop - r.start) for r in region)
            while pos < mine.stop:
                stop = min(pos + cfg.batch, mine.stop)
                t0 = time.perf_counter()
                s = engine.scores(spectra, rotations[pos:stop])
                if len(s) > 1:
                    top, arg = s.max(0)  # on the whole tile (contiguous), then its interior
                    top, arg = top[inner].cpu(), arg[inner].cpu().int() + pos
                else:
                    top, arg = s[0][inner].cpu(), None
                s = s[(slice(None), *inner)]
                bv, iv = best[region], index[region]  # views
                better = top > bv  # strictly: a tie keeps the earlier rotation, as the merge does
                bv.copy_(torch.where(better, top, bv))
                iv.copy_(torch.where(better, pos if arg is None else arg, iv))
                stats += torch.tensor([float(s.sum()), float(s.square().sum()), s.numel()], dtype=torch.float64)
                rotation_time += time.perf_counter() - t0
                rotations_done += stop - pos
                pos = stop
                done = tile_k * len(mine) + (pos - mine.start)
                yield Progress(done, total, f"tile {tile_k + 1}/{len(tiles)}: rotation {pos - mine.start}/"
                               f"{len(mine)}" + (f" (rank {world.rank} of {world.size})" if world.size > 1 else ""))
                if time.perf_counter() - last_save > cfg.save_every_s:
                    save()
                    last_save = time.perf_counter()
            tile_k, pos = tile_k + 1, mine.start
            yield Preview("scores (central z slice)", best[tomo.shape[0] // 2].numpy(), "image",
                          {"voxel_size": voxel_size})
    except GeneratorExit:
        save()
        raise
    per_tile = rotation_time / max(rotations_done, 1)  # one rotation over one tile
    per_rotation = per_tile * len(tiles)
    parts = gather((best.numpy(), index.numpy(), stats.numpy()), world)
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    if parts is None:
        yield Result(None)
        return
    best_np, index_np, stats_np = parts[0]
    best_np, index_np, stats_np = best_np.copy(), index_np.copy(), stats_np.copy()
    for b, i, st in parts[1:]:
        better = b > best_np
        best_np[better], index_np[better] = b[better], i[better]
        stats_np += st
    mean = stats_np[0] / max(stats_np[2], 1)
    sigma = math.sqrt(max(stats_np[1] / max(stats_np[2], 1) - mean ** 2, 0.0))
    euler = matrix_to_euler_zyz(rotations.double()).numpy()  # as a STAR of particles in these poses says them
    record = {"settings": asdict(cfg), "voxel_size_A": voxel_size, "tomogram_shape_zyx": list(tomo.shape),
              "template_box": n, "mask": "sphere" if spherical else "map", "n_rotations": n_rot, "tiles": len(tiles),
              "processes": world.size, "score_mean": mean, "score_sigma": sigma,
              "searched_voxels": int(np.prod(tomo.shape)),
              "seconds": round(time.perf_counter() - t_start, 3), "seconds_per_rotation": per_rotation,
              "seconds_per_rotation_and_tile": per_tile, "fft_pair_seconds": fft_pair,
              "rotation_over_fft_pair": per_tile / fft_pair if fft_pair else None,
              "voxel_rotations_per_s": float(np.prod(tomo.shape)) / max(per_rotation, 1e-12),
              "rotations_zyz_relion_deg": np.round(euler, 4).tolist()}
    yield Metrics({"seconds_per_rotation": per_rotation, "fft_pair_seconds": fft_pair or 0.0,
                   "score_sigma": sigma})
    yield Result(MatchResult(best_np, index_np.astype(np.float32), rotations.numpy(), voxel_size, record))


def _time_fft_pair(tile: torch.Tensor, repeats: int = 3) -> float:
    """Seconds of one forward and one inverse real FFT of ``tile`` (the best of ``repeats``): the yardstick of the
    time per rotation."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        ft = torch.fft.rfftn(tile, dim=(-3, -2, -1))
        out = torch.fft.irfftn(ft, s=tile.shape, dim=(-3, -2, -1))
        if out.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def write_match(out_dir: PathLike, res: MatchResult, extra: dict[str, Any] | None = None) -> Path:
    """``scores.mrc``, ``angles.mrc`` and ``job.json`` (written last: the folder's marker) in ``out_dir``."""
    from ..io.atomic import atomic_path
    from ..io.mrc import write_mrc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_mrc(out / "scores.mrc", res.scores, res.voxel_size)
    write_mrc(out / "angles.mrc", res.angles, res.voxel_size)
    with atomic_path(out / "job.json") as tmp:
        tmp.write_text(json.dumps({**res.record, **(extra or {})}, indent=1))
    partial = out / "partial"
    if partial.is_dir() and not any(partial.iterdir()):
        partial.rmdir()
    return out


def finished(folder: PathLike, cfg: MatchConfig, digest: str) -> bool:
    """Whether ``folder`` holds a finished match with the settings ``cfg`` of the inputs ``digest``
    (:func:`input_digest`; a decoy a cancelled run completed)."""
    marker = Path(folder) / "job.json"
    if not marker.is_file():
        return False
    record = json.loads(marker.read_text())
    return json.loads(json.dumps(asdict(cfg))) == record.get("settings") and record.get("input_digest") == digest


def match_folder_job(tomogram: Tensorish, template: np.ndarray, voxel_size: float, cfg: MatchConfig, out: PathLike,
                     mask: Tensorish | None = None, decoys: int = 0, decoy_kind: str = "shells", seed: int = 0,
                     extra: dict[str, Any] | None = None, device: str = "cpu",
                     world: World | None = None) -> Iterator[Event]:
    """Job: ``decoys`` decoy templates (:func:`~.peaks.decoy_template`, seeds ``seed + k``) matched into
    ``out/decoyK`` — a decoy already finished with these settings is kept — then the template into ``out`` (its
    ``job.json``, written last, marks the folder finished); each resumes from its saved rotations. ``Result``: the
    folder (None on ranks other than 0, which write nothing)."""
    from ..jobs.runner import stage
    from .peaks import decoy_template

    out = Path(out)
    extra = {**(extra or {}), "decoys": decoys}
    for k in range(1, decoys + 1):
        folder = out / f"decoy{k}"
        decoy = decoy_template(template, seed + k, decoy_kind)
        digest = input_digest(tomogram, decoy)
        if finished(folder, cfg, digest):
            continue
        yield Log(f"decoy {k} of {decoys} ({decoy_kind})")
        res = yield from stage(match_job(tomogram, decoy, voxel_size, cfg, mask, folder, device, world))
        if res is not None:
            write_match(folder, res, {**extra, "decoy_seed": seed + k, "decoy_kind": decoy_kind,
                                      "input_digest": digest})
    if decoys:
        yield Log("the template")
    res = yield from stage(match_job(tomogram, template, voxel_size, cfg, mask, out, device, world))
    if res is not None:
        write_match(out, res, {**extra, "input_digest": input_digest(tomogram, template)})
        yield Result(out)
    else:
        yield Result(None)
