"""Small statistics shared by the checks that judge rates from counts."""

from __future__ import annotations

import math
from typing import Final

WILSON_Z: Final = 1.96
"""95% two-sided: how sure a rate must be before a check acts on it."""


def rate_interval(events: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate: what ``events`` in ``trials`` says the
    true rate may be. Small cohorts give wide intervals, so chance alone fails no step."""
    if trials <= 0:
        return 0.0, 1.0
    z = WILSON_Z
    share = events / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    half /= denominator
    return max(0.0, centre - half), min(1.0, centre + half)
