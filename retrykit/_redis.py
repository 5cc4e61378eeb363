"""How retrykit talks to Redis (statistics, overload protection): one way to check a URL and connect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from ._errors import ConfigError, install_hint

SCHEMES = ("redis", "rediss", "unix")
EXAMPLE = "redis://127.0.0.1:6379/0"


def check_url(argument: str, url: Any) -> str:
    """
    *url* if it is a whole Redis URL (``redis://``, ``rediss://`` or ``unix://``; a host, a port
    number from 1 to 65535 if given, a db number if given), else a ``ConfigError`` naming
    *argument*, the URL (password hidden) and what is wrong with it.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(argument, url, "must be a Redis URL", f"use e.g. {EXAMPLE}")
    try:
        parts = urlsplit(url)
    except ValueError as err:
        raise ConfigError(argument, url, f"is not a valid URL ({err})", f"use e.g. {EXAMPLE}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            argument,
            url,
            f"has the scheme {scheme!r}, not a Redis one",
            f"use redis://, rediss:// or unix://, e.g. {EXAMPLE}",
        )
    if scheme == "unix":
        _check_socket(argument, url, parts)
        db = None
    else:
        db = _server_db(argument, url, parts)
    query = parse_qs(parts.query)
    if "db" in query:
        db = query["db"][-1]
    if db is not None and not (db.isascii() and db.isdigit()):
        raise ConfigError(
            argument, url, f"has the db {db!r}, not a number", f"use a db number, e.g. {EXAMPLE}"
        )
    return url


def _check_socket(argument: str, url: str, parts: SplitResult) -> None:
    """A ``unix://`` URL names a socket path (its db can only come from the query)."""
    if not parts.path or parts.path == "/":
        raise ConfigError(argument, url, "names no socket path", "use e.g. unix:///run/redis.sock?db=0")


def _server_db(argument: str, url: str, parts: SplitResult) -> str | None:
    """A server URL names a host and a valid port if any; the db its path names, if any."""
    if not parts.hostname:
        raise ConfigError(argument, url, "names no host", f"name the host, e.g. {EXAMPLE}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigError(
            argument, url, "has a port that is not a number from 1 to 65535", f"use e.g. {EXAMPLE}"
        )
    return parts.path.strip("/") or None


def connector(argument: str, url: Any) -> Callable[[float], Any]:
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
    check_url(argument, url)

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
