"""PostgreSQL errors through psycopg2, psycopg 3, asyncpg and SQLAlchemy, provoked on the local server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ..conftest import require_service
from ._servers import free_port, provoke

psycopg2 = pytest.importorskip("psycopg2")
psycopg = pytest.importorskip("psycopg")
asyncpg = pytest.importorskip("asyncpg")
sqlalchemy = pytest.importorskip("sqlalchemy")

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
SYS = ErrorCategory.SYSTEM_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

HOST, PORT, USER, DB = "127.0.0.1", 5432, "postgres", "test"
LIMITED = "rk_classify_limited"  # a role with CONNECTION LIMIT 0: connecting gives SQLSTATE 53300

# The pinned table (README "PostgreSQL"): case -> (SQLSTATE class provoked, category).
CASES: dict[str, tuple[str, ErrorCategory]] = {
    "refused_at_connect": ("08 (no SQLSTATE at connect)", NET),
    "terminated_backend": ("57P01 / connection lost", NET),
    "division_by_zero": ("22012", DATA),
    "invalid_text": ("22P02", DATA),
    "unique_violation": ("23505", DATA),
    "in_failed_transaction": ("25P02", PERM),
    "read_only_transaction": ("25006", PERM),
    "unknown_role": ("28000", PERM),
    "unknown_database": ("3D000", PERM),
    "serialization_failure": ("40001", TEMP),
    "undefined_table": ("42P01", PERM),
    "syntax_error": ("42601", PERM),
    "too_many_connections": ("53300", TEMP),
    "program_limit": ("54000", PERM),
    "lock_not_available": ("55P03", TEMP),
    "not_in_prerequisite_state": ("55000", PERM),
    "statement_timeout": ("57014", TEMP),
    "undefined_file": ("58P01", PERM),
    "internal_error_raised": ("XX000", TEMP),
}


@pytest.fixture(scope="module", autouse=True)
def _postgres() -> Iterator[None]:
    """The local PostgreSQL (skip, or fail in CI, when absent) with this module's role and table."""
    require_service("PostgreSQL", HOST, PORT, "apt-get install postgresql && service postgresql start")
    conn = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rk_classify_limited') "
            "THEN CREATE ROLE rk_classify_limited LOGIN CONNECTION LIMIT 0; END IF; END $$"
        )
    yield
    conn.close()


