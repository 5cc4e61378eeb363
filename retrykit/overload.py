"""
Overload protection, public parts: retry budgets, circuit breakers and their stores.

``RetryBudget`` and ``CircuitBreaker`` are also ``retrykit.RetryBudget`` and
``retrykit.CircuitBreaker``. Their state lives in this process (``MemoryOverloadStore``, the
default) or in Redis for a whole fleet (``RedisOverloadStore(url)``, passed as ``store=``).
"""

from __future__ import annotations

from ._breaker import CircuitBreaker, CircuitOpen
from ._budget import MemoryOverloadStore, RetryBudget, default_store
from ._overload import pushback_of
from ._overload_redis import RedisOverloadStore

__all__ = [
    "CircuitBreaker",
    "CircuitOpen",
    "MemoryOverloadStore",
    "RedisOverloadStore",
    "RetryBudget",
    "default_store",
    "pushback_of",
]
