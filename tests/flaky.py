"""The tests' one flaky callable: fails (or answers) a given way a few times, then succeeds.

``Flaky(ConnectionResetError(), TimeoutError(), result="ok")`` raises those two, then returns
"ok" for ever; ``Flaky.failing(2)`` fails twice with a new ``ConnectionResetError`` each time.
``AsyncFlaky`` is the same as a coroutine function (a checkpoint on every call).
"""

from __future__ import annotations

from typing import Any

import anyio.lowlevel


def _answer(outcome: Any) -> Any:
    """Raise *outcome* if it is an exception (a class: a new instance of it), else return it."""
    if isinstance(outcome, type) and issubclass(outcome, BaseException):
        raise outcome()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


class Flaky:
    """
    A callable that answers its *outcomes* in turn, one per call, then *result* on every later
    call: an exception (instance, or class for a new instance each time) is raised, anything
    else returned. It takes any arguments, counts its ``calls``, and is named *name* in events,
    logs and statistics (default: ``Flaky``).
    """

    def __init__(self, *outcomes: Any, result: Any = "ok", name: str | None = None) -> None:
        self.outcomes = list(outcomes)
        self.result = result
        self.calls = 0
        if name is not None:
            self.__name__ = self.__qualname__ = name

    @classmethod
    def failing(cls, times: int, error: type[BaseException] = ConnectionResetError, **kwargs: Any) -> Any:
        """Fails *times* times with a new *error*, then returns *result* (default "ok")."""
        return cls(*[error] * times, **kwargs)

    def _next(self) -> Any:
        self.calls += 1
        if self.calls <= len(self.outcomes):
            return self.outcomes[self.calls - 1]
        return self.result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _answer(self._next())


class AsyncFlaky(Flaky):
    """``Flaky`` as a coroutine function: each call is a checkpoint on the running loop."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        outcome = self._next()
        await anyio.lowlevel.checkpoint()
        return _answer(outcome)
