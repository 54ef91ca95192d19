"""Socket-free parts of ``todoku diagnose``: target parsing, texts, rendering and exit status."""

from __future__ import annotations

import json

import pytest

from todoku.diag.command import emit
from todoku.diag.report import FAIL, OK, TEXTS, WARN, Report, Step, reply_step
from todoku.diag.submission import parse_target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("smtp.example.com:587", ("smtp.example.com", 587)),
        ("[::1]:465", ("::1", 465)),
        ("127.0.0.1:25", ("127.0.0.1", 25)),
        ("smtp.example.com", None),
        (":587", None),
        ("host:0", None),
        ("host:70000", None),
        ("host:abc", None),
    ],
)
def test_parse_target(target: str, expected: tuple[str, int] | None) -> None:
    assert parse_target(target) == expected


def test_every_text_has_both_languages_with_the_same_placeholders() -> None:
    import string

    for key, (en, ja) in TEXTS.items():
        fields = [{name for _, name, _, _ in string.Formatter().parse(t) if name} for t in (en, ja)]
        assert fields[0] == fields[1], key
        assert en and ja and en != ja or key in ("label_verdict",), key


def test_reply_step_explains_relay_denied_via_the_bounce_analyzer() -> None:
    failed = reply_step(
        "rcpt",
        "en",
        554,
        "5.7.1",
        "<x@elsewhere.test>: Relay access denied",
        "rcpt",
        recipient="x@elsewhere.test",
    )
    assert failed.status == FAIL and failed.reason == "norelaying"
    assert "authentication" in failed.cause and "587" in failed.remedy


def test_render_and_exit_status() -> None:
    report = Report("address", "bob@remote.test", "en", verdict="v")
    report.add(Step("syntax", OK, "bob@remote.test"))
    report.add(Step("starttls", WARN, "not offered", "no TLS"))
    lines: list[str] = []
    assert emit(report, False, lines.append) == 0
    assert "[warn] STARTTLS: not offered" in lines[0] and "cause: no TLS" in lines[0]
    report.add(Step("rcpt", FAIL, "550", "gone", "fix it", "userunknown", 550, "5.1.1"))
    assert emit(report, True, lines.append) == 1
    data = json.loads(lines[1])
    assert (
        data["ok"] is False
        and data["failed_step"] == "rcpt"
        and data["steps"][2]["reply_code"] == 550
    )
