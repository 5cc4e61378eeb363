"""Generic signals: what they read, what explain() says, and that they never raise."""

from __future__ import annotations

import errno
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory
from retrykit.events import RuleFailed
from retrykit.testing import record

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


class _Raising:
    """A descriptor whose every read raises."""

    def __get__(self, obj: Any, owner: Any) -> Any:
        raise RuntimeError("hostile attribute")


# Hostile exceptions: every attribute a generic signal reads raises or has the wrong type, and
# their names invite every reader (SMTP for reply codes, Closed for close codes...).
class SMTPHostileClosedError(Exception):
    smtp_code = _Raising()
    code = _Raising()
    reply_code = _Raising()
    errcode = _Raising()
    rc = _Raising()
    recipients = _Raising()
    rcvd = _Raising()
    sent = _Raising()
    close_code = _Raising()
    url = _Raising()
    headers = _Raising()
    status = _Raising()
    response = _Raising()

    def __str__(self) -> str:
        raise RuntimeError("hostile __str__")


class MQTTHostileError(Exception):
    rc = _Raising()
    reason_code = _Raising()


class FTPWrongTypesError(Exception):
    smtp_code = "550"
    code = 550.0
    reply_code = True
    errcode = [404]
    recipients = {"a": "not a tuple", "b": (), "c": ("550",)}
    rcvd = 42
    sent = object()
    url = "http://x"

    def __str__(self) -> str:
        return 12  # type: ignore[return-value]  # noqa: PLE0307 - the hostile case under test


class _RaisingDict(dict[str, Any]):
    def values(self) -> Any:
        raise RuntimeError("hostile container")


class SMTPRaisingRecipientsError(Exception):
    recipients = _RaisingDict(a=(550, b"x"))


class WebSocketOddError(Exception):
    rcvd = None
    sent = None
    close_code = 99999


class HugeMessageError(Exception):
    pass


class _NotAStr(str):
    def __str__(self) -> str:
        raise RuntimeError("hostile")


def _suppressed_hostile() -> BaseException:
    class HiddenError(Exception):
        pass

    try:
        try:
            raise OSError("no errno at all")
        except OSError:
            raise HiddenError("x") from None
    except HiddenError as err:
        return err


HOSTILE = {
    "raising attributes and __str__": SMTPHostileClosedError(),
    "wrong types and a non-str __str__": FTPWrongTypesError(),
    "an unknown close code": WebSocketOddError(),
    "a container that raises": SMTPRaisingRecipientsError(),
    "mqtt codes that raise": MQTTHostileError(),
    "a 10 MB message": HugeMessageError("x" * 10_000_000 + " not authorized"),
    "a str subclass argument": HugeMessageError(_NotAStr("550 nope")),
    "a hidden OSError without errno": _suppressed_hostile(),
}


@pytest.mark.parametrize("exc", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_exceptions_never_raise_into_the_caller(exc: BaseException) -> None:
    """Classifying and explaining a hostile exception returns a verdict; no signal fails."""
    with record() as rec:
        verdict = retrykit.classify(exc)
        text = str(retrykit.explain(exc))
    assert isinstance(verdict.category, ErrorCategory)
    assert "decision:" in text
    assert not [e for e in rec.events if isinstance(e, RuleFailed)]


def test_a_huge_message_is_read_only_so_far() -> None:
    """Words past the first 2,000 characters of a message are not read."""
    verdict = retrykit.classify(HOSTILE["a 10 MB message"])
    assert "unrecognised" == verdict.rule


class SMTPRefusedRecipients(Exception):
    def __init__(self, recipients: dict[str, tuple[int, bytes]]) -> None:
        super().__init__(recipients)
        self.recipients = recipients


class SMTPReply(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.smtp_code = code


class LibraryConnectError(Exception):
    """A library's own error that hides the socket error's errno."""


def _hidden_refused() -> BaseException:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        except OSError:
            raise LibraryConnectError("could not reach the server") from None
    except LibraryConnectError as err:
        return err


class MqttCodeError(Exception):
    def __init__(self, rc: Any) -> None:
        super().__init__(f"code {rc}")
        self.rc = rc


class _ReasonCode:
    def __init__(self, value: int) -> None:
        self.value = value


# (exception, category, a phrase explain() must show for the signal that decided)
EXPLAINED = {
    "smtp 550 recipients": (
        SMTPRefusedRecipients({"a@x": (550, b"no")}),
        PERM,
        "reply code 550 (recipients)",
    ),
    "smtp 451": (SMTPReply(451, "later"), TEMP, "reply code 451 (smtp_code)"),
    "smtp 552 size": (SMTPReply(552, "too big"), DATA, "reply code 552"),
    "errno in message": (RuntimeError("[Errno 111] Connect call failed"), NET, "errno ECONNREFUSED written"),
    "errno name in message": (LibraryConnectError("ECONNRESET while reading"), NET, "errno ECONNRESET"),
    "hidden by from None": (_hidden_refused(), NET, "hidden by 'from None'"),
    "mqtt connack 4": (MqttCodeError(4), PERM, "MQTT code 4 (rc): bad user name or password"),
    "mqtt 5 server busy": (MqttCodeError(_ReasonCode(0x89)), TEMP, "MQTT code 137 (rc): server busy"),
    "class name words": (
        type("AuthFailedError", (Exception,), {})("x"),
        PERM,
        "class name AuthFailedError says",
    ),
    "message words": (LibraryConnectError("Not authorized"), PERM, "message says an authentication"),
}


@pytest.mark.parametrize(("exc", "category", "phrase"), list(EXPLAINED.values()), ids=list(EXPLAINED))
def test_explain_says_why_each_signal_matched(
    exc: BaseException, category: ErrorCategory, phrase: str
) -> None:
    """The verdict's category is the signal's, and explain() names the signal and what it read."""
    assert category == retrykit.classify(exc).category
    assert phrase in str(retrykit.explain(exc))


def test_known_libraries_are_not_read_by_generic_signals() -> None:
    """A class from a family with rules keeps its family's verdict (the generic readers are not added)."""
    from retrykit._classify import _plan
    from retrykit._rules_generic import FALLBACK, close_code

    known = type("ConnectionClosed", (Exception,), {"__module__": "redis.exceptions"})
    plan = _plan(known)
    assert close_code not in plan.dynamic
    assert not set(FALLBACK) & set(plan.fallback)
