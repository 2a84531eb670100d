"""Settings of template matching (plain dataclasses: the CLI takes its defaults from them without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass

DECOY_KINDS = ("shells", "phases")  # see cryoforge.matching.peaks.decoy_template


@dataclass(frozen=True)
class MatchConfig:
    """Settings of a template-matching run. ``mask_radius`` in Å (None: 0.4 of the template box); ``tilt_range``
    in degrees (None: no missing wedge); ``defocus`` in Å (None: no CTF); ``voltage`` kV, ``cs`` mm;
    ``phase_flipped``: the tomogram was CTF phase-flipped (the template gets |CTF|); ``invert``: multiply the
    template by −1 (dark protein); ``memory_gb``: the budget a tile and its batch may take."""

    angular_step: float = 12.0
    symmetry: int = 1
    mask_radius: float | None = None
    tilt_range: tuple[float, float] | None = None
    defocus: float | None = None
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.07
    phase_flipped: bool = False
    invert: bool = False
    batch: int = 1  # rotations per batched FFT: 1 is fastest on a CPU (1.5× an FFT pair per rotation; 4: 2.1×)
    memory_gb: float = 2.0
    save_every_s: float = 60.0
