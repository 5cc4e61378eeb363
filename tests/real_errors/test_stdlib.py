"""Standard-library errors provoked for real: files, codecs, arithmetic, lookups, sqlite3, sockets."""

from __future__ import annotations

import binascii
import gzip
import json
import math
import os
import pickle
import socket
import sqlite3
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ._servers import free_port, provoke

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


def _recurse(n: int) -> int:
    return _recurse(n + 1) + 1


def _sqlite_locked(tmp: Path) -> None:
    path = tmp / "locked.db"
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        sqlite3.connect(path, timeout=0).execute("SELECT * FROM t")
    finally:
        holder.close()


def _sqlite_integrity(tmp: Path) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("INSERT INTO t VALUES (1)")


def _permission(tmp: Path) -> None:
    if os.geteuid() == 0:  # root may write any file, but not a read-only sysfs attribute
        open("/sys/kernel/notes", "w").close()
    path = tmp / "ro"
    path.write_text("x")
    path.chmod(0o400)
    open(path, "w").close()


# The pinned table (README "Standard library"): case -> (how, category).
CASES: dict[str, tuple[Callable[[Path], Any], ErrorCategory]] = {
    "file_not_found": (lambda t: open(t / "missing"), PERM),  # noqa: SIM115
    "permission_denied": (_permission, PERM),
    "file_exists": (lambda t: os.mkdir(t), PERM),
    "is_a_directory": (lambda t: open(t), PERM),  # noqa: SIM115
    "not_a_directory": (lambda t: (t / "f").write_text("x") and os.listdir(t / "f"), PERM),
    "unpickling": (lambda t: pickle.loads(b"not a pickle"), DATA),
    "pickling": (lambda t: pickle.dumps(lambda: None), PERM),
    "bad_gzip": (lambda t: gzip.decompress(b"not gzip data"), DATA),
    "truncated_gzip": (lambda t: gzip.decompress(gzip.compress(b"x" * 100)[:-12]), DATA),
    "bad_zlib": (lambda t: zlib.decompress(b"not zlib data"), DATA),
    "bad_struct": (lambda t: struct.unpack("<i", b"x"), DATA),
    "bad_base64": (lambda t: binascii.a2b_base64(b"abc"), DATA),
    "bad_json": (lambda t: json.loads("{"), DATA),
    "zero_division": (lambda t: 1 / 0, DATA),
    "overflow": (lambda t: math.exp(1000), DATA),
    "key_error": (lambda t: {}["missing"], DATA),
    "index_error": (lambda t: [][len(str(t)) * 0], DATA),
    "recursion": (lambda t: _recurse(0), PERM),
    "type_error": (lambda t: len(3), PERM),  # type: ignore[arg-type]
    "sqlite_locked": (_sqlite_locked, TEMP),
    "sqlite_no_such_table": (lambda t: sqlite3.connect(":memory:").execute("SELECT * FROM nope"), PERM),
    "sqlite_integrity": (_sqlite_integrity, DATA),
    "socket_refused": (lambda t: socket.create_connection(("127.0.0.1", free_port()), timeout=1), NET),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stdlib_errors(case: str, tmp_path: Path) -> None:
    """Each provoked standard-library failure is classified as the table says."""
    how, category = CASES[case]
    limit = sys.getrecursionlimit()
    if case == "recursion":
        sys.setrecursionlimit(200)
    try:
        err = provoke(lambda: how(tmp_path))
    finally:
        sys.setrecursionlimit(limit)
    verdict = retrykit.classify(err)
    assert category == verdict.category, str(retrykit.explain(err))
