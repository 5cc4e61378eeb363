"""
Rule family: API SDKs (openai, anthropic, stripe, Elasticsearch's elastic-transport). Their status
errors carry the HTTP status (read by the HTTP family's ``status``); this family adds what they say
beyond it: the server's explicit "retry or not" headers (``x-should-retry``, which openai and
anthropic honour; ``Stripe-Should-Retry``), stripe's ``http_status`` and error codes, and the
classes of their transport failures.
"""

from __future__ import annotations

from ._categories import (
    CLASS,
    CODE,
    DATA,
    GENERIC,
    NET,
    PERM,
    RATE,
    TEMP,
    ErrorCategory,
    Hit,
    attr,
    by_class,
    header,
    hit,
    module_of,
)
from ._rules_http import status_category

PREFIXES = ("openai", "anthropic", "stripe", "elastic_transport", "elasticsearch")

# (top-level module, class name) -> (tier, category, why); the most derived match wins.
_CLASSES: dict[tuple[str, str], tuple[int, ErrorCategory, str]] = {
    ("openai", "APITimeoutError"): (GENERIC, NET, "timed out"),
    ("openai", "APIConnectionError"): (GENERIC, NET, "could not reach the API"),
    ("openai", "APIResponseValidationError"): (CLASS, DATA, "the response did not match the schema"),
    ("anthropic", "APITimeoutError"): (GENERIC, NET, "timed out"),
    ("anthropic", "APIConnectionError"): (GENERIC, NET, "could not reach the API"),
    ("anthropic", "APIResponseValidationError"): (CLASS, DATA, "the response did not match the schema"),
    ("stripe", "APIConnectionError"): (GENERIC, NET, "could not reach the API"),
    ("stripe", "RateLimitError"): (CLASS, RATE, "rate limited"),
    ("stripe", "AuthenticationError"): (CLASS, PERM, "invalid API key"),
    ("stripe", "PermissionError"): (CLASS, PERM, "the key may not do this"),
    ("stripe", "CardError"): (CLASS, PERM, "the card was declined"),
    ("stripe", "IdempotencyError"): (CLASS, PERM, "idempotency key reused with other parameters"),
    ("stripe", "SignatureVerificationError"): (CLASS, PERM, "webhook signature invalid"),
    ("stripe", "InvalidRequestError"): (CLASS, DATA, "invalid parameters"),
    ("elastic_transport", "ConnectionTimeout"): (GENERIC, NET, "timed out"),
    ("elastic_transport", "ConnectionError"): (GENERIC, NET, "could not reach the cluster"),
    ("elastic_transport", "SerializationError"): (CLASS, DATA, "could not (de)serialize"),
    ("elastic_transport", "TlsError"): (CLASS, PERM, "TLS failed"),
    ("elasticsearch", "SerializationError"): (CLASS, DATA, "could not (de)serialize"),
}


def static(cls: type) -> Hit | None:
    """SDK failures that depend on the class alone."""
    return by_class(_CLASSES, cls, "sdk")


# stripe error codes that are transient whatever the status says (docs.stripe.com/error-codes).
_STRIPE_TRANSIENT = frozenset({"lock_timeout", "rate_limit"})


def _headers(exc: BaseException) -> object:
    found = attr(exc, "headers")  # stripe keeps them on the error
    if found is None:
        response = attr(exc, "response")
        found = attr(response, "headers") if response is not None else None
    return found


def should_retry(exc: BaseException) -> Hit | None:
    """
    The server's explicit word: ``x-should-retry`` (openai, anthropic) or ``Stripe-Should-Retry``,
    ``true`` or ``false``. It outranks the status, as the SDKs themselves let it.
    """
    headers = _headers(exc)
    if headers is None:
        return None
    for name in ("x-should-retry", "Stripe-Should-Retry"):
        value = header(headers, name)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if not isinstance(value, str):
            continue
        said = value.strip().lower()
        if said == "true":
            return hit(CODE, TEMP, f"the server said {name}: true", "should_retry")
        if said == "false":
            return hit(CODE, PERM, f"the server said {name}: false", "should_retry")
    return None


def stripe_status(exc: BaseException) -> Hit | None:
    """stripe's ``http_status`` and ``code`` (lock timeouts and rate limits are transient)."""
    if not module_of(type(exc)).startswith("stripe"):
        return None
    code = attr(exc, "code")
    if code is None:
        code = attr(attr(exc, "error"), "code")  # the error object of the response body
    if isinstance(code, str) and code in _STRIPE_TRANSIENT:
        category = RATE if code == "rate_limit" else TEMP
        return hit(CODE, category, f"stripe error code {code}", "stripe")
    status = attr(exc, "http_status")
    if status == 409:  # stripe retries its conflicts itself: a concurrent request on one object
        return hit(CODE, TEMP, "stripe HTTP 409 (a conflicting concurrent request)", "stripe")
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return hit(CODE, status_category(status), f"stripe HTTP {status}", "stripe")
    return None


DYNAMIC = (should_retry, stripe_status)
