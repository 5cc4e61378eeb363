"""botocore's real client against a local server that answers AWS-style errors (no real AWS)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ._servers import free_port, http_server, provoke

botocore_session = pytest.importorskip("botocore.session")
botocore_config = pytest.importorskip("botocore.config")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

NET = ErrorCategory.NETWORK_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

# The pinned table (README "AWS"): (error code, HTTP status) -> category. Throttling and transient
# codes are botocore's own (botocore/retries/standard.py, botocore/data/_retry.json); otherwise a
# 4xx is never retried and a 5xx is.
DYNAMODB: dict[tuple[str, int], ErrorCategory] = {
    ("ThrottlingException", 400): RATE,
    ("ProvisionedThroughputExceededException", 400): RATE,
    ("RequestLimitExceeded", 400): RATE,
    ("LimitExceededException", 400): RATE,
    ("TooManyRequestsException", 400): RATE,
    ("UnlistedCode", 429): RATE,
    ("UnlistedCode", 509): RATE,
    ("TransactionInProgressException", 400): TEMP,
    ("RequestTimeoutException", 408): TEMP,
    ("ReplicatedWriteConflictException", 409): TEMP,
    ("InternalServerError", 500): TEMP,
    ("ServiceUnavailable", 503): TEMP,
    ("UnlistedCode", 502): TEMP,
    ("UnlistedCode", 504): TEMP,
    ("ValidationException", 400): DATA,
    ("SerializationException", 400): DATA,
    ("UnlistedCode", 400): DATA,
    ("ResourceNotFoundException", 400): PERM,
    ("ConditionalCheckFailedException", 400): PERM,
    ("AccessDeniedException", 400): PERM,
    ("UnrecognizedClientException", 400): PERM,
    ("ExpiredTokenException", 400): PERM,
    ("ResourceInUseException", 400): PERM,
    ("UnlistedCode", 403): PERM,
    ("UnlistedCode", 404): PERM,
    ("NotImplemented", 501): PERM,
}
S3: dict[tuple[str, int], ErrorCategory] = {
    ("SlowDown", 503): RATE,
    ("RequestTimeout", 400): TEMP,
    ("InternalError", 500): TEMP,
    ("ServiceUnavailable", 503): TEMP,
    ("InvalidArgument", 400): DATA,
    ("MalformedXML", 400): DATA,
    ("InvalidRange", 416): DATA,
    ("NoSuchKey", 404): PERM,
    ("NoSuchBucket", 404): PERM,
    ("AccessDenied", 403): PERM,
    ("SignatureDoesNotMatch", 403): PERM,
    ("InvalidAccessKeyId", 403): PERM,
    ("ExpiredToken", 400): PERM,
}
# Client-side failures: case -> category.
CLIENT_SIDE: dict[str, ErrorCategory] = {
    "param_validation": DATA,
    "no_credentials": PERM,
    "endpoint_connection": NET,
    "read_timeout": NET,
}

KEYS = {"aws_access_key_id": "AKIDRKCLASSIFY2", "aws_secret_access_key": "rk-classify2-secret"}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The scripted HTTP server; stops itself."""
    with http_server() as (url, _srv):
        yield url


def _config(**kwargs: Any) -> Any:
    return botocore_config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=1,
        read_timeout=kwargs.pop("read_timeout", 2),
        **kwargs,
    )


def _dynamodb(endpoint: str, **keys: Any) -> Any:
    session = botocore_session.get_session()
    return session.create_client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1", config=_config(), **(keys or KEYS)
    )


def _s3(endpoint: str) -> Any:
    return botocore_session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=_config(s3={"addressing_style": "path"}),
        **KEYS,
    )


def _get_item(client: Any) -> None:
    client.get_item(TableName="rk-classify2", Key={"id": {"S": "1"}})


@pytest.mark.parametrize(("code", "status"), sorted(DYNAMODB))
def test_dynamodb_json_errors(server: str, code: str, status: int) -> None:
    """DynamoDB's JSON error bodies: the error code first, then the status, as the table says."""
    client = _dynamodb(f"{server}/aws/{code}/{status}")
    err = provoke(lambda: _get_item(client))
    assert isinstance(err, botocore_exceptions.ClientError), repr(err)
    assert err.response["Error"]["Code"] == code
    verdict = retrykit.classify(err)
    assert (DYNAMODB[code, status], "aws_error_code") == (verdict.category, verdict.rule), str(
        retrykit.explain(err)
    )


@pytest.mark.parametrize(("code", "status"), sorted(S3))
def test_s3_xml_errors(server: str, code: str, status: int) -> None:
    """S3's XML error bodies, the same way."""
    client = _s3(server)
    err = provoke(lambda: client.get_object(Bucket="s3err", Key=f"{code}/{status}"))
    assert isinstance(err, botocore_exceptions.ClientError), repr(err)
    assert err.response["Error"]["Code"] == code
    verdict = retrykit.classify(err)
    assert (S3[code, status], "aws_error_code") == (verdict.category, verdict.rule), str(
        retrykit.explain(err)
    )


@pytest.mark.parametrize(
    ("service", "header", "seconds"),
    [
        ("s3", "Retry-After=7", 7.0),
        ("s3", "x-amz-retry-after=1500", 1.5),
        ("dynamodb", "Retry-After=3", 3.0),
        ("dynamodb", "x-amz-retry-after=250", 0.25),
    ],
)
def test_wait_hints(server: str, service: str, header: str, seconds: float) -> None:
    """Retry-After and x-amz-retry-after (milliseconds) in ResponseMetadata.HTTPHeaders are the wait."""
    if service == "s3":
        client = _s3(server)
        err = provoke(lambda: client.get_object(Bucket="s3err", Key=f"SlowDown/503/{header}"))
    else:
        client = _dynamodb(f"{server}/aws/ThrottlingException/400/{header}")
        err = provoke(lambda: _get_item(client))
    verdict = retrykit.classify(err)
    assert (verdict.category, verdict.retry_after) == (RATE, pytest.approx(seconds))


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No credentials anywhere botocore looks (environment, files, instance metadata)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _client_side(case: str, server: str) -> BaseException:
    if case == "param_validation":
        client = _dynamodb(server)
        return provoke(lambda: client.get_item(TableName="rk-classify2"))  # Key is required
    if case == "no_credentials":
        session = botocore_session.get_session()
        client = session.create_client(
            "dynamodb", endpoint_url=server, region_name="us-east-1", config=_config()
        )
        return provoke(lambda: _get_item(client))
    if case == "endpoint_connection":
        client = _dynamodb(f"http://127.0.0.1:{free_port()}")
        return provoke(lambda: _get_item(client))
    if case == "read_timeout":
        client = botocore_session.get_session().create_client(
            "dynamodb",
            endpoint_url=f"{server}/hang",
            region_name="us-east-1",
            config=_config(read_timeout=0.3),
            **KEYS,
        )
        return provoke(lambda: _get_item(client))
    raise AssertionError(case)


@pytest.mark.parametrize("case", sorted(CLIENT_SIDE))
def test_client_side_errors(server: str, case: str, no_credentials: None) -> None:
    """Validation, missing credentials, refused connections and read timeouts raised by botocore itself."""
    err = _client_side(case, server)
    assert type(err).__module__.startswith("botocore"), repr(err)
    verdict = retrykit.classify(err)
    assert CLIENT_SIDE[case] == verdict.category, str(retrykit.explain(err))
    assert verdict.rule in ("aws_client", "errno"), str(retrykit.explain(err))
