"""
Rule family: the standard library (errno, TLS, file and codec errors, sqlite3) and the generic
duck-typed signals any library's exception may carry (an HTTP status, a SQLSTATE, DB-API wrapper
class names, a message that mentions a rate limit).
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from typing import Any

from ._categories import (
    CLASS,
    CODE,
    DATA,
    GENERIC,
    NET,
    PERM,
    RATE,
    SYS,
    TEMP,
    WRAPPER,
    ErrorCategory,
    Hit,
    attr,
    hit,
    module_of,
)

# errno -> category. Connection-level errnos say the network failed; resource errnos say this
# machine is short of something; file errnos repeat until someone changes the file system.
ERRNO: dict[int, ErrorCategory] = {}
for _names, _category in (
    (
        "ECONNREFUSED ECONNRESET ECONNABORTED EPIPE ETIMEDOUT EHOSTUNREACH ENETUNREACH ENETDOWN "
        "EHOSTDOWN ENETRESET ENOTCONN ESHUTDOWN EADDRNOTAVAIL",
        NET,
    ),
    ("ENOSPC EMFILE ENFILE ENOMEM EDQUOT ENOBUFS EIO", SYS),
    ("EAGAIN EWOULDBLOCK EINTR EBUSY ETXTBSY EADDRINUSE EINPROGRESS EALREADY", TEMP),
    (
        "ENOENT EACCES EPERM EEXIST EISDIR ENOTDIR EROFS ENAMETOOLONG ELOOP ENOTEMPTY EXDEV EBADF "
        "EINVAL ENOEXEC ENOTSUP EOPNOTSUPP ESPIPE EFBIG ENOTTY ENODEV ENXIO",
        PERM,
    ),
):
    for _name in _names.split():
        _code = getattr(errno, _name, None)
        if _code is not None:
            ERRNO.setdefault(_code, _category)

# TLS failures that repeat: the peer's certificate or protocol will not change by retrying.
_TLS_PERMANENT = re.compile(
    r"CERTIFICATE_VERIFY_FAILED|WRONG_VERSION_NUMBER|UNSUPPORTED_PROTOCOL|PROTOCOL_VERSION|"
    r"NO_PROTOCOLS_AVAILABLE|UNKNOWN_PROTOCOL|VERSION_TOO_LOW|NO_SHARED_CIPHER|HANDSHAKE_FAILURE|"
    r"UNKNOWN_CA|HTTP_REQUEST|HOSTNAME_MISMATCH|certificate verify failed|hostname mismatch",
    re.IGNORECASE,
)

# Builtin classes by name (the most derived match in the MRO wins), with tier and category.
_BUILTIN_CLASSES: dict[str, tuple[int, ErrorCategory, str]] = {
    "RecursionError": (CLASS, PERM, "recursion limit: the same input recurses again"),
    "MemoryError": (CLASS, SYS, "out of memory"),
    "FileNotFoundError": (CLASS, PERM, "file not found"),
    "PermissionError": (CLASS, PERM, "permission denied"),
    "FileExistsError": (CLASS, PERM, "file exists"),
    "IsADirectoryError": (CLASS, PERM, "is a directory"),
    "NotADirectoryError": (CLASS, PERM, "not a directory"),
    "ProcessLookupError": (CLASS, PERM, "no such process"),
    "ChildProcessError": (CLASS, PERM, "child process error"),
    "BlockingIOError": (CLASS, TEMP, "operation would block"),
    "InterruptedError": (CLASS, TEMP, "interrupted system call"),
    "ConnectionError": (GENERIC, NET, "network failure"),
    "TimeoutError": (GENERIC, NET, "network failure"),
    "EOFError": (GENERIC, NET, "network failure"),
    "ArithmeticError": (GENERIC, DATA, "arithmetic on bad input"),
    "LookupError": (GENERIC, DATA, "bad data"),
    "UnicodeError": (GENERIC, DATA, "bad data"),
    "ValueError": (GENERIC, DATA, "bad data"),
    "TypeError": (GENERIC, PERM, "programming error"),
    "AttributeError": (GENERIC, PERM, "programming error"),
    "NameError": (GENERIC, PERM, "programming error"),
    "NotImplementedError": (GENERIC, PERM, "programming error"),
    "AssertionError": (GENERIC, PERM, "programming error"),
    "ImportError": (GENERIC, PERM, "programming error"),
    "SyntaxError": (GENERIC, PERM, "programming error"),
    "StopIteration": (GENERIC, PERM, "programming error"),
    "StopAsyncIteration": (GENERIC, PERM, "programming error"),
    "BufferError": (GENERIC, PERM, "programming error"),
}

# Standard-library modules' own errors: (module, class name) -> category. Corrupt or malformed
# input fails the same way every time.
_STDLIB_CLASSES: dict[tuple[str, str], tuple[ErrorCategory, str]] = {
    ("_pickle", "UnpicklingError"): (DATA, "corrupt pickle"),
    ("pickle", "UnpicklingError"): (DATA, "corrupt pickle"),
    ("_pickle", "PicklingError"): (PERM, "object cannot be pickled"),
    ("pickle", "PicklingError"): (PERM, "object cannot be pickled"),
    ("gzip", "BadGzipFile"): (DATA, "not a gzip file"),
    ("zlib", "error"): (DATA, "corrupt zlib stream"),
    ("struct", "error"): (DATA, "bytes do not match the struct format"),
    ("binascii", "Error"): (DATA, "bad encoded data"),
    ("binascii", "Incomplete"): (DATA, "incomplete encoded data"),
    ("_lzma", "LZMAError"): (DATA, "corrupt xz/lzma stream"),
    ("zipfile", "BadZipFile"): (DATA, "not a zip file"),
    ("tarfile", "ReadError"): (DATA, "not a tar file"),
    ("_csv", "Error"): (DATA, "malformed CSV"),
    ("xml.etree.ElementTree", "ParseError"): (DATA, "malformed XML"),
    ("pyexpat", "ExpatError"): (DATA, "malformed XML"),
    ("xml.parsers.expat", "ExpatError"): (DATA, "malformed XML"),
    ("configparser", "Error"): (PERM, "bad configuration"),
    ("http.client", "InvalidURL"): (PERM, "invalid URL"),
    ("http.client", "UnknownProtocol"): (PERM, "unknown HTTP protocol"),
    ("http.client", "IncompleteRead"): (NET, "response cut short"),
    ("http.client", "RemoteDisconnected"): (NET, "server closed the connection"),
    ("http.client", "BadStatusLine"): (NET, "garbled status line"),
    ("concurrent.futures._base", "TimeoutError"): (NET, "timed out"),
    ("asyncio.exceptions", "TimeoutError"): (NET, "timed out"),
    ("asyncio.exceptions", "IncompleteReadError"): (NET, "stream cut short"),
    ("subprocess", "TimeoutExpired"): (TEMP, "subprocess timed out"),
}


def static(cls: type) -> Hit | None:
    """Verdicts that depend on the class alone (computed once per class)."""
    for klass in cls.__mro__:
        module = module_of(klass)
        if module == "builtins":
            known = _BUILTIN_CLASSES.get(klass.__name__)
            if known is not None:
                tier, category, why = known
                return hit(tier, category, f"{cls.__name__}: {why}", "stdlib")
            continue
        found = _STDLIB_CLASSES.get((module, klass.__name__))
        if found is not None:
            category, why = found
            return hit(CLASS, category, f"{cls.__name__}: {why}", "stdlib")
    return None


def _tls(exc: BaseException) -> Hit | None:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return hit(CLASS, PERM, "TLS certificate verification failed", "tls")
    text = f"{attr(exc, 'reason') or ''} {exc}"
    if _TLS_PERMANENT.search(text):
        return hit(CLASS, PERM, f"TLS protocol or certificate mismatch ({attr(exc, 'reason')})", "tls")
    return hit(GENERIC, NET, f"{type(exc).__name__}: TLS connection failed", "tls")


def os_error(exc: BaseException) -> Hit | None:
    """An ``OSError``'s errno (or the TLS/DNS meaning of ``ssl``'s and ``socket``'s subclasses)."""
    if isinstance(exc, ssl.SSLError):
        return _tls(exc)
    if isinstance(exc, (socket.gaierror, socket.herror)):
        return hit(GENERIC, NET, f"DNS lookup failed ({exc})", "dns")
    code = attr(exc, "errno")
    if isinstance(code, int):
        category = ERRNO.get(code)
        if category is not None:
            name = errno.errorcode.get(code, str(code))
            return hit(CODE, category, f"errno {name}", "errno")
    return None


