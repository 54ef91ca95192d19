"""The POP3 server core (RFC 1939, 2449, 2595, 3206, 5034): bytes in, typed events out.

``server.ServerConnection`` runs AUTHORIZATION → TRANSACTION → UPDATE; ``content.ContentEncoder``
turns stored message bytes into the dot-stuffed CRLF lines RETR and TOP send, piece by piece.
Invariant: stdlib only, no I/O; every decision (credentials, maildrop, content, deletion) is an
event the driver answers.
"""

from todoku.proto.pop3.content import ContentEncoder, EncodedMessage, encode_message
from todoku.proto.pop3.events import (
    NEED_DATA,
    PAUSED,
    Closed,
    LoginRequest,
    MaildropEntry,
    Retrieve,
    StartTLS,
    Update,
)
from todoku.proto.pop3.replies import Reply
from todoku.proto.pop3.server import ServerConnection, SessionSettings, State

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Closed",
    "ContentEncoder",
    "EncodedMessage",
    "LoginRequest",
    "MaildropEntry",
    "Reply",
    "Retrieve",
    "ServerConnection",
    "SessionSettings",
    "StartTLS",
    "State",
    "Update",
    "encode_message",
]
