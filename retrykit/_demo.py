"""
``retrykit demo``: a flaky HTTP service on 127.0.0.1, called through ``@retrykit.retry("http")``.

Real sockets, real failures (connection resets, 503 and 429 with Retry-After, 500s, a 400) and
real sleeps, scaled down by ``--time-scale`` so the run takes seconds. Every decision is printed as
it is made, from retrykit's own event stream, then a summary.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, TextIO

from . import _events
from ._analysis import Analysis, analyze, render_analysis
from ._errors import DISTRIBUTION, install_hint
from ._events import GaveUp, RetryScheduled
from ._stats import MemoryStore, StatsRecorder, use_recorder
from .adapters import retry
from .testing import scaled_time

# path -> the responses it gives, in order; the last one repeats.
SCRIPT: dict[str, list[tuple[str, int, dict[str, str]]]] = {
    "/orders/17": [("reset", 0, {}), ("reset", 0, {}), ("ok", 200, {})],
    "/inventory": [("status", 503, {"Retry-After": "1"}), ("ok", 200, {})],
    "/quotes": [
        ("status", 429, {"Retry-After": "2"}),
        ("status", 429, {"Retry-After": "2"}),
        ("ok", 200, {}),
    ],
    "/search?q=%ZZ": [("status", 400, {})],
    "/reports/daily": [("status", 500, {})],
}


class _Service(BaseHTTPRequestHandler):
    hits: ClassVar[Counter[str]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            n = self.hits[self.path]
            self.hits[self.path] += 1
        steps = SCRIPT.get(self.path, [("status", 404, {})])
        kind, status, headers = steps[min(n, len(steps) - 1)]
        if kind == "reset":  # close with RST: the client sees a connection reset
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        body = json.dumps({"path": self.path, "status": status}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class _Row:
    path: str
    attempts: int = 1
    waited: float = 0.0
    outcome: str = ""


OPERATION = "demo.get"


def run(
    time_scale: float = 0.1,
    out: TextIO | None = None,
    *,
    analysis: bool = False,
    on_call: Callable[[str], None] | None = None,
) -> int:
    """Run the demo; returns the exit code (0: every call ended as scripted)."""
    return run_with_analysis(time_scale, out, analysis=analysis, on_call=on_call)[0]


def run_with_analysis(
    time_scale: float = 0.1,
    out: TextIO | None = None,
    *,
    analysis: bool = False,
    on_call: Callable[[str], None] | None = None,
) -> tuple[int, Analysis]:
    """The demo, and the analysis of its own statistics (kept apart from the process's)."""
    import sys

    transcript = _Transcript(out or sys.stdout)
    own = StatsRecorder(MemoryStore())
    with _flaky_service() as base:
        get = _client(base)
        with _observed(transcript.show, own):
            started = time.monotonic()
            transcript.say(f"retrykit demo: a flaky service on {base}, policy 'http', waits x{time_scale:g}")
            with scaled_time(time_scale):
                for path in SCRIPT:
                    transcript.call(get, path, on_call)
    elapsed = time.monotonic() - started
    served = sum(_Service.hits.values())
    total = transcript.summary(elapsed, served)
    result = analyze(OPERATION, since=elapsed + 60, recorder=own)
    celery_ok = _run_celery_part(transcript.out)
    if analysis:
        print("", file=transcript.out)
        render_analysis(result, transcript.out)
    expected = {"/orders/17": "ok", "/inventory": "ok", "/quotes": "ok"}
    rows = transcript.rows
    good = all(rows[p].outcome == o for p, o in expected.items()) and total == served and celery_ok
    return (0 if good else 1), result


@contextmanager
def _flaky_service() -> Iterator[str]:
    """The scripted service on a free port of 127.0.0.1, served by a thread; yields its base URL."""
    _Service.hits = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(base: str) -> Callable[[str], object]:
    """GET a path of the service at *base* through ``@retry("http")``: the call the demo shows."""

    @retry("http", operation=OPERATION)
    def get(path: str) -> object:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return json.loads(response.read())

    return get


@contextmanager
def _observed(show: Callable[[_events.Event], None], recorder: StatsRecorder) -> Iterator[None]:
    """
    Within: retrykit's events go to *show* and its statistics to *recorder*, and its log is quiet
    (the demo prints the events itself); all put back after.
    """
    logger = logging.getLogger("retrykit")
    level = logger.level
    logger.setLevel(logging.ERROR)
    unsubscribe = _events.subscribe(show)
    previous = use_recorder(recorder)
    try:
        yield
    finally:
        logger.setLevel(level)
        unsubscribe()
        if previous is not None:
            use_recorder(previous)


class _Transcript:
    """What the demo prints: each call, its attempts as retrykit's events report them, a summary."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.rows: dict[str, _Row] = {}
        self.current: _Row | None = None

    def say(self, line: str) -> None:
        print(line, file=self.out)

    def call(self, get: Callable[[str], object], path: str, on_call: Callable[[str], None] | None) -> None:
        """Call *get* on *path*, its attempts shown as they are decided, then its outcome."""
        row = self.rows[path] = self.current = _Row(path)
        if on_call is not None:
            on_call(f"{len(self.rows)}/{len(SCRIPT)} calls")
        self.say(f"GET {path}")
        try:
            get(path)
        except Exception as exc:
            row.outcome = f"failed: {type(exc).__name__} {getattr(exc, 'code', '')}".strip()
        else:
            row.outcome = "ok"
        self.say(f"  => {row.outcome} after {row.attempts} attempt(s)")

    def show(self, event: _events.Event) -> None:
        """One decision of the current call: a retry scheduled (counted in its row), or a give-up."""
        row = self.current
        if row is None:
            return
        if isinstance(event, RetryScheduled):
            c = event.classification
            row.attempts = event.attempt + 1
            row.waited += event.delay
            after = f" (Retry-After {c.retry_after:g}s)" if c.retry_after is not None else ""
            self.say(
                f"  attempt {event.attempt}: {c.category.value} [{c.reason}] "
                f"-> {event.decision.value} in {event.delay:.2f}s{after}"
            )
        elif isinstance(event, GaveUp):
            c = event.classification
            self.say(
                f"  attempt {event.attempts}: {c.category.value} [{c.reason}] "
                f"-> give up ({event.reason.value})"
            )

    def summary(self, elapsed: float, served: int) -> int:
        """The table of the calls, and a line of totals; the attempts made in all."""
        self.say("\nsummary")
        self.say(f"  {'call':<18} {'attempts':>8} {'waited (policy s)':>18}  outcome")
        for row in self.rows.values():
            self.say(f"  {row.path:<18} {row.attempts:>8} {row.waited:>18.2f}  {row.outcome}")
        total = sum(r.attempts for r in self.rows.values())
        self.say(
            f"  {len(self.rows)} calls, {total} attempts ({served} requests served), {elapsed:.2f}s real time"
        )
        return total


def _checkout(folder: Path) -> bool:
    """Whether *folder* is a source checkout of this project (its pyproject.toml names it)."""
    try:
        return f'name = "{DISTRIBUTION}"' in (folder / "pyproject.toml").read_text(errors="replace")
    except OSError:
        return False


def install_hint_here() -> str:
    """
    The install command for the Celery adapter that works where the user stands: the checkout's
    ``adapters/celery`` in a checkout (or the checkout retrykit was installed from, editable),
    else the package's name on the index.
    """
    here = Path.cwd()
    source = Path(__file__).resolve().parent.parent
    if _checkout(here):
        return 'pip install "./adapters/celery"'
    if _checkout(source):
        return f'pip install "{os.path.relpath(source / "adapters" / "celery", here)}"'
    return install_hint("celery")


def _run_celery_part(out: TextIO) -> bool:
    """
    The Celery part, from the adapter's ``retrykit.demo`` entry point (retrykit-celery): the core
    never imports the adapter. Without it: skipped, with the command that installs it.
    """
    found = [e for e in entry_points(group="retrykit.demo") if e.name == "celery"]
    if not found:
        print(f"\nCelery part skipped: {install_hint_here()}", file=out)
        return True
    run: Callable[[TextIO], bool] = found[0].load()
    return run(out)
