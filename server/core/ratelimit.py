"""Rate limits shared by every API process (Redis) or kept in memory (embedded profile)."""

from __future__ import annotations

from functools import lru_cache

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from server.core.config import get_settings


@lru_cache(maxsize=1)
def get_limiter() -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(get_settings().rate_limit_storage_url))


def per_minute(count: int) -> RateLimitItem:
    return RateLimitItemPerMinute(count)
