"""Every Python example of README.md and docs/*.md runs as written; the site shows every page and module."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .docs_examples import ROOT, Example, examples, run
from .test_package import MODULES

EXAMPLES = examples()
# Examples that are shown but not run, each with the reason its page gives: keep this short.
NOT_RUN: set[tuple[str, str]] = set()


def test_examples_are_found() -> None:
    """The README and the docs pages show Python examples (so the next test checks something)."""
    assert len(EXAMPLES) >= 15
    assert {"README.md", "docs/model.md"} <= {example.path for example in EXAMPLES}


def test_only_the_listed_examples_are_not_run() -> None:
    """An example is left out only with a reason on its page, and only if listed here."""
    assert {(example.path, example.not_run) for example in EXAMPLES if example.not_run} == NOT_RUN


@pytest.mark.parametrize(
    "example", [example for example in EXAMPLES if not example.not_run], ids=lambda example: example.name
)
def test_example_runs(example: Example) -> None:
    """Each Python block runs as written, without warnings; the Celery tasks it shares stay its own."""
    from celery import _state

    shared = set(_state._on_app_finalizers)
    try:
        run(example)
    finally:  # @app.task shares a task with every app finalized later, a test's app too
        _state._on_app_finalizers.intersection_update(shared)


def _nav_pages(nav: object) -> list[str]:
    """The page files named anywhere in mkdocs.yml's nav."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    return []


def _site() -> dict[str, object]:
    import yaml

    site: dict[str, object] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return site


def test_every_page_is_in_the_nav() -> None:
    """Each page under docs/ is reachable from the site's navigation, and each nav entry exists."""
    pages = sorted(path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md"))
    assert sorted(_nav_pages(_site()["nav"])) == pages


@pytest.mark.parametrize("module", ["retrykit", *MODULES])
def test_every_public_module_has_an_api_page(module: str) -> None:
    """The API reference has a page that renders the module from its docstrings."""
    rendering = {
        line.removeprefix("::: ").strip()
        for path in (ROOT / "docs" / "api").glob("*.md")
        for line in path.read_text().splitlines()
        if line.startswith("::: ")
    }
    assert module in rendering


SITE = "https://retrykit.readthedocs.io/"


def _site_page(url: str) -> str:
    """The docs/ file a link to the site shows: ``SITE + "model/"`` is ``docs/model.md``."""
    path = url.removeprefix(SITE).split("#", 1)[0].strip("/")
    return f"docs/{path or 'index'}.md"


def test_readme_links_to_the_pages() -> None:
    """The README's links work off the repository (on the package index): absolute links to the
    site, each to a page that exists, and one to every top-level page."""
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"\]\((?!https?://)[^)]*\)", readme) == []  # no relative link
    links = re.findall(r"\]\((https://retrykit\.readthedocs\.io/[^)\s]*)\)", readme)
    targets = {_site_page(url) for url in links}
    assert targets, "the README links to no docs page"
    assert all((ROOT / target).is_file() for target in targets), targets
    top = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert top <= targets, top - targets


def test_the_site_url_is_the_one_the_readme_links_to() -> None:
    """mkdocs.yml's site_url and pyproject.toml's Documentation URL are the README's site."""
    assert _site()["site_url"] == SITE
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Documentation"] == SITE


# The project's history ("the seeds'"), private constants, private modules, Sphinx roles the site
# does not render, and pointers to a private module's docstring.
INTERNAL = re.compile(r"\bseeds?'|``_[A-Z][A-Z_]*``|:func:|\bretrykit\._|module docstring")


@pytest.mark.parametrize("module", ["retrykit", *MODULES])
def test_public_docstrings_are_written_for_users(module: str) -> None:
    """The module and each public class and function have a docstring that speaks of no internals."""
    imported = importlib.import_module(module)
    documented = {module: imported.__doc__}
    for name in imported.__all__:
        value = getattr(imported, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            documented[name] = value.__doc__
    assert [name for name, doc in documented.items() if not doc] == []
    assert {
        name: INTERNAL.findall(doc or "") for name, doc in documented.items() if INTERNAL.search(doc or "")
    } == {}


def test_the_overload_figure_shows_what_the_simulation_gives_now(tmp_path: Path) -> None:
    """docs/data/overload.json, which the overload figure is drawn from, is what
    ``benchmarks/overload.py --series`` writes with today's code (seeded: byte for byte)."""
    written = tmp_path / "overload.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overload.py"), "--series", str(written)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (ROOT / "docs" / "data" / "overload.json").read_text() == written.read_text()


def test_every_figure_is_shown_and_every_figure_shown_exists() -> None:
    """Each SVG under docs/img is shown by a page, and each image a page shows is there."""
    shown = {
        (page.parent / target).resolve()
        for page in (ROOT / "docs").rglob("*.md")
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text())
    }
    figures = {path.resolve() for path in (ROOT / "docs" / "img").glob("*.svg")}
    assert figures, "no figures under docs/img"
    assert shown == figures


def test_every_stop_reason_is_in_the_giving_up_table() -> None:
    """docs/giving-up.md has a row for each ``StopReason``, so a new reason cannot go unexplained."""
    from retrykit.events import StopReason

    rows = set(re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs" / "giving-up.md").read_text(), re.MULTILINE))
    assert {reason.value for reason in StopReason} <= rows, {reason.value for reason in StopReason} - rows
