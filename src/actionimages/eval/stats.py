"""Binomial confidence intervals for closed-loop success rates."""

from __future__ import annotations

import math

from actionimages.errors import ActionImagesError

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval ``(lo, hi)`` for ``successes`` out of ``trials``.

    Preferred over the normal approximation because it stays inside [0, 1] and is sensible at
    0% and 100% success, which are common for robot tasks with few episodes.
    """
    if isinstance(successes, bool) or isinstance(trials, bool):
        raise ActionImagesError("successes and trials must be integers, not bools")
    if int(successes) != successes or int(trials) != trials:
        raise ActionImagesError(f"successes and trials must be integers, got {successes}, {trials}")
    n, k = int(trials), int(successes)
    if n <= 0:
        raise ActionImagesError(f"need at least one trial for an interval, got trials={trials}")
    if not 0 <= k <= n:
        raise ActionImagesError(f"successes must lie in [0, trials={n}], got {k}")
    if not z > 0:
        raise ActionImagesError(f"z must be positive, got {z}")
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp rounding noise; the exact bounds are 0 at k=0 and 1 at k=n.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi
