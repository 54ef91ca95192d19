"""A cheap test that a regular expression cannot match a text, before running it.

The classification table (rules.py) is a few dozen sentence patterns tried in order against
lower-cased reports of a few kB; running each pattern over each text was most of classify's
time. But every pattern needs some literal words to match: ``user ?unknown|no such (user|
mailbox)`` cannot match a text that contains neither "unknown" nor "no such ". Looking for those
words with ``str.__contains__`` (a C substring search) is several times cheaper than a regex
search, and most rules fail it, so ``might_match(pattern, text) and pattern.search(text)`` gives
the same answer as ``pattern.search(text)`` in less time.

The words are derived from the pattern itself (its parse tree), so a rule added to the table
needs nothing more. The derivation only ever drops requirements it cannot prove, so the test is
sound by construction: when it says no, the pattern cannot match. A pattern it cannot reason
about (flags, or an alternative with no literal at all) is simply always run.

It reads the parse tree with ``re._parser``, CPython's own parser for the ``re`` module (private,
so every failure falls back to "always run the pattern").
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing is not imported at run time: explain's start-up counts
if TYPE_CHECKING:
    from typing import Any

# For a pattern: a tuple of "needs": each need is a tuple of words of which at least one must be
# in the text; None: no cheap test, always run the pattern.
_NEEDS: dict[re.Pattern[str], tuple[tuple[str, ...], ...] | None] = {}
_SHORTEST_USEFUL_WORD = 3  # shorter words are in nearly every text: testing them gains nothing


def might_match(pattern: re.Pattern[str], text: str) -> bool:
    """False only if ``pattern`` certainly has no match in ``text``."""
    try:
        needs = _NEEDS[pattern]
    except KeyError:
        needs = _NEEDS[pattern] = required_words(pattern)
    if needs is None:
        return True
    for words in needs:
        for word in words:
            if word in text:
                break
        else:
            return False
    return True


def required_words(pattern: re.Pattern[str]) -> tuple[tuple[str, ...], ...] | None:
    """Groups of literal words such that every match of ``pattern`` contains at least one word
    of each group; None when no such group can be shown."""
    if pattern.flags & (re.IGNORECASE | re.VERBOSE) or not isinstance(pattern.pattern, str):
        return None
    try:
        import importlib

        constants = importlib.import_module("re._constants")
        tree = importlib.import_module("re._parser").parse(pattern.pattern, pattern.flags)
        need = _sequence_need(list(tree), constants)
    except Exception:  # noqa: BLE001 - a private parser: any surprise means "no cheap test"
        return None
    if need is None or any(len(word) < _SHORTEST_USEFUL_WORD for word in need):
        return None
    return (tuple(sorted(need, key=len, reverse=True)),)


def _sequence_need(items: list[tuple[Any, Any]], c: Any) -> frozenset[str] | None:
    """The most selective need of a sequence of parse items: one literal run (a set of one
    word), or the words of one required group; None if nothing in it is required."""
    needs: list[frozenset[str]] = []
    run = ""
    for op, argument in items:
        if op is c.LITERAL:
            run += chr(argument)
            continue
        if run:
            needs.append(frozenset((run,)))
            run = ""
        inner: frozenset[str] | None = None
        if op is c.SUBPATTERN:
            if argument[1] & (c.SRE_FLAG_IGNORECASE | c.SRE_FLAG_VERBOSE):
                return None  # (?i:...): the words inside may match in any case
            inner = _sequence_need(list(argument[3]), c)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)) and \
                argument[0] >= 1:
            inner = _sequence_need(list(argument[2]), c)
        elif op is c.BRANCH:
            alternatives = [_sequence_need(list(branch), c) for branch in argument[1]]
            if all(alternative is not None for alternative in alternatives):
                inner = frozenset().union(*alternatives)  # type: ignore[arg-type]
        # Anything else (classes, ".", anchors, look-arounds, back-references) requires no
        # particular word, and ends the current run of literal characters.
        if inner:
            needs.append(inner)
    if run:
        needs.append(frozenset((run,)))
    if not needs:
        return None
    # The need whose shortest word is longest is the rarest in text, so it rejects most often.
    return max(needs, key=lambda words: (min(len(word) for word in words), -len(words)))
