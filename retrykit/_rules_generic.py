"""
Generic signals: what any client library's exception conventionally carries, for the libraries
retrykit has no rules for.

Read only from links whose class no rule family recognises (so the errors of known libraries are
decided, and cost, exactly as before), in the classifier's usual precedence:

- **protocol codes** (tier ``CODE``): the reply code of a text protocol (SMTP, LMTP, FTP, NNTP:
  RFC 5321 §4.2.1, RFC 959 §4.2: ``4yz`` transient, ``5yz`` permanent) from ``smtp_code``,
  ``code``, ``reply_code``, ``errcode``, ``rc``, the first argument or the message's first three
  digits, and the refused recipients' codes; a WebSocket close code (RFC 6455 §7.4, IANA) from
  the close frames received or sent; an MQTT CONNACK or MQTT 5 reason code; an HTTP status kept as
  ``errcode`` next to a URL or headers;
- **an errno written in the message** (tier ``GENERIC``), when a library reports a socket error
  as text (``[Errno 111]``, ``ECONNREFUSED``), and an ``OSError`` hidden behind ``raise ... from
  None`` (see ``hidden_cause``);
- **words of the class names** (tier ``WRAPPER``), the class's own and its bases': ``Auth``,
  ``Permission``, ``Forbidden``, ``NotFound``/``NoSuch``, ``Invalid``, ``TooLarge``/``Payload``,
  ``Timeout``, ``Refused``, ``Reset``, ``Unavailable``, ``Closed``...;
- **words of the message** (tier ``WRAPPER``, read after the class names): "not authorized",
  "no such", "too large", "timed out", "connection refused", "try again"...

Every verdict's reason names the attribute, code or word that matched; ``explain()`` shows it.
No signal raises: attributes are read through ``attr`` (properties that raise count as absent),
only values of the expected type are used, and messages are read once, bounded, through ``text``.
"""

from __future__ import annotations

import errno
import re
from typing import Any

from ._categories import (
    CODE,
    DATA,
    GENERIC,
    NET,
    PERM,
    RATE,
    TEMP,
    WRAPPER,
    ErrorCategory,
    Hit,
    attr,
    hit,
    module_of,
)
from ._rules_http import status_category
from ._rules_std import ERRNO

MESSAGE_LIMIT = 2000
"""Characters of a message the word signals read (a huge message costs no more than this)."""


def text(exc: BaseException) -> str:
    """``str(exc)`` cut to ``MESSAGE_LIMIT``; ``""`` when ``__str__`` raises or returns a non-str."""
    try:
        value = str(exc)
    except Exception:
        return ""
    return value[:MESSAGE_LIMIT] if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ------------------------------------------------------------------ class-name words

_SPLIT = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def words_of(name: str) -> str:
    """``"MemcacheUnexpectedCloseError"`` -> ``" memcache unexpected close error "``."""
    return " " + " ".join(w.lower() for w in _SPLIT.findall(name)) + " "


# (pattern on the spaced lower-case words, category, what it means); the first that matches wins,
# so the more specific phrases come first.
_NAME_WORDS: tuple[tuple[re.Pattern[str], ErrorCategory, str], ...] = tuple(
    (re.compile(pattern), category, why)
    for pattern, category, why in (
        (r" (throttl\w*|rate limit\w*|too many requests|quota\w*) ", RATE, "a rate limit"),
        (
            r" unexpected close | disconnect\w* | connection (lost|reset|refused|aborted) ",
            NET,
            "a lost connection",
        ),
        (r" no servers? ", NET, "no server reachable"),
        (r" (timeout|timed out|time out) ", NET, "a timeout"),
        (r" (refused|reset|unreachable|broken pipe|eof) ", NET, "a lost connection"),
        (
            r" (auth|authentication|authorization|authorisation|unauthori[sz]ed|unauthenticated|"
            r"credentials?|permission|permissions|forbidden|denied|access denied|not allowed|host key) ",
            PERM,
            "an authentication or permission refusal",
        ),
        (
            r" invalid (uri|url|state|config\w*|handshake|upgrade|origin|status|proxy) ",
            PERM,
            "a client misconfiguration",
        ),
        (r" (not found|no such|unknown command|missing) ", PERM, "something that does not exist"),
        (r" (not supported|unsupported|unimplemented|not implemented) ", PERM, "an unsupported operation"),
        (r" closed ", PERM, "an object used after it was closed"),
        (r" (too large|too big|too long|payload|oversized?|size exceeded) ", DATA, "input over a limit"),
        (
            r" (invalid|illegal|malformed|validation|bad (subject|header|request|data)|parse|decode) ",
            DATA,
            "bad input",
        ),
        (
            r" (unavailable|busy|overload\w*|try again|temp|temporary|transient) ",
            TEMP,
            "a transient condition",
        ),
        (r" (perm|permanent|fatal|proto|protocol) ", PERM, "a permanent or protocol failure"),
    )
)


