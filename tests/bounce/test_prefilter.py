"""The words a pattern declares (knowledge.Phrase.words, prefilter.NEEDS) are really needed.

The classifier runs a regular expression only on a text holding one word of each group its
phrase declares: a declared word that a match can lack would silently lose that match. Each
pattern is checked on texts Hypothesis builds from the pattern itself (every one a match) and on
the corpus, and the words are checked to turn texts away at all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bounce.helpers import exim_text, postfix_dsn
from todoku.bounce import classify, extract, knowledge
from todoku.bounce.classify import _REGEX_SYNTAX, judge_reply, use_knowledge
from todoku.bounce.prefilter import NEEDS, Needs, might_match, passes

CORPUS = Path(os.environ.get("TODOKU_BOUNCE_CORPUS", "/work/shared/corpus/bounces"))


def _declared() -> list[tuple[str, Needs]]:
    """Every regular expression with the words it declares."""
    patterns = [
        (phrase.pattern, phrase.words)
        for group in knowledge.PHRASES
        for phrase in group.phrases
        if phrase.words
    ]
    return patterns + list(NEEDS.items())


DECLARED = _declared()


@pytest.mark.parametrize(("pattern", "needs"), DECLARED, ids=[p[:40] for p, _ in DECLARED])
def test_every_match_holds_the_declared_words(pattern: str, needs: Needs) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern, fullmatch=True))
    def check(match: str) -> None:
        assert passes(needs, match), (pattern, match)

    check()


def test_the_declared_words_are_well_formed() -> None:
    for group in knowledge.PHRASES:
        for phrase in group.phrases:
            regex = bool(_REGEX_SYNTAX.intersection(phrase.pattern))
            # Words only where there is a regular expression: a plain phrase is its own word.
            assert regex or not phrase.words, phrase.pattern
            for words in phrase.words:
                assert words and all(word and word == word.lower() for word in words), phrase
    # The analyzer's own patterns are declared under their exact text: one changed since
    # would silently lose its test.
    assert extract._PHASE_PHRASE_LOWER.pattern in NEEDS


def _corpus_texts() -> list[str]:
    texts = []
    for path in sorted((CORPUS / "maildir").rglob("*.eml")):
        bounce = extract.parse_bounce(path.read_bytes())
        texts += [bounce.text, bounce.subject]
        for evidence in bounce.evidence:
            texts += [evidence.diagnostic, evidence.context]
    return [" ".join(text.lower().split()) for text in texts if text]


def test_the_declared_words_hold_on_the_corpus() -> None:
    if not (CORPUS / "maildir").is_dir():
        pytest.skip("the bounce corpus is not on this machine")
    texts = _corpus_texts()
    matched = 0
    for pattern, needs in DECLARED:
        compiled = re.compile(pattern)
        for text in texts:
            if compiled.search(text):
                matched += 1
                assert passes(needs, text), (pattern, text[:200])
    assert matched > 100  # the check saw real matches


REPORTS = [
    postfix_dsn(
        "a@example.org",
        "5.1.1",
        "550 5.1.1 <a@example.org>: Recipient address "
        "rejected: User unknown in local recipient table",
    ).decode(),
    exim_text("c@example.org", "550 5.7.1 Message rejected as spam").decode(),
]


@pytest.mark.parametrize("text", REPORTS)
def test_the_phase_pattern_is_tested_by_its_words(text: str) -> None:
    pattern = extract._PHASE_PHRASE_LOWER
    lowered = text.lower()
    assert pattern.search(lowered) and might_match(pattern, lowered)
    # Turned away without running the pattern when a group's words are all missing.
    assert not might_match(pattern, "a text about something else")
    # A pattern declared nowhere, or one matching in any case, is always run.
    assert might_match(re.compile("no words declared for this"), "a text about something else")
    assert might_match(re.compile(pattern.pattern, re.IGNORECASE), "IN REPLY TO RCPT TO")


def test_a_regular_expression_without_its_words_is_still_run() -> None:
    # The bare exit status of a delivery program ("71") holds no word at all.
    assert any(
        phrase.pattern == "^\\d{1,3}$" and not phrase.words
        for group in knowledge.PHRASES
        for phrase in group.phrases
    )
    use_knowledge()
    assert judge_reply(None, None, "71").reason == "mailererror"


def _present(words: list[str], text: str) -> set[str]:
    """The words that classify._words_finder says are in ``text``: the longest word found at
    each position, and every listed word that it starts with (as classify._BY_WORD counts)."""
    longest = set(classify._words_finder(words).findall(text))
    return {word for word in words if any(found.startswith(word) for found in longest)}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text("ab .", min_size=1, max_size=4), min_size=1, max_size=8, unique=True),
    st.text("ab .x", max_size=30),
)
def test_the_word_finder_finds_every_word_that_a_text_holds(words: list[str], text: str) -> None:
    # Words that overlap, contain or start one another ("a", "ab", "b a") are all found.
    assert _present(words, text) == {word for word in words if word in text}


def test_the_word_finder_on_phrases_words() -> None:
    words = ["user", "user unknown", "unknown", "known", "no such ", "such user"]
    text = "550 no such user unknown here"
    assert _present(words, text) == set(words)
    assert _present(words, "nothing") == set()


REPLIES = [
    "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown",
    "552 5.2.2 Mailbox full, over quota",
    "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
    "421 4.7.0 Too many connections from your IP, try again later",
    "71",
]


def test_the_first_texts_and_the_word_pass_find_the_same_phrases() -> None:
    # A run looks for the words with ``in`` in its first texts, then builds the word pass.
    use_knowledge()
    by_search = [judge_reply(None, None, reply) for reply in REPLIES]
    assert not classify._FINDER
    classify._HITS.clear()
    classify._READ[0] = classify._TEXTS_BEFORE_FINDER
    by_pass = [judge_reply(None, None, reply) for reply in REPLIES]
    assert classify._FINDER
    assert by_pass == by_search
    assert [v.reason for v in by_pass] == [
        "userunknown",
        "mailboxfull",
        "blocked",
        "toomanyconn",
        "mailererror",
    ]
    use_knowledge()
