"""A cheap test that a regular expression cannot match a text, before running it.

Every pattern the analyzer runs over a report needs some literal words to match:
``user ?unknown|no such (user|mailbox)`` cannot match a text that contains neither "unknown" nor
"no such ". Looking for those words with ``str.__contains__`` (a C substring search) is several
times cheaper than a regex search, and most patterns fail it, so ``passes(needs, text) and
pattern.search(text)`` gives the same answer as ``pattern.search(text)`` in less time.

The words are declared next to each pattern, as data: knowledge.Phrase.words for the phrase
tables, NEEDS below for the analyzer's other patterns. tests/bounce/test_prefilter.py checks
that every declared word is needed (no text a pattern matches lacks it), so the test is sound:
when it says no, the pattern cannot match. A pattern that declares nothing is always run.
"""

from __future__ import annotations

import re

Needs = tuple[tuple[str, ...], ...]  # groups of words; a match contains one word of each group

# The words of the analyzer's patterns outside the phrase tables, by pattern text.
NEEDS: dict[str, Needs] = {
    # extract._PHASE_PHRASE_LOWER: "in reply to RCPT TO", "after end of data", ...
    r"(?:in reply to|after|progress was|smtp command:?|>>>)\s*(?:the\s+)?"
    r"(rcpt\b|mail\b|end of data|end of message|data\b|helo|ehlo|initial connection|"
    r"connect)": (
        ("rcpt", "mail", "data", "helo", "ehlo", "connect", "end of message"),
        ("in reply to", "after", "progress was", "smtp command", ">>>"),
    ),
}


# As a plain int: ``int & re.IGNORECASE`` runs the enum module's Python code for the operator
# (a tenth of this test's cost).
_IGNORECASE = int(re.IGNORECASE)


def passes(needs: Needs, text: str) -> bool:
    """False only if a text without one word of some group of ``needs`` is ``text``."""
    return all(any(word in text for word in words) for words in needs)


def might_match(pattern: re.Pattern[str], text: str) -> bool:
    """False only if ``pattern`` certainly has no match in ``text`` (by its declared words)."""
    needs = NEEDS.get(pattern.pattern)
    if needs is None or pattern.flags & _IGNORECASE:
        return True  # (words in any case: the declared lower-case words prove nothing)
    return passes(needs, text)
