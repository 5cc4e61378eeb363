"""
Check the built docs site as a reader would meet it (run by .ci/run after `mkdocs build`).

    python .ci/check_site.py SITE_DIR

- every page has exactly one ``h1`` (its title; the theme adds none of its own);
- no line of a code block is wider than 88 columns (wider lines scroll sideways at 1280 px);
- every image a page shows exists in the site, and every figure in docs/img is shown;
- no link or anchor points into a private module (``retrykit._...``);
- every public name in the ``__all__`` of each public module is documented on its API page,
  and every parameter of a public callable (every key of a TypedDict, every member of an enum)
  appears in its Parameters, Attributes or Members section.

Prints each problem and exits 1 if there is any.
"""

from __future__ import annotations

import enum
import html
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a checkout's retrykit when run from one

WIDTH = 88
MODULES = {
    "retrykit": "api/retrykit",
    "retrykit.events": "api/events",
    "retrykit.stats": "api/stats",
    "retrykit.overload": "api/overload",
    "retrykit.sinks": "api/sinks",
    "retrykit.logs": "api/logs",
    "retrykit.testing": "api/testing",
    "retrykit.adapters": "api/adapters",
    "retrykit.queues": "api/queues",
    "retrykit_celery": "api/celery",
}
HEADING = re.compile(r'<h([1-6])\s+id="([^"]+)"[^>]*class="doc doc-heading"', re.IGNORECASE)
PRIVATE = re.compile(r"retrykit(?:\.adapters)?\._[a-z]")


def pages(site: Path) -> list[Path]:
    """Every page of the site but the 404 page."""
    return sorted(p for p in site.rglob("*.html") if p.name != "404.html")


def content(page: Path) -> str:
    """The page's article (what the reader reads), without the theme's navigation."""
    text = page.read_text()
    start = text.find("<article")
    end = text.rfind("</article>")
    return text[start:end] if start >= 0 else text


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def check_headings(site: Path, page: Path, problems: list[str]) -> None:
    """One h1, the page's own (with an id: the theme adds one without when a page has none),
    and no h2 that repeats it (the title shown twice)."""
    where = page.relative_to(site)
    titles = re.findall(r"<h1([^>]*)>(.*?)</h1>", page.read_text(), re.DOTALL)
    if len(titles) != 1:
        problems.append(f"{where}: {len(titles)} h1 elements, not 1")
        return
    attributes, title = titles[0]
    if 'id="' not in attributes:
        problems.append(f"{where}: the h1 is the theme's: the page has no title of its own")
    title_text = text_of(title).replace("\u00b6", "").strip()
    repeated = [
        h2
        for h2 in re.findall(r"<h2[^>]*>(.*?)</h2>", content(page), re.DOTALL)
        if text_of(h2).replace("\u00b6", "").strip() == title_text
    ]
    if repeated:
        problems.append(f"{where}: the title {title_text!r} is shown twice (h1 and h2)")


def check_code(site: Path, page: Path, problems: list[str]) -> None:
    where = page.relative_to(site)
    for block in re.findall(r"<pre[^>]*>(.*?)</pre>", content(page), re.DOTALL):
        problems.extend(
            f"{where}: code line of {len(line)} columns: {line[:60]}..."
            for line in text_of(block).splitlines()
            if len(line) > WIDTH
        )


def check_images(site: Path, page: Path, shown: set[Path], problems: list[str]) -> None:
    for src in re.findall(r'<img[^>]+src="([^"]+)"', content(page)):
        if "://" in src:
            problems.append(f"{page.relative_to(site)}: an image from the network: {src}")
            continue
        target = (page.parent / src).resolve()
        if not target.is_file():
            problems.append(f"{page.relative_to(site)}: missing image {src}")
        shown.add(target)


