"""
Rule family: SQL databases. PostgreSQL SQLSTATEs (psycopg2, psycopg 3, asyncpg), MySQL/MariaDB
error numbers (PyMySQL, mysqlclient), connect-time libpq messages that carry no SQLSTATE, and
SQLAlchemy's own errors. Wrappers (SQLAlchemy's ``DBAPIError``) are seen through: the driver's
error is a later link of the chain and its code outranks the wrapper's class name.
"""

from __future__ import annotations

import re

from ._categories import (
    CLASS,
    CODE,
    DATA,
    GENERIC,
    NET,
    PERM,
    SYS,
    TEMP,
    ErrorCategory,
    Hit,
    attr,
    by_class,
    hit,
    module_of,
)
from ._rules_std import sqlstate_of

PREFIXES = ("psycopg2", "psycopg", "asyncpg", "sqlalchemy", "pymysql", "MySQLdb", "_mysql", "mysql.connector")

# PostgreSQL SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html): exact
# codes first, then the two-character class.
_SQLSTATE_CODES: dict[str, ErrorCategory] = {
    "08P01": PERM,  # protocol_violation
    "40002": DATA,  # transaction_integrity_constraint_violation
    "53300": TEMP,  # too_many_connections: others will disconnect
    "53400": PERM,  # configuration_limit_exceeded
    "55P03": TEMP,  # lock_not_available (NOWAIT, lock_timeout)
    "55006": TEMP,  # object_in_use
    "57P01": NET,  # admin_shutdown: the server closed this session (FATAL)
    "57P02": NET,  # crash_shutdown
    "57P05": NET,  # idle_session_timeout
    "57P04": PERM,  # database_dropped
    "58P01": PERM,  # undefined_file
    "58P02": PERM,  # duplicate_file
    "70100": TEMP,  # MariaDB ER_STATEMENT_TIMEOUT (max_statement_time): PostgreSQL's 57014
    "XX001": PERM,  # data_corrupted
    "XX002": PERM,  # index_corrupted
}
_SQLSTATE_CLASSES: dict[str, ErrorCategory] = {
    "08": NET,  # connection_exception
    "0A": PERM,  # feature_not_supported
    "21": DATA,  # cardinality_violation
    "22": DATA,  # data_exception
    "23": DATA,  # integrity_constraint_violation
    "25": PERM,  # invalid_transaction_state (in failed transaction, read-only transaction)
    "28": PERM,  # invalid_authorization_specification
    "3D": PERM,  # invalid_catalog_name (database does not exist)
    "3F": PERM,  # invalid_schema_name
    "40": TEMP,  # transaction_rollback: serialization failure, deadlock
    "42": PERM,  # syntax_error_or_access_rule_violation
    "44": DATA,  # with_check_option_violation
    "53": SYS,  # insufficient_resources: disk full, out of memory
    "54": PERM,  # program_limit_exceeded: the statement is too big or complex
    "55": PERM,  # object_not_in_prerequisite_state
    "57": TEMP,  # operator_intervention: query canceled, admin/crash shutdown, cannot connect now
    "58": SYS,  # system_error: I/O error on the server
    "72": TEMP,  # snapshot_too_old
    "F0": PERM,  # config_file_error
    "P0": PERM,  # plpgsql_error (RAISE EXCEPTION)
    "XX": TEMP,  # internal_error
}


def sqlstate_category(code: str) -> ErrorCategory:
    """The category of a SQLSTATE: an exact code, else its class, else permanent."""
    return _SQLSTATE_CODES.get(code) or _SQLSTATE_CLASSES.get(code[:2]) or PERM


def sqlstate(exc: BaseException) -> Hit | None:
    """A PostgreSQL/SQL-standard SQLSTATE on the exception."""
    code = sqlstate_of(exc)
    if code is None or code.startswith("HY"):  # HY000: "general error", says nothing
        return None
    reason = f"SQLSTATE {code}" + (f": {_PENDING_ROLLBACK_HINT}" if code == "25P02" else "")
    return hit(CODE, sqlstate_category(code), reason, "sqlstate")


# MySQL/MariaDB error numbers (server: dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html;
# client 2xxx: client-error-reference.html).
_MYSQL: dict[int, ErrorCategory] = {}
for _numbers, _category in (
    (
        "2001 2002 2003 2004 2005 2006 2011 2012 2013 2026 2047 2048 2055 1927 1158 1159 1160 1161 "
        "1152 1184 1043",
        NET,
    ),
    ("1040 1203 1226 1205 1213 1020 1412 1637 3572 3024 1969 1317 1053 1180 1181", TEMP),
    ("1114 1021 1037 1038 1041 1135 1030", SYS),
    (
        "1062 1586 1451 1452 1216 1217 1048 1364 1406 1264 1265 1366 1292 1690 3819 4025 1263 1367 "
        "1411 1918 3140 1242 1172",
        DATA,
    ),
    (
        "1044 1045 1046 1049 1050 1051 1054 1060 1061 1064 1091 1109 1142 1143 1146 1149 1227 1305 "
        "1370 1698 1136 1222 1235 1148 1175 1290 1792 2014 2059 1251",
        PERM,
    ),
):
    for _n in _numbers.split():
        _MYSQL.setdefault(int(_n), _category)
_MYSQL_MODULES = ("pymysql", "MySQLdb", "_mysql", "mysql.connector", "aiomysql", "asyncmy")


