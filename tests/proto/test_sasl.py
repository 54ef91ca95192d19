"""SASL PLAIN and LOGIN step machines, shared by SMTP and POP3."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from todoku.proto import sasl


def test_plain_with_initial_response() -> None:
    step = sasl.SaslExchange("plain").start(b"admin\0alice\0pw")
    assert step == sasl.Credentials("PLAIN", "alice", "pw", "admin")


def test_plain_without_initial_response_asks_with_empty_challenge() -> None:
    exchange = sasl.SaslExchange("PLAIN")
    assert exchange.start(None) == sasl.Challenge(b"")
    assert exchange.step(b"\0alice\0pw") == sasl.Credentials("PLAIN", "alice", "pw", "")


def test_login_asks_username_then_password() -> None:
    exchange = sasl.SaslExchange("LOGIN")
    assert exchange.start(None) == sasl.Challenge(b"Username:")
    assert exchange.step("ålice".encode()) == sasl.Challenge(b"Password:")
    assert exchange.step(b"pw") == sasl.Credentials("LOGIN", "ålice", "pw")


@pytest.mark.parametrize("data", [b"alice\0pw", b"\0\0pw", b"a\0b\0c\0d", b"\0\xff\0pw", b""])
def test_bad_plain_messages(data: bytes) -> None:
    with pytest.raises(sasl.SaslError):
        sasl.SaslExchange("PLAIN").start(data)


def test_unknown_mechanism() -> None:
    with pytest.raises(sasl.SaslError):
        sasl.SaslExchange("CRAM-MD5")


def test_decode_response() -> None:
    assert sasl.decode_response("=") == b""
    assert sasl.decode_response(base64.b64encode(b"x\0y").decode()) == b"x\0y"
    for bad in ["***", "YQ", "YQ==YQ==", "é"]:
        with pytest.raises(sasl.SaslError):
            sasl.decode_response(bad)


@given(
    user=st.text(min_size=1).filter(lambda s: "\0" not in s),
    password=st.text().filter(lambda s: "\0" not in s),
)
def test_plain_round_trip(user: str, password: str) -> None:
    wire = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    step = sasl.SaslExchange("PLAIN").start(sasl.decode_response(wire))
    assert step == sasl.Credentials("PLAIN", user, password, "")
