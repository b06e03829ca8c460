"""argparse types with ranges: a nonsense number is refused when the command line is parsed.

``--workers 0`` or ``--steps 0`` would otherwise run and do something silently wrong (no workers, an
untrained model written) or fail deep inside with a traceback. With these types the parser says
``actionimages eval: error: argument --max-steps: must be >= 1, got 0`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_WORKERS = 256  # --workers: parallel processes on one machine


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= low``."""
    return int_range(low)


def float_range(
    low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite float within the bounds given (``low_open``: ``> low``, not ``>=``)."""

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            if low is not None and high is not None:
                bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            elif low is not None:
                bound = f"{'>' if low_open else '>='} {low:g}"
            elif high is not None:
                bound = f"{'<' if high_open else '<='} {high:g}"
            else:
                bound = "a finite number"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


def float_above(low: float) -> Callable[[str], float]:
    """An argparse type: a finite float ``> low``."""
    return float_range(low, low_open=True)


def float_at_least(low: float) -> Callable[[str], float]:
    """An argparse type: a finite float ``>= low``."""
    return float_range(low)


WORKERS = int_range(1, MAX_WORKERS)
COUNT = int_at_least(1)  # episodes, steps, batch sizes, threads, ...
NONNEGATIVE = int_at_least(0)  # videos, optional extras (0: none)
