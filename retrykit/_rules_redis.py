"""
Rule family: redis-py (sync and ``redis.asyncio``, which raise the same classes). The server's
reply prefix decides (redis-py turns ``LOADING``, ``READONLY``, ``OOM``, ``NOSCRIPT``, ``NOAUTH``,
``WRONGPASS``, ``NOPERM`` into classes of their own; the rest arrive as ``ResponseError``):
transient states of the server are retried, replies that will repeat are not.
"""

from __future__ import annotations

import re

from ._categories import CLASS, CODE, DATA, GENERIC, NET, PERM, TEMP, ErrorCategory, Hit, hit, module_of

PREFIXES = ("redis",)

# redis-py classes (redis/exceptions.py), most derived first by MRO walk.
_CLASSES: dict[str, tuple[int, ErrorCategory, str]] = {
    "AuthenticationError": (CODE, PERM, "authentication failed (NOAUTH/WRONGPASS)"),
    "AuthenticationWrongNumberOfArgsError": (CODE, PERM, "AUTH misconfigured"),
    "AuthorizationError": (CODE, PERM, "not authorised"),
    "NoPermissionError": (CODE, PERM, "ACL forbids this command (NOPERM)"),
    "BusyLoadingError": (CODE, TEMP, "server is loading its dataset (LOADING)"),
    "ReadOnlyError": (CODE, TEMP, "write sent to a read-only replica (READONLY)"),
    "OutOfMemoryError": (CODE, TEMP, "server reached maxmemory (OOM)"),
    "NoScriptError": (CODE, PERM, "script not loaded (NOSCRIPT)"),
    "ExecAbortError": (CODE, PERM, "transaction discarded (EXECABORT)"),
    "ModuleError": (CODE, PERM, "module error"),
    "TryAgainError": (CODE, TEMP, "cluster slot migrating (TRYAGAIN)"),
    "ClusterDownError": (CODE, TEMP, "cluster down"),
    "MasterDownError": (CODE, TEMP, "master down"),
    "MovedError": (CODE, TEMP, "slot moved"),
    "AskError": (CODE, TEMP, "slot moving"),
    "DataError": (CLASS, DATA, "invalid command arguments"),
    "InvalidResponse": (CLASS, NET, "garbled reply"),
    "LockNotOwnedError": (CLASS, PERM, "lock not owned"),
    "LockError": (CLASS, TEMP, "lock not acquired"),
    "ChildDeadlockedError": (CLASS, PERM, "fork while a lock was held"),
    # a full client pool (BlockingConnectionPool's wait ran out, or max_connections reached):
    # the connections are busy, not broken; one is returned when a caller finishes
    "MaxConnectionsError": (CLASS, TEMP, "the client's connection pool is full"),
    "ConnectionError": (GENERIC, NET, "connection failed or lost"),
    "TimeoutError": (GENERIC, NET, "timed out"),
}


def static(cls: type) -> Hit | None:
    """redis-py's classes, read from the reply prefix the client already parsed."""
    for klass in cls.__mro__:
        if not module_of(klass).startswith("redis"):
            continue
        found = _CLASSES.get(klass.__name__)
        if found is not None:
            tier, category, why = found
            return hit(tier, category, f"Redis {cls.__name__}: {why}", "redis")
    return None


_BAD_COMMAND = re.compile(r"unknown command|wrong number of arguments|syntax error|unknown subcommand", re.I)
_SERVER_STATE = re.compile(
    r"^(LOADING|READONLY|OOM|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|NOREPLICAS|MOVED|ASK)\b"
)

# Reply errors that arrive as a plain ResponseError: prefix or text -> category.
_REPLIES: tuple[tuple[re.Pattern[str], ErrorCategory, str], ...] = (
    (re.compile(r"^WRONGTYPE"), DATA, "key holds another type (WRONGTYPE)"),
    (re.compile(r"not an integer|not a valid float|out of range|is not a number", re.I), DATA, "bad value"),
    (re.compile(r"^NOSCRIPT|^NOAUTH|^WRONGPASS|^NOPERM"), PERM, "refused"),
    (
        re.compile(r"unknown command|wrong number of arguments|syntax error|unknown subcommand", re.I),
        PERM,
        "bad command",
    ),
    (
        re.compile(r"^(LOADING|READONLY|OOM|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|NOREPLICAS|MOVED|ASK)\b"),
        TEMP,
        "server state",
    ),
    (re.compile(r"max number of clients reached", re.I), TEMP, "too many clients"),
)


def reply(exc: BaseException) -> Hit | None:
    """A Redis reply error (``ResponseError``) or connection message by its text."""
    module = module_of(type(exc))
    if not module.startswith("redis"):
        return None
    text = str(exc)
    for pattern, category, why in _REPLIES:
        if pattern.search(text):
            return hit(CODE, category, f"Redis reply {text[:80]!r}: {why}", "redis_reply")
    names = {k.__name__ for k in type(exc).__mro__}
    if "ResponseError" in names and not names & _CLASSES.keys():
        return hit(CLASS, PERM, f"Redis reply {text[:80]!r}: an error reply repeats", "redis_reply")
    return None


DYNAMIC = (reply,)
