"""
Rule family: AMQP 0-9-1 clients: pika, py-amqp (and kombu, which raises py-amqp's errors or wraps
them), aiormq and aio-pika (which raises aiormq's). The broker's reply code decides (AMQP 0-9-1
spec, "Constants"): a connection the broker forced closed (320) or lost on the way is the network;
a missing queue or exchange (404), an argument mismatch (406), a refused login or permission (403)
and a vhost that is missing or not allowed (530) repeat until someone changes the broker or the
code; a locked resource (405) and the broker's own failures (506, 541) pass.
"""

from __future__ import annotations

import errno
import re

from ._categories import (
    CLASS,
    CODE,
    DATA,
    GENERIC,
    NET,
    PERM,
    TEMP,
    ErrorCategory,
    Hit,
    attr,
    by_class,
    hit,
    module_of,
)

PREFIXES = ("pika", "amqp", "kombu", "aiormq", "aio_pika")

# AMQP 0-9-1 reply codes -> category, and the spec's name for the reason.
REPLY_CODES: dict[int, tuple[ErrorCategory, str]] = {
    311: (DATA, "CONTENT_TOO_LARGE: the message is too large"),
    312: (PERM, "NO_ROUTE: the mandatory message cannot be routed"),
    313: (TEMP, "NO_CONSUMERS: no consumer right now"),
    320: (NET, "CONNECTION_FORCED: the broker closed the connection (restart, admin)"),
    402: (PERM, "INVALID_PATH: no such virtual host path"),
    403: (PERM, "ACCESS_REFUSED: login or permission refused"),
    404: (PERM, "NOT_FOUND: the queue or exchange does not exist"),
    405: (TEMP, "RESOURCE_LOCKED: another connection holds the exclusive resource"),
    406: (PERM, "PRECONDITION_FAILED: arguments contradict the broker's state"),
    501: (PERM, "FRAME_ERROR: the client sent a malformed frame"),
    502: (PERM, "SYNTAX_ERROR: the client sent illegal field values"),
    503: (PERM, "COMMAND_INVALID: the client sent an invalid sequence of frames"),
    504: (PERM, "CHANNEL_ERROR: the client used a channel that was not open"),
    505: (PERM, "UNEXPECTED_FRAME: the client sent an unexpected frame"),
    506: (TEMP, "RESOURCE_ERROR: the broker lacks the resources right now"),
    530: (PERM, "NOT_ALLOWED: the vhost is missing or not allowed for this user"),
    540: (PERM, "NOT_IMPLEMENTED: the broker does not implement this"),
    541: (TEMP, "INTERNAL_ERROR: the broker failed internally"),
}

# RabbitMQ answers a message above max_message_size with 406: the payload, not the declaration.
_TOO_LARGE = re.compile(r"larger than configured max size|message size .* is larger", re.IGNORECASE)

# aiormq (and aio-pika) raise one class per reply code and keep only the text; the class is the code.
_AIORMQ_CODES: dict[str, int] = {
    "ChannelAccessRefused": 403,
    "ChannelNotFoundEntity": 404,
    "ChannelLockedResource": 405,
    "ChannelPreconditionFailed": 406,
    "ConnectionFrameError": 501,
    "ConnectionSyntaxError": 502,
    "ConnectionCommandInvalid": 503,
    "ConnectionChannelError": 504,
    "ConnectionUnexpectedFrame": 505,
    "ConnectionResourceError": 506,
    "ConnectionNotAllowed": 530,
    "ConnectionNotImplemented": 540,
    "ConnectionInternalError": 541,
}


def _code_of(exc: BaseException) -> int | None:
    code = attr(exc, "reply_code")  # pika's ConnectionClosed/ChannelClosed, py-amqp's AMQPError
    if isinstance(code, int) and not isinstance(code, bool) and code:
        return code
    if module_of(type(exc)).startswith("aiormq"):
        for klass in type(exc).__mro__:
            known = _AIORMQ_CODES.get(klass.__name__)
            if known is not None:
                return known
        args = exc.args  # aiormq's ConnectionClosed(code, text) / ChannelClosed(code, text)
        if args and isinstance(args[0], int) and not isinstance(args[0], bool) and 300 <= args[0] <= 599:
            return args[0]
    return None


def reply_code(exc: BaseException) -> Hit | None:
    """The broker's AMQP reply code on a channel or connection close."""
    code = _code_of(exc)
    if code is None:
        return None
    found = REPLY_CODES.get(code)
    if found is None:
        return None
    category, why = found
    if code == 406 and _TOO_LARGE.search(str(exc)):
        category, why = DATA, "PRECONDITION_FAILED: the message is larger than the broker accepts"
    return hit(CODE, category, f"AMQP {code} {why}", "amqp_reply_code")


