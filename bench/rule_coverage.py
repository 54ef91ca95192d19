"""How much of the bounce corpus each classification rule carries, and for which MTA families.

    .venv/bin/python bench/rule_coverage.py [--corpus DIR] [--all]

For every top-level alternative of every sentence pattern in rules.TEXT_RULES, every entry of
DECISIVE_STATUS / STATUS_RULES / CODE_RULES and every named pattern of rules.py:

* fires: on how many corpus messages it matches a text the classifier actually read;
* decides: on how many messages the analyzer's reasons change when it alone is knocked out
  (the alternative dropped from its pattern, the table entry removed, the pattern replaced by
  one that never matches);
* helps / hurts: of those, how many were right with it and wrong without (helps), or the
  other way round (hurts);
* families: the MTA families (file name prefix, "lhost-postfix", "rhost-franceptt", "rfc3464")
  of the messages it decides. A row deciding messages of one family only is the
  leave-one-family-out view: hold that family out and the row would have no evidence at all.

The summary counts rows by how many messages they decide (1, 2-4, 5+). A rule that decides one
message is either a real product wording that will recur (keep) or a recogniser of one file.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from todoku.bounce import classify, rules
from todoku.bounce.analyze import analyze_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from explain_accuracy import DEFAULT_CORPUS, load  # the labelled corpus, read one way

NEVER = re.compile(r"(?!x)x")


def family(path: str) -> str:
    """'maildir/bsd/lhost-postfix-13.eml' → 'lhost-postfix'."""
    name = Path(path).stem
    return re.sub(r"-\d+$", "", name)


def top_level_alternatives(regex: str) -> list[str]:
    """Split a pattern at the '|' that are outside any group or character class."""
    parts, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if regex[i + 1:i + 2] == "]":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(regex[start:i])
            start = i + 1
        i += 1
    parts.append(regex[start:])
    return parts


def outcome(data: bytes) -> tuple[tuple[str, str], ...]:
    return tuple((d.recipient, d.reason) for d in analyze_bytes(data))


def correct(label: dict, result: tuple[tuple[str, str], ...]) -> int:
    """Records whose reason is right (matched by recipient, else by position, as the bench)."""
    by_rcpt = dict(result)
    ok = 0
    for index, record in enumerate(label["records"]):
        reason = by_rcpt.get((record["recipient"] or "").lower())
        if reason is None and result:
            reason = result[min(index, len(result) - 1)][1]
        ok += reason == record["reason"]
    return ok


def _forget_compiled_rules() -> None:
    """classify keeps its own list of (rule, search, prefilter words) built from TEXT_RULES on
    first use: a knocked-out table must rebuild it."""
    checks = getattr(classify, "_CHECKS", None)
    if isinstance(checks, list):
        checks.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--all", action="store_true", help="also list rows that decide nothing")
    args = parser.parse_args()
    items = load(args.corpus)

    # 1. Baseline, recording every text the classifier reads for each message.
    read: list[list[str]] = [[] for _ in items]
    original_first_rule = classify._first_rule
    current: list[int] = [0]

    def recording_first_rule(text, phase=rules.ANY, specific_only=False):
        read[current[0]].append(text.lower())
        return original_first_rule(text, phase, specific_only)

    classify._first_rule = recording_first_rule
    baseline = []
    for n, (_label, data) in enumerate(items):
        current[0] = n
        baseline.append(outcome(data))
    classify._first_rule = original_first_rule
    base_ok = [correct(label, result) for (label, _), result in zip(items, baseline)]

    rows: list[tuple[str, str, int, int, int, int, Counter]] = []  # name, reason, fires, decides, helps, hurts, families

    def knock_out(candidates: list[int], undo, apply) -> tuple[int, int, int, Counter]:
        apply()
        try:
            decides = helps = hurts = 0
            families: Counter = Counter()
            for n in candidates:
                label, data = items[n]
                try:
                    result = outcome(data)
                except Exception:  # a knocked-out piece the code relies on: counts as deciding
                    result = ()
                if result != baseline[n]:
                    decides += 1
                    families[family(label["file"])] += 1
                    ok = correct(label, result)
                    helps += ok < base_ok[n]
                    hurts += ok > base_ok[n]
            return decides, helps, hurts, families
        finally:
            undo()

    everything = list(range(len(items)))
    saved_rules = classify.TEXT_RULES
    for index, rule in enumerate(saved_rules):
        alternatives = top_level_alternatives(rule.pattern.pattern)
        for k, alt in enumerate(alternatives):
            compiled = re.compile(alt)
            fires = [n for n in everything if any(compiled.search(t) for t in read[n])]
            rest = "|".join(a for j, a in enumerate(alternatives) if j != k) or NEVER.pattern
            patched = list(saved_rules)
            patched[index] = rules.Rule(rule.reason, re.compile(rest), rule.phase, rule.source,
                                        rule.weak)

            def apply(patched=tuple(patched)):
                classify.TEXT_RULES = patched
                _forget_compiled_rules()

            def undo():
                classify.TEXT_RULES = saved_rules
                _forget_compiled_rules()

            d, h, x, fam = knock_out(fires, undo, apply)
            rows.append((f"TEXT#{index} {alt[:60]}", rule.reason, len(fires), d, h, x, fam))

    for table_name in ("DECISIVE_STATUS", "STATUS_RULES", "CODE_RULES"):
        table = getattr(classify, table_name)
        for key in list(table):
            value = table[key]

            def apply(table=table, key=key):
                del table[key]

            def undo(table=table, key=key, value=value):
                table[key] = value

            d, h, x, fam = knock_out(everything, undo, apply)
            rows.append((f"{table_name}[{key}]", str(value), -1, d, h, x, fam))

    for name in dir(rules):
        value = getattr(rules, name)
        if not isinstance(value, re.Pattern) or name.startswith("_"):
            continue
        holders = [m for m in (classify, rules) if getattr(m, name, None) is value]

        def apply(name=name, holders=holders):
            for m in holders:
                setattr(m, name, NEVER)

        def undo(name=name, holders=holders, value=value):
            for m in holders:
                setattr(m, name, value)

        d, h, x, fam = knock_out(everything, undo, apply)
        rows.append((f"rules.{name}", "-", -1, d, h, x, fam))

    print(f"{'rule / alternative':<72} {'reason':<15} fires decides helps hurts families")
    for name, reason, fires, d, h, x, fam in rows:
        if d or args.all:
            fams = ", ".join(f"{f}:{c}" for f, c in fam.most_common())
            print(f"{name:<72} {reason:<15} {fires if fires >= 0 else '':>5} {d:>7} {h:>5} "
                  f"{x:>5} {fams}")
    deciding = [r for r in rows if r[3]]
    print()
    print(f"rows: {len(rows)}; deciding at least one message: {len(deciding)}; "
          f"decide 1: {sum(r[3] == 1 for r in rows)}, 2-4: {sum(2 <= r[3] <= 4 for r in rows)}, "
          f"5+: {sum(r[3] >= 5 for r in rows)}; fire but decide nothing: "
          f"{sum(r[3] == 0 and r[2] > 0 for r in rows)}; never fire: "
          f"{sum(r[2] == 0 for r in rows)}")
    one_family = [r for r in deciding if len(r[6]) == 1]
    print(f"rows whose decided messages all come from one MTA family: {len(one_family)} "
          f"(their helps: {sum(r[4] for r in one_family)} records)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
