"""The pytest plugin (registered as ``retrykit``): fixtures around ``retrykit.testing``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import Recorder, no_retry, no_wait, record


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
