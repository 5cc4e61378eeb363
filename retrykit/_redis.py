"""How retrykit talks to Redis (statistics, overload protection): one way to check a URL and connect."""

from __future__ import annotations

from typing import Any

from ._errors import ConfigError, install_hint


def connector(argument: str, url: Any) -> Any:
    """
    A function ``seconds -> redis.Redis`` for *url*: one timeout for connecting and for each
    reply, no retries inside redis-py (retrykit resends what failed itself, and a caller waits
    one timeout at most). *url* is checked first; *argument* names it in the error.
    """
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:  # pragma: no cover - redis is in the dev extra
        raise ConfigError(argument, url, "needs the redis package", install_hint("redis")) from None
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(argument, url, "must be a Redis URL", "use e.g. redis://127.0.0.1:6379/0")

    def connect(seconds: float) -> Any:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=seconds,
            socket_timeout=seconds,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    return connect


def errors() -> tuple[type[BaseException], ...]:
    """What a failing Redis call raises: redis-py's errors and the socket's."""
    import redis

    return (redis.RedisError, OSError)