# sqlite3 result codes (primary code = extended & 0xFF) -> category; see sqlite.org/rescode.html.
_SQLITE_CODES: dict[int, ErrorCategory] = {
    5: TEMP,  # SQLITE_BUSY: another connection holds the lock
    6: TEMP,  # SQLITE_LOCKED
    7: SYS,  # SQLITE_NOMEM
    9: TEMP,  # SQLITE_INTERRUPT
    10: SYS,  # SQLITE_IOERR
    13: SYS,  # SQLITE_FULL
    1: PERM,  # SQLITE_ERROR: no such table, syntax error, ...
    8: PERM,  # SQLITE_READONLY
    11: PERM,  # SQLITE_CORRUPT
    14: PERM,  # SQLITE_CANTOPEN
    23: PERM,  # SQLITE_AUTH
    26: PERM,  # SQLITE_NOTADB
    18: DATA,  # SQLITE_TOOBIG
    19: DATA,  # SQLITE_CONSTRAINT
    20: DATA,  # SQLITE_MISMATCH
    25: DATA,  # SQLITE_RANGE
}
_SQLITE_MESSAGES: tuple[tuple[re.Pattern[str], ErrorCategory], ...] = (
    (re.compile(r"database (table )?is locked|database is busy", re.I), TEMP),
    (re.compile(r"database or disk is full|disk I/O error|out of memory", re.I), SYS),
    (re.compile(r"no such (table|column|function)|syntax error|has no column|unable to open", re.I), PERM),
    (re.compile(r"file is not a database|malformed|readonly database", re.I), PERM),
    (re.compile(r"constraint failed|datatype mismatch", re.I), DATA),
)


