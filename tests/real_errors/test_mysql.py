"""MySQL/MariaDB errors through PyMySQL and SQLAlchemy, provoked on the local server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ..conftest import require_service
from ._servers import free_port, provoke

pymysql = pytest.importorskip("pymysql")
sqlalchemy = pytest.importorskip("sqlalchemy")

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR
HOST, PORT = "127.0.0.1", 3306
LIMITED = "rk_classify_one"  # MAX_USER_CONNECTIONS 1: a second connection is refused

# The pinned table (README "MySQL/MariaDB"): case -> (error number provoked, category).
CASES: dict[str, tuple[int, ErrorCategory]] = {
    "refused": (2003, NET),
    "killed_connection": (2013, NET),
    "access_denied": (1045, PERM),
    "unknown_database": (1049, PERM),
    "unknown_table": (1146, PERM),
    "unknown_column": (1054, PERM),
    "syntax_error": (1064, PERM),
    "duplicate_key": (1062, DATA),
    "data_too_long": (1406, DATA),
    "lock_wait_timeout": (1205, TEMP),
    "too_many_user_connections": (1203, TEMP),
    "statement_timeout": (1969, TEMP),  # MariaDB max_statement_time, SQLSTATE 70100
}


@pytest.fixture(scope="module", autouse=True)
def _mysql() -> Iterator[None]:
    """The local MariaDB/MySQL (skip, or fail in CI, when absent) with this module's user."""
    require_service("MySQL/MariaDB", HOST, PORT, "apt-get install mariadb-server && service mariadb start")
    conn = pymysql.connect(host=HOST, port=PORT, user="root", password="", database="test", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{LIMITED}'@'%' WITH MAX_USER_CONNECTIONS 1")
        cur.execute(f"CREATE USER IF NOT EXISTS '{LIMITED}'@'localhost' WITH MAX_USER_CONNECTIONS 1")
    yield
    conn.close()


def _connect(via: str, **kw: Any) -> Any:
    options = {"host": HOST, "port": PORT, "user": "root", "password": "", "database": "test", **kw}
    if via == "pymysql":
        return pymysql.connect(connect_timeout=3, autocommit=True, **options)
    url = sqlalchemy.engine.URL.create(
        "mysql+pymysql",
        username=options["user"],
        password=options["password"] or None,
        host=options["host"],
        port=options["port"],
        database=options["database"],
    )
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT")
    return engine.connect()


def _run(via: str, conn: Any, sql: str) -> Any:
    if via == "pymysql":
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    return (
        conn.execute(sqlalchemy.text(sql)).fetchall()
        if sql.lstrip().upper().startswith("SELECT")
        else (conn.execute(sqlalchemy.text(sql)))
    )


def _provoke(via: str, case: str) -> BaseException:
    if case == "refused":
        return provoke(lambda: _connect(via, port=free_port()))
    if case == "access_denied":
        return provoke(lambda: _connect(via, user="rk_classify_nobody", password="wrong"))
    if case == "unknown_database":
        return provoke(lambda: _connect(via, database="rk_classify_missing"))
    if case == "too_many_user_connections":
        first = pymysql.connect(host=HOST, port=PORT, user=LIMITED)
        try:
            return provoke(lambda: _connect(via, user=LIMITED, database=None))
        finally:
            first.close()
    table = f"rk_classify_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host=HOST, port=PORT, user="root", database="test", autocommit=True)
    conn = _connect(via)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(3)) ENGINE=InnoDB")
            cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
        statements = {
            "unknown_table": "SELECT * FROM rk_classify_no_such_table",
            "unknown_column": f"SELECT no_such_column FROM {table}",
            "syntax_error": "SELEC 1",
            "duplicate_key": f"INSERT INTO {table} VALUES (1, 'b')",
            "data_too_long": f"INSERT INTO {table} VALUES (2, 'far too long')",
            "statement_timeout": "SET STATEMENT max_statement_time=0.001 FOR SELECT SLEEP(0.5)",
        }
        if case in statements:
            _run(via, conn, "SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
            return provoke(lambda: _run(via, conn, statements[case]))
        if case == "lock_wait_timeout":
            with admin.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute(f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE")
            _run(via, conn, "SET SESSION innodb_lock_wait_timeout = 1")
            try:
                return provoke(lambda: _run(via, conn, f"UPDATE {table} SET name = 'c' WHERE id = 1"))
            finally:
                admin.rollback()
        if case == "killed_connection":
            row = _run(via, conn, "SELECT CONNECTION_ID()")
            with admin.cursor() as cur:
                cur.execute(f"KILL {int(row[0][0])}")
            return provoke(lambda: _run(via, conn, "SELECT 1"))
        raise AssertionError(case)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()


@pytest.mark.parametrize("via", ["pymysql", "sqlalchemy"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_mysql_errors(via: str, case: str) -> None:
    """Each provoked MySQL/MariaDB failure is classified by its error number, also inside SQLAlchemy."""
    err = _provoke(via, case)
    verdict = retrykit.classify(err)
    assert CASES[case][1] == verdict.category, str(retrykit.explain(err))
    assert "mysql" == verdict.rule, str(retrykit.explain(err))
