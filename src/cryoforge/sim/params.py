"""Acquisition parameters of the simulators: a tilt series (:class:`TomoParams`) and single particles
(:class:`ParticleParams`). Plain dataclasses without torch, so the CLI takes its defaults from them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ctf import CTFParams
    from ..hints import Tensorish

RECONSTRUCTIONS = ("fourier", "wbp")
CTF_CORRECTIONS = ("none", "phase_flip")


def check_snr(snr: float | None) -> None:
    """Refuse an SNR that is not a positive finite number (None means noise-free)."""
    if snr is not None and not (snr > 0 and math.isfinite(snr)):
        raise ValueError(f"snr must be a positive number (or None for noise-free); got {snr!r}")


@dataclass
class TomoParams:
    """Acquisition and simulation parameters. Defaults follow seeds 000/001."""

    voxel_size: float = 12.0  # Å (seeds: 6–12 Å, i.e. 0.6–1.2 nm)
    tilt_step: float = 1.0  # degrees
    voltage: float = 300.0  # kV
    cs: float = 2.7  # mm (seeds: 2–2.7)
    amplitude_contrast: float = 0.07  # fraction
    defocus_min: float = 20000.0  # Å underfocus (seeds: 2–5 µm)
    defocus_max: float = 50000.0  # Å
    bfactor: float = 0.0  # Å², CTF envelope exp(-B k²/4)
    apply_ctf: bool = True  # False: perfect transfer (tests, idealised data)
    mtf: bool = True  # detector MTF sinc(πω/2), ω = frequency / Nyquist
    snr: float | None = 0.1  # subtomogram SNR = c/(1-c) of two aligned noisy copies; None: noise-free
    reconstruction: str = "fourier"
    ctf_correction: str = "none"  # or "phase_flip" (sign of the CTF removed after reconstruction)

    def validate(self) -> TomoParams:
        if not (self.voxel_size > 0 and math.isfinite(self.voxel_size)):
            raise ValueError(f"voxel_size must be a positive number of Å; got {self.voxel_size!r}")
        if not 0 < self.tilt_step <= 30:
            raise ValueError(f"tilt_step must be in (0, 30] degrees; got {self.tilt_step!r}")
        if self.voltage <= 0:
            raise ValueError(f"voltage must be positive (kV); got {self.voltage!r}")
        if self.cs < 0:
            raise ValueError(f"cs must be ≥ 0 mm; got {self.cs!r}")
        if not 0 <= self.amplitude_contrast < 1:
            raise ValueError(f"amplitude_contrast must be in [0, 1); got {self.amplitude_contrast!r}")
        if not 0 <= self.defocus_min <= self.defocus_max:
            raise ValueError(f"defocus range must satisfy 0 ≤ defocus_min ≤ defocus_max (Å); got "
                             f"{self.defocus_min!r}, {self.defocus_max!r}")
        if self.bfactor < 0:
            raise ValueError(f"bfactor must be ≥ 0 Å²; got {self.bfactor!r}")
        check_snr(self.snr)
        if self.reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}; got {self.reconstruction!r}")
        if self.ctf_correction not in CTF_CORRECTIONS:
            raise ValueError(f"ctf_correction must be one of {CTF_CORRECTIONS}; got {self.ctf_correction!r}")
        return self

    def ctf_params(self, defocus: float | Tensorish) -> CTFParams:
        """The CTF of each defocus (Å) with these optics."""
        import numpy as np
        import torch

        from ..ctf import CTFParams

        if isinstance(defocus, torch.Tensor):
            d = defocus.float()
        else:
            d = torch.as_tensor(np.array(defocus, dtype=np.float32))
        return CTFParams(defocus_u=d, defocus_v=d, voltage=self.voltage, cs=self.cs,
                         amplitude_contrast=self.amplitude_contrast, bfactor=self.bfactor)


@dataclass
class ParticleParams:
    """Imaging parameters; defaults follow seeds 002/003 (defocus U[1, 2] µm, SNR 0.1 = −10 dB)."""

    pixel_size: float = 2.0  # Å
    voltage: float = 300.0  # kV
    cs: float = 2.7  # mm
    amplitude_contrast: float = 0.1
    defocus_min: float = 10000.0  # Å underfocus
    defocus_max: float = 20000.0  # Å
    astigmatism: float = 0.0  # Å, largest |defocus_u − defocus_v|; angle uniform in [0, 180)
    bfactor: float = 0.0  # Å²
    max_shift: float = 0.0  # pixels, uniform in the disc
    snr: float | None = 0.1  # linear; None: noise-free
    apply_ctf: bool = True

    def validate(self) -> ParticleParams:
        if not (self.pixel_size > 0 and math.isfinite(self.pixel_size)):
            raise ValueError(f"pixel_size must be a positive number of Å; got {self.pixel_size!r}")
        if not 0 <= self.defocus_min <= self.defocus_max:
            raise ValueError(f"defocus range must satisfy 0 ≤ defocus_min ≤ defocus_max (Å); got "
                             f"{self.defocus_min!r}, {self.defocus_max!r}")
        for name in ("astigmatism", "bfactor", "max_shift", "cs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0; got {getattr(self, name)!r}")
        if self.voltage <= 0:
            raise ValueError(f"voltage must be positive (kV); got {self.voltage!r}")
        if not 0 <= self.amplitude_contrast < 1:
            raise ValueError(f"amplitude_contrast must be in [0, 1); got {self.amplitude_contrast!r}")
        check_snr(self.snr)
        return self
