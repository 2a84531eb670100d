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
