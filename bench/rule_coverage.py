"""Which corpus families each phrase of todoku.bounce.knowledge was seen in, against what it
declares.

    .venv/bin/python bench/rule_coverage.py [--corpus DIR] [--all]

A phrase is seen in a family (the label's "module": an MTA or a mail service) when it matches
a text of one of that family's bounces (the report, the subject, a recipient's reply or
paragraph) whose labels include the phrase's reason. Leave-one-family-out accuracy
(explain_accuracy.py) drops, for family F, the phrases whose declared ``seen`` is F alone and
that cite no documentation: the declarations must therefore match the corpus. This prints every
phrase whose declaration differs from what the corpus shows (``--all``: every phrase), and a
count of phrases by provenance. Exit status 1 when a declaration drifted.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from todoku.bounce import knowledge
from todoku.bounce.extract import parse_bounce

sys.path.insert(0, str(Path(__file__).resolve().parent))
from explain_accuracy import DEFAULT_CORPUS, load  # the labelled corpus, read one way


def _words(text: str) -> str:
    return " ".join(text.lower().split())


def seen_families(corpus: Path) -> dict[tuple[int, int], tuple[str, ...]]:
    """(group index, phrase index) → the families the phrase is seen in, as defined above."""
    emails = []
    for label, data in load(corpus):
        bounce = parse_bounce(data)
        # Read as the classifier reads them: lower case, white space runs as one space.
        texts = [_words(bounce.text), _words(bounce.subject)]
        for evidence in bounce.evidence:
            texts += [_words(evidence.diagnostic), _words(evidence.context)]
        reasons = {record["reason"] for record in label["records"]}
        emails.append((label["module"], reasons, texts))
    seen = {}
    for g, group in enumerate(knowledge.PHRASES):
        for p, phrase in enumerate(group.phrases):
            pattern = re.compile(phrase.pattern)
            seen[g, p] = tuple(
                sorted(
                    {
                        family
                        for family, reasons, texts in emails
                        if group.reason in reasons and any(pattern.search(text) for text in texts)
                    }
                )
            )
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--all", action="store_true", help="list every phrase")
    args = parser.parse_args()
    measured = seen_families(args.corpus)
    kinds: Counter[str] = Counter()
    drifted = 0
    for g, group in enumerate(knowledge.PHRASES):
        for p, phrase in enumerate(group.phrases):
            found = measured[g, p]
            kind = (
                "documented"
                if phrase.doc
                else "seen in none"
                if not found
                else "seen in one family"
                if len(found) == 1
                else "seen in 2+ families"
            )
            kinds[kind] += 1
            differs = tuple(sorted(phrase.seen)) != found
            drifted += differs
            if differs or args.all:
                mark = "DRIFT " if differs else ""
                print(
                    f"{mark}{group.reason:<15} {phrase.pattern[:60]!r:<64} declared "
                    f"{list(phrase.seen)} measured {list(found)}"
                    + (f" doc {phrase.doc}" if phrase.doc else "")
                )
    print(", ".join(f"{kind}: {n}" for kind, n in kinds.most_common()))
    print(f"declarations that differ from the corpus: {drifted}")
    sys.exit(1 if drifted else 0)


if __name__ == "__main__":
    main()
