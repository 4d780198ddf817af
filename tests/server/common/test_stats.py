"""The Wilson interval that rate checks (rollout analysis, drift) judge by."""

from __future__ import annotations

import pytest

from server.common.stats import rate_interval


def test_rate_interval_is_the_wilson_interval() -> None:
    assert rate_interval(0, 0) == (0.0, 1.0)
    low, high = rate_interval(0, 114)
    assert low == 0.0
    assert high == pytest.approx(0.0326, abs=5e-4)
    low, high = rate_interval(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=5e-4), pytest.approx(0.5962, abs=5e-4))
    # More trials, a narrower interval around the same rate.
    wide, narrow = rate_interval(5, 100), rate_interval(500, 10_000)
    assert narrow[0] > wide[0]
    assert narrow[1] < wide[1]
