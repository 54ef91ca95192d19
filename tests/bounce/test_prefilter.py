"""The literal-word prefilter (todoku.bounce.prefilter) never turns away a text a pattern matches.

It may only say "cannot match" when that is certain; every classification rule is checked on
sentences built from its own words, on real-looking reports and on arbitrary text.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.bounce.helpers import exim_text, postfix_dsn
from todoku.bounce.classify import knowledge_groups
from todoku.bounce.prefilter import might_match, required_words


@pytest.mark.parametrize(
    ("pattern", "needs"),
    [
        (r"user ?unknown|no such (user|mailbox)", (("no such ", "unknown"),)),
        (r"mailbox.{0,30}full", (("mailbox",), ("full",))),
        (
            r"(宛先|アドレス).{0,12}(存在しません|不明)",
            (("アドレス", "宛先"), ("存在しません", "不明")),
        ),
        (r"(?:spam){2,}x", (("spam",),)),
        (r"^\d{1,3}$", None),  # no word at all: always run the pattern
        (r"(abc|)def", (("def",),)),  # an empty alternative needs nothing
        (r"ab|cd", None),  # words too short to be worth a test
        (r"unknown|is unknown|unknown user|no such user", (("no such user", "unknown"),)),
    ],
)
def test_required_words(pattern: str, needs: tuple[tuple[str, ...], ...] | None) -> None:
    assert required_words(re.compile(pattern)) == needs


def test_case_insensitive_patterns_are_always_run() -> None:
    assert required_words(re.compile("unknown", re.IGNORECASE)) is None
    assert might_match(re.compile("unknown", re.IGNORECASE), "UNKNOWN")
    assert required_words(re.compile(r"a(?i:bcd)efg")) == (("efg",),)


REPORTS = [
    postfix_dsn(
        "a@example.org",
        "5.1.1",
        "550 5.1.1 <a@example.org>: Recipient address "
        "rejected: User unknown in local recipient table",
    )
    .decode()
    .lower(),
    postfix_dsn("b@example.org", "5.2.2", "552 5.2.2 Mailbox full, quota exceeded")
    .decode()
    .lower(),
    exim_text("c@example.org", "550 5.7.1 Message rejected as spam").decode().lower(),
    "the recipient's mailbox is full and can't accept messages now.",
    "宛先のアドレスは存在しません",
    "mailer prog died with signal 9",
    "127",
]


@pytest.mark.parametrize("text", REPORTS)
def test_sound_on_reports(text: str) -> None:
    for pattern in _patterns():
        if pattern.search(text):
            assert might_match(pattern, text), pattern.pattern


def _patterns() -> list[re.Pattern[str]]:
    return [phrase.pattern for group in knowledge_groups() for phrase in group.phrases]


def _words_of_rules() -> list[str]:
    words: set[str] = set()
    for pattern in _patterns():
        for need in required_words(pattern) or ():
            words.update(need)
    return sorted(words)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(_words_of_rules() + [" ", "5.1.1 ", "550 ", "<a@b>", "\n"]), max_size=12
    ),
    st.text(max_size=40),
)
def test_sound_on_generated_text(pieces: list[str], noise: str) -> None:
    text = (noise + "".join(pieces)).lower()
    for pattern in _patterns():
        if pattern.search(text):
            assert might_match(pattern, text), (pattern.pattern, text)


def test_listed_words_are_the_derived_words() -> None:
    """The written table (prefilter._LISTED) says for each pattern exactly what deriving its
    words says: reading the table instead can change no answer."""
    from todoku.bounce import prefilter

    assert prefilter._LISTED, "_prefilter_words.py is missing: python -m todoku.bounce.prefilter"
    for (text, flags), words in prefilter._LISTED.items():
        assert required_words(re.compile(text, flags)) == words, text


def test_a_pattern_not_in_the_table_has_its_words_derived() -> None:
    from todoku.bounce import prefilter

    pattern = re.compile(r"no table entry for this mailbox sentence")
    assert (pattern.pattern, pattern.flags) not in prefilter._LISTED
    assert not might_match(pattern, "a text about something else entirely")
    assert might_match(pattern, "... no table entry for this mailbox sentence ...")
