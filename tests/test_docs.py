"""Every Python example of README.md and docs/*.md runs as written."""

from __future__ import annotations

import pytest

from .docs_examples import Example, examples, run

EXAMPLES = examples()
# Examples that are shown but not run, each with the reason its page gives: keep this short.
NOT_RUN: set[tuple[str, str]] = set()


def test_examples_are_found() -> None:
    """The README and the docs pages show Python examples (so the next test checks something)."""
    assert len(EXAMPLES) >= 15


def test_only_the_listed_examples_are_not_run() -> None:
    """An example is left out only with a reason on its page, and only if listed here."""
    assert {(example.path, example.not_run) for example in EXAMPLES if example.not_run} == NOT_RUN


@pytest.mark.parametrize(
    "example", [example for example in EXAMPLES if not example.not_run], ids=lambda example: example.name
)
def test_example_runs(example: Example) -> None:
    """Each Python block runs as written, without warnings."""
    run(example)
