"""Batched wedge-aware template scoring: ``c(P, T(C)) = max_{R,t}`` constrained correlation of a subtomogram
``P`` with a template ``C`` rotated by ``R`` and shifted by ``t``.

The subtomogram is the one thing shared by all templates, so it is rotated, not the templates
(:mod:`cryoforge.search` does the same for a shared reference). Two stages:

1. **Coarse, all templates at once**: ``P`` and its missing-wedge mask are Fourier-cropped to
   ``coarse_box`` and rotated by a uniform SO(3) grid (``n_rotations``, super-Fibonacci). Candidate
   rotations are ranked by the correlation of *Fourier amplitudes* (each divided by its shell mean, so
   the fall-off does not dominate) over ``P``'s rotated wedge: amplitudes ignore translation, so ``P``
   need not be centred, and the whole (templates × rotations) table is one matrix product.
   ``centred`` (default 4) more candidates are ranked by the *phase-aware* correlation of the whitened complex
   spectra, ``P`` taken as centred (a template-matching candidate is, to about a voxel; a subtomogram shifted by a
   voxel or two keeps its low-frequency phases): in a noisy, wedge-limited ``P`` amplitudes alone often miss the true
   rotation. Measured: ribosome candidates of crowded tomograms at SNR 0.1, 3 of 15 true ribosomes explained best
   by another template with 4 amplitude candidates, none with 4 more by phase; ``cryoforge bench hyptest`` (SNR 0.03,
   shifts ≤ 2 voxels) 13 → 15 / 15 known complexes, and 7 → 14 / 15 for subtomograms made directly at 12 Å.
2. **Fine, per template**: the best ``candidates`` rotations are re-scored at full size over all shifts
   within ``max_shift`` by one inverse FFT each (sub-voxel peak), then the ``neighbours`` nearest grid
   rotations of the best one (one hill-climbing step). Rotated copies of ``P`` are cached by grid index,
   so their number never exceeds the grid's, however many templates are scored.

The score is the Pearson correlation over the Fourier region ``P`` sampled (its rotated wedge mask
times the band, zero frequency excluded) — the wedge-compensated correlation of Xu et al. / Förster
et al.; the same procedure scores known templates and pseudo-complexes, so they are comparable.

**Spectral equalisation** (``profile``): before the fine stage every template's Fourier shells are
rescaled to one radial amplitude profile (the known templates' mean, :func:`radial_profile`), keeping
its phases and its amplitudes' variation within each shell. Without it the score of a template also
measures how much mid- and high-frequency power it has: the GAN's pseudo-complexes have 0.46–0.58× the
known maps' amplitude at 0.25–0.35 cycles/voxel, so they correlate less with anything, noise included,
and an empty subtomogram's best known template looked significant.

**Transfer** (``transfer``): a phase-flipped subtomogram holds its structure times ``|CTF|·MTF``, so the
templates are multiplied by the same radial filter (:func:`radial_transfer`) before they are correlated,
as pytom-match-pick applies the CTF to its template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..correlation import constrained_correlation
from ..fourier import band_mask, crop_mask, downsample, downsampled_rfft, freq_radius, half_weights, to_rfft_layout
from ..geometry import transform_volumes
from ..so3 import so3_grid
from .config import ScoreConfig

if TYPE_CHECKING:
    from ..hints import Tensorish



def _shells(n: int, device=None) -> torch.Tensor:
    """Shell index ``round(|k| n)`` of every rfft coefficient of an ``n³`` box."""
    return (freq_radius((n, n, n), rfft=True, device=device) * n).round().long()


def _shell_rms(ft: torch.Tensor, shells: torch.Tensor) -> torch.Tensor:
    """RMS amplitude per shell of rfft volumes ``(B, n, n, n//2+1)`` → ``(B, S)`` (half-grid weighted)."""
    n = ft.shape[-3]
    w = half_weights(n, ft.device).expand(n, n, -1).flatten()
    s = shells.flatten()
    p = (ft.real ** 2 + ft.imag ** 2).flatten(1) * w
    n_shell = int(s.max()) + 1
    total = torch.zeros(len(p), n_shell, device=ft.device, dtype=p.dtype).index_add_(1, s, p)
    count = torch.zeros(n_shell, device=ft.device, dtype=p.dtype).index_add_(0, s, w)
    return (total / count.clamp_min(1e-12)).sqrt()


def radial_profile(volumes: Tensorish, n: int | None = None) -> torch.Tensor:
    """Mean radial amplitude profile ``(S,)`` of mean-free, unit-variance ``volumes`` ``(B, N, N, N)`` Fourier-cropped
    to ``n³`` (default: their own size): the target of :class:`TemplateScorer`'s spectral equalisation."""
    v = torch.as_tensor(volumes, dtype=torch.float32)
    v = v[None] if v.ndim == 3 else v
    v = downsample(v, n or v.shape[-1])
    v = (v - v.mean((-3, -2, -1), keepdim=True)) / v.std(dim=(-3, -2, -1), keepdim=True).clamp_min(1e-12)
    return _shell_rms(torch.fft.rfftn(v, dim=(-3, -2, -1)), _shells(v.shape[-1], v.device)).mean(0)


def radial_transfer(n: int, voxel_size: float, defocus: float, voltage: float = 300.0, cs: float = 2.7,
                    amplitude_contrast: float = 0.07, bfactor: float = 0.0, mtf: bool = True,
                    pixel_size: float | None = None, phase_flipped: bool = True) -> torch.Tensor:
    """The radial signal transfer ``|CTF|·MTF`` of a phase-flipped subtomogram, one value per Fourier shell of an
    ``n³`` box (shell ``s`` at ``s / (n·voxel_size)`` Å⁻¹), as :mod:`cryoforge.sim.tomo` forms it. ``defocus`` in Å
    (underfocus positive), ``cs`` in mm, ``voltage`` in kV; ``pixel_size``: the sampling it was acquired at, where
    the detector's Nyquist lies (default ``voxel_size``; finer when the subtomogram was binned). ``phase_flipped``
    false: the signed ``CTF·MTF`` of a tomogram reconstructed without CTF correction."""
    from ..ctf import CTFParams, ctf_of_k2
    from ..sim.tomo import detector_mtf

    shells = torch.arange(int(n * 3 ** 0.5 / 2) + 2, dtype=torch.float32)
    k = shells / (n * voxel_size)
    t = ctf_of_k2(CTFParams(defocus_u=defocus, defocus_v=defocus, voltage=voltage, cs=cs,
                            amplitude_contrast=amplitude_contrast, bfactor=bfactor), k * k)
    t = t.abs() if phase_flipped else t
    if mtf:
        t = t * detector_mtf(k * 2 * (pixel_size or voxel_size))
    return t


def _rotate(vols: torch.Tensor, rots: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    return torch.cat([transform_volumes(vols.expand(len(r), *vols.shape[-3:]), r) for r in rots.split(chunk)])


@dataclass
class TemplateScores:
    """Each template's score in a subtomogram ``P`` and its pose there: ``P ≈ T(R, t) C`` with ``rotations``
    ``(K, 3, 3)`` and ``shifts`` ``(K, 3)`` (voxels, x y z; :func:`cryoforge.geometry.transform_volumes`)."""

    scores: torch.Tensor
    rotations: torch.Tensor
    shifts: torch.Tensor


class TemplateScorer:
    """Scores one subtomogram ``P`` (centred Fourier mask ``mask``, or None) against batches of templates.

    ``profile``: the radial amplitude profile every template is equalised to (:func:`radial_profile` of the known
    templates at the full box); None, or ``cfg.equalize`` false: templates are scored as they are.
    ``transfer``: the subtomogram's radial signal transfer (:func:`radial_transfer`: |CTF|·MTF after phase
    flipping), applied to every template so that it looks like the signal in ``P`` (None: 1).
    """

    def __init__(self, subtomo: Tensorish, mask: Tensorish | None = None, cfg: ScoreConfig | None = None,
                 device: str | torch.device = "cpu",
                 profile: Tensorish | None = None, transfer: Tensorish | None = None) -> None:
        p = torch.as_tensor(subtomo, dtype=torch.float32).to(device)
        if p.ndim != 3 or len(set(p.shape)) != 1:
            raise ValueError(f"the subtomogram must be a cubic (n, n, n) volume; got shape {tuple(p.shape)}")
        self.n = n = p.shape[-1]
        self.cfg = (cfg or ScoreConfig()).validate(n)
        self.device = p.device
        mask = torch.ones(n, n, n, device=p.device) if mask is None else torch.as_tensor(mask, dtype=torch.float32).to(p.device)
        if mask.shape != p.shape:
            raise ValueError(f"the wedge mask {tuple(mask.shape)} does not match the subtomogram {tuple(p.shape)}")
        self.p, self.mask = (p - p.mean()) / p.std().clamp_min(1e-12), mask
        self.rotations = so3_grid(self.cfg.n_rotations).to(p.device)
        m = self.cfg.coarse_box
        band = band_mask(m, self.cfg.band, p.device)
        self.idx = band.flatten().nonzero()[:, 0]
        self.shell = (freq_radius((m, m, m), rfft=True, device=p.device) * m).round().long().flatten()[self.idx]
        self.hw = half_weights(m, p.device).expand(m, m, -1).flatten()[self.idx]
        pr = _rotate(downsample(self.p, m), self.rotations)
        fp = self._whiten(torch.fft.rfftn(pr, dim=(-3, -2, -1)).flatten(1)[:, self.idx].abs())
        mr = to_rfft_layout(_rotate(crop_mask(self.mask, m), self.rotations).clamp(0, 1)).flatten(1)[:, self.idx]
        self.mw = mr * self.hw  # (G, Nk)
        self.a = (fp * self.mw).T.contiguous()  # (Nk, G)
        self.norm_p = (fp ** 2 * self.mw).sum(1)  # (G,)
        if self.cfg.centred:  # whitened complex spectra of the rotated P: the phase-aware coarse ranking
            fc = torch.fft.rfftn(pr, dim=(-3, -2, -1)).flatten(1)[:, self.idx]
            fc = fc / self._shell_mean(fc.abs())[:, self.shell]
            self.norm_c = (fc.abs() ** 2 * self.mw).sum(1)
            fc = fc * self.mw
            self.c = torch.cat([fc.real, fc.imag], 1).T.contiguous()  # (2 Nk, G): Re(t · conj c) as one real product
        self.nf = min(n, self.cfg.fine_box or n)
        self.p_fine, self.mask_fine = downsample(self.p, self.nf), crop_mask(self.mask, self.nf)
        self.band_fine = band_mask(self.nf, self.cfg.lowpass, p.device)
        self.shells_fine = _shells(self.nf, p.device)
        n_shell = int(self.shells_fine.max()) + 1
        self.profile = None if not self.cfg.equalize or profile is None else self._radial(profile, n_shell, "profile")
        # radial filter of the templates (fine shells): the subtomogram's transfer, so a template looks like P's signal
        self.filter = torch.ones(n_shell, device=p.device) if transfer is None else self._radial(transfer, n_shell,
                                                                                                   "transfer")
        self._fine: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._neighbours: torch.Tensor | None = None

    def _shell_mean(self, amp: torch.Tensor) -> torch.Tensor:
        """Mean of coarse-band amplitudes ``(B, Nk)`` per shell ``(B, S)`` (half-grid weighted), at least 1e-12."""
        n_shell = int(self.shell.max()) + 1
        total = torch.zeros(len(amp), n_shell, device=amp.device).index_add_(1, self.shell, amp * self.hw)
        count = torch.zeros(n_shell, device=amp.device).index_add_(0, self.shell, self.hw)
        return (total / count.clamp_min(1e-12)).clamp_min(1e-12)

    def _whiten(self, amp: torch.Tensor) -> torch.Tensor:
        """Fourier amplitudes ``(B, Nk)`` divided by their shell means, minus one (shape without the fall-off)."""
        return amp / self._shell_mean(amp)[:, self.shell] - 1

    def _radial(self, values, n_shell: int, what: str) -> torch.Tensor:
        v = torch.as_tensor(values, dtype=torch.float32).to(self.device)
        if v.ndim != 1 or len(v) < n_shell:
            raise ValueError(f"the radial {what} must have at least {n_shell} shells for a {self.nf}³ fine box (one "
                             f"value per Fourier shell of the {self.n}³ box); got shape {tuple(v.shape)}")
        return v[:n_shell]

    def _filtered(self, ft: torch.Tensor) -> torch.Tensor:
        """Template spectra ``(B, nf, nf, nf//2+1)``: each shell rescaled to the target profile (equalisation), then
        times the subtomogram's transfer."""
        gain = self.filter[None]
        if self.profile is not None:
            gain = gain * self.profile / _shell_rms(ft, self.shells_fine).clamp_min(1e-12)
        return ft * gain[:, self.shells_fine]

    def coarse(self, templates: torch.Tensor, ft: torch.Tensor | None = None) -> torch.Tensor:
        """Correlation of whitened Fourier amplitudes (translation invariant) of every template with ``P`` at every
        grid rotation over ``P``'s rotated wedge, ``(K, G)``: it ranks candidate rotations. ``ft``: the templates'
        full-size rfft, when at hand."""
        ft = self._whiten(downsampled_rfft(templates, self.cfg.coarse_box, ft).flatten(1)[:, self.idx].abs())
        num = ft @ self.a
        norm_t = (ft ** 2) @ self.mw.T
        return num / torch.sqrt(norm_t * self.norm_p).clamp_min(1e-20)

    def coarse_centred(self, templates: torch.Tensor, ft: torch.Tensor | None = None) -> torch.Tensor:
        """Phase-aware correlation ``(K, G)`` of every template's whitened spectrum (through the subtomogram's
        transfer, so the CTF's sign is kept) with ``P``'s at every grid rotation, ``P`` taken as centred. ``ft``: the
        templates' full-size rfft, when at hand."""
        ft = downsampled_rfft(templates, self.cfg.coarse_box, ft).flatten(1)[:, self.idx]
        ft = ft * self.filter[self.shell.clamp_max(len(self.filter) - 1)]
        ft = ft / self._shell_mean(ft.abs())[:, self.shell]
        num = torch.cat([ft.real, ft.imag], 1) @ self.c
        norm_t = (ft.abs() ** 2) @ self.mw.T
        return num / torch.sqrt(norm_t * self.norm_c).clamp_min(1e-20)

    def _rotated_full(self, idx: torch.Tensor):
        """Rfft of ``P`` and its mask×band×half-weights at grid rotations ``idx`` (cached)."""
        todo = [int(i) for i in idx.unique() if int(i) not in self._fine]
        if todo:
            r = self.rotations[todo]
            fp = torch.fft.rfftn(_rotate(self.p_fine, r), dim=(-3, -2, -1))
            w = to_rfft_layout(_rotate(self.mask_fine, r).clamp(0, 1)) * self.band_fine
            for j, i in enumerate(todo):
                self._fine[i] = (fp[j], w[j])
        fp = torch.stack([self._fine[int(i)][0] for i in idx])
        w = torch.stack([self._fine[int(i)][1] for i in idx])
        return fp, w

    @property
    def neighbours(self) -> torch.Tensor:
        """The ``neighbours`` nearest grid rotations of every grid rotation, ``(G, m)``."""
        if self._neighbours is None:
            q = self.rotations.flatten(1)
            sim = q @ q.T  # tr(R_iᵀ R_j) = 1 + 2 cos θ_ij
            sim.fill_diagonal_(-torch.inf)
            self._neighbours = sim.topk(self.cfg.neighbours, dim=1).indices
        return self._neighbours

    def _fine_scores(self, ft: torch.Tensor, idx: torch.Tensor):
        """Full-size scores and shifts ``(k, m)``, ``(k, m, 3)`` of template spectra ``ft`` at grid rotations ``idx``."""
        n, m = self.nf, idx.shape[1]
        fp, w = self._rotated_full(idx.flatten())
        ft = ft.repeat_interleave(m, 0)
        scale = self.n / n  # fine-box voxels → full-box voxels
        best, sh = constrained_correlation(fp, ft, w, self.cfg.max_shift / scale)
        return best.view(-1, m), sh.view(-1, m, 3) * scale

    @torch.no_grad()
    def score(self, templates: Tensorish) -> TemplateScores:
        """Scores ``(K,)`` and the pose of each template in ``P``: ``P ≈ T(R, t) C`` with rotations ``(K, 3, 3)`` and
        shifts ``(K, 3)`` (voxels, x y z; :func:`cryoforge.geometry.transform_volumes` convention)."""
        t = torch.as_tensor(templates, dtype=torch.float32).to(self.device)
        t = t[None] if t.ndim == 3 else t
        if t.ndim != 4 or tuple(t.shape[1:]) != (self.n,) * 3:
            raise ValueError(f"templates must be (K, {self.n}, {self.n}, {self.n}) to match the subtomogram; "
                             f"got shape {tuple(t.shape)}")
        c = min(self.cfg.candidates, len(self.rotations))
        scores, rots, shifts = [], [], []
        for t0 in range(0, len(t), self.cfg.chunk):
            tb = t[t0:t0 + self.cfg.chunk]
            full = torch.fft.rfftn(tb, dim=(-3, -2, -1))  # one forward FFT serves the fine and coarse boxes
            ft = self._filtered(downsampled_rfft(tb, self.nf, full))
            cand = self.coarse(tb, full).topk(c, dim=1).indices  # (k, c)
            if self.cfg.centred:
                cand = torch.cat([cand, self.coarse_centred(tb, full).topk(min(self.cfg.centred, len(self.rotations)),
                                                                           dim=1).indices], 1)
            best, sh = self._fine_scores(ft, cand)
            j = best.argmax(1)
            k = torch.arange(len(tb), device=self.device)
            idx, s, shift = cand[k, j], best[k, j], sh[k, j]
            if self.cfg.neighbours:  # one hill-climbing step over the grid neighbours of the best rotation
                nb = self.neighbours[idx]
                b2, sh2 = self._fine_scores(ft, nb)
                j2 = b2.argmax(1)
                better = b2[k, j2] > s
                idx = torch.where(better, nb[k, j2], idx)
                s = torch.where(better, b2[k, j2], s)
                shift = torch.where(better[:, None], sh2[k, j2], shift)
            r = self.rotations[idx].transpose(-1, -2)  # P rotated by Rᵀ matches the template shifted by -Rᵀt
            scores.append(s)
            rots.append(r)
            shifts.append(-(r @ shift[..., None])[..., 0])
        return TemplateScores(torch.cat(scores).cpu(), torch.cat(rots).cpu(), torch.cat(shifts).cpu())


def score_templates(subtomo: Tensorish, templates: Tensorish, mask: Tensorish | None = None,
                    cfg: ScoreConfig | None = None, device: str = "cpu",
                    profile: Tensorish | None = None, transfer: Tensorish | None = None) -> TemplateScores:
    """One-shot :meth:`TemplateScorer.score`."""
    return TemplateScorer(subtomo, mask, cfg, device, profile, transfer).score(templates)
