"""REQUIRETLS (RFC 8689) in the SMTP cores: offered and accepted on authenticated submission over
TLS only, refused everywhere else; passed on by the client only to a server offering it on TLS."""

from __future__ import annotations

import base64
from dataclasses import replace

from todoku.proto.smtp.client import ClientConnection
from todoku.proto.smtp.events import MailFrom

from .test_smtp_server import MX, PASSWORD, SUBMISSION, Driver, codes_of, ready, replies

SUBMISSION_RT = replace(SUBMISSION, requiretls=True)
PLAIN = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode()


def logged_in() -> Driver:
    driver = ready(replace(SUBMISSION_RT, tls_active=True))
    out = driver.feed(f"AUTH PLAIN {PLAIN}\r\n".encode())
    assert codes_of(out) == ["235 2.7.0"]
    return driver


def ehlo_keywords(driver: Driver) -> list[str]:
    return replies(driver.feed(b"EHLO c.test\r\n"))[0].split(" | ")[1:]


def test_requiretls_is_offered_on_submission_only_once_tls_is_on() -> None:
    driver = ready(SUBMISSION_RT)
    assert "REQUIRETLS" not in ehlo_keywords(driver)  # RFC 8689 §2: TLS sessions only
    driver.feed(b"STARTTLS\r\n")
    driver.conn.tls_started()
    assert "REQUIRETLS" in ehlo_keywords(driver)
    # Port 25 and a listener without the setting never offer it.
    assert "REQUIRETLS" not in ehlo_keywords(ready(replace(MX, tls_active=True)))
    assert "REQUIRETLS" not in ehlo_keywords(ready(replace(SUBMISSION, tls_active=True)))


def test_mail_requiretls_is_accepted_after_login_and_tags_the_transaction() -> None:
    driver = logged_in()
    out = driver.feed(b"MAIL FROM:<alice@example.test> REQUIRETLS\r\n")
    assert codes_of(out) == ["250 2.1.0"]
    assert driver.of(MailFrom)[-1].requiretls is True
    driver.feed(b"RSET\r\nMAIL FROM:<alice@example.test>\r\n")
    assert driver.of(MailFrom)[-1].requiretls is False


def test_requiretls_with_a_value_is_a_syntax_error() -> None:
    driver = logged_in()
    out = driver.feed(b"MAIL FROM:<alice@example.test> REQUIRETLS=YES\r\n")
    assert replies(out) == ["501 5.5.4 REQUIRETLS takes no value"]
    assert driver.of(MailFrom) == []


def test_requiretls_is_an_unknown_option_where_it_is_not_offered() -> None:
    for settings in (MX, replace(MX, tls_active=True), replace(SUBMISSION, tls_active=True)):
        driver = ready(settings)
        if settings.auth_enabled:
            driver.feed(f"AUTH PLAIN {PLAIN}\r\n".encode())
        out = driver.feed(b"MAIL FROM:<a@example.test> REQUIRETLS\r\n")
        assert replies(out) == ["555 5.5.4 Unsupported option: REQUIRETLS"]
        assert driver.of(MailFrom) == []


def test_requiretls_without_login_is_refused() -> None:
    # A listener that offers it without requiring a login: still only for logged-in senders.
    driver = ready(replace(SUBMISSION_RT, tls_active=True, require_auth=False))
    out = driver.feed(b"MAIL FROM:<a@example.test> REQUIRETLS\r\n")
    assert replies(out) == ["530 5.7.0 Authentication required"]
    assert driver.of(MailFrom) == []


def client_after_ehlo(keywords: list[str], *, tls: bool) -> ClientConnection:
    conn = ClientConnection(tls=tls)
    conn.receive_data(b"220 mx.example.test ESMTP\r\n")
    conn.next_event()
    conn.ehlo("client.example.test")
    lines = ["mx.example.test", *keywords]
    reply = "".join(
        f"250{' ' if i == len(lines) - 1 else '-'}{line}\r\n" for i, line in enumerate(lines)
    )
    conn.receive_data(reply.encode())
    conn.next_event()
    return conn


def test_client_passes_requiretls_only_when_offered_on_tls() -> None:
    offered = client_after_ehlo(["REQUIRETLS", "DSN"], tls=True)
    assert offered.mail("a@example.test", requiretls=True) == (
        b"MAIL FROM:<a@example.test> REQUIRETLS\r\n"
    )
    assert client_after_ehlo(["DSN"], tls=True).mail("a@example.test", requiretls=True) == (
        b"MAIL FROM:<a@example.test>\r\n"
    )
    # Offered without TLS (a man in the middle could add it): never sent in clear.
    clear = client_after_ehlo(["REQUIRETLS"], tls=False)
    assert clear.mail("a@example.test", requiretls=True) == b"MAIL FROM:<a@example.test>\r\n"
    assert client_after_ehlo(["REQUIRETLS"], tls=True).mail("a@example.test") == (
        b"MAIL FROM:<a@example.test>\r\n"
    )