def mysql_number(exc: BaseException) -> Hit | None:
    """A MySQL/MariaDB error number: ``args[0]`` (PyMySQL, mysqlclient) or ``errno`` (Connector)."""
    if not module_of(type(exc)).startswith(_MYSQL_MODULES):
        return None
    number = attr(exc, "errno")
    if not isinstance(number, int) or number <= 0:
        number = exc.args[0] if exc.args else None
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    category = _MYSQL.get(number)
    if category is None:
        return None
    text = exc.args[1] if len(exc.args) > 1 else ""
    return hit(CODE, category, f"MySQL error {number}: {text}", "mysql")


# libpq reports connect-time failures as text, without a SQLSTATE.
_CONNECT_MESSAGES: tuple[tuple[re.Pattern[str], ErrorCategory, str], ...] = (
    (
        re.compile(
            r"password authentication failed|no pg_hba\.conf entry|authentication failed|"
            r'role "[^"]*" does not exist|database "[^"]*" does not exist|invalid dsn|'
            r"invalid connection option|invalid (integer|port) value|certificate verify failed|"
            r"server does not support SSL|SSL.*required|password is required|no password supplied",
            re.I,
        ),
        PERM,
        "refused at connect",
    ),
    (
        re.compile(
            r"too many clients|too many connections|remaining connection slots are reserved|"
            r"the database system is (starting up|shutting down|in recovery mode|not yet accepting)",
            re.I,
        ),
        TEMP,
        "server busy or restarting",
    ),
    (
        re.compile(
            r"connection refused|could not connect to server|server closed the connection|"
            r"connection timed out|timeout expired|could not translate host name|"
            r"name or service not known|no route to host|network is unreachable|"
            r"connection (is|was|already) (closed|lost)|terminating connection|"
            r"consuming input failed|connection reset",
            re.I,
        ),
        NET,
        "connection lost",
    ),
)


def connect_message(exc: BaseException) -> Hit | None:
    """Connect-time failures from libpq (psycopg2, psycopg 3) and friends: read the message."""
    if sqlstate_of(exc) is not None:
        return None
    text = str(exc)
    for pattern, category, why in _CONNECT_MESSAGES:
        found = pattern.search(text)
        if found:
            line = text[text.rfind("\n", 0, found.start()) + 1 :].split("\n", 1)[0].strip()
            return hit(CLASS, category, f"{type(exc).__name__}: {why} ({line[:160]})", "db_message")
    return None


_PENDING_ROLLBACK_HINT = (
    "the session holds a failed transaction: roll it back; put the retry decorator around the "
    "whole unit of work (open the session/transaction inside the retried function), not around "
    "one statement"
)

# SQLAlchemy's own exceptions and driver classes with a meaning (module prefix, class name).
_CLASSES: dict[tuple[str, str], tuple[int, ErrorCategory, str]] = {
    ("sqlalchemy", "PendingRollbackError"): (CLASS, PERM, _PENDING_ROLLBACK_HINT),
    ("sqlalchemy", "NoResultFound"): (CLASS, PERM, "no row was found (like HTTP 404)"),
    ("sqlalchemy", "MultipleResultsFound"): (CLASS, DATA, "more than one row where one was expected"),
    ("sqlalchemy", "ObjectDeletedError"): (CLASS, PERM, "the row was deleted"),
    ("sqlalchemy", "StaleDataError"): (CLASS, TEMP, "optimistic concurrency conflict"),
    ("sqlalchemy", "DisconnectionError"): (CLASS, NET, "connection lost"),
    ("sqlalchemy", "TimeoutError"): (CLASS, TEMP, "connection pool exhausted"),
    ("sqlalchemy", "ResourceClosedError"): (CLASS, PERM, "result or connection already closed"),
    ("sqlalchemy", "NoSuchModuleError"): (CLASS, PERM, "unknown dialect or driver"),
    ("sqlalchemy", "ArgumentError"): (CLASS, PERM, "bad argument"),
    ("sqlalchemy", "CompileError"): (CLASS, PERM, "statement does not compile"),
    ("sqlalchemy", "NoReferenceError"): (CLASS, PERM, "bad reference"),
    ("sqlalchemy", "InvalidRequestError"): (GENERIC, PERM, "invalid use of SQLAlchemy"),
    ("asyncpg", "ConnectionDoesNotExistError"): (CLASS, NET, "connection closed mid-operation"),
    ("asyncpg", "ConnectionFailureError"): (CLASS, NET, "connection failed"),
    ("asyncpg", "InterfaceError"): (GENERIC, PERM, "misuse of the connection"),
    ("psycopg", "ConnectionTimeout"): (CLASS, NET, "connect timed out"),
    ("psycopg_pool", "PoolTimeout"): (CLASS, TEMP, "connection pool exhausted"),
}


def static(cls: type) -> Hit | None:
    """SQLAlchemy's own errors and drivers' classes that mean something without a code."""
    return by_class(_CLASSES, cls, lambda top: "sqlalchemy" if top == "sqlalchemy" else "db")


def invalidated(exc: BaseException) -> Hit | None:
    """SQLAlchemy's ``connection_invalidated``: the pool saw the connection die."""
    if attr(exc, "connection_invalidated") is True:
        return hit(CLASS, NET, "database connection invalidated", "db")
    return None


DYNAMIC = (mysql_number, sqlstate, connect_message, invalidated)  # a MySQL number outranks its SQLSTATE
