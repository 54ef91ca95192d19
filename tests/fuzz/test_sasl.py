"""Fuzz the SASL step machines (proto/sasl.py) that SMTP AUTH and POP3 AUTH share.

tests/proto/test_sasl.py round-trips PLAIN. These targets feed hostile responses to both
mechanisms: a response gives a ``Challenge`` or ``Credentials`` or raises ``SaslError``, nothing
else; PLAIN ends after one response and LOGIN after two; credentials are text with no NUL in a
PLAIN field and a non-empty PLAIN user name; and LOGIN gives back what the client sent.
"""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings
from todoku.proto import sasl

RESPONSE = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"\0", b"alice", b"\xff", b"\xc3\xa9", b"pw", b""]), max_size=6).map(
        b"".join
    ),
)


@fuzz_settings(4)
@given(
    mechanism=st.sampled_from(["PLAIN", "LOGIN", "plain", "Login"]),
    initial=st.one_of(st.none(), RESPONSE),
    responses=st.lists(RESPONSE, max_size=4),
)
def test_exchanges_end_with_credentials_or_a_sasl_error(
    mechanism: str, initial: bytes | None, responses: list[bytes]
) -> None:
    exchange = sasl.SaslExchange(mechanism)
    used = 0 if initial is None else 1
    try:
        step = exchange.start(initial)
        for response in responses:
            if isinstance(step, sasl.Credentials):
                break
            assert step.data in (b"", b"Username:", b"Password:")
            step = exchange.step(response)
            used += 1
    except sasl.SaslError:
        return
    needed = 1 if mechanism.upper() == "PLAIN" else 2  # responses before the credentials
    if isinstance(step, sasl.Challenge):
        assert used < needed, f"{mechanism} still asking after {used} responses"
        return
    assert used == needed
    assert step.mechanism == mechanism.upper()
    if step.mechanism == "PLAIN":
        assert step.username
        assert "\0" not in step.username + step.password + step.authzid


@fuzz_settings(4)
@given(text=st.text(max_size=60))
def test_decoding_a_response_gives_bytes_or_a_sasl_error(text: str) -> None:
    try:
        data = sasl.decode_response(text)
    except sasl.SaslError:
        return
    assert isinstance(data, bytes)
    assert len(data) <= len(text)  # base64 only shrinks


@fuzz_settings(4)
@given(username=st.text(max_size=30), password=st.text(max_size=30))
def test_login_gives_back_what_the_client_sent(username: str, password: str) -> None:
    exchange = sasl.SaslExchange("LOGIN")
    assert exchange.start(None) == sasl.Challenge(b"Username:")
    step = exchange.step(sasl.decode_response(base64.b64encode(username.encode()).decode()))
    assert step == sasl.Challenge(b"Password:")
    step = exchange.step(sasl.decode_response(base64.b64encode(password.encode()).decode()))
    assert step == sasl.Credentials("LOGIN", username, password)
