"""The one way nbmon opens a Redis connection: short timeouts, no retries of its own, the URL's password never
logged (registered for redaction here, for every user of Redis: the pacer, the lease, the budget)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.fleet.settings import FleetSettings

if TYPE_CHECKING:
    import redis


def connect(settings: FleetSettings) -> redis.Redis:
    """A client for `settings.redis_url` (raises ValueError when there is none). Connects lazily, on first use.

    Callers decide what a Redis error means (the pacer falls back to per-process limits, the lease stands down):
    the client itself does not retry, so a dead Redis costs one timeout, not several.
    """
    if not settings.redis_url:
        raise ValueError("fleet.redis_url is not set")
    from urllib.parse import urlsplit

    from monitor.logs import register_secret

    register_secret(urlsplit(settings.redis_url).password)  # redacted should any library log the URL
    try:
        import redis
    except ImportError as exc:  # the base install has no Redis client
        raise ImportError("fleet.redis_url needs the redis package: pip install 'nbmon[fleet]'") from exc
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.timeout_s,
        socket_connect_timeout=settings.timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )
