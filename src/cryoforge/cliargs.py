"""Argument types of the command line: numbers checked at the boundary, with the unit in the message.

``argparse`` turns the ``ArgumentTypeError`` these raise into ``cryoforge: error: argument --x: …`` on one line
with exit status 2 (:class:`OneLineParser`); :func:`check_finite` refuses NaN and infinity in every float option
of a parsed command, so no option reaches the engine as NaN.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line on stderr (``prog: error: …``) and exit status 2; ``--help`` shows usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(text: str, number_type: type) -> float:
    try:
        value = number_type(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if number_type is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


def positive(unit: str = "", number_type: type = float) -> Callable[[str], float]:
    """A number > 0 (``number_type`` int or float); ``unit`` is named in the message."""

    def parse(text: str):
        v = _number(text, number_type)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0{' ' + unit if unit else ''}; got {text}")
        return v

    parse.__name__ = f"positive {number_type.__name__}"
    return parse


def non_negative(unit: str = "", number_type: type = float) -> Callable[[str], float]:
    """A number ≥ 0."""

    def parse(text: str):
        v = _number(text, number_type)
        if v < 0:
            raise argparse.ArgumentTypeError(f"must be ≥ 0{' ' + unit if unit else ''}; got {text}")
        return v

    parse.__name__ = f"non-negative {number_type.__name__}"
    return parse


def finite(text: str) -> float:
    """Any finite float."""
    return _number(text, float)


def check_finite(args: argparse.Namespace) -> None:
    """Refuse NaN or infinity in any float option (lists included) of a parsed command: one line, exit 2."""
    for name, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                print(f"cryoforge: error: argument --{name.replace('_', '-')}: must be a finite number; got {v}",
                      file=sys.stderr)
                raise SystemExit(2)


def tilt_range_of(tlt: str | None, tilt_range: tuple[float, float] | list[float] | None) -> tuple[float, float] | None:
    """The tilt range (degrees) from an IMOD ``.tlt`` file (one angle per line) or ``--tilt-range MIN MAX``; None
    when neither is given (no wedge mask)."""
    if tlt:
        import numpy as np

        angles = np.loadtxt(tlt, ndmin=1)
        if angles.size == 0 or not np.isfinite(angles).all():
            raise ValueError(f"{tlt}: a .tlt file holds one tilt angle (degrees) per line")
        return float(angles.min()), float(angles.max())
    if tilt_range:
        lo, hi = tilt_range
        if not -90 <= lo < hi <= 90:
            raise ValueError(f"--tilt-range takes MIN < MAX within ±90°; got {lo:g} {hi:g}")
        return float(lo), float(hi)
    return None


def add_tomogram_options(p: argparse.ArgumentParser, what: str = "the subtomograms") -> None:
    """The options that cut subtomograms out of a tomogram: ``--box``, ``--bin``, ``--voxel-size``, ``--tlt`` or
    ``--tilt-range``, ``--defocus``, ``--name``."""
    p.add_argument("--box", type=positive("voxels", int), default=32,
                   help=f"box size of {what} in voxels, after --bin (default %(default)s)")
    p.add_argument("--bin", type=positive("×", int), default=1, help="Fourier-crop bin×box voxels to box (default 1)")
    p.add_argument("--voxel-size", type=positive("Å"), help="Å per tomogram voxel (default: the header's)")
    tilt = p.add_mutually_exclusive_group()
    tilt.add_argument("--tlt", help="the tilt angles (IMOD .tlt, one per line): the wedge mask")
    tilt.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="tilt range in degrees")
    p.add_argument("--defocus", type=positive("µm"),
                   help="every particle's defocus (µm) unless the list has rlnDefocusU")
    p.add_argument("--name", help="the tomogram's name in the list (rlnTomoName): picks its particles from a list of "
                                  "several tomograms, names a list without one (default: the tomogram file's stem)")
