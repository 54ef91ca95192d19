"""The admin pages' pure parts: escaping, the page language, session records, and what the
queue pages say about a message (state, next steps), without a server."""

from __future__ import annotations

from dataclasses import replace

import pytest

from todoku.queue.schedule import Schedule
from todoku.store.api import QueueEntry, QueueRecipient
from todoku.web import queueview
from todoku.web.html import Markup, choose_lang, esc, h
from todoku.web.sessions import Sessions, same_token

NOW = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_values_are_escaped_and_markup_is_not() -> None:
    page = h('<a title="$t">$body</a>', t='" onmouseover="x', body=["<b>", Markup("<i>ok</i>")])
    assert page == '<a title="&quot; onmouseover=&quot;x">&lt;b&gt;<i>ok</i></a>'
    assert esc(None) == "" and esc(3) == "3"
    with pytest.raises(KeyError):
        h("$missing")


@pytest.mark.parametrize(
    ("query", "cookie", "header", "chosen"),
    [
        (None, None, "", "en"),
        (None, None, "ja,en;q=0.8", "ja"),
        (None, None, "ja-JP", "ja"),
        (None, None, "fr, ja;q=0.3, en;q=0.5", "en"),
        (None, None, "ja;q=0, en", "en"),
        (None, None, "ja;q=abc, en;q=0.1", "en"),
        (None, "ja", "en", "ja"),
        ("en", "ja", "ja", "en"),
        ("xx", None, "ja", "ja"),
        (None, None, "x" * 10_000 + ", ja", "en"),  # only the first 512 octets are read
    ],
)
def test_page_language(query: str | None, cookie: str | None, header: str, chosen: str) -> None:
    assert choose_lang(query, cookie, header) == chosen


def test_sessions_end_idle_at_their_lifetime_and_at_logout() -> None:
    clock = Clock()
    sessions = Sessions(idle=60, lifetime=300, clock=clock)
    cookie, record = sessions.create("a@example.test", "hash")
    assert sessions.get(cookie) is record
    for _ in range(6):  # active all along: the idle time restarts, the lifetime does not
        clock.now += 50
        found = sessions.get(cookie)
    assert found is None
    cookie, _ = sessions.create("a@example.test", "hash")
    clock.now += 61
    assert sessions.get(cookie) is None
    cookie, _ = sessions.create("a@example.test", "hash")
    assert sessions.end(cookie) is not None and sessions.get(cookie) is None
    assert sessions.get(None) is None and sessions.get("x" * 1000) is None


def test_sessions_are_bounded_and_end_per_user() -> None:
    clock = Clock()
    sessions = Sessions(max_sessions=3, clock=clock)
    cookies = []
    for n in range(4):
        clock.now += 1
        cookies.append(sessions.create(f"u{n % 2}@example.test", "hash")[0])
    assert sessions.count() == 3
    assert sessions.get(cookies[0]) is None  # the one idle longest made room
    assert sessions.end_user("u1@example.test") == 2
    assert sessions.count() == 1


def test_tokens_compare_only_when_equal() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abd", "abc")
    assert not same_token("", "abc") and not same_token(None, "abc")
    assert not same_token("é", "abc")


def entry(**changes: object) -> QueueEntry:
    base = QueueEntry(
        id="Q1",
        blob_id="Q1",
        sender="a@example.test",
        size=100,
        received_at=NOW,
        next_attempt=NOW + 600,
        attempts=1,
        held=False,
        envid=None,
        ret=None,
        smtputf8=False,
        last_error="",
        recipients=(
            QueueRecipient(
                "b@remote.test",
                None,
                (),
                "pending",
                "451 4.7.1 try later",
                phase="rcpt",
                code=451,
                enhanced="4.7.1",
                reason="blocked",
                updated_at=NOW,
            ),
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


SCHEDULE = Schedule(retry=(600.0,), delay_warning=4 * 3600.0, max_lifetime=5 * 86400.0)


def test_next_steps_of_a_deferred_message() -> None:
    steps = queueview.next_steps(entry(), SCHEDULE, NOW + 60, "en")
    assert steps[0] == "Next try at 1970-01-12 13:56:40 UTC (in 9 minutes)."
    assert "the sender is told that it is delayed" in steps[1]
    assert "1970-01-17 13:46:40 UTC" in steps[2] and "5 days after it arrived" in steps[2]


def test_next_steps_held_warned_and_finishing() -> None:
    held = queueview.next_steps(entry(held=True, delay_warned=True), SCHEDULE, NOW, "ja")
    assert held[0].startswith("管理者が保留") and held[1] == "差出人には遅延を知らせました。"
    done = entry(recipients=(replace(entry().recipients[0], state="failed"),))
    assert queueview.state_of(done) == "finishing"
    assert queueview.next_steps(done, SCHEDULE, NOW, "en")[0].startswith("Every recipient")


def test_row_and_filters() -> None:
    row = queueview.row_of(entry(), NOW + 3600, "en")
    assert (row.state, row.reason, row.last_reply) == ("deferred", "blocked", "451 4.7.1 try later")
    assert row.cause  # the reason in plain words
    assert queueview.Filters(domain="remote.test").matches(entry())
    assert not queueview.Filters(domain="other.test").matches(entry())
    assert queueview.Filters(state="held").matches(entry(held=True))
    assert queueview.state_of(entry(attempts=0)) == "waiting"
