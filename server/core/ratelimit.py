"""Rate limits shared by every API process (Redis) or kept in memory (embedded profile)."""

from __future__ import annotations

from functools import lru_cache

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from server.core.config import get_settings


@lru_cache(maxsize=1)
def get_limiter() -> MovingWindowRateLimiter:
    settings = get_settings()
    options = {"key_prefix": f"{settings.redis.key_prefix}:limits"} if settings.redis.url else {}
    return MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage_url, **options))


def per_minute(count: int) -> RateLimitItem:
    return RateLimitItemPerMinute(count)
