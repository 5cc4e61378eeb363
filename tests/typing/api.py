"""
Type-checked, never executed: the public API keeps signatures through the decorator.

``mypy --strict tests/typing/api.py`` must pass; each ``# type: ignore[...]`` marks a call the
type checker must reject (``warn_unused_ignores`` fails the check if it does not).
"""

from __future__ import annotations

import retrykit
from retrykit import ErrorCategory, Policy, Strategy


@retrykit.retry
def bare(x: int, *, name: str = "") -> str:
    return name * x


@retrykit.retry("http", max_attempts=3)
def preset(x: int) -> int:
    return x


@retrykit.retry(Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.backoff(0.5, 5)}))
async def coroutine(url: str) -> bytes:
    return url.encode()


class Client:
    @retrykit.retry("http")
    def method(self, key: str) -> int:
        return len(key)


async def use() -> None:
    a: str = bare(2, name="x")
    b: int = preset(1)
    c: bytes = await coroutine("u")
    d: int = Client().method("k")
    bare("two")  # type: ignore[arg-type]
    preset(1, 2)  # type: ignore[call-arg]
    e: str = await coroutine("u")  # type: ignore[assignment]
    del a, b, c, d, e
    f: int = preset.retry_with(max_attempts=2)(1)
    g: bytes = await coroutine.retry_with(deadline=5)("u")
    h: object = preset.statistics["attempt_number"]
    preset.retry_with(max_attempts=2)("x")  # type: ignore[arg-type]
    Client().method(3)  # type: ignore[arg-type]
    i: int = Client().method.retry_with(max_attempts=1)("k")
    del f, g, h, i
    retrykit.retry("http", max_atempts=3)  # type: ignore[call-overload]
    Policy().replace(max_atempts=3)  # type: ignore[call-arg]
    Policy(on_giveup=lambda event: event.reasn)  # type: ignore[attr-defined]
    Policy(strategies={"network_eror": Strategy()})  # type: ignore[dict-item]
    built: dict[ErrorCategory, Strategy] = {ErrorCategory.NETWORK_ERROR: Strategy()}
    Policy(strategies=built)
    preset.retry_with(max_atempts=2)  # type: ignore[call-arg]
    Policy(strategies={"api_rate_limit": Strategy(), ErrorCategory.DATA_ERROR: Strategy.no_retry()})
    Policy(on_giveup=lambda event: print(event.reason.value), deadline=30, classify_result="http")
    Policy().replace(strategies={"network_error": Strategy.immediately(2)}, max_attempts=3)
    for attempt in retrykit.attempts("http"):
        with attempt:
            n: int = attempt.number
            del n
