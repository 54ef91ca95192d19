"""Evidence → reason word, by walking the tables of rules.py."""

from __future__ import annotations

import re

from todoku.bounce.extract import Evidence
from todoku.bounce.prefilter import needs_of
from todoku.bounce.rules import (
    ACCOUNT_DISABLED_NOTICE,
    ANY,
    CODE_RULES,
    DECISIVE_STATUS,
    MAILBOX_VERDICT_AFTER_DATA,
    NO_REPORT,
    QUOTED_NEXT_HOP_REPLY,
    SENDMAIL_TRANSCRIPT_COMMAND,
    SENDMAIL_TRANSCRIPT_REPLY,
    STATUS_RULES,
    TEXT_RULES,
    UNSUBSCRIBE_REQUEST,
    USER_UNKNOWN_WITHOUT_ADDRESS,
    Rule,
)

TYPE_CHECKING = False  # typing is not imported at run time: explain's start-up counts
if TYPE_CHECKING:
    from collections.abc import Callable

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


def reason_from_status(enhanced: str | None) -> str | None:
    """The reason an RFC 3463 enhanced status code names on its own, or None if too vague."""
    match = _ENHANCED.match((enhanced or "").strip())
    if not match:
        return None
    klass, subject, detail = match.groups()
    if klass == "2":
        return "delivered"
    return STATUS_RULES.get(f"{subject}.{detail}")


def reason_from_text(text: str, phase: str = ANY) -> str | None:
    rule = _first_rule(text, phase)
    return rule.reason if rule else None


# (rule, its pattern's search, the words it needs): built on first use, when the prefilter's
# words are looked up once for every rule instead of once per rule per text.
_CHECKS: list[tuple[Rule, Callable[[str], object], tuple[tuple[str, ...], ...] | None]] = []


def _first_rule(text: str, phase: str = ANY, specific_only: bool = False) -> Rule | None:
    text = text.lower()
    if not _CHECKS:
        _CHECKS.extend((rule, rule.pattern.search, needs_of(rule.pattern)) for rule in TEXT_RULES)
    for rule, search, needs in _CHECKS:
        if (rule.phase != ANY and rule.phase != phase) or (specific_only and rule.weak):
            continue
        # The cheap test first: most rules need words the text does not contain (prefilter.py,
        # might_match written out here: this loop runs some thirty rules per report).
        if needs is not None:
            for words in needs:
                for word in words:
                    if word in text:
                        break
                else:
                    break  # none of this group's words: the rule cannot match
            else:
                needs = None  # every group has a word in the text: run the pattern
            if needs is not None:
                continue
        if search(text):
            return rule
    return None


def classify_reply(code: int | None, enhanced: str | None, text: str, phase: str = ANY) -> str:
    """The reason word for one SMTP reply (or a bounce's diagnostic): text first, then the codes.

    The sentence wins over the codes because servers reuse a few codes (550 5.7.1 above all) for
    many different causes, while their wording is specific.
    """
    reason = reason_from_text(text or "", phase)
    if reason:
        return reason
    reason = reason_from_status(enhanced)
    if reason:
        return reason
    if code is not None and code in CODE_RULES:
        return CODE_RULES[code]
    if code is not None and 400 <= code < 500:
        return "onhold"
    return "undefined"


