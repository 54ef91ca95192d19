"""Events that the SMTP server core hands to its driver.

Events marked *decision* wait for ``ServerConnection.reply()`` before the core reads further; the
core applies the reply's code to its state (2xx on MAIL opens a transaction, and so on). The other
events are information: the core has already answered them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from todoku.proto.smtp.address import Address


@dataclass(frozen=True, slots=True)
class Hello:
    """HELO or EHLO was answered; ``extended`` tells which."""

    name: str
    extended: bool


@dataclass(frozen=True, slots=True)
class MailFrom:
    """*Decision.* ``sender`` is None for the null reverse-path ``<>``."""

    sender: Address | None
    size: int | None = None
    body: str | None = None  # "7BIT" or "8BITMIME"
    smtputf8: bool = False
    ret: str | None = None  # RFC 3461 RET=FULL|HDRS
    envid: str | None = None  # RFC 3461 ENVID, decoded from xtext
    requiretls: bool = False  # RFC 8689 §4.1: onward delivery only over verified TLS


@dataclass(frozen=True, slots=True)
class RcptTo:
    """*Decision.*"""

    recipient: Address
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY values, upper-case
    orcpt: str | None = None  # "rfc822;addr", decoded from xtext


@dataclass(frozen=True, slots=True)
class DataCommand:
    """*Decision.* Reply START_DATA (354) to receive the content, or refuse.

    Asked for DATA and for the first BDAT of a transaction alike. For BDAT the 354 only means
    "go ahead" and is not sent (RFC 3030 has no 354); a refusal is sent as the answer to that
    BDAT, its octets are skipped and the transaction ends (a ``Reset`` follows).
    """


@dataclass(frozen=True, slots=True)
class DataChunk:
    """A piece of the message content, in order: line endings CRLF (bare CR or LF normalised),
    dot-unstuffed for DATA, taken as is (save line ends) for BDAT."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MessageTooBig:
    """The content passed the size limit; the core discards the rest and answers 552 at its end."""


@dataclass(frozen=True, slots=True)
class EndOfData:
    """*Decision.* The content is complete (after ``.`` or ``BDAT n LAST``); reply 250 only once
    it is on stable storage. ``size`` counts the octets passed on in ``DataChunk`` events."""

    size: int
    bare_newlines: int = 0  # bare CR or LF normalised to CRLF


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """*Decision.* Reply AUTH_OK (235) or refuse (535 / 454)."""

    mechanism: str
    username: str
    password: str = field(repr=False)
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class StartTLS:
    """The 220 is queued; send it, wrap the connection in TLS, then call ``tls_started()``."""


@dataclass(frozen=True, slots=True)
class Reset:
    """The transaction was dropped (RSET, HELO/EHLO, or a completed/failed DATA)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: after QUIT, after a 421, or when the peer closed the connection."""

    by_peer: bool


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")  # feed more bytes with receive_data()
PAUSED = _Sentinel("PAUSED")  # waiting for tls_started()

Event = (
    Hello
    | MailFrom
    | RcptTo
    | DataCommand
    | DataChunk
    | MessageTooBig
    | EndOfData
    | AuthRequest
    | StartTLS
    | Reset
    | Closed
)
DECISIONS = (MailFrom, RcptTo, DataCommand, EndOfData, AuthRequest)
