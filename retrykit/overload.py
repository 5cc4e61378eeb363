"""
Where retry budgets and circuit breakers keep their state, and servers' pushback.

``retrykit.RetryBudget`` and ``retrykit.CircuitBreaker`` keep their state in this process
(``MemoryOverloadStore``, the default) or in Redis for a whole fleet
(``RedisOverloadStore(url)``, passed as ``store=``). ``pushback_of(outcome)`` reads a gRPC server's
``grpc-retry-pushback-ms`` (seconds to wait, or negative: do not retry) from an error or a response.
"""

from __future__ import annotations

from ._overload import pushback_of
from ._overload_memory import MemoryOverloadStore, default_store
from ._overload_redis import RedisOverloadStore

__all__ = [
    "MemoryOverloadStore",
    "RedisOverloadStore",
    "default_store",
    "pushback_of",
]