class Driver:
    """One driver's way to connect and run a statement (asyncpg runs on a private event loop)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop() if name == "asyncpg" else None
        self.engines: list[Any] = []

    def connect(self, user: str = USER, dbname: str = DB, port: int = PORT, autocommit: bool = True) -> Any:
        if self.name == "psycopg2":
            conn = psycopg2.connect(host=HOST, port=port, user=user, dbname=dbname, connect_timeout=3)
            conn.autocommit = autocommit
            return conn
        if self.name == "psycopg":
            return psycopg.connect(
                host=HOST, port=port, user=user, dbname=dbname, autocommit=autocommit, connect_timeout=3
            )
        if self.name == "asyncpg":
            assert self.loop is not None
            return self.loop.run_until_complete(
                asyncpg.connect(host=HOST, port=port, user=user, database=dbname, timeout=3)
            )
        engine = sqlalchemy.create_engine(
            f"postgresql+psycopg2://{user}@{HOST}:{port}/{dbname}",
            poolclass=sqlalchemy.pool.NullPool,
            isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
        )
        self.engines.append(engine)
        return engine.connect()

    def run(self, conn: Any, sql: str) -> Any:
        if self.name == "asyncpg":
            assert self.loop is not None
            return self.loop.run_until_complete(conn.execute(sql))
        if self.name == "sqlalchemy":
            return conn.execute(sqlalchemy.text(sql))
        with conn.cursor() as cur:
            cur.execute(sql)
            return None

    def pid(self, conn: Any) -> int:
        if self.name == "asyncpg":
            return int(conn.get_server_pid())
        if self.name == "psycopg2":
            return int(conn.get_backend_pid())
        if self.name == "psycopg":
            return int(conn.info.backend_pid)
        return int(conn.connection.dbapi_connection.get_backend_pid())

    def close(self, conn: Any) -> None:
        try:
            if self.name == "asyncpg":
                assert self.loop is not None
                self.loop.run_until_complete(conn.close(timeout=2))
            else:
                conn.close()
        except Exception:
            pass

    def shutdown(self) -> None:
        for engine in self.engines:
            engine.dispose()
        if self.loop is not None:
            self.loop.close()


DRIVERS = ["psycopg2", "psycopg", "asyncpg", "sqlalchemy"]


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """Each driver in turn."""
    d = Driver(str(request.param))
    yield d
    d.shutdown()


def _table(d: Driver) -> tuple[Any, str]:
    admin = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
    admin.autocommit = True
    name = f"rk_classify_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int)")
        cur.execute(f"INSERT INTO {name} VALUES (1, 0)")
    return admin, name


def _drop(admin: Any, name: str) -> None:
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
    admin.close()


def _provoke(d: Driver, case: str) -> BaseException:
    if case == "refused_at_connect":
        return provoke(lambda: d.connect(port=free_port()))
    if case == "unknown_role":
        return provoke(lambda: d.connect(user="rk_classify_nobody"))
    if case == "unknown_database":
        return provoke(lambda: d.connect(dbname="rk_classify_missing"))
    if case == "too_many_connections":
        return provoke(lambda: d.connect(user=LIMITED))
    statements = {
        "division_by_zero": "SELECT 1/0",
        "invalid_text": "SELECT 'x'::int",
        "undefined_table": "SELECT * FROM rk_classify_no_such_table",
        "syntax_error": "SELEC 1",
        "program_limit": "SELECT '{{{{{{{1}}}}}}}'::int[]",
        "undefined_file": "SELECT pg_read_file('/rk_classify_nonexistent')",
        "internal_error_raised": "DO $$ BEGIN RAISE EXCEPTION 'rk' USING ERRCODE = 'XX000'; END $$",
    }
    conn = d.connect()
    try:
        if case in statements:
            return provoke(lambda: d.run(conn, statements[case]))
        if case == "not_in_prerequisite_state":
            d.run(conn, "CREATE TEMP SEQUENCE rk_classify_seq")
            return provoke(lambda: d.run(conn, "SELECT currval('rk_classify_seq')"))
        if case == "statement_timeout":
            d.run(conn, "SET statement_timeout = '50ms'")
            return provoke(lambda: d.run(conn, "SELECT pg_sleep(2)"))
        if case == "unique_violation":
            d.run(conn, "CREATE TEMP TABLE rk_classify_u (id int PRIMARY KEY)")
            d.run(conn, "INSERT INTO rk_classify_u VALUES (1)")
            return provoke(lambda: d.run(conn, "INSERT INTO rk_classify_u VALUES (1)"))
        if case == "in_failed_transaction":
            d.run(conn, "BEGIN")
            provoke(lambda: d.run(conn, "SELECT 1/0"))
            return provoke(lambda: d.run(conn, "SELECT 1"))
        if case == "read_only_transaction":
            d.run(conn, "CREATE TEMP TABLE rk_classify_ro (id int)")
            d.run(conn, "BEGIN READ ONLY")
            return provoke(lambda: d.run(conn, "CREATE TABLE rk_classify_ro_never (id int)"))
        if case == "terminated_backend":
            admin = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (d.pid(conn),))
            admin.close()
            return provoke(lambda: d.run(conn, "SELECT 1"))
        admin, table = _table(d)
        other = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
        try:
            if case == "serialization_failure":
                d.run(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ")
                d.run(conn, f"SELECT * FROM {table}")
                with other.cursor() as cur:
                    cur.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")
                other.commit()
                return provoke(lambda: d.run(conn, f"UPDATE {table} SET v = 2 WHERE id = 1"))
            if case == "lock_not_available":
                with other.cursor() as cur:
                    cur.execute(f"SELECT * FROM {table} FOR UPDATE")
                return provoke(lambda: d.run(conn, f"SELECT * FROM {table} FOR UPDATE NOWAIT"))
        finally:
            other.close()
            d.close(conn)
            _drop(admin, table)
        raise AssertionError(case)
    finally:
        d.close(conn)


@pytest.mark.parametrize("case", sorted(CASES))
def test_postgresql_errors(driver: Driver, case: str) -> None:
    """Each provoked PostgreSQL failure is classified as the SQLSTATE table says, through each driver."""
    err = _provoke(driver, case)
    verdict = retrykit.classify(err)
    assert CASES[case][1] == verdict.category, str(retrykit.explain(err))


def test_deadlock_is_temporary() -> None:
    """A real deadlock (SQLSTATE 40P01) between two sessions is temporary, also inside SQLAlchemy."""
    admin, table = _table(Driver("psycopg2"))
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=5)
    try:
        with admin.cursor() as cur:
            cur.execute(f"INSERT INTO {table} VALUES (2, 0)")

        def worker(first: int, second: int) -> None:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SET deadlock_timeout = '100ms'"))
                try:
                    conn.execute(sqlalchemy.text(f"UPDATE {table} SET v = v + 1 WHERE id = {first}"))
                    barrier.wait()
                    conn.execute(sqlalchemy.text(f"UPDATE {table} SET v = v + 1 WHERE id = {second}"))
                except sqlalchemy.exc.DBAPIError as err:
                    errors.append(err)
                conn.rollback()

        threads = [threading.Thread(target=worker, args=p) for p in ((1, 2), (2, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        engine.dispose()
        _drop(admin, table)
    assert len(errors) == 1
    verdict = retrykit.classify(errors[0])
    assert (TEMP, "sqlstate", "SQLSTATE 40P01") == (verdict.category, verdict.rule, verdict.reason)


def _row_class() -> Any:
    from sqlalchemy.orm import registry

    table = sqlalchemy.Table(
        "rk_classify_pr", sqlalchemy.MetaData(), sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True)
    )
    row = type("Row", (), {"__init__": lambda self, **kw: self.__dict__.update(kw)})
    registry().map_imperatively(row, table)
    return row


_Row = _row_class()

SQLALCHEMY_ORM: dict[str, ErrorCategory] = {
    "no_result": PERM,
    "multiple_results": DATA,
    "pending_rollback": PERM,
}


@pytest.mark.parametrize("case", sorted(SQLALCHEMY_ORM))
def test_sqlalchemy_own_errors(case: str) -> None:
    """SQLAlchemy's NoResultFound, MultipleResultsFound and PendingRollbackError are never retried."""
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}")
    try:
        with Session(engine) as session:
            run: Callable[[], Any]
            if case == "no_result":
                run = lambda: session.execute(sqlalchemy.text("SELECT 1 WHERE false")).scalar_one()  # noqa: E731
            elif case == "multiple_results":
                run = lambda: session.execute(  # noqa: E731
                    sqlalchemy.text("SELECT * FROM generate_series(1, 2)")
                ).scalar_one()
            else:
                session.execute(sqlalchemy.text("CREATE TEMP TABLE rk_classify_pr (id int PRIMARY KEY)"))
                session.execute(sqlalchemy.text("INSERT INTO rk_classify_pr VALUES (1)"))
                # a failed flush leaves the session needing a rollback
                session.add(_Row(id=1))
                provoke(session.flush)
                run = lambda: session.execute(sqlalchemy.text("SELECT 1"))  # noqa: E731
            err = provoke(run)
    finally:
        engine.dispose()
    verdict = retrykit.classify(err)
    assert SQLALCHEMY_ORM[case] == verdict.category, str(retrykit.explain(err))
    if case == "pending_rollback":
        assert "decorator" in verdict.reason


def test_sqlalchemy_wrapper_does_not_hide_the_sqlstate() -> None:
    """SQLAlchemy's OperationalError around a 53300 connect refusal is temporary, not by class name."""
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://{LIMITED}@{HOST}:{PORT}/{DB}")
    try:
        err = provoke(engine.connect)
    finally:
        engine.dispose()
    assert isinstance(err, sqlalchemy.exc.OperationalError)
    verdict = retrykit.classify(err)
    assert (TEMP, "db_message") == (verdict.category, verdict.rule)
    assert "too many connections" in verdict.reason
