"""Reference-free iterative subtomogram averaging with gold-standard half sets.

Start from the plain (wedge-weighted) average of each half set; each iteration aligns every
subtomogram to an average (:mod:`cryoforge.search`, low-passed to the last resolution) and re-averages. The first
``global_iterations`` search all rotations against the shared low-resolution start (below): the first averages are
near-featureless blobs, so the poses found against them are mostly noise and must be free to move anywhere. The
next ``own_global_iterations`` search all rotations again, each half against its own average at the last
resolution: at 60 Å a map may look alike turned (4V5D and its 150° turn about one axis: 15 % of 220 tomogram
particles stayed turned through local refinement; one global search at 25 Å put every one of them right). The
rest refine locally around the last pose. The averages are formed with
Fourier weighting: ``A = F⁻¹( Σ wᵢ Fᵢ / (Σ wᵢ |Tᵢ| + ε) )`` where ``wᵢ`` is the rotated missing-wedge
mask times ``|Tᵢ|``, the subtomogram's |CTF·MTF| when its defocus is known (phase-flipped data), else 1.
During the global iterations both halves align against their joint average low-passed to ``common_lowpass``
(60 Å by default, RELION's shared low-resolution start; at most a quarter of the box), so they share one frame: on 220 simulated 4V5D particles
from a tomogram each half, starting from its own blob, locked on in one half set only (median pose error 1.3° vs
78°; docs/benchmarks.md). Above that resolution the halves are never mixed: after each iteration the half-2
average is rigidly aligned onto the half-1 average (and its poses composed accordingly) only so that the
gold-standard FSC compares maps in the same frame. Poses: ``subtomo_i ≈ T(R_i, t_i) average``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch

from ..configs import from_dict
from ..fourier import downsampled_rfft, to_rfft_layout, upsample
from ..fourier import lowpass as lowpass_filter
from ..io.mrc import StoredStack
from ..jobs import Log, Metrics, Preview, Progress, Result
from ..jobs.distributed import World, all_cat, all_gather, shard
from ..metrics import GOLD_STANDARD, fsc, split_half_sets
from ..search import SearchConfig, classical_align
from .config import LOCAL_METHODS, AverageConfig
from .warp import masked_pearson, rotate_fourier_masks, warp_inverse

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..hints import Device, PathLike, Tensorish
    from ..jobs import Event
    from ..sim.params import TomoParams
    from ..sim.subtomo import PairDataset
    from .gumnet import GumNet


REFINE_LEVELS = ((4.0, 1, False), (1.5, 1, True), (0.6, 1, True))
GLOBAL_LEVELS = ((8.0, 2, False), (3.0, 1, False), (1.2, 1, True), (0.5, 1, True))  # after the global grid


@overload
def _pick(a: torch.Tensor, h: torch.Tensor) -> torch.Tensor: ...
@overload
def _pick(a: None, h: torch.Tensor) -> None: ...
def _pick(a, h):
    """Rows ``h`` of per-subtomogram ``a``; a shared ``a`` (one row) or None as it is."""
    return None if a is None else (a[h] if a.shape[0] > 1 else a)


def warp_fine(vols: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor, oversample: int = 2) -> torch.Tensor:
    """:func:`warp_inverse` on a ``oversample``× Fourier-padded grid, cropped back: far less interpolation
    damping and aliasing near Nyquist than trilinear interpolation at the original sampling."""
    n = vols.shape[-1]
    if oversample <= 1:
        return warp_inverse(vols, rotations, shifts)
    return torch.fft.irfftn(warp_fine_rfft(vols, rotations, shifts, oversample), s=(n, n, n), dim=(-3, -2, -1))


def warp_fine_rfft(vols: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor,
                   oversample: int = 2) -> torch.Tensor:
    """The rfft of :func:`warp_fine`, cut straight from the fine grid's spectrum (no inverse FFT and FFT between)."""
    n, dims = vols.shape[-1], (-3, -2, -1)
    if oversample <= 1:
        return torch.fft.rfftn(warp_inverse(vols, rotations, shifts), dim=dims)
    return downsampled_rfft(warp_inverse(upsample(vols, oversample * n), rotations, shifts * oversample), n)