def name_static(cls: type) -> Hit | None:
    """The first telling word in the names of *cls* and its bases (most derived first)."""
    for klass in cls.__mro__:
        if module_of(klass) == "builtins":
            continue
        spaced = words_of(klass.__name__)
        for pattern, category, why in _NAME_WORDS:
            found = pattern.search(spaced)
            if found is not None:
                word = found.group(0).strip()
                return hit(
                    WRAPPER,
                    category,
                    f"class name {klass.__name__} says {why} ({word!r})",
                    "class_name_words",
                )
    return None


# ------------------------------------------------------------------ message words

# (pattern, tier, category, what it means), first match wins: a phrase naming the programming
# mistake is as precise as a generic type (GENERIC); the others rank with class-name words.
_MESSAGE_WORDS: tuple[tuple[re.Pattern[str], int, ErrorCategory, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), tier, category, why)
    for pattern, tier, category, why in (
        (r"rate[ _-]?limit|too many requests|throttl", WRAPPER, RATE, "a rate limit"),
        (
            r"connect\(\) first|not yet connected|before connect",
            GENERIC,
            PERM,
            "a client used before connecting",
        ),
        (
            r"not authori[sz]ed|authori[sz]ation (violation|failed|required)|"
            r"authentication (failed|required)|"
            r"bad user ?name or password|invalid (credentials|password|username|token)|access denied|"
            r"permission denied|unauthori[sz]ed|forbidden|login incorrect|prohibited|"
            r"no authentication methods",
            WRAPPER,
            PERM,
            "an authentication or permission refusal",
        ),
        (
            r"connection (refused|reset|aborted|lost|closed)|unexpectedly closed|broken pipe|"
            r"no servers? available|empty response|not (currently )?connected|disconnected|"
            r"(unable|could not|failed) to connect",
            WRAPPER,
            NET,
            "a lost connection",
        ),
        (r"timed? ?out\b", WRAPPER, NET, "a timeout"),
        (
            r"too (large|big|long)|exceeds? (the )?(max|limit|size)|maximum payload|payload exceeded",
            WRAPPER,
            DATA,
            "input over a limit",
        ),
        (
            r"\bno such\b|\bnot found\b|does not exist|unknown (user|command|host|method)",
            WRAPPER,
            PERM,
            "something that does not exist",
        ),
        (r"\bnot supported\b|\bunsupported\b", WRAPPER, PERM, "an unsupported operation"),
        (
            r"try again|temporar|unavailable|\bbusy\b|overload|out of memory|queue (is )?full|queue size",
            WRAPPER,
            TEMP,
            "a transient condition",
        ),
        (
            r"\binvalid\b|\bmalformed\b|\billegal\b|cannot contain|\bbad (data|request|input|argument)",
            WRAPPER,
            DATA,
            "bad input",
        ),
    )
)


def message_words(exc: BaseException) -> Hit | None:
    """The first telling phrase in the message of an exception no other rule recognised."""
    message = text(exc)
    if not message:
        return None
    for pattern, tier, category, why in _MESSAGE_WORDS:
        found = pattern.search(message)
        if found is not None:
            return hit(tier, category, f"message says {why} ({found.group(0)!r})", "message_words")
    return None


# ------------------------------------------------------------------ errno in a message

_ERRNO_NUMBER = re.compile(r"\[Errno (\d{1,4})\]|\berrno[ =:]+(\d{1,4})\b", re.IGNORECASE)
_ERRNO_NAME = re.compile(r"\b(E[A-Z]{3,15})\b")


def errno_in_message(exc: BaseException) -> Hit | None:
    """An errno a library wrote into its message (``[Errno 111] ...``, ``ECONNREFUSED``)."""
    message = text(exc)
    if "rrno" not in message and " E" not in message and not message.startswith("E"):
        return None
    code: int | None = None
    found = _ERRNO_NUMBER.search(message)
    if found is not None:
        code = int(found.group(1) or found.group(2))
    else:
        for name in _ERRNO_NAME.findall(message):
            number = getattr(errno, name, None)
            if isinstance(number, int):
                code = number
                break
    category = ERRNO.get(code) if code is not None else None
    if code is None or category is None:
        return None
    name = errno.errorcode.get(code, str(code))
    return hit(GENERIC, category, f"errno {name} written in the message", "errno_in_message")