def check_links(site: Path, page: Path, problems: list[str]) -> None:
    body = content(page)
    where = page.relative_to(site)
    problems.extend(
        f"{where}: points into a private module: {attribute}"
        for attribute in re.findall(r'(?:href|id)="([^"]*)"', body)
        if PRIVATE.search(attribute)
    )
    problems.extend(
        f"{where}: names a private module: {name}..." for name in sorted(set(PRIVATE.findall(text_of(body))))
    )


def sections(body: str) -> dict[str, str]:
    """Each documented object's own part of an API page, by its id, up to the next object."""
    found = list(HEADING.finditer(body))
    return {
        match.group(2): body[match.end() : found[index + 1].start() if index + 1 < len(found) else len(body)]
        for index, match in enumerate(found)
    }


def expected_names(value: object) -> list[str]:
    """What a public name's documentation must list: parameters, keys or members."""
    if isinstance(value, type) and issubclass(value, enum.Enum):
        return [member.name for member in value]
    if typing.is_typeddict(value):
        return list(value.__annotations__)  # every key, inherited ones too (a TypedDict merges them)
    if not callable(value):
        return []
    if isinstance(value, type) and "Not created directly" in " ".join((value.__doc__ or "").split()):
        return []  # handed out by retrykit (an attempt, a decorated function): no constructor to document
    target = value
    if isinstance(value, type):
        init = next((k.__dict__["__init__"] for k in value.__mro__ if "__init__" in k.__dict__), None)
        if init is None or getattr(init, "__module__", "").split(".")[0] != "retrykit":
            return []  # a constructor that is not retrykit's (Exception's, Celery's)
        target = init
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    names = []
    for parameter in signature.parameters.values():
        if parameter.name in ("self", "cls"):
            continue
        if parameter.kind is parameter.VAR_POSITIONAL:
            names.append(f"*{parameter.name}")
        elif parameter.kind is parameter.VAR_KEYWORD:
            names.append(f"**{parameter.name}")
        else:
            names.append(parameter.name)
    return names


def check_api(site: Path, problems: list[str]) -> int:
    checked = 0
    for module_name, path in MODULES.items():
        page = site / path / "index.html"
        if not page.is_file():
            problems.append(f"{path}: no API page for {module_name}")
            continue
        parts = sections(content(page))
        module = importlib.import_module(module_name)
        for name in module.__all__:
            ids = [f"{module_name}.{name}"] + [key for key in parts if key.endswith(f".{name}")]
            own = next((parts[key] for key in ids if key in parts), None)
            if own is None:
                problems.append(f"{path}: {module_name}.{name} is not documented")
                continue
            documented = {
                text_of(cell).strip()
                for cell in re.findall(r'<tr class="doc-section-item">\s*<td>\s*(.*?)</td>', own, re.DOTALL)
            }
            documented |= {text_of(m) for m in re.findall(r"<li[^>]*>\s*<b>(.*?)</b>", own, re.DOTALL)}
            members = {key.rsplit(".", 1)[-1] for key in parts if key.startswith(f"{ids[0]}.")}
            for expected in expected_names(getattr(module, name)):
                checked += 1
                if expected not in documented and expected.lstrip("*") not in members:
                    problems.append(f"{path}: {module_name}.{name}: `{expected}` is not documented")
    return checked


def main(argv: list[str]) -> int:
    site = Path(argv[0]) if argv else ROOT / "site"
    problems: list[str] = []
    shown: set[Path] = set()
    all_pages = pages(site)
    for page in all_pages:
        check_headings(site, page, problems)
        check_code(site, page, problems)
        check_images(site, page, shown, problems)
        check_links(site, page, problems)
    figures = {path.resolve() for path in (site / "img").glob("*")} if (site / "img").is_dir() else set()
    problems.extend(f"img/{figure.name}: no page shows it" for figure in sorted(figures - shown))
    checked = check_api(site, problems)
    for problem in problems:
        print(problem)
    print(
        f"check_site: {len(all_pages)} pages, {len(shown)} images, {checked} parameters, "
        f"{len(problems)} problem(s)",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