SEARCH_CHUNK = 64  # subtomograms of a stack on disk searched at once (memory follows the chunk, not the set)


class Rows:
    """Rows ``index`` of a stack of subtomograms on disk (:class:`~cryoforge.io.mrc.StoredStack`), read a slice at a
    time as float32 tensors on ``device`` — what :func:`weighted_average` and the searches take in place of the
    stack in memory."""

    def __init__(self, stack: StoredStack, index: torch.Tensor, device: torch.device) -> None:
        self.stack, self.index, self.device = stack, index.cpu().numpy(), device
        self.shape = (len(self.index), *stack.shape[1:])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, sl: slice) -> torch.Tensor:
        return torch.from_numpy(self.stack[self.index[sl]]).to(self.device)


def _rows(x: torch.Tensor | StoredStack, index: torch.Tensor, device: torch.device) -> torch.Tensor | Rows:
    return Rows(x, index, device) if isinstance(x, StoredStack) else x[index]


def weighted_average(subtomos: torch.Tensor | Rows, masks: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor,
                     transfer: torch.Tensor | None = None, epsilon: float = 0.05, chunk: int = 32,
                     oversample: int = 2, world: World | None = None) -> torch.Tensor:
    """Fourier-weighted average of ``subtomos`` ``(N, n, n, n)`` brought back by their poses (:func:`warp_fine`).

    ``masks`` centred ``(N|1, n, n, n)``; ``transfer`` ``(N|1, n, n, n//2+1)`` |CTF·MTF| (rfft layout) or None;
    ``subtomos`` may be :class:`Rows` of a stack on disk, read a chunk at a time. ``world``: each rank sums its block of whole chunks, and every rank adds all the chunks' sums in chunk order —
    the sums, in the order, of one process.
    """
    world = world or World()
    n = subtomos.shape[-1]
    parts = []
    device = subtomos.device
    mine = shard(len(subtomos), world, chunk)
    for i in range(mine.start, mine.stop, chunk):
        sl = slice(i, min(i + chunk, len(subtomos)))
        r, t = rotations[sl], shifts[sl]
        aligned = warp_fine_rfft(subtomos[sl], r, t, oversample)
        m = masks[sl] if masks.shape[0] > 1 else masks.expand(len(r), n, n, n)
        w = to_rfft_layout(rotate_fourier_masks(m, r)).clamp(0, 1)
        tr = None if transfer is None else (transfer[sl] if transfer.shape[0] > 1 else transfer)
        wf = w if tr is None else w * tr
        parts.append(((wf * aligned).sum(0), (wf if tr is None else wf * tr).sum(0)))
    if world.size > 1:
        parts = [(a.to(device), b.to(device))
                 for block in all_gather([(a.cpu(), b.cpu()) for a, b in parts], world) for a, b in block]
    num = torch.zeros(n, n, n // 2 + 1, dtype=torch.complex64, device=device)
    den = torch.zeros(n, n, n // 2 + 1, device=device)
    for a, b in parts:
        num += a
        den += b
    den = den + epsilon * den.mean()
    return torch.fft.irfftn(num / den, s=(n, n, n), dim=(-3, -2, -1))


def compose_inverse(rot: torch.Tensor, shifts: torch.Tensor, r12: torch.Tensor,
                    t12: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Poses relative to map 2 → relative to map 1 when ``map1 ≈ T(r12, t12) map2``."""
    new_r = rot @ r12.T
    return new_r, shifts - (new_r @ t12[:, None])[..., 0]


@dataclass
class AverageResult:
    """What reference-free averaging returns: the average, its two gold-standard half maps, each subtomogram's pose
    (``average ≈ T(R, t) subtomogram``), the half-set indices, the voxel size (Å) and the per-iteration report."""

    average: np.ndarray
    half1: np.ndarray
    half2: np.ndarray
    rotations: np.ndarray  # (N, 3, 3)
    shifts: np.ndarray  # (N, 3) voxels, (x, y, z)
    halves: list[np.ndarray]
    voxel_size: float
    report: dict[str, Any]  # n, box, voxel_size_A and the iterations (resolution at FSC 0.143 each)

    @property
    def resolution(self) -> float:
        """Gold-standard resolution (Å, FSC 0.143) of the last iteration."""
        return float(self.report["iterations"][-1]["resolution_0.143_A"])

    def to_json(self) -> dict[str, Any]:
        """The report and the poses as plain numbers (the maps are written as MRC files)."""
        return json.loads(json.dumps({"report": self.report, "rotations": self.rotations, "shifts": self.shifts,
                                      "voxel_size": self.voxel_size},
                                     default=lambda a: np.asarray(a).tolist()))


def forward_warp(vol: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``T(R, t) V`` for one volume ``(n, n, n)`` and ``N`` poses: ``(N, n, n, n)`` (the inverse of
    :func:`warp_inverse`: ``T(R, t) = T(Rᵀ, −Rᵀt)⁻¹``)."""
    rt = rotations.transpose(-1, -2)
    return warp_inverse(vol.expand(len(rotations), *vol.shape), rt, -(rt @ shifts[..., None])[..., 0])


RECALIBRATION_PAIRS = 128  # pairs whose statistics normalise the network (taken evenly through the chunk)


def gumnet_refine(model: GumNet, ref: torch.Tensor, subtomos: torch.Tensor, masks: torch.Tensor,
                  rotations: torch.Tensor, shifts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Local refinement by Gum-Net: the reference brought to each subtomogram's pose (``subtomo ≈ T(R, t) ref``) is
    ``s_a``, the subtomogram ``s_b``; the network's ``T(ΔR, Δt)`` composes to ``(ΔR R, Δt + ΔR t)``. Normalised with
    these pairs' statistics (:mod:`cryoforge.align.adapt`). A subtomogram keeps its pose where the new one does not
    raise the correlation with the reference over the Fourier region it sampled (``masks``, centred, ``(N|1, …)``):
    a network step can only help."""
    from .adapt import recalibrated
    from .train import gumnet_predict

    s_a = forward_warp(ref, rotations, shifts)
    model = recalibrated(model, s_a, subtomos, max_pairs=RECALIBRATION_PAIRS)
    d_r, d_t = gumnet_predict(model, s_a, subtomos, device=str(ref.device))
    d_r, d_t = d_r.to(ref.device), d_t.to(ref.device)
    new_r, new_t = d_r @ rotations, d_t + (d_r @ shifts[..., None])[..., 0]
    m = masks.expand_as(subtomos)
    before = masked_pearson(s_a, subtomos, m)
    after = masked_pearson(forward_warp(ref, new_r, new_t), subtomos, m)
    keep = after > before
    return torch.where(keep[:, None, None], new_r, rotations), torch.where(keep[:, None], new_t, shifts)


def average_job(subtomos: Tensorish, masks: Tensorish, voxel_size: float, cfg: AverageConfig | None = None,
                transfer: Tensorish | None = None,
                device: str = "cpu", world: World | None = None, model: GumNet | None = None) -> Iterator[Event]:
    """Job: reference-free averaging; ``Result`` is an :class:`AverageResult`. ``world``: one of several processes
    (``torchrun``): each searches the poses of its block of every half set, and every rank gets all the poses and
    forms the same averages (the search is the work; averaging is cheap). ``model``: the Gum-Net of the local
    iterations when ``cfg.local_method`` is ``"gumnet"`` (:func:`gumnet_refine`)."""
    cfg = cfg or AverageConfig()
    world = world or World()
    if cfg.local_method not in LOCAL_METHODS:
        raise ValueError(f"local_method must be one of {LOCAL_METHODS}; got {cfg.local_method!r}")
    if cfg.local_method == "gumnet" and model is None:
        raise ValueError("local refinement by Gum-Net needs a model (a Gum-Net checkpoint)")
    if cfg.iterations < 1:
        raise ValueError(f"iterations must be at least 1; got {cfg.iterations}")
    if cfg.own_global_iterations < 0:
        raise ValueError(f"own_global_iterations must be ≥ 0; got {cfg.own_global_iterations}")
    dev = torch.device(device)
    # a stack on disk stays there: each chunk is read when searched or averaged
    x = subtomos if isinstance(subtomos, StoredStack) else torch.as_tensor(np.asarray(subtomos, np.float32)).to(dev)
    if len(x.shape) != 4 or len(set(x.shape[1:])) != 1:
        raise ValueError(f"averaging needs a stack of cubic subtomograms (N, n, n, n); got {tuple(x.shape)}")
    if len(x) < 4:
        raise ValueError(f"averaging needs at least 4 subtomograms (two per half set); got {len(x)}")
    n = x.shape[-1]
    m = torch.as_tensor(np.asarray(masks, dtype=np.float32)).to(dev)
    m = m[None] if m.ndim == 3 else m
    tr = None if transfer is None else torch.as_tensor(np.asarray(transfer, dtype=np.float32)).to(dev)
    halves = [torch.as_tensor(h) for h in split_half_sets(len(x), cfg.seed)]
    rot = torch.eye(3, device=dev).repeat(len(x), 1, 1)
    sh = torch.zeros(len(x), 3, device=dev)
    avgs = [weighted_average(_rows(x, h, dev), _pick(m, h), rot[h], sh[h], _pick(tr, h), cfg.epsilon, world=world)
            for h in halves]
    report: dict[str, Any] = {"n": len(x), "box": n, "voxel_size_A": voxel_size, "iterations": []}
    yield Preview("average (start)", (avgs[0] + avgs[1]).cpu().numpy() / 2, "volume", {"voxel_size": voxel_size})
    res_a = None
    total = cfg.iterations
    for it in range(1, total + 1):
        t0 = time.perf_counter()
        lowpass = cfg.lowpass or (res_a if res_a is not None else 0.0)
        search = SearchConfig(global_rotations=cfg.global_rotations, candidates=cfg.candidates,
                              lowpass=min(1.0, 2 * voxel_size / lowpass * 1.2) if lowpass else 1.0)
        shared = it <= max(1, cfg.global_iterations)
        local = it > max(1, cfg.global_iterations) + cfg.own_global_iterations
        joint = None
        align_s = 0.0  # of the iteration's seconds, those spent finding poses (search or network)
        if shared and cfg.common_lowpass > 0:  # one low-resolution reference for both halves: one frame
            res = min(cfg.common_lowpass, n * voxel_size / 4)  # at least 4 Fourier shells in a small box
            joint = lowpass_filter((avgs[0] + avgs[1]) / 2, res, voxel_size)
        for k, h in enumerate(halves):
            ref = avgs[k] if joint is None else joint
            mine = shard(len(h), world)
            hm = h[mine.start:mine.stop]
            r, t = rot[hm], sh[hm]
            step = SEARCH_CHUNK if isinstance(x, StoredStack) else max(1, len(hm))
            t_align = time.perf_counter()
            if local and cfg.local_method == "gumnet":
                assert model is not None
                ref_lp = lowpass_filter(ref, lowpass, voxel_size) if lowpass else ref
                found = [gumnet_refine(model, ref_lp, _rows(x, c, dev)[:], _pick(m, c), rot[c], sh[c])
                         for c in hm.split(step)]
            else:
                found = [classical_align(ref[None], _rows(x, c, dev)[:], None, _pick(m, c), search,
                                         initial=rot[c] if local else None, device=device,
                                         levels=REFINE_LEVELS if local else GLOBAL_LEVELS)[:2] for c in hm.split(step)]
            align_s += time.perf_counter() - t_align
            if found:  # with fewer particles than ranks a rank may have none
                r, t = torch.cat([f[0] for f in found]), torch.cat([f[1] for f in found])
            rot[h], sh[h] = all_cat((r, t), world)
            avgs[k] = weighted_average(_rows(x, h, dev), _pick(m, h), rot[h], sh[h], _pick(tr, h), cfg.epsilon,
                                       world=world)
            yield Progress((it - 1) * 2 + k + 1, 2 * total, f"iteration {it}: half {k + 1} aligned"
                           + (f" ({world.size} processes)" if world.size > 1 else ""))
        # Half 2's average onto half 1's: a global search after a global iteration (even aligned to one shared
        # low-resolution start, the halves may settle in frames a large turn apart: tests/cryoforge/test_bench_tomo.py
        # failed at a 60° median error with a local search there). A local iteration refines each half against its
        # own average, superposed at the end of the last iteration, so the global search's levels from the identity
        # find what is left (±16°): 125 + 3 × 27 rotations instead of 4 000 more (a local iteration on 8 subtomograms,
        # one thread: 4.2 s → 2.0 s, 57.1 → 54.4 Å). Its first level at the coarse size, as after the grid: with every
        # level at full size the flat landscape of a small set let float rounding pick another rotation.
        near = torch.eye(3, device=dev)[None] if local else None
        r12, t12, _ = classical_align(avgs[1][None], avgs[0][None], None, None, SearchConfig(), initial=near,
                                      levels=SearchConfig().levels, device=device)
        h2 = halves[1]
        rot[h2], sh[h2] = compose_inverse(rot[h2], sh[h2], r12[0], t12[0])
        avgs[1] = weighted_average(_rows(x, h2, dev), _pick(m, h2), rot[h2], sh[h2], _pick(tr, h2), cfg.epsilon,
                                   world=world)
        curve = fsc(avgs[0], avgs[1], voxel_size)
        res_a = curve.resolution(GOLD_STANDARD)
        row = {"iteration": it, "resolution_0.143_A": res_a, "fsc": curve.fsc.tolist(),
               "frequency_per_A": curve.frequency.tolist(), "seconds": round(time.perf_counter() - t0, 3),
               "align_seconds": round(align_s, 3),
               "search": "local" if local else "global", "aligner": cfg.local_method if local else "classical"}
        report["iterations"].append(row)
        yield Metrics({"iteration": it, "resolution_0.143_A": res_a}, it)
        yield Preview("average", ((avgs[0] + avgs[1]) / 2).cpu().numpy(), "volume", {"voxel_size": voxel_size})
        yield Preview("FSC", np.stack([curve.frequency, curve.fsc]), "curve",
                      {"xlabel": "spatial frequency (1/Å)", "ylabel": "FSC", "iteration": it})
        yield Log(f"iteration {it}: gold-standard FSC 0.143 at {res_a:.1f} Å")
    avg = (avgs[0] + avgs[1]) / 2
    yield Result(AverageResult(avg.cpu().numpy(), avgs[0].cpu().numpy(), avgs[1].cpu().numpy(), rot.cpu().numpy(),
                               sh.cpu().numpy(), [h.numpy() for h in halves], voxel_size, report))


def ctf_transfer(params: TomoParams, defocus: Tensorish, n: int, device: Device | None = None) -> torch.Tensor:
    """|CTF·MTF| per subtomogram on the rfft grid, ``(N, n, n, n//2+1)`` (for phase-flipped data)."""
    from ..sim.tomo import transfer_3d

    return transfer_3d((n, n, n), params.voxel_size, params.ctf_params(defocus), -90.0, 90.0, params.mtf, device).abs()


def average_dataset_job(dataset: PathLike | PairDataset, cfg: AverageConfig | None = None, side: str = "b",
                        device: str = "cpu", world: World | None = None, limit: int | None = None,
                        model: GumNet | None = None) -> Iterator[Event]:
    """:func:`average_job` on one side of a pair dataset (its first ``limit`` pairs; None: all); CTF weighting when
    it was phase-flipped."""
    from ..sim.params import TomoParams
    from ..sim.subtomo import PairDataset, dataset_masks, read_pairs

    ds = dataset if isinstance(dataset, PairDataset) else read_pairs(dataset, mmap=True)  # read a chunk at a time
    vols = (ds.s_a if side == "a" else ds.s_b)[:limit]
    mask = dataset_masks(ds)[0 if side == "a" else 1]
    params = from_dict(TomoParams, ds.info.get("params", {}), where="the pair dataset's params")
    transfer = None
    col = f"defocus_{side}"
    if params.ctf_correction == "phase_flip" and params.apply_ctf and col in ds.truth:
        transfer = ctf_transfer(params, ds.truth[col].to_numpy(np.float32)[:limit], vols.shape[-1])
    yield Log(f"averaging {len(vols)} subtomograms (side {side}), "
              f"{'CTF-weighted (phase-flipped data)' if transfer is not None else 'wedge-weighted'}")
    yield from average_job(vols, mask, ds.voxel_size, cfg, transfer, device, world, model)