def classify_evidence(kind: str, evidence: Evidence, subject: str = "", report: str = "",
                      filter_gateway: bool = False) -> str:
    """The reason word for one recipient of a parsed bounce.

    ``filter_gateway``: the bounce was written by a content-filtering gateway (rules.FILTER_GATEWAY).
    """
    if kind == "vacation" and UNSUBSCRIBE_REQUEST.search(report.lower()):
        return "feedback"
    if kind in ("feedback", "vacation", "notbounce"):
        return kind
    status = evidence.status
    action = evidence.action
    if action in ("delivered", "relayed", "expanded") or status.startswith("2."):
        return "delivered"
    phase = evidence.phase or _phase_of(evidence.context)
    diagnostic = evidence.diagnostic
    earlier = _reply_behind_protocol_error(diagnostic, evidence.recipient,
                                           evidence.context or report)
    if earlier is not None:
        diagnostic, phase = earlier
    decisive = _decisive(status)
    if decisive:
        return decisive
    # The remote server's own words are the best evidence; the report around them comes next
    # (it carries the reporting MTA's judgement: "retry timeout exceeded", "loops back").
    reason = None
    named = False  # a specific sentence named the cause (not a canned word or a bare code)
    texts: tuple[str, ...] = (diagnostic, evidence.context)
    if earlier is not None:
        texts = (diagnostic,)
    quoted = QUOTED_NEXT_HOP_REPLY.search(diagnostic)
    if quoted:
        # A relay's summary around the next hop's own reply ("5.1.0 - Unknown address error
        # 550-'5.7.1 ... Access denied'"): the summary only names the status class, the quoted
        # reply is what the remote server said, so it alone is read (then its code).
        texts = (quoted.group(1),)
    for text in texts:
        rule = _first_rule(text, phase) if text else None
        if rule is None:
            continue
        reason = rule.reason
        named = not rule.weak
        if rule.weak:
            # A canned wording: a specific sentence in the rest of the report names the cause.
            for more in (*texts, report):
                specific = _first_rule(more, phase, specific_only=True) if more else None
                if specific:
                    reason, named = specific.reason, True
                    break
        break
    if reason is None and action == "delayed":
        reason = "expired"
    if reason is None:
        reason = reason_from_status(status)
    # The rest of the report and the subject are read last: they mix boilerplate with the cause.
    # (Not after a transcript reply was found: the report's other lines are other sessions'.)
    for text in (report, subject) if earlier is None else ():
        if reason is None and text:
            reason = reason_from_text(text, phase)
    if reason is None:
        code = evidence.reply_code if earlier is None else _reply_code(diagnostic)
        if code is not None and code in CODE_RULES:
            reason = CODE_RULES[code]
        else:
            # onhold: the bounce gives a cause we cannot place; undefined: it gives none at all
            # (only the address, or the MTA's own "no report" line).
            said = code or status or _says_something(evidence)
            reason = "onhold" if said else "undefined"
    if reason == "userunknown" and report and ACCOUNT_DISABLED_NOTICE.search(report.lower()):
        # Carriers answer a disabled account with the same "550 user unknown" as a missing one,
        # and say which it was in their own notice ("The user(s) account is disabled.").
        reason = "suspend"
    if reason in ("userunknown", "hostunknown", "suspend") and phase == "mail":
        # Refused in reply to MAIL FROM: the unknown address is the sender's, not the recipient's.
        return "rejected"
    if reason in _VAGUE_REFUSALS and not named:
        # A refusal that names no cause is placed by the command it answered (RFC 5321 §3.3):
        # before MAIL FROM the server knows only the client (its IP, its name, its HELO), so it
        # refused the client; in reply to MAIL FROM it refused the sender (a policy named at
        # MAIL FROM stays a policy: "Mail from <a> rejected for policy reasons").
        if phase in ("connect", "helo"):
            return "blocked"
        if phase == "mail" and reason not in ("rejected", "policyviolation"):
            return "rejected"
    if reason == "userunknown" and not phase:
        phase = _phase_of(report)
    if (reason == "userunknown" and phase == "data" and not status.endswith(".1.1")
            and ".1.1" not in evidence.diagnostic and "recipient" not in evidence.diagnostic.lower()
            and not MAILBOX_VERDICT_AFTER_DATA.search(evidence.diagnostic.lower())):
        # The recipient was accepted at RCPT TO and refused only after the content was seen:
        # a filter of the recipient or the site, not a missing mailbox.
        return "filtered"
    if reason == "userunknown" and phase != "rcpt" and _refused_after_acceptance(
            evidence, report, filter_gateway):
        return "filtered"
    return reason


# Verdicts that say only "refused" (a bare 550/554, "Access denied", a generic X.7.1): the SMTP
# command the refusal answered says more.
_VAGUE_REFUSALS = frozenset({"onhold", "undefined", "rejected", "securityerror",
                             "policyviolation", "systemerror"})

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
        return ("@" not in words and "recipient" not in words and "rcpt" not in words
                and reason_from_text(words) == "userunknown")
    return False


def _without_heading(diagnostic: str, recipient: str) -> str:
    """The diagnostic without the report's heading: text-only reports start a recipient's
    paragraph with the address ("a@b [User unknown]", "<a@b>: ..."), which is the report's
    label, not part of what the server said."""
    words = diagnostic.lstrip(" <\"")
    if recipient and words.startswith(recipient):
        words = words[len(recipient):]
    return words


def _reply_behind_protocol_error(diagnostic: str, recipient: str,
                                 transcript: str) -> tuple[str, str] | None:
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
    words = evidence.context.lower().replace(evidence.recipient, " ")
    if NO_REPORT.search(words):
        return False
    return any(ch.isalpha() for ch in words)


def _reply_code(reply: str) -> int | None:
    return int(reply[:3]) if reply[:3].isdigit() else None


def _decisive(status: str) -> str | None:
    match = _ENHANCED.match(status)
    if not match:
        return None
    return DECISIVE_STATUS.get(f"{match.group(2)}.{match.group(3)}")


def _phase_of(text: str) -> str:
    from todoku.bounce.extract import _phase_in

    return _phase_in(text) if text else ""
