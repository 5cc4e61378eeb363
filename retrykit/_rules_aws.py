"""
Rule family: botocore (and so boto3, aiobotocore). A ``ClientError`` carries the service's error
code (``response["Error"]["Code"]``) and the HTTP status (``response["ResponseMetadata"]
["HTTPStatusCode"]``); the code is read first, with botocore's own lists of throttling and
transient codes (``botocore/retries/standard.py``, the "standard" retry mode, plus the
service-specific policies of ``botocore/data/_retry.json``), then the status. Client-side errors
(parameter validation, missing credentials or region) repeat until the caller changes something;
connection and timeout errors are the network.
"""

from __future__ import annotations

import re
from typing import Any

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
    hit,
    module_of,
)
from ._rules_http import retry_after_of, status_category

PREFIXES = ("botocore", "aiobotocore")

# botocore.retries.standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES, less the two codes
# that say "still working on your previous request" (below, temporary), plus _retry.json's
# service-specific throttling codes.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)
# botocore.retries.standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES, the "still
# processing" codes (route53 PriorRequestNotComplete, dynamodb TransactionInProgressException),
# and _retry.json's other retried codes (sts IDPCommunicationError, dynamodb
# ReplicatedWriteConflictException), plus the codes services send with their 5xx.
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "TransactionInProgressException",
        "IDPCommunicationError",
        "ReplicatedWriteConflictException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
# botocore's throttling statuses: 429 (ThrottlingStatusCodeChecker) and 509 (_retry.json
# "limit_exceeded"); its transient statuses are 500, 502, 503 and 504, as status_category says.
THROTTLING_STATUSES = frozenset({429, 509})

# Other 4xx codes: never retried; these say the input is wrong (data), the rest are refusals.
_DATA_CODE = re.compile(
    r"Validation|InvalidParameter|MissingParameter|Malformed|Serialization|InvalidArgument|"
    r"InvalidInput|InvalidRequest|TooLarge|TooLong|InvalidDigest|BadDigest|InvalidRange",
    re.IGNORECASE,
)
_PERMANENT_CODE = re.compile(
    r"NotFound|NoSuch|AccessDenied|Unauthori[sz]ed|Forbidden|Expired|InvalidClientTokenId|"
    r"SignatureDoesNotMatch|InvalidSignature|UnrecognizedClient|InvalidAccessKeyId|AuthFailure|"
    r"OptInRequired|NotAuthorized|Conflict|AlreadyExists|InUse|ConditionalCheckFailed|"
    r"IncompleteSignature|MissingAuthenticationToken|InvalidToken",
    re.IGNORECASE,
)


def _status(response: dict[Any, Any]) -> int | None:
    meta = response.get("ResponseMetadata")
    code = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def code_category(code: str | None, status: int | None) -> tuple[ErrorCategory, str] | None:
    """The category of an AWS error code and HTTP status, and why."""
    if code in THROTTLING_CODES:
        return RATE, "a throttling code (botocore's standard retry mode)"
    if code in TRANSIENT_CODES:
        return TEMP, "a transient code (botocore's standard retry mode)"
    if status in THROTTLING_STATUSES:
        return RATE, f"HTTP {status} (botocore: throttling)"
    if status is not None and 400 <= status <= 499 and code:
        if _PERMANENT_CODE.search(code):
            return PERM, f"HTTP {status}: a refusal that repeats"
        if _DATA_CODE.search(code):
            return DATA, f"HTTP {status}: the request is invalid"
    if status is not None and 100 <= status <= 599:
        return status_category(status), f"HTTP {status}"
    return None


def client_error(exc: BaseException) -> Hit | None:
    """A ``ClientError``'s error code and status (``exc.response``, a dict)."""
    response = attr(exc, "response")
    if not isinstance(response, dict):
        return None
    error = response.get("Error")
    code = error.get("Code") if isinstance(error, dict) else None
    code = code if isinstance(code, str) and code else None
    status = _status(response)
    found = code_category(code, status)
    if found is None:
        return None
    category, why = found
    label = f"AWS {code or 'error'}" + (f" (HTTP {status})" if status is not None else "")
    return hit(CODE, category, f"{label}: {why}", "aws_error_code", retry_after_of(exc))


# botocore/exceptions.py: client-side failures by class name (the most derived match wins).
_CLASSES: dict[str, tuple[int, ErrorCategory, str]] = {
    "ParamValidationError": (CLASS, DATA, "the parameters fail the service model's validation"),
    "ValidationError": (CLASS, DATA, "invalid parameter"),
    "MissingParametersError": (CLASS, DATA, "required parameters missing"),
    "InvalidRegionError": (CLASS, PERM, "invalid region name"),
    "NoCredentialsError": (CLASS, PERM, "no credentials found"),
    "PartialCredentialsError": (CLASS, PERM, "incomplete credentials"),
    "NoAuthTokenError": (CLASS, PERM, "no auth token"),
    "UnknownCredentialError": (CLASS, PERM, "unknown credential provider"),
    "ProfileNotFound": (CLASS, PERM, "profile not found"),
    "ConfigNotFound": (CLASS, PERM, "config file not found"),
    "ConfigParseError": (CLASS, PERM, "config file unreadable"),
    "NoRegionError": (CLASS, PERM, "no region configured"),
    "UnknownRegionError": (CLASS, PERM, "unknown region"),
    "DataNotFoundError": (CLASS, PERM, "service model not found"),
    "UnknownEndpointError": (CLASS, PERM, "no endpoint for this region"),
    "UnknownSignatureVersionError": (CLASS, PERM, "unknown signature version"),
    "UnsupportedSignatureVersionError": (CLASS, PERM, "unsupported signature version"),
    "InvalidConfigError": (CLASS, PERM, "invalid configuration"),
    "InvalidRetryConfigurationError": (CLASS, PERM, "invalid retry configuration"),
    "InvalidEndpointConfigurationError": (CLASS, PERM, "invalid endpoint configuration"),
    "InvalidDNSNameError": (CLASS, PERM, "bucket name is not a valid DNS name"),
    "UnknownClientMethodError": (CLASS, PERM, "no such client method"),
    "OperationNotPageableError": (CLASS, PERM, "operation cannot be paginated"),
    "SSOTokenLoadError": (CLASS, PERM, "SSO token missing: log in again"),
    "UnauthorizedSSOTokenError": (CLASS, PERM, "SSO token expired: log in again"),
    "CapacityNotAvailableError": (CLASS, TEMP, "botocore's retry quota is used up"),
    "EndpointConnectionError": (GENERIC, NET, "cannot connect to the endpoint"),
    "ConnectTimeoutError": (GENERIC, NET, "connect timed out"),
    "ReadTimeoutError": (GENERIC, NET, "read timed out"),
    "ConnectionClosedError": (GENERIC, NET, "connection closed"),
    "ProxyConnectionError": (GENERIC, NET, "proxy connection failed"),
    "ResponseStreamingError": (GENERIC, NET, "response stream broken"),
    "IncompleteReadError": (GENERIC, NET, "response cut short"),
    "HTTPClientError": (GENERIC, NET, "HTTP transport failure"),
    "ConnectionError": (GENERIC, NET, "connection failure"),
}


def static(cls: type) -> Hit | None:
    """botocore's client-side classes."""
    for klass in cls.__mro__:
        if not module_of(klass).startswith(PREFIXES):
            continue
        found = _CLASSES.get(klass.__name__)
        if found is not None:
            tier, category, why = found
            return hit(tier, category, f"botocore {cls.__name__}: {why}", "aws_client")
    return None


DYNAMIC = (client_error,)
