"""
Judging returned values: a result can be a failure too (an HTTP client that returns a 503
response instead of raising).

A result rule is a callable ``result -> None | category | Classification``: ``None`` for a good
result, a category (or a ``Classification``, with ``retry_after``) for a result to retry. Results
then share the categories, strategies, counters and events of exceptions. ``"http"`` names the
built-in rule for HTTP response objects (httpx, requests, aiohttp, urllib3), found by duck typing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._classify import Classification, ErrorCategory, parse_retry_after

_log = logging.getLogger("retrykit")

ResultRule = Callable[[Any], "ErrorCategory | Classification | str | None"]

_RETRYABLE_STATUS: dict[int, ErrorCategory] = {
    408: ErrorCategory.TEMPORARY_ERROR,
    425: ErrorCategory.TEMPORARY_ERROR,
    429: ErrorCategory.API_RATE_LIMIT,
    500: ErrorCategory.TEMPORARY_ERROR,
    502: ErrorCategory.TEMPORARY_ERROR,
    503: ErrorCategory.TEMPORARY_ERROR,
    504: ErrorCategory.TEMPORARY_ERROR,
}


def _status(result: Any) -> int | None:
    for attr in ("status_code", "status"):  # httpx, requests / aiohttp, urllib3
        try:
            value = getattr(result, attr, None)
        except Exception:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _header(headers: Any, name: str) -> Any:
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    try:
        value = getter(name)
        return getter(name.lower()) if value is None else value
    except Exception:
        return None


_PLAIN = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple, set})
"""Types whose instances cannot be HTTP responses: a good result at once (the success path)."""


def http_response(result: Any) -> Classification | None:
    """
    The built-in rule for HTTP responses: 408, 425, 429, 500, 502, 503 and 504 are retried
    (429 as a rate limit, the rest as temporary), with the response's ``Retry-After``. Anything
    without an integer status and ``headers`` is not a response, hence a good result.
    """
    if type(result) in _PLAIN:
        return None
    status = _status(result)
    if status is None or status not in _RETRYABLE_STATUS:
        return None
    headers = getattr(result, "headers", None)
    if headers is None:
        return None
    return Classification(
        _RETRYABLE_STATUS[status],
        f"HTTP {status} response",
        parse_retry_after(_header(headers, "Retry-After")),
        "http_response",
    )


BUILTIN_RESULT_RULES: dict[str, ResultRule] = {"http": http_response}

_reported: set[tuple[str, str]] = set()


def _name(rule: Any) -> str:
    return getattr(rule, "__qualname__", None) or type(rule).__qualname__


def _report(rule: Any, problem: str) -> None:
    key = (_name(rule), problem)
    if key not in _reported:
        _reported.add(key)
        _log.warning(
            "retrykit: the result rule %s %s; the result is taken as good (reported once)",
            key[0],
            problem,
        )


def judge_result(rule: ResultRule, result: Any) -> Classification | None:
    """Apply a result rule; a rule that raises or returns nonsense is reported once, never raised."""
    try:
        verdict = rule(result)
    except Exception as err:
        _report(rule, f"raised {type(err).__name__}")
        return None
    if verdict is None:
        return None
    if isinstance(verdict, Classification):
        given: Any = verdict.category  # a hand-built Classification may carry a string
        hint: Any = verdict.retry_after
        if isinstance(given, ErrorCategory) and (hint is None or type(hint) is float):
            return verdict
        try:
            category = ErrorCategory.parse(given, "classify_result")
        except Exception:
            _report(rule, "returned a Classification without a valid category")
            return None
        return Classification(category, str(verdict.reason), parse_retry_after(hint), str(verdict.rule))
    if isinstance(verdict, ErrorCategory):
        category = verdict
    else:
        try:
            category = ErrorCategory.parse(verdict, "classify_result")
        except Exception:
            _report(rule, f"returned a {type(verdict).__name__}, not a category")
            return None
    return Classification(
        category, f"result {type(result).__name__} matched {_name(rule)}", None, _name(rule)
    )
