"""
Other retry authorities around a retrykit layer, seen at run time: a tenacity, backoff or stamina
loop further up the stack, or a Celery task that retries by itself (``autoretry_for``). Such a
layer makes one attempt and lets the failure through to the outer authority (the one-layer rule),
and says so once per operation and authority.
"""

from __future__ import annotations

import logging
import sys
from types import CodeType
from typing import Any

_log = logging.getLogger("retrykit")
_LIBRARIES = frozenset({"tenacity", "backoff", "stamina"})
_DEPTH = 24
"""How many frames up the stack are looked at (only when a call fails for the first time)."""
_warned: set[tuple[str, str]] = set()
_tops: dict[int, tuple[CodeType, str | None]] = {}
"""Per code object (by id, kept beside it so the id stays its own): what ``_top_of`` found."""


def outer_retrier(depth: int = 2) -> str | None:
    """The retry authority around the current call, if any (looked up on a first failure only)."""
    state = sys.modules.get("celery._state")
    if state is not None:
        task: Any = state.get_current_task()
        if (
            task is not None
            and getattr(task, "autoretry_for", None)
            and not hasattr(type(task), "retrykit_policy")  # a RetrykitTask refuses autoretry_for
        ):
            return f"Celery's autoretry_for on task {getattr(task, 'name', '?')}"
    try:
        frame: Any = sys._getframe(depth)
    except ValueError:  # pragma: no cover - a shallow stack
        return None
    for _ in range(_DEPTH):
        if frame is None:
            return None
        code = frame.f_code
        seen = _tops.get(id(code))
        if seen is None or seen[0] is not code:
            seen = _top_of(frame)
        top = seen[1]
        if top is not None:
            return f"a {top} retry loop"
        frame = frame.f_back
    return None


def _top_of(frame: Any) -> tuple[CodeType, str | None]:
    """
    Remembered for *frame*'s code: the retry library it belongs to, or None.
    """
    module = frame.f_globals.get("__name__")
    top = module.split(".", 1)[0] if isinstance(module, str) else None
    seen = (frame.f_code, top if top in _LIBRARIES else None)
    if len(_tops) >= 4096:
        _tops.clear()
    _tops[id(frame.f_code)] = seen
    return seen


def warn_once(operation: str, authority: str) -> None:
    """Say once per operation and authority that a retrykit layer stands aside."""
    key = (operation, authority)
    if key not in _warned and len(_warned) < 1000:
        _warned.add(key)
        _log.warning(
            "retrykit: %s runs inside %s: two retry authorities; retrykit makes one attempt and "
            "lets the failure through (remove one of them)",
            operation,
            authority,
        )
