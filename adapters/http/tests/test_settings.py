"""What the adapters refuse when they are built, and how they read a server's wait hint."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import pytest

import retrykit
import retrykit_http

BUILDERS: dict[str, Callable[..., Any]] = {
    "httpx": lambda **kw: retrykit_http.RetryTransport(**kw),
    "httpx-async": lambda **kw: retrykit_http.AsyncRetryTransport(**kw),
    "requests": lambda **kw: retrykit_http.RetryAdapter(**kw),
    "aiohttp": lambda **kw: retrykit_http.RetryMiddleware(**kw),
}


@pytest.mark.parametrize("builder", sorted(BUILDERS))
@pytest.mark.parametrize(
    ("options", "argument", "shown"),
    [
        pytest.param({"policy": "htp"}, "policy", "'htp'", id="unknown-preset"),
        pytest.param({"key": "host"}, "key", "'host'", id="key-not-callable"),
        pytest.param({"route": 3}, "route", "3", id="route-not-callable"),
        pytest.param({"statuses": [200, 503]}, "statuses", "200", id="status-200"),
        pytest.param({"statuses": 503}, "statuses", "503", id="status-not-a-list"),
        pytest.param(
            {"classify_response": "graphql"}, "classify_response", "graphql", id="rule-not-callable"
        ),
        pytest.param({"idempotency_keys": "yes"}, "idempotency_keys", "yes", id="flag-not-bool"),
        pytest.param({"budget": 5}, "budget", "5", id="budget-not-a-budget"),
        pytest.param({"statusses": [503]}, "statusses", "503", id="unknown-option"),
    ],
)
def test_bad_input_is_a_config_error_when_built(
    builder: str, options: dict[str, Any], argument: str, shown: str
) -> None:
    """A wrong option fails at construction with a ConfigError naming the argument, the value and the fix."""
    with pytest.raises(retrykit.ConfigError) as caught:
        BUILDERS[builder](**options)
    assert argument == caught.value.argument
    assert shown in caught.value.value
    assert caught.value.fix


def test_urllib3_retries_inside_requests_are_refused() -> None:
    """``max_retries`` on the requests adapter would be a second layer: refused, with the fix."""
    with pytest.raises(retrykit.ConfigError, match="max_retries"):
        retrykit_http.RetryAdapter(max_retries=3)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "7"}, 7.0, id="seconds"),
        pytest.param({"retry-after-ms": "250"}, 0.25, id="milliseconds"),
        pytest.param({"retry-after-ms": "250", "Retry-After": "7"}, 0.25, id="milliseconds-first"),
        pytest.param({"retry-after-ms": "soon", "Retry-After": "7"}, 7.0, id="bad-milliseconds"),
        pytest.param({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0, id="date-in-the-past"),
        pytest.param({"Retry-After": "tomorrow"}, None, id="unreadable"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_the_wait_hint_is_read_in_each_form(headers: dict[str, str], expected: float | None) -> None:
    """``retry-after-ms`` first, then ``Retry-After`` as seconds or an HTTP date; junk is no hint."""
    assert expected == retrykit_http.retry_after(headers)


def test_a_date_in_the_future_is_the_time_until_it() -> None:
    """An HTTP date is the seconds from now until then."""
    found = retrykit_http.retry_after({"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)})
    assert found is not None
    assert 28 <= found <= 30