def sqlite(exc: BaseException) -> Hit | None:
    """``sqlite3`` errors by result code (3.11+) or, failing that, by message."""
    if module_of(type(exc)) != "sqlite3":
        return None
    code = attr(exc, "sqlite_errorcode")
    if isinstance(code, int):
        category = _SQLITE_CODES.get(code & 0xFF)
        if category is not None:
            name = attr(exc, "sqlite_errorname") or code
            return hit(CODE, category, f"sqlite3 {name}: {exc}", "sqlite3")
    text = str(exc)
    for pattern, category in _SQLITE_MESSAGES:
        if pattern.search(text):
            return hit(CLASS, category, f"sqlite3: {text}", "sqlite3")
    return None


# EOFError is a closed connection, except when a decompressor says its input ended early: the
# same truncated bytes end early again (gzip, bz2, lzma raise it with these words).
_TRUNCATED = re.compile(r"end-of-stream marker|Compressed file ended|Compressed data ended", re.IGNORECASE)


def truncated_stream(exc: BaseException) -> Hit | None:
    """An ``EOFError`` from a decompressor: the compressed input is cut short."""
    if _TRUNCATED.search(str(exc)):
        return hit(CLASS, DATA, f"{type(exc).__name__}: compressed input cut short", "stdlib")
    return None


RATE_LIMIT_MESSAGE = re.compile(r"rate[ _-]?limit|too many requests|throttl", re.IGNORECASE)


def rate_limit_message(exc: BaseException) -> Hit | None:
    """A message that mentions a rate limit (for exceptions with no better signal)."""
    try:
        message = str(exc)
    except Exception:  # a hostile __str__: no message to read
        return None
    if isinstance(message, str) and RATE_LIMIT_MESSAGE.search(message[:2000]):
        return hit(GENERIC, RATE, "message mentions a rate limit", "rate_limit_message")
    return None


# ------------------------------------------------------------------ generic duck typing

_DB_WRAPPERS: dict[str, ErrorCategory] = {
    "IntegrityError": DATA,
    "DataError": DATA,
    "ProgrammingError": PERM,
    "NotSupportedError": PERM,
    "OperationalError": TEMP,
    "InternalError": TEMP,
    "InterfaceError": TEMP,
}


def db_wrapper_static(cls: type) -> Hit | None:
    """DB-API class names (PEP 249): the last resort when no code says more."""
    for klass in cls.__mro__:
        category = _DB_WRAPPERS.get(klass.__name__)
        if category is not None and module_of(klass) != "builtins":
            return hit(WRAPPER, category, f"database {klass.__name__} (no code to say more)", "db_api")
    return None


def sqlstate_of(exc: Any) -> str | None:
    """A SQLSTATE on the exception (psycopg 3 and asyncpg ``sqlstate``, psycopg2 ``pgcode``)."""
    for name in ("sqlstate", "pgcode"):
        code = attr(exc, name)
        if isinstance(code, str) and len(code) == 5:
            return code.upper()
    return None
