"""
Where retry budgets and circuit breakers keep their state, and servers' pushback.

``retrykit.RetryBudget`` and ``retrykit.CircuitBreaker`` keep their state in this process
(``MemoryOverloadStore``, the default) or in Redis for a whole fleet
(``RedisOverloadStore(url)``, passed as ``store=``). ``pushback_of(exc)`` reads a server's
"retry after" or "do not retry" from an exception.
"""

from __future__ import annotations

from ._budget import MemoryOverloadStore, default_store
from ._overload import pushback_of
from ._overload_redis import RedisOverloadStore

__all__ = [
    "MemoryOverloadStore",
    "RedisOverloadStore",
    "default_store",
    "pushback_of",
]
