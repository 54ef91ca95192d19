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

Deriving the words of every rule takes about as long as compiling the rules again (parsing is
most of either), once per run: for ``todoku explain`` over a folder that is a few per cent of the
whole run. So the words of the known patterns are also written out once, into
``_prefilter_words.py`` (``python -m todoku.bounce.prefilter``), and read from there by pattern
text; a pattern not in that table (a rule added or changed since) has its words derived as
before, so the table can only ever be out of date in speed, never in results.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing is not imported at run time: explain's start-up counts
if TYPE_CHECKING:
    from typing import Any

# For a pattern (by id: hashing a compiled pattern hashes its whole program, on every call): the
# pattern itself (which keeps its id from being reused) and its "needs", each a tuple of words of
# which at least one must be in the text; None: no cheap test, always run the pattern.
_NEEDS: dict[int, tuple[re.Pattern[str], tuple[tuple[str, ...], ...] | None]] = {}
_SHORTEST_USEFUL_WORD = 3  # shorter words are in nearly every text: testing them gains nothing


_NOT_LISTED = object()


def _listed_words() -> dict[tuple[str, int], tuple[tuple[str, ...], ...] | None]:
    try:
        from todoku.bounce._prefilter_words import WORDS
    except ImportError:  # not written yet: every pattern's words are derived
        return {}
    return WORDS


_LISTED = _listed_words()


def needs_of(pattern: re.Pattern[str]) -> tuple[tuple[str, ...], ...] | None:
    """The groups of words of which ``pattern`` needs one each (None: no cheap test), for a
    caller that tests many patterns in a loop of its own (classify._first_rule)."""
    entry = _NEEDS.get(id(pattern))
    if entry is not None and entry[0] is pattern:
        return entry[1]
    listed = _LISTED.get((pattern.pattern, pattern.flags), _NOT_LISTED)
    needs = required_words(pattern) if listed is _NOT_LISTED else listed
    _NEEDS[id(pattern)] = (pattern, needs)  # type: ignore[assignment]
    return needs  # type: ignore[return-value]


def needs_of_source(source: str) -> tuple[tuple[str, ...], ...] | None:
    """needs_of for a pattern not compiled yet (flags none): from the table when it lists the
    pattern, so that a pattern whose words are known is compiled only when a text holds them."""
    needs = _LISTED.get((source, re.UNICODE), _NOT_LISTED)
    if needs is _NOT_LISTED:
        return needs_of(re.compile(source))
    return needs  # type: ignore[return-value]


def might_match(pattern: re.Pattern[str], text: str) -> bool:
    """False only if ``pattern`` certainly has no match in ``text``."""
    needs = needs_of(pattern)
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
        needs = _sequence_needs(list(tree), constants)
    except Exception:  # noqa: BLE001 - a private parser: any surprise means "no cheap test"
        return None
    if not needs:
        return None
    # The rarest need first, so that a text without it is turned away after one test.
    needs.sort(key=_selectivity, reverse=True)
    # Longest (most telling) words first; equal lengths alphabetically, so that the words come
    # out the same in every run (sets are ordered by string hashes, which vary per process).
    return tuple(
        tuple(sorted(_shortest_words(words), key=lambda word: (-len(word), word)))
        for words in needs[:_MOST_NEEDS]
    )


def _shortest_words(words: frozenset[str]) -> list[str]:
    """The words of a group that contain no other word of it: "is unknown" is in a text only if
    "unknown" is, so testing "unknown" alone answers for both (the same answer, fewer tests; a
    group is tested word by word on every text the rule is tried on)."""
    return [word for word in words if not any(other != word and other in word for other in words)]


_MOST_NEEDS = 3


def _useful(words: frozenset[str]) -> bool:
    # Short English words are in nearly every text; two CJK characters are already selective.
    return bool(words) and all(
        len(word) >= (_SHORTEST_USEFUL_WORD if word.isascii() else 2) for word in words
    )


def _selectivity(words: frozenset[str]) -> tuple[int, int]:
    return min(len(word) for word in words), -len(words)


def _sequence_needs(items: list[tuple[Any, Any]], c: Any) -> list[frozenset[str]]:
    """The needs of a sequence of parse items: each is a set of words one of which every match
    contains (a run of literal characters is a set of one word)."""
    needs: list[frozenset[str]] = []
    run = ""
    for op, argument in items:
        if op is c.LITERAL:
            run += chr(argument)
            continue
        if run:
            needs.append(frozenset((run,)))
            run = ""
        if op is c.SUBPATTERN:
            if argument[1] & (c.SRE_FLAG_IGNORECASE | c.SRE_FLAG_VERBOSE):
                continue  # (?i:...): the words inside may match in any case
            needs.extend(_sequence_needs(list(argument[3]), c))
        elif (
            op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None))
            and argument[0] >= 1
        ):
            needs.extend(_sequence_needs(list(argument[2]), c))
        elif op is c.BRANCH:
            # One of the alternatives matches: the union of their best needs is needed, if each
            # has one.
            best = []
            for branch in argument[1]:
                branch_needs = _sequence_needs(list(branch), c)
                if not branch_needs:
                    break
                best.append(max(branch_needs, key=_selectivity))
            else:
                needs.append(frozenset().union(*best))
        # Anything else (classes, ".", anchors, look-arounds, back-references) requires no
        # particular word, and ends the current run of literal characters.
    if run:
        needs.append(frozenset((run,)))
    return [words for words in needs if _useful(words)]


TABLE_FILE = "_prefilter_words.py"


def listed_patterns() -> list[re.Pattern[str]]:
    """The patterns whose words go into the table: the classification rules and the other
    patterns the analyzer tests with might_match."""
    from todoku.bounce import classify, extract

    classify.use_knowledge()
    patterns = [
        re.compile(phrase.source)
        for group in classify.knowledge_groups()
        for phrase in group.phrases
    ]
    patterns.append(extract._PHASE_PHRASE_LOWER)
    return patterns


def table_text(patterns: list[re.Pattern[str]]) -> str:
    """The source of ``_prefilter_words.py`` for ``patterns``."""
    lines = [
        '"""The prefilter\'s words of the known patterns, by (pattern text, flags): written by',
        "``python -m todoku.bounce.prefilter`` (prefilter.py says why). Do not edit; a",
        'pattern missing here or changed since has its words derived when first used."""',
        "",
        "# fmt: off",
        "WORDS = {",
    ]
    seen = set()
    for pattern in patterns:
        key = (pattern.pattern, pattern.flags)
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"    {key!r}:\n        {required_words(pattern)!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import os

    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), TABLE_FILE)
    with open(target, "w", encoding="utf-8") as table:
        table.write(table_text(listed_patterns()))
    print(f"wrote {target}")
