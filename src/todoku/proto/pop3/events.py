"""Events the POP3 server core hands to its driver.

*Decision* events wait for an answer before the core reads on:
- ``LoginRequest`` → ``accept_login(maildrop)`` or ``refuse(reply)``;
- ``Retrieve`` → ``begin_content()``, ``send_content(piece)``…, ``end_content()``, or ``refuse(reply)``;
- ``Update`` → ``finish_update(removed)`` or ``refuse(reply)``.
The others are information: the core has already answered them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class MaildropEntry:
    """One message as the session sees it; ``key`` is the driver's own id for it (a row id)."""

    key: int
    size: int  # octets RETR sends before byte-stuffing (RFC 1939 §5 LIST/STAT)
    unique_id: str  # RFC 1939 §7: 1 to 70 characters in 0x21..0x7E, stable for the message's life


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """*Decision.* Check the credentials, then open and lock the maildrop."""

    mechanism: str  # "USER" for USER/PASS, else the SASL mechanism
    username: str
    password: str = field(repr=False)
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class Retrieve:
    """*Decision.* Send message ``number`` (1-based); ``body_lines`` is None for RETR, n for TOP."""

    number: int
    entry: MaildropEntry
    body_lines: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """*Decision.* QUIT in TRANSACTION (RFC 1939 §6): remove these messages, then answer."""

    deleted: tuple[MaildropEntry, ...]
    remaining: int  # messages left in the maildrop afterwards


@dataclass(frozen=True, slots=True)
class StartTLS:
    """The +OK to STLS is queued: send it, wrap the connection in TLS, then call ``tls_started()``."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over. ``updated`` is True only after a completed UPDATE."""

    by_peer: bool
    updated: bool = False


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")  # feed more bytes with receive_data()
PAUSED = _Sentinel("PAUSED")  # waiting for tls_started()

Event = LoginRequest | Retrieve | Update | StartTLS | Closed
DECISIONS = (LoginRequest, Retrieve, Update)
