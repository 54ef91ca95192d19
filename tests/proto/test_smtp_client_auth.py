"""The sans-I/O SMTP client's AUTH (RFC 4954) against the server core: bytes in, replies out,
no socket. The client refuses to send credentials before TLS."""

from __future__ import annotations

import pytest

from todoku.proto.errors import LocalProtocolError
from todoku.proto.smtp import client as proto
from todoku.proto.smtp import codes
from todoku.proto.smtp.client import ClientConnection, ReplyEvent
from todoku.proto.smtp.events import NEED_DATA, AuthRequest
from todoku.proto.smtp.server import ServerConnection, SessionSettings


class Pair:
    """A client core and a server core joined by a fake link; the server starts encrypted."""

    def __init__(self) -> None:
        self.server = ServerConnection(
            SessionSettings("relay.test", tls_active=True, auth_enabled=True)
        )
        self.client = ClientConnection(tls=True)
        self.requests: list[AuthRequest] = []

    def exchange(self, data: bytes, accept: str = "") -> ReplyEvent:
        self.server.receive_data(data)
        while (event := self.server.next_event()) is not NEED_DATA:
            if isinstance(event, AuthRequest):
                self.requests.append(event)
                self.server.reply(codes.AUTH_OK if event.password == accept else codes.AUTH_INVALID)
        self.client.receive_data(self.server.data_to_send())
        reply = self.client.next_event()
        assert isinstance(reply, ReplyEvent)
        return reply

    def greeted(self) -> Pair:
        self.client.receive_data(self.server.data_to_send())
        assert isinstance(self.client.next_event(), ReplyEvent)
        self.exchange(self.client.ehlo("client.test"))
        return self


def test_plain_with_an_initial_response() -> None:
    pair = Pair().greeted()
    assert pair.client.auth_mechanisms == ("PLAIN", "LOGIN")
    line = pair.client.auth("plain", proto.plain_response("me@provider.test", "pässword"))
    assert line.startswith(b"AUTH PLAIN ") and b"p\xc3\xa4ssword" not in line
    event = pair.exchange(line, accept="pässword")
    assert (event.command, event.reply.code) == (proto.AUTH, 235)
    [request] = pair.requests
    assert (request.mechanism, request.username) == ("PLAIN", "me@provider.test")


def test_login_step_by_step_and_a_refusal() -> None:
    pair = Pair().greeted()
    event = pair.exchange(pair.client.auth("LOGIN"))
    assert event.reply.code == 334
    event = pair.exchange(pair.client.auth_response(b"me@provider.test"))
    assert event.reply.code == 334
    event = pair.exchange(pair.client.auth_response(b"wrong"), accept="right")
    assert (event.command, event.reply.code, event.reply.enhanced) == (proto.AUTH, 535, "5.7.8")
    assert pair.requests[0].username == "me@provider.test"


def test_cancel_after_a_challenge() -> None:
    pair = Pair().greeted()
    assert pair.exchange(pair.client.auth("LOGIN")).reply.code == 334
    event = pair.exchange(pair.client.auth_cancel())
    assert event.reply.code == 501 and pair.requests == []


def test_empty_initial_response_is_an_equals_sign() -> None:
    assert ClientConnection(tls=True).auth("PLAIN", b"") == b"AUTH PLAIN =\r\n"


def test_no_credentials_before_tls() -> None:
    client = ClientConnection()
    with pytest.raises(LocalProtocolError, match="AUTH before TLS"):
        client.auth("PLAIN", proto.plain_response("me", "secret"))
    with pytest.raises(LocalProtocolError, match="AUTH before TLS"):
        client.auth_response(b"secret")
    assert client.outstanding == 1  # only the greeting: nothing was queued
