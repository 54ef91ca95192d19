"""The explanations say truthfully whether anything is still being retried (issue 13 item 3).

A reason's own texts serve a delay warning (the server keeps trying: send nothing) and a returned
message (nothing is retried) alike, so they must not say either; what the report's action and
hardness mean is said once by retry_note, in English and Japanese.
"""

from __future__ import annotations

import pytest

from tests.bounce.helpers import postfix_dsn
from todoku.bounce.analyze import analyze_bytes
from todoku.bounce.explain import REASONS, explain_reason, retry_note
from todoku.dsn.compose import human_text
from todoku.dsn.model import RecipientReport, Report, ReportKind

NOT_FAILURES = {"delivered", "vacation", "feedback", "notbounce"}
FAILURES = sorted(set(REASONS) - NOT_FAILURES - {"delayed"})
LANGS = ("en", "ja")

# Advice that assumes one of the two cases: "later" presumes nothing retries the message,
# "the server will try again" presumes something does.
RETRY_CLAIMS = {
    "en": (
        "try again later",
        "send again later",
        "send it again later",
        "will try again",
        "keeps trying",
        "usually temporary",
        "nothing to do yet",
        "then send again",
    ),
    "ja": (
        "時間をおいて送り直",
        "後で送り直",
        "しばらくしてから送り直",
        "再送を待",
        "多くは一時的",
    ),
}
STILL_RETRYING = {"en": "still retrying", "ja": "再送を自動で続けて"}
NO_NEED = {"en": "do not need to send it again", "ja": "送り直す必要はありません"}
RETURNED = {"en": "was returned", "ja": "返送され"}
FAILS_AGAIN = {"en": "would fail the same way", "ja": "同じ理由で失敗"}
SEND_AGAIN_YOURSELF = {"en": "send it again yourself", "ja": "ご自身で送り直して"}


def _both(reason: str, lang: str, action: str = "", hard: bool | None = None) -> str:
    """The cause and the remedy with what the action means, as a report prints them."""
    cause, remedy = explain_reason(reason, lang, recipient="bob@remote.test")
    return f"{cause} {remedy}{retry_note(reason, lang, action, hard)}".lower()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("reason", FAILURES)
def test_no_reason_text_assumes_a_retry_or_its_absence(reason: str, lang: str) -> None:
    text = _both(reason, lang)
    assert not [claim for claim in RETRY_CLAIMS[lang] if claim in text]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("reason", FAILURES)
def test_a_delayed_message_is_still_being_retried_and_needs_nothing(reason: str, lang: str) -> None:
    text = _both(reason, lang, action="delayed")
    assert STILL_RETRYING[lang] in text and NO_NEED[lang] in text
    assert RETURNED[lang] not in text
    assert SEND_AGAIN_YOURSELF[lang] not in text
    assert not [claim for claim in RETRY_CLAIMS[lang] if claim in text]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("reason", FAILURES)
def test_a_returned_message_is_never_said_to_be_retried(reason: str, lang: str) -> None:
    for hard in (None, True, False):
        text = _both(reason, lang, action="failed", hard=hard)
        assert RETURNED[lang] in text
        assert STILL_RETRYING[lang] not in text and NO_NEED[lang] not in text
        assert (FAILS_AGAIN[lang] in text) is (hard is True)
        assert (SEND_AGAIN_YOURSELF[lang] in text) is (hard is False)


@pytest.mark.parametrize("lang", LANGS)
def test_reports_that_are_not_failures_say_nothing_about_retrying(lang: str) -> None:
    for reason in NOT_FAILURES:
        for action in ("delayed", "failed"):
            text = _both(reason, lang, action=action, hard=True)
            assert STILL_RETRYING[lang] not in text and RETURNED[lang] not in text


@pytest.mark.parametrize("lang", LANGS)
def test_the_mx_loop_bounce_is_not_called_temporary(lang: str) -> None:
    """todoku's own MX-loop bounce: 5.4.6, Action: failed. Sending it again fails the same way."""
    text = _both("networkerror", lang, action="failed", hard=True)
    assert "temporary" not in text and "一時的" not in text
    assert FAILS_AGAIN[lang] in text
    loop = postfix_dsn(
        "bob@remote.test", "5.4.6", "550 5.4.6 mail for remote.test loops back to myself"
    )
    [diagnosis] = analyze_bytes(loop, lang=lang, explain=True)
    assert diagnosis.permanent
    said = f"{diagnosis.cause} {diagnosis.remedy}".lower()
    assert not [claim for claim in RETRY_CLAIMS[lang] if claim in said]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("reason", ["toomanyconn", "networkerror", "mailboxfull", "blocked"])
def test_our_delay_warning_does_not_also_say_try_again_later(reason: str, lang: str) -> None:
    """The warning's introduction says the message need not be sent again; the recipient's
    paragraph must not then tell the sender to send it again later."""
    report = Report(
        kind=ReportKind.DELAY,
        reporting_mta="mx.example.test",
        to="alice@example.test",
        queue_id="Q1",
        arrival_date=1_700_000_000.0,
        original=b"",
        headers_only=True,
        lang=lang,
        elapsed=4 * 3600.0,
        lifetime=5 * 86400.0,
        recipients=(
            RecipientReport(
                final_recipient="bob@remote.test",
                original_recipient=None,
                action="delayed",
                status="4.4.1",
                remote_mta="mx1.remote.test",
                reason=reason,
            ),
        ),
    )
    text = human_text(report).lower()
    assert NO_NEED[lang] in text
    said = text.split("<bob@remote.test>:", 1)[1]
    assert not [claim for claim in RETRY_CLAIMS[lang] if claim in said]
