"""
The pytest plugin (registered as ``retrykit``): fixtures around ``retrykit.testing``.

Every test also gets retrykit's settings and process-wide test switches put back as they were
before it (``retrykit.configure(...)``, ``configure_from_settings(...)`` in an app factory,
``set_testing(...)`` left on): one test's settings never leak into the next. Turn that off with
``retrykit_restore_settings = false`` in the pytest ini options.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import _config, testing
from .testing import Recorder, no_retry, no_wait, record, set_testing


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ini option ``retrykit_restore_settings`` (on by default)."""
    parser.addini(
        "retrykit_restore_settings",
        "put retrykit's settings and process-wide test switches back after each test",
        type="bool",
        default=True,
    )


@pytest.fixture(autouse=True)
def _retrykit_restore_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """retrykit's settings and process-wide test switches after the test are those before it."""
    if not request.config.getini("retrykit_restore_settings"):
        yield
        return
    saved = _config.snapshot()
    mode, recorder = testing._process_state()
    yield
    _config.restore(saved)
    testing._set_process(mode, recorder)


@pytest.fixture
def retrykit_no_wait() -> Iterator[None]:
    """retrykit sleeps nothing during the test (time still counts for deadlines)."""
    with no_wait():
        yield


@pytest.fixture
def retrykit_no_retry() -> Iterator[None]:
    """retrykit makes one attempt per call during the test."""
    with no_retry():
        yield


@pytest.fixture
def retrykit_recorder() -> Iterator[Recorder]:
    """A ``Recorder`` of every retrykit event during the test (sleeps are skipped too)."""
    with no_wait(), record() as recorder:
        yield recorder


@pytest.fixture
def retrykit_process_recorder() -> Iterator[Recorder]:
    """Like ``retrykit_recorder``, process-wide: threads and thread pools are recorded too."""
    with set_testing(no_wait=True, record=True) as recorder:
        assert recorder is not None
        yield recorder
