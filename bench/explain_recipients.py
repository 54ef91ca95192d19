"""Extra recipients: addresses the bounce analyzer reports that the labels do not name.

    .venv/bin/python bench/explain_recipients.py [--corpus DIR] [--list]

explain_accuracy.py scores whether each labelled recipient was found; this counts the other
direction (issue 13 item 4, target: none). A reported address is extra when it is not among its
file's labelled recipients; a record reported without a recipient is not counted here (it is a
miss, which explain_accuracy.py counts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from explain_accuracy import DEFAULT_CORPUS, load

from todoku.bounce.analyze import analyze_bytes


def extra_recipients(items: list[tuple[dict, bytes]]) -> list[tuple[str, str]]:
    """(file, address) for every reported address its file's labels do not name."""
    extra = []
    for label, data in items:
        expected = {(record["recipient"] or "").lower() for record in label["records"]}
        for diagnosis in analyze_bytes(data):
            if diagnosis.recipient and diagnosis.recipient not in expected:
                extra.append((label["file"], diagnosis.recipient))
    return extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--list", action="store_true", help="print each extra address")
    args = parser.parse_args()
    items = load(args.corpus)
    extra = extra_recipients(items)
    if args.list:
        for file, address in extra:
            print(f"{file}: {address}")
    files = len({file for file, _ in extra})
    print(f"extra recipients {len(extra)} in {files} of {len(items)} files")


if __name__ == "__main__":
    main()