def hidden_cause(exc: BaseException) -> Hit | None:
    """
    An ``OSError`` with a known errno behind ``raise ... from None``.

    The classifier does not walk past ``from None``: the library chose to show its own error,
    and what it hid may be an internal detail (a retry it already made, a fallback it tried).
    But when that error carries no signal of its own, a hidden connection errno is better
    evidence than a class name: it is read here, at the generic tier, from this one link only.
    """
    if exc.__cause__ is not None or not exc.__suppress_context__:
        return None
    hidden = exc.__context__
    if not isinstance(hidden, OSError):
        return None
    code = _int(attr(hidden, "errno"))
    category = ERRNO.get(code) if code is not None else None
    if code is None or category is None:
        return None
    name = errno.errorcode.get(code, str(code))
    return hit(
        GENERIC,
        category,
        f"errno {name} of the {type(hidden).__name__} hidden by 'from None'",
        "hidden_cause",
    )


# ------------------------------------------------------------------ text-protocol reply codes

_TEXT_PROTOCOL = re.compile(r"smtp|lmtp|(?<!s)ftp|nntp", re.IGNORECASE)
_LEADING_CODE = re.compile(r"^\s*([1-5]\d\d)(?:[ -]|$)")
_CODE_ATTRS = ("smtp_code", "reply_code", "code", "errcode", "rc")


def speaks_text_protocol(cls: type) -> bool:
    """The class or a base comes from, or is named after, SMTP, LMTP, FTP or NNTP."""
    for klass in cls.__mro__:
        if module_of(klass) == "builtins":
            continue
        if _TEXT_PROTOCOL.search(module_of(klass)) or _TEXT_PROTOCOL.search(klass.__name__):
            return True
    return False


def reply_category(code: int, mail: bool) -> tuple[ErrorCategory, str]:
    """The category of a text protocol's reply code (RFC 5321 §4.2.1, RFC 959 §4.2)."""
    if 400 <= code <= 499:
        return TEMP, "transient negative reply"
    if code == 552 and mail:
        return DATA, "message exceeds the server's size limit"
    if 500 <= code <= 599:
        return PERM, "permanent negative reply"
    return PERM, "unexpected reply"


def _recipient_codes(exc: BaseException) -> list[int]:
    """Codes of refused recipients: smtplib's ``{addr: (code, msg)}``, aiosmtplib's list of errors."""
    recipients = attr(exc, "recipients")
    try:
        if isinstance(recipients, dict):
            values: Any = list(recipients.values())[:100]
        elif isinstance(recipients, (list, tuple)):
            values = recipients[:100]
        else:
            return []
        codes = []
        for value in values:
            code = _int(value[0]) if isinstance(value, tuple) and value else _int(attr(value, "code"))
            if code is not None:
                codes.append(code)
    except Exception:  # a container subclass that raises: no codes to read
        return []
    return codes


def reply_code(exc: BaseException) -> Hit | None:
    """The reply code an SMTP/LMTP/FTP/NNTP client's exception carries."""
    code: int | None = None
    source = ""
    codes = _recipient_codes(exc)
    if codes:
        code, source = max(codes), "recipients"  # a 5yz for any recipient repeats for it
    if code is None:
        for name in _CODE_ATTRS:
            code = _int(attr(exc, name))
            if code is not None:
                source = name
                break
    if code is None:
        args = attr(exc, "args")
        if isinstance(args, tuple) and args and _int(args[0]) is not None:
            code, source = args[0], "args[0]"
    if code is None:
        found = _LEADING_CODE.match(text(exc))
        if found is not None:
            code, source = int(found.group(1)), "message"
    if code is None or not 100 <= code <= 599:
        return None
    mail = bool(re.search(r"smtp|lmtp", module_of(type(exc)) + type(exc).__name__, re.IGNORECASE))
    category, why = reply_category(code, mail)
    return hit(CODE, category, f"reply code {code} ({source}): {why}", "reply_code")


# ------------------------------------------------------------------ WebSocket close codes

# RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number Registry".
CLOSE_CODES: dict[int, tuple[ErrorCategory, str]] = {
    1000: (NET, "normal closure by the peer"),
    1001: (NET, "going away"),
    1002: (PERM, "protocol error"),
    1003: (DATA, "unsupported data"),
    1005: (NET, "no status received"),
    1006: (NET, "abnormal closure"),
    1007: (DATA, "invalid frame payload data"),
    1008: (PERM, "policy violation"),
    1009: (DATA, "message too big"),
    1010: (PERM, "mandatory extension missing"),
    1011: (TEMP, "internal server error"),
    1012: (TEMP, "service restart"),
    1013: (TEMP, "try again later"),
    1014: (TEMP, "bad gateway"),
    1015: (PERM, "TLS handshake failed"),
    3000: (PERM, "unauthorized"),
    3003: (PERM, "forbidden"),
    3008: (NET, "timeout"),
}


