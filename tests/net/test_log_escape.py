"""Log injection (issue 12, finding 10): whatever a client puts in a logged value, the real server
writes one log line for it, with the control characters escaped."""

from __future__ import annotations

import base64
import logging
import smtplib
import socket

import pytest

from tests.conftest import TodokuServer, client_tls_context

FORGED = "2026-01-01T00:00:00.000Z todoku.smtp: submission[000001]: AUTH PLAIN user=root ok"


def plain_token(user: str, password: str = "wrong") -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_auth_user_name_with_crlf_is_one_log_line(server: TodokuServer) -> None:
    user = f"mallory\r\n{FORGED}\x1b[2K"
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.ehlo("client.example.test")
        code, _ = client.docmd("AUTH", f"PLAIN {plain_token(user)}")
        assert code == 535
    raw = socket.create_connection(("127.0.0.1", server.ports["pop3s"]), timeout=15)
    with client_tls_context().wrap_socket(raw) as pop3, pop3.makefile("rb") as replies:
        assert replies.readline().startswith(b"+OK")
        pop3.sendall(f"AUTH PLAIN {plain_token('pop' + user)}\r\n".encode())
        assert replies.readline().startswith(b"-ERR [AUTH]")
    lines = server.log().splitlines()
    assert not any(line.lower().startswith("2026-01-01t") for line in lines)
    smtp_lines = [line for line in lines if "user=mallory" in line]
    pop3_lines = [line for line in lines if "user=popmallory" in line]
    assert len(smtp_lines) == 1 and len(pop3_lines) == 1, lines
    for line in smtp_lines + pop3_lines:
        assert "\\x0d\\x0a" + FORGED.lower() + "\\x1b[2k failed" in line
        assert "\r" not in line and "\x1b" not in line


def test_escape_controls_leaves_printable_text_alone() -> None:
    from todoku.log import escape_controls

    assert escape_controls("user=élise@例え.jp ok") == "user=élise@例え.jp ok"
    assert escape_controls("a\tb\x00c\x7fd\x85e\u2028f") == "a\\x09b\\x00c\\x7fd\\x85e\\u2028f"


def test_traceback_lines_cannot_pass_for_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from todoku.log import setup_logging

    root = logging.getLogger("todoku")
    saved = (root.handlers[:], root.level, root.propagate)
    setup_logging("info")  # a handler on the sys.stderr that capsys put in place
    try:
        try:
            raise ValueError(f"bad header\r\n{FORGED}")
        except ValueError:
            logging.getLogger("todoku.test").exception("composing failed")
    finally:
        root.handlers[:], root.level, root.propagate = saved
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].endswith("todoku.test: composing failed")
    assert len(lines) > 2 and all(line.startswith("  ") for line in lines[1:])
    assert "bad header\\x0d" in err
