"""Evidence → reason, by scoring what the codes, the SMTP phase and the words mean.

The knowledge is data (knowledge.py); this module weighs it. Each kind of evidence adds to the
score of the reason it names:

* the enhanced status code (RFC 3463 / IANA registry): its strength says how much it names one
  cause (X.1.1 does; X.0.0, X.5.x and X.7.1 are vague and yield to any phrase);
* phrases: where they were found counts (the remote server's own reply most, then the report's
  paragraph about the recipient, then the rest of the report, then the subject); among phrases
  found in the same place, the more specific group (earlier in knowledge.PHRASES) wins;
* a vendor's own code, when the bounce comes from that vendor (its host names);
* the basic reply code, last of all.

The SMTP command the reply answered then places what stays vague: before MAIL FROM a refusal is
about the client (blocked), in reply to MAIL FROM about the sender (rejected), after DATA about
the content. Every verdict lists the evidence that decided it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from todoku.bounce import knowledge
from todoku.bounce.extract import Evidence
from todoku.bounce.rules import (
    ACCOUNT_DISABLED_NOTICE,
    GREETING_REFUSAL,
    MAILBOX_VERDICT_AFTER_DATA,
    NO_REPORT,
    QUOTED_NEXT_HOP_REPLY,
    SENDMAIL_TRANSCRIPT_COMMAND,
    SENDMAIL_TRANSCRIPT_REPLY,
    UNSUBSCRIBE_REQUEST,
    USER_UNKNOWN_WITHOUT_ADDRESS,
)

ANY = "*"  # no phase known (the old API's spelling; "" means the same)

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_REPLY_CODES_AHEAD = re.compile(r"^[45]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?")
# Codes a vendor's table is keyed by: enhanced status codes, Yahoo's "[TSS04]", Cox's "AUP#CXBL".
# (The look-behind after the first digit, as in extract.ENHANCED.)
_CODES_IN_TEXT = re.compile(
    r"[245](?<![\d.][245])\.\d{1,3}\.\d{1,3}(?![\d.]*\d)|\[(ts+\d+)\]|\baup#([a-z0-9]+)"
)

# Score of a phrase by where it was found, and of the other kinds of evidence.
# The remote's reply outweighs the rest of the report and a specific status together; a phrase
# in the report outweighs a canned phrase in the reply, which outweighs a status that names only
# a kind of cause; a status that names one cause outweighs any phrase of the report.
_WHERE = {"reply": 5.0, "paragraph": 4.5, "report": 2.2, "subject": 1.7}
_WEAK = {"reply": 2.1, "paragraph": 2.1, "report": 1.0, "subject": 1.0}  # canned wording
_ORDER_BONUS = 0.25  # the first group of knowledge.PHRASES gets all of it, the last none
_STATUS = {4: 7.0, 3: 2.5, 2: 2.0, 1: 0.5}  # by knowledge.Status.strength
_VENDOR = 8.0
_DELAYED = 3.0  # a delay warning that names no cause: the message is waiting (expired)
_REPLY_CODE = 0.3
_LATER = _WHERE["report"] + _ORDER_BONUS  # the most a phrase of the report can add


@dataclass(frozen=True, slots=True)
class Verdict:
    """A reason, how strongly the evidence supports it, and that evidence in short sentences
    ("status 5.1.1 (RFC 3463: Bad destination mailbox address)", "phrase 'user unknown'
    (userunknown)", "phase RCPT")."""

    reason: str
    score: float
    evidence: tuple[str, ...] = ()


class _Phrase:
    """One phrase as the classifier uses it: a plain one is a substring test; a regular
    expression is compiled only when a text first holds the words it declares (most runs read a
    few bounces and need a few phrases, and compiling them all was most of the start-up)."""

    __slots__ = ("_pattern", "needs", "plain", "source")

    def __init__(self, phrase: knowledge.Phrase) -> None:
        self.source = phrase.pattern
        self.plain = not _REGEX_SYNTAX.intersection(phrase.pattern)
        words = ((phrase.pattern,),) if self.plain else phrase.words
        self.needs = tuple(tuple(group) for group in words) or None
        self._pattern: re.Pattern[str] | None = None

    def passes(self, text: str, first: int = 0) -> bool:
        """False when ``text`` lacks every word of one of the needs from the ``first`` on (the
        caller may have found a word of the first already); loops rather than any(), which costs
        a generator per need and was a tenth of the classifier's time."""
        if self.needs is None:
            return True
        for words in self.needs[first:]:
            for word in words:
                if word in text:
                    break
            else:
                return False
        return True

    def search(self, text: str) -> str:
        """The words of ``text`` the phrase matches ("" when it does not match)."""
        if self.plain:
            return self.source if self.source in text else ""
        if self._pattern is None:
            self._pattern = re.compile(self.source)
        match = self._pattern.search(text)
        return match.group(0) if match else ""


_REGEX_SYNTAX = frozenset(".^$*+?{}[]\\|()")


@dataclass(frozen=True, slots=True)
class _Group:
    index: int
    group: knowledge.Phrases
    phrases: tuple[_Phrase, ...]
    bonus: float


_GROUPS: list[_Group] = []
# The words of every phrase's rarest need, found in a text in one pass (_words_finder): for each
# word, the phrases listed under it or under any listed word it starts with.
_BY_WORD: dict[str, set[tuple[int, int]]] = {}
_FINDER: list[re.Pattern[str]] = []
_ALWAYS: list[tuple[int, int]] = []  # phrases with no cheap test
_ANCHORED: list[tuple[int, int]] = []  # phrases anchored at the start or end of the text (^, $)
_EXCLUDED: list[str] = []  # the family whose own phrases are left out (leave-one-family-out)


def use_knowledge(exclude_family: str | None = None) -> None:
    """Classify with every phrase, or (``exclude_family``) without the phrases that only that
    family's bounces taught: those seen in that family alone and documented nowhere. This is
    how bench/explain_accuracy.py measures what an MTA never seen would meet."""
    _EXCLUDED[:] = [exclude_family] if exclude_family else []
    _GROUPS.clear()
    _HITS.clear()
    _FINDER.clear()
    _READ[0] = 0
    _BY_WORD.clear()
    _ALWAYS.clear()
    _ANCHORED.clear()


def knowledge_groups() -> list[_Group]:
    if not _GROUPS:
        excluded = _EXCLUDED[0] if _EXCLUDED else None
        groups = knowledge.PHRASES
        for index, group in enumerate(groups):
            kept = [p for p in group.phrases if p.doc or excluded is None or p.seen != (excluded,)]
            if not kept:
                continue
            bonus = _ORDER_BONUS * (1 - index / len(groups))
            phrases = tuple(_Phrase(p) for p in kept)
            _GROUPS.append(_Group(index, group, phrases, bonus))
        listed: dict[str, list[tuple[int, int]]] = {}
        for position, entry in enumerate(_GROUPS):
            for number, phrase in enumerate(entry.phrases):
                if phrase.source.startswith("^") or phrase.source.endswith("$"):
                    _ANCHORED.append((position, number))
                if phrase.needs is None:
                    _ALWAYS.append((position, number))
                else:
                    for word in phrase.needs[0]:
                        listed.setdefault(word, []).append((position, number))
        for word in listed:
            # A text holding ``word`` holds every listed word that ``word`` starts with.
            starts = (word[:end] for end in range(1, len(word) + 1))
            _BY_WORD[word] = {entry for start in starts for entry in listed.get(start, ())}
    return _GROUPS


# Texts read before the word pass is built: building it (a regular expression of every word)
# costs about 5 ms, as much as looking for each word with ``in`` in a hundred texts; one bounce
# has two to four, a folder of them thousands.
_TEXTS_BEFORE_FINDER = 16
_READ: list[int] = [0]  # texts read by word search since the tables were built


def _words_in(text: str) -> Iterable[str]:
    """The listed words (knowledge_groups' _BY_WORD) that ``text`` holds, possibly only the
    longest of several that start at the same place (_BY_WORD counts the others)."""
    if not _FINDER:
        if _READ[0] < _TEXTS_BEFORE_FINDER:
            _READ[0] += 1
            return filter(text.__contains__, _BY_WORD)
        _FINDER.append(_words_finder(list(_BY_WORD)))
    return set(_FINDER[0].findall(text))


def _words_finder(words: list[str]) -> re.Pattern[str]:
    """A pattern whose ``findall`` gives, for every position of a text, the longest of ``words``
    that starts there (the others that start there are its beginnings: _BY_WORD counts them).

    The words are written as a tree of their common beginnings ("user (?:unknown|not found)"),
    so the pattern does a few character tests per position of the text. Looking for each word
    with ``in`` instead, 300 substring searches per text, was two thirds of the classifier's
    time: over the 520 bounces of the corpus (1235 texts, 229,000 characters) 57 ms against
    16 ms this way (the best of 7 runs, CPU time).
    """
    tree: dict[str, dict[str, Any]] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def written(node: dict[str, Any]) -> str:
        # Longer words first: the pattern tries a branch in order and stops at the first match.
        branches = []
        for char, rest in sorted(node.items()):
            if not char:
                continue
            run = [char]
            while len(rest) == 1 and "" not in rest:  # a run of letters without a branch
                ((char, rest),) = rest.items()
                run.append(char)
            branches.append(re.escape("".join(run)) + written(rest))
        if "" in node:
            branches.append("")
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return re.compile(f"(?=({written(tree)}))")


_HITS: dict[str, list[tuple[_Group, str]]] = {}  # by text: a report is read once per recipient


def _hits(text: str, among: set[int] | None = None) -> list[tuple[_Group, str]]:
    """Every phrase group that matches ``text`` (lower-cased), with the words it matched; with
    ``among``, only the groups at those positions of knowledge_groups() and anchored phrases
    (``text`` is part of a text whose groups were ``among``)."""
    found = _HITS.get(text) if among is None else None
    if found is not None:
        return found
    if len(_HITS) > 32:
        _HITS.clear()
    found = []
    groups = knowledge_groups()
    # The cheap test first (prefilter.py): most phrases need a word the text lacks, and a phrase
    # is run only when the text holds a word of each of its needs.
    if among is None:
        _HITS[text] = found
        # The words of every phrase's rarest need are found in one pass (_words_finder): the
        # candidates are the phrases listed under the words found (their rarest need is met)
        # and those with no cheap test, in the order of the tables.
        candidates = set(_ALWAYS)
        for word in _words_in(text):
            candidates.update(_BY_WORD[word])
        ordered = sorted(candidates)
        first = 1
    else:
        # What matches in a part matches in the whole, but for the anchored phrases (^, $): the
        # phrases of the groups found in the whole and the anchored ones are tested one by one,
        # every need (cheaper than the pass over the text for the few phrases of a reply
        # already read in its paragraph).
        ordered = sorted(
            {
                *_ANCHORED,
                *(
                    (position, number)
                    for position in among
                    for number in range(len(groups[position].phrases))
                ),
            }
        )
        first = 0
    matched = -1
    for position, number in ordered:
        if position == matched:
            continue  # a group is matched by its first phrase that matches
        entry = groups[position]
        phrase = entry.phrases[number]
        if (
            phrase.needs is not None
            and len(phrase.needs) > first
            and not phrase.passes(text, first)
        ):
            continue  # (the call only when there is a need to test: most have one, met)
        words = phrase.search(text)
        if words:
            found.append((entry, words))
            matched = position
    return found


class _Scores:
    """Scores per reason, with the evidence behind each."""

    __slots__ = ("cause", "evidence", "named", "phrase", "score")

    def __init__(self) -> None:
        self.score: dict[str, float] = {}
        self.phrase: dict[str, float] = {}  # the best phrase score per reason (not summed)
        self.named: set[str] = set()  # reasons a specific phrase or a vendor code named
        self.evidence: dict[str, list[str]] = {}
        self.cause: dict[str, float] = {}  # specific phrases of the reply or the paragraph

    def add(self, reason: str, points: float, why: str) -> None:
        self.score[reason] = self.score.get(reason, 0.0) + points
        self.evidence.setdefault(reason, []).append(why)

    def phrases(self, text: str, where: str, within: str = "") -> list[_Group]:
        """Score the phrases of ``text``; ``within``: a text that contains this one and was
        scored already, whose groups are the only ones that can match here."""
        # Reports wrap long lines ("refused to\n    talk to me"): words are read with every run
        # of white space as one space.
        text = _words(text)
        within = _words(within) if within else ""
        among = None
        if within and text in within and within in _HITS:
            inside = {entry.index for entry, _words in _HITS[within]}
            among = {
                position
                for position, entry in enumerate(knowledge_groups())
                if entry.index in inside
            }
        hits = _hits(text, among)
        for entry, words in hits:
            reason = entry.group.reason
            points = (_WEAK if entry.group.weak else _WHERE)[where] + entry.bonus
            if not entry.group.weak:
                self.named.add(reason)
                if where in ("reply", "paragraph"):
                    self.cause[reason] = max(self.cause.get(reason, 0.0), points)
            best = self.phrase.get(reason, 0.0)
            if points > best:
                self.phrase[reason] = points
                self.score[reason] = self.score.get(reason, 0.0) + points - best
                weak = ", canned" if entry.group.weak else ""
                self.evidence.setdefault(reason, []).append(
                    f"phrase {words.strip()[:60]!r} in the {where} ({reason}{weak})"
                )
        return [entry for entry, _words in hits]

    def status(self, enhanced: str) -> None:
        match = _ENHANCED.match(enhanced)
        if not match or match.group(1) == "2":
            return
        entry = knowledge.STATUS.get(f"{match.group(2)}.{match.group(3)}")
        if entry is None:
            return
        vague = ", vague" if entry.strength == 1 else ""
        self.add(
            entry.reason,
            _STATUS[entry.strength],
            f"status {enhanced} ({entry.doc}: {entry.meaning}{vague})",
        )

    def vendor(self, hosts: str, status: str, text: str) -> None:
        """A vendor's code (in ``status`` or ``text``) when one of its ``hosts`` is named; the
        codes are read only then (most bounces come from no vendor of the tables)."""
        codes: list[str] | None = None
        for vendor in knowledge.VENDORS:
            for host in vendor.hosts:  # (a loop: any() costs a generator per vendor)
                if host in hosts:
                    break
            else:
                continue
            if codes is None:
                codes = _codes_in(status, text)
            for code in codes:
                reason = vendor.codes.get(code)
                if reason:
                    self.named.add(reason)
                    self.add(reason, _VENDOR, f"{vendor.name} code {code} ({vendor.doc})")
                    return
            if vendor.default and not codes:
                self.named.add(vendor.default)
                self.add(vendor.default, _VENDOR, f"{vendor.name}'s own notice ({vendor.doc})")
                return

    def settled(self) -> bool:
        """True when no phrase of the report or the subject could change the winner: a reason's
        phrases count once (the best of them), so they add at most _LATER to any reason."""
        if not self.phrase:
            return False  # and a delay warning's "expired" is still to be decided
        first, *rest = sorted(self.score.values(), reverse=True)
        return first - max(rest, default=0.0) > _LATER

    def best(self) -> tuple[str, float] | None:
        if not self.score:
            return None
        reason = max(self.score, key=self.score.__getitem__)
        if reason == "expired":
            # Giving up is the outcome, not the cause: when the remote's reply or the
            # recipient's paragraph names what kept failing ("host name lookup failure"), that
            # is the reason.
            causes = [r for r in self.cause if r != "expired"]
            if causes:
                cause = max(causes, key=self.cause.__getitem__)
                self.evidence[cause].append("the cause behind giving up")
                return cause, self.score[cause]
        return reason, self.score[reason]


def _words(text: str) -> str:
    return " ".join(text.lower().split())


def _codes_in(status: str, text: str) -> list[str]:
    codes = [status] if status else []
    for match in _CODES_IN_TEXT.finditer(text.lower()):
        codes.append(match.group(1) or match.group(2) or match.group(0))
    return codes


def reason_from_status(enhanced: str | None) -> str | None:
    """The reason an RFC 3463 enhanced status code names on its own, or None if too vague."""
    match = _ENHANCED.match((enhanced or "").strip())
    if not match:
        return None
    if match.group(1) == "2":
        return "delivered"
    entry = knowledge.STATUS.get(f"{match.group(2)}.{match.group(3)}")
    return entry.reason if entry and entry.strength > 1 else None


def reason_from_text(text: str, phase: str = ANY) -> str | None:
    """The reason the phrases of one text name (None: no phrase)."""
    scores = _Scores()
    scores.phrases(text, "reply")
    best = scores.best()
    return best[0] if best else None


def judge_reply(code: int | None, enhanced: str | None, text: str, phase: str = "") -> Verdict:
    """The verdict on one SMTP reply (what the outbound queue and ``diagnose`` see).

    ``phase``: the SMTP command the reply answered (connect, helo, mail, rcpt, data); when not
    given it is read from the text ("in reply to RCPT TO command"), if the text says.
    """
    enhanced = (enhanced or "").strip()
    reply = text or ""
    if code is not None and not reply[:3].isdigit():
        reply = f"{code} {reply}"
    phase = _normal_phase(phase) or _phase_of(text or "") or _greeting(reply)
    scores = _Scores()
    if text:
        scores.phrases(text, "reply")
    scores.status(enhanced)
    scores.vendor((text or "").lower(), enhanced, text or "")
    best = scores.best()
    evidence: list[str] = []
    if best is not None:
        reason, score = best
        evidence = scores.evidence[reason]
    elif enhanced.startswith("2."):
        return Verdict("delivered", 1.0, (f"status {enhanced}",))
    elif code is not None and code in knowledge.REPLY_CODES:
        reason, score = knowledge.REPLY_CODES[code], _REPLY_CODE
        evidence = [f"reply code {code} (RFC 5321 §4.2.3)"]
    elif code is not None and 400 <= code < 500:
        reason, score, evidence = "onhold", _REPLY_CODE, [f"reply code {code}: temporary"]
    else:
        return Verdict("undefined", 0.0, ())
    if phase:
        evidence = [*evidence, f"phase {phase.upper()}"]
    reason, placed = _placed_by_phase(reason, phase, reason in scores.named)
    if placed:
        evidence.append(placed)
    return Verdict(reason, score, tuple(evidence))


def classify_reply(code: int | None, enhanced: str | None, text: str, phase: str = "") -> str:
    """The reason word for one SMTP reply (or a bounce's diagnostic): see judge_reply."""
    return judge_reply(code, enhanced, text, phase).reason


def _normal_phase(phase: str) -> str:
    phase = (phase or "").strip().lower()
    if phase in ("", ANY):
        return ""
    if phase in ("ehlo", "greeting", "starttls", "auth"):
        return "helo" if phase != "greeting" else "connect"
    if phase in ("end of data", "data"):
        return "data"
    return phase


def _placed_by_phase(reason: str, phase: str, named: bool) -> tuple[str, str]:
    """(reason, why) after the SMTP command the reply answered has placed a refusal."""
    if reason in ("userunknown", "hostunknown", "suspend") and phase == "mail":
        return "rejected", "refused at MAIL FROM: the address is the sender's (rejected)"
    if reason in _VAGUE_REFUSALS and not named:
        # A refusal that names no cause is placed by the command it answered (RFC 5321 §3.3):
        # before MAIL FROM the server knows only the client (its IP, its name, its HELO), so it
        # refused the client; in reply to MAIL FROM it refused the sender (a policy named at
        # MAIL FROM stays a policy: "Mail from <a> rejected for policy reasons").
        if phase in ("connect", "helo"):
            return "blocked", "refused before MAIL FROM: the client itself (blocked)"
        if phase == "mail" and reason not in ("rejected", "policyviolation"):
            return "rejected", "refused at MAIL FROM: the sender (rejected)"
        if phase == "rcpt" and reason in ("onhold", "undefined"):
            return "userunknown", "refused at RCPT TO without a cause: the recipient (userunknown)"
    return reason, ""


def classify_evidence(
    kind: str, evidence: Evidence, subject: str = "", report: str = "", filter_gateway: bool = False
) -> str:
    """The reason word for one recipient of a parsed bounce (judge_evidence says why)."""
    return judge_evidence(kind, evidence, subject, report, filter_gateway).reason


def judge_evidence(
    kind: str, evidence: Evidence, subject: str = "", report: str = "", filter_gateway: bool = False
) -> Verdict:
    """The verdict for one recipient of a parsed bounce.

    ``filter_gateway``: the bounce was written by a content-filtering gateway (rules.FILTER_GATEWAY).
    """
    if kind == "vacation" and UNSUBSCRIBE_REQUEST.search(report.lower()):
        return Verdict("feedback", 1.0, ("a request to unsubscribe, sent by a mail program",))
    if kind in ("feedback", "vacation", "notbounce"):
        return Verdict(kind, 1.0, (f"the message is a {kind} report",))
    status = evidence.status
    action = evidence.action
    if action in ("delivered", "relayed", "expanded") or status.startswith("2."):
        return Verdict("delivered", 1.0, (f"action {action or status}",))
    diagnostic = evidence.diagnostic
    phase = evidence.phase or _phase_of(evidence.context) or _greeting(diagnostic)
    earlier = _reply_behind_protocol_error(
        diagnostic, evidence.recipient, evidence.context or report
    )
    if earlier is not None:
        diagnostic, phase = earlier
    scores = _Scores()
    scores.status(status)
    hosts = f"{evidence.remote_mta} {diagnostic} {evidence.context}".lower()
    scores.vendor(hosts, status, diagnostic)
    # The remote server's own words are the best evidence; the recipient's paragraph of the
    # report comes next (the reporting MTA's judgement: "retry timeout exceeded").
    quoted = QUOTED_NEXT_HOP_REPLY.search(diagnostic)
    if quoted:
        # A relay's summary around the next hop's own reply ("5.1.0 - Unknown address error
        # 550-'5.7.1 ... Access denied'"): the summary only names the status class, the quoted
        # reply is what the remote server said, so it alone is read (then its code).
        scores.phrases(quoted.group(1), "reply")
    elif earlier is not None:
        scores.phrases(diagnostic, "reply")
    else:
        # (The paragraph first: it usually holds the reply, whose phrases are then looked
        # for only among the paragraph's.)
        if evidence.context:
            scores.phrases(evidence.context, "paragraph")
        if diagnostic:
            scores.phrases(diagnostic, "reply", evidence.context)
        # The rest of the report and the subject mix boilerplate with the cause: read last,
        # and not after a transcript reply was found (the report's other lines are other
        # sessions'); not at all when they could not change the verdict (it saves most of
        # the time: a report is long).
        if not scores.settled():
            if report:
                scores.phrases(report, "report")
            if subject:
                scores.phrases(subject, "subject")
    if not scores.phrase and action == "delayed":
        scores.add("expired", _DELAYED, "a delay warning that names no other cause")
    best = scores.best()
    why: list[str]
    if best is not None:
        reason, score = best
        why = list(scores.evidence[reason])
        named = reason in scores.named
    else:
        named, score = False, _REPLY_CODE
        code = evidence.reply_code if earlier is None else _reply_code(diagnostic)
        if code is not None and code in knowledge.REPLY_CODES:
            reason = knowledge.REPLY_CODES[code]
            why = [f"reply code {code} (RFC 5321 §4.2.3)"]
        else:
            # onhold: the bounce gives a cause we cannot place; undefined: it gives none at all
            # (only the address, or the MTA's own "no report" line).
            said = code or status or _says_something(evidence)
            reason = "onhold" if said else "undefined"
            why = ["no phrase or code names a cause" if said else "the bounce gives no cause"]
            score = 0.0
    if phase:
        why.append(f"phase {phase.upper()}")
    reason, because = _after_the_score(reason, named, phase, evidence, report, filter_gateway)
    if because:
        why.append(because)
    return Verdict(reason, score, tuple(why))


def _after_the_score(
    reason: str, named: bool, phase: str, evidence: Evidence, report: str, filter_gateway: bool
) -> tuple[str, str]:
    """What the phase and the report's other facts make of the scored reason."""
    if reason == "userunknown" and report and ACCOUNT_DISABLED_NOTICE.search(report.lower()):
        # Carriers answer a disabled account with the same "550 user unknown" as a missing one,
        # and say which it was in their own notice ("The user(s) account is disabled.").
        return "suspend", "the report says the account is disabled (suspend)"
    # A reply that quotes the recipient answered RCPT TO; that places a vague refusal only (a
    # filter behind a gateway quotes the address too, after the content was taken).
    quoted = "" if phase else _names_the_recipient(evidence.diagnostic, evidence.recipient)
    placed, because = _placed_by_phase(reason, phase or quoted, named)
    if placed != reason:
        return placed, because
    if reason == "userunknown" and not phase:
        phase = _phase_of(report)
    if (
        reason == "userunknown"
        and phase == "data"
        and not evidence.status.endswith(".1.1")
        and ".1.1" not in evidence.diagnostic
        and "recipient" not in evidence.diagnostic.lower()
        and not MAILBOX_VERDICT_AFTER_DATA.search(evidence.diagnostic.lower())
    ):
        # The recipient was accepted at RCPT TO and refused only after the content was seen:
        # a filter of the recipient or the site, not a missing mailbox.
        return "filtered", "refused after DATA, not at RCPT TO (filtered)"
    if (
        reason == "userunknown"
        and phase != "rcpt"
        and _refused_after_acceptance(evidence, report, filter_gateway)
    ):
        return "filtered", "refused after the recipient was accepted (filtered)"
    return reason, ""


# Verdicts that say only "refused" (a bare 550/554, "Access denied", a generic X.7.1): the SMTP
# command the refusal answered says more.
_VAGUE_REFUSALS = frozenset(
    {"onhold", "undefined", "rejected", "securityerror", "policyviolation", "systemerror"}
)

# RFC 3463 subjects that a refusal of a non-existent mailbox does not use: X.2.x mailbox status,
# X.3.x mail system status, X.7.x security or policy status (an unknown address is X.1.x).
_NOT_ADDRESS_SUBJECTS = ("2", "3", "7")


def _refused_after_acceptance(evidence: Evidence, report: str, filter_gateway: bool) -> bool:
    """True when a "user unknown" was the verdict of a filter after the recipient was accepted.

    Four signs, none of which a plain reply to RCPT TO shows: the reply quotes no address
    ("550 : User unknown", the shape of a refusal of the content); the enhanced code names a
    mailbox, system or policy problem rather than an address one, and nothing in the report ties
    the refusal to RCPT TO; the report comes from a filtering gateway, which accepts every
    recipient itself and passes on its inner server's refusal afterwards (unless that refusal
    carries an address status, X.1.x); or nothing at all ties the verdict to the address: no
    specific status (none, or X.0.0), no RCPT TO anywhere, and the words after the report's own
    heading name neither an address nor a recipient ("550 user unknown", "[User unknown]", "The
    email account that you tried to reach does not exist." in a DSN without its 5.1.1). A
    reply to RCPT TO is about that one address, and servers say so ("<a@b>: User unknown",
    "Recipient address rejected", X.1.1).
    """
    diagnostic = evidence.diagnostic.lower()
    if USER_UNKNOWN_WITHOUT_ADDRESS.search(diagnostic):
        return True
    match = _ENHANCED.match(evidence.status)
    subject = match.group(2) if match else ""
    if filter_gateway and subject != "1":
        return True
    no_rcpt = "rcpt" not in report.lower() and "rcpt" not in diagnostic
    if subject in _NOT_ADDRESS_SUBJECTS and no_rcpt:
        return True
    if no_rcpt and (not match or (subject == "0" and match.group(3) == "0")):
        words = _without_heading(diagnostic, evidence.recipient)
        # The server's own words must say "user unknown" (not only the report around them, as
        # carriers' notices do whose reply line is just the address).
        return (
            "@" not in words
            and "recipient" not in words
            and "rcpt" not in words
            and reason_from_text(words) == "userunknown"
        )
    return False


def _without_heading(diagnostic: str, recipient: str) -> str:
    """The diagnostic without the report's heading: text-only reports start a recipient's
    paragraph with the address ("a@b [User unknown]", "<a@b>: ..."), which is the report's
    label, not part of what the server said."""
    words = diagnostic.lstrip(' <"')
    if recipient and words.startswith(recipient):
        words = words[len(recipient) :]
    return words


def _reply_behind_protocol_error(
    diagnostic: str, recipient: str, transcript: str
) -> tuple[str, str] | None:
    """sendmail's "554 <a>... Remote protocol error" says only that the session broke off on an
    earlier command; the remote's own reply to it stands above, in the transcript ("<<< 550 ..."
    after ">>> MAIL From:<...>"). Returns (that reply, the phase of its command), or None."""
    if "remote protocol error" not in diagnostic.lower() or not recipient:
        return None
    lowered = transcript.lower()
    at = lowered.find(f"<{recipient}>... remote protocol error")
    if at < 0:
        return None
    replies = list(SENDMAIL_TRANSCRIPT_REPLY.finditer(transcript, 0, at))
    if not replies:
        return None
    reply = replies[-1]
    commands = list(SENDMAIL_TRANSCRIPT_COMMAND.finditer(transcript, 0, reply.start()))
    phase = _phase_of(commands[-1].group(0)) if commands else ""
    return reply.group(1).strip(), phase


def _says_something(evidence: Evidence) -> bool:
    """True when the recipient's paragraph holds words besides the address itself."""
    words = evidence.context.lower()
    if evidence.recipient:  # "".replace("", " ") would put a space between every character
        words = words.replace(evidence.recipient, " ")
    if NO_REPORT.search(words):
        return False
    return any(ch.isalpha() for ch in words)


def _greeting(reply: str) -> str:
    """ "connect" when the reply has the shape of a refused greeting (rules.GREETING_REFUSAL)."""
    return "connect" if GREETING_REFUSAL.match(reply.lower()) else ""


def _names_the_recipient(reply: str, recipient: str) -> str:
    """ "rcpt" when the remote's reply starts with the failed recipient's address, right after
    its codes ("542 a@example.org Rejected"): of the commands of a session only RCPT TO has
    the recipient for its argument, and a server quotes the argument it refuses."""
    if not recipient:
        return ""
    words = _REPLY_CODES_AHEAD.sub("", reply.lower(), count=1)
    if words == reply.lower():
        return ""  # not a reply: a report's own words about the address
    return "rcpt" if words.lstrip("<").startswith(recipient.lower()) else ""


def _reply_code(reply: str) -> int | None:
    return int(reply[:3]) if reply[:3].isdigit() else None


def _phase_of(text: str) -> str:
    from todoku.bounce.extract import _phase_in

    return _phase_in(text) if text else ""