def close_code(exc: BaseException) -> Hit | None:
    """
    A WebSocket close code: the peer's close frame (``rcvd``), else ours (``sent``), else a
    ``close_code``. A connection we closed ourselves (we sent 1000 first) was used after closing.
    """
    rcvd, sent = attr(exc, "rcvd"), attr(exc, "sent")
    if rcvd is None and sent is None:
        code = _int(attr(exc, "close_code"))
        if code is None:
            if not _has(exc, "rcvd") and not _has(exc, "sent"):
                return None
            code = 1006  # the connection dropped without a close frame either way
        side = "close_code"
    else:
        rcvd_code, sent_code = _int(attr(rcvd, "code")), _int(attr(sent, "code"))
        if sent_code == 1000 and attr(exc, "rcvd_then_sent") is False:
            return hit(
                CODE, PERM, "close code 1000 sent by this side first: used after it was closed", "close_code"
            )
        code = rcvd_code if rcvd_code is not None else sent_code
        side = "received" if rcvd_code is not None else "sent"
    if code is None:
        return None
    known = CLOSE_CODES.get(code)
    if known is None:
        return None
    category, why = known
    return hit(CODE, category, f"WebSocket close code {code} {side}: {why}", "close_code")


def _has(obj: Any, name: str) -> bool:
    try:
        return hasattr(obj, name)
    except Exception:
        return False


# ------------------------------------------------------------------ MQTT connect and disconnect codes

# MQTT 3.1.1 §3.2.2.3 (CONNACK return codes 1-5) and MQTT 5 §2.4 (reason codes 0x80 and up).
MQTT_CODES: dict[int, tuple[ErrorCategory, str]] = {
    1: (PERM, "unacceptable protocol version"),
    2: (PERM, "client identifier rejected"),
    3: (TEMP, "server unavailable"),
    4: (PERM, "bad user name or password"),
    5: (PERM, "not authorized"),
    0x81: (DATA, "malformed packet"),
    0x82: (PERM, "protocol error"),
    0x84: (PERM, "unsupported protocol version"),
    0x85: (PERM, "client identifier not valid"),
    0x86: (PERM, "bad user name or password"),
    0x87: (PERM, "not authorized"),
    0x88: (TEMP, "server unavailable"),
    0x89: (TEMP, "server busy"),
    0x8A: (PERM, "banned"),
    0x8C: (PERM, "bad authentication method"),
    0x8D: (NET, "keep alive timeout"),
    0x8E: (NET, "session taken over"),
    0x90: (DATA, "topic name invalid"),
    0x95: (DATA, "packet too large"),
    0x97: (RATE, "quota exceeded"),
    0x9C: (TEMP, "use another server"),
    0x9D: (PERM, "server moved"),
    0x9F: (RATE, "connection rate exceeded"),
}
_MQTT = re.compile(r"mqtt", re.IGNORECASE)


def speaks_mqtt(cls: type) -> bool:
    """The class or a base comes from, or is named after, MQTT."""
    return any(
        _MQTT.search(module_of(k)) or _MQTT.search(k.__name__)
        for k in cls.__mro__
        if module_of(k) != "builtins"
    )


def mqtt_code(exc: BaseException) -> Hit | None:
    """An MQTT CONNACK return code or MQTT 5 reason code (``rc``, ``reason_code``; an int or ``.value``)."""
    for name in ("rc", "reason_code", "return_code"):
        raw = attr(exc, name)
        code = _int(raw)
        if code is None and raw is not None:
            code = _int(attr(raw, "value"))
        if code is not None:
            known = MQTT_CODES.get(code)
            if known is None:
                return None
            category, why = known
            return hit(CODE, category, f"MQTT code {code} ({name}): {why}", "mqtt_code")
    return None


# ------------------------------------------------------------------ HTTP status as errcode


def errcode_status(exc: BaseException) -> Hit | None:
    """An HTTP status kept as ``errcode`` next to a URL or headers (``xmlrpc.client.ProtocolError``)."""
    code = _int(attr(exc, "errcode"))
    if code is None or not 100 <= code <= 599 or (attr(exc, "url") is None and attr(exc, "headers") is None):
        return None
    return hit(CODE, status_category(code), f"HTTP {code} (errcode)", "http_status")


# ------------------------------------------------------------------ the plan


def readers(cls: type) -> tuple[Any, ...]:
    """The dynamic readers for a class no family recognises, cheapest and most specific first."""
    found: list[Any] = []
    if speaks_text_protocol(cls):
        found.append(reply_code)
    if speaks_mqtt(cls):
        found.append(mqtt_code)
    found.extend((close_code, errcode_status))
    return tuple(found)


FALLBACK: tuple[Any, ...] = (errno_in_message, hidden_cause, message_words)
"""Read from every link only when no other signal in the chain spoke (or only class-name words)."""
WEAK = frozenset({"class_name_words"})
"""Rules whose verdict the fallback signals may still override with a stronger tier."""
