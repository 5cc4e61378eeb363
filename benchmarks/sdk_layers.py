"""
Requests a local 503 server sees when one call of a real client that retries inside the call is
wrapped in retrykit: alone, under ``Policy(max_attempts=3)``, under the ``"http"`` preset, and with
the client's retries switched off (under ``max_attempts=3``). The clients are the test suite's
(``tests/real_errors/test_sdk_layers.py``), with their default retry settings.

    python benchmarks/sdk_layers.py            # the table of docs/one-layer.md
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import retrykit
from retrykit.testing import no_wait
from tests.real_errors.test_sdk_layers import CLIENTS, _serving, _url


def sent(server: Any, call: Any, policy: Any) -> int:
    server.count = 0
    wrapped = retrykit.retry(policy)(call) if policy is not None else call
    try:
        with no_wait():
            wrapped()
    except Exception:
        pass
    return int(server.count)


def main() -> None:
    print('| client | alone | under max_attempts=3 | under "http" | its retries off, max_attempts=3 |')
    print("|---|---:|---:|---:|---:|")
    with _serving() as server:
        url = _url(server)
        for client in CLIENTS:
            row = [
                sent(server, client.default(url), None),
                sent(server, client.default(url), retrykit.Policy(max_attempts=3)),
                sent(server, client.default(url), "http"),
                sent(server, client.off(url), retrykit.Policy(max_attempts=3)),
            ]
            print(f"| {client.name} | " + " | ".join(str(n) for n in row) + " |")


if __name__ == "__main__":
    main()