# A broker that closes the connection in answer to Connection.Open (aiormq reports the unexpected
# Connection.Close frame without its code): RabbitMQ does this for a vhost that does not exist or
# that the user may not use (530).
_OPEN_REFUSED = re.compile(r"Connection\.OpenOk.*got <Connection\.Close", re.DOTALL)


def open_refused(exc: BaseException) -> Hit | None:
    """aiormq's ``InvalidFrameError`` for a Connection.Close sent instead of Connection.OpenOk."""
    if module_of(type(exc)).startswith("aiormq") and _OPEN_REFUSED.search(str(exc)):
        return hit(CLASS, PERM, "the broker refused to open the vhost (missing or not allowed)", "amqp")
    return None


def socket_setup(exc: BaseException) -> Hit | None:
    """
    py-amqp's ``OSError(EINVAL)`` from ``setsockopt`` on a socket the broker already closed.

    A broker (or a load balancer in front of it) that accepts and hangs up at once makes py-amqp's
    transport fail while it sets the socket's options, with ``EINVAL`` rather than a reset: that is
    a lost connection, not a bad argument. Only a plain ``OSError`` raised in ``amqp.transport``.
    """
    if attr(exc, "errno") != errno.EINVAL:
        return None
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    if tb.tb_frame.f_globals.get("__name__") != "amqp.transport":
        return None
    return hit(CODE, NET, "py-amqp: EINVAL setting options on a socket the peer closed", "amqp_socket")


# Classes with no reply code to read: (module prefix, class name) -> verdict.
_CLASSES: dict[tuple[str, str], tuple[int, ErrorCategory, str]] = {
    ("pika", "ProbableAuthenticationError"): (CLASS, PERM, "login refused (ACCESS_REFUSED)"),
    ("pika", "ProbableAccessDeniedError"): (CLASS, PERM, "vhost missing or access denied (NOT_ALLOWED)"),
    ("pika", "AuthenticationError"): (CLASS, PERM, "no common authentication mechanism"),
    ("pika", "ConnectionWrongStateError"): (CLASS, PERM, "the connection is already closed"),
    ("pika", "ChannelWrongStateError"): (CLASS, PERM, "the channel is already closed"),
    ("pika", "DuplicateConsumerTag"): (CLASS, PERM, "consumer tag in use"),
    ("pika", "UnroutableError"): (CLASS, PERM, "mandatory message returned unroutable"),
    ("pika", "NackError"): (CLASS, TEMP, "the broker nacked the message"),
    ("pika", "ConnectionBlockedTimeout"): (CLASS, TEMP, "the broker blocked publishing (resource alarm)"),
    ("pika", "AMQPConnectionError"): (GENERIC, NET, "connection failed or lost"),
    ("amqp", "ConnectionError"): (GENERIC, NET, "connection failed or lost"),
    ("amqp", "RecoverableConnectionError"): (GENERIC, NET, "connection lost"),
    ("amqp", "Blocked"): (CLASS, TEMP, "the broker blocked the connection (resource alarm)"),
    ("amqp", "MessageNacked"): (CLASS, TEMP, "the broker nacked the message"),
    ("kombu", "OperationalError"): (GENERIC, NET, "kombu: recoverable transport error"),
    ("kombu", "DecodeError"): (CLASS, DATA, "message body cannot be decoded"),
    ("kombu", "EncodeError"): (CLASS, DATA, "message body cannot be encoded"),
    ("kombu", "ContentDisallowed"): (CLASS, PERM, "serializer not accepted"),
    ("aiormq", "ProbableAuthenticationError"): (CLASS, PERM, "login refused (ACCESS_REFUSED)"),
    ("aiormq", "AuthenticationError"): (CLASS, PERM, "no common authentication mechanism"),
    ("aiormq", "ChannelInvalidStateError"): (CLASS, PERM, "the channel is already closed"),
    ("aiormq", "DuplicateConsumerTag"): (CLASS, PERM, "consumer tag in use"),
    ("aiormq", "AMQPConnectionError"): (GENERIC, NET, "connection failed or lost"),
    ("aiormq", "InvalidFrameError"): (GENERIC, NET, "garbled frame from the broker"),
}


def static(cls: type) -> Hit | None:
    """AMQP client classes that carry no reply code."""
    return by_class(_CLASSES, cls, "amqp")


DYNAMIC = (reply_code, open_refused)
OS_ERROR = (socket_setup,)
"""Readers for a plain ``OSError`` (its class says nothing of where it came from)."""
