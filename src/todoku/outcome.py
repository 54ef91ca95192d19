"""The outcome of delivering a message to one recipient: one frozen type from the SMTP client
to the queue, the store, the reports and ``explain`` (issue 13 item 1, STYLE.md §7 rule 5).

Who decided it is a fact, not a guess: a remote server decided when there is a reply (``code``)
from a remote host (``remote_mta``); this server decided every failure of a ``LOCAL_PHASES``
phase (DNS, routing, a loop, expiry, the administrator, a pause, an internal error) and every
failure without a reply (a refused connection, a timeout, a broken TLS handshake). ``text`` is
then the remote's own lines, or our own words; nothing travels as a formatted string that is
split again.

Standard library only: the SMTP client (net), the queue, the store's interface, the report
composer (dsn) and the pure bounce analyzer all import it, and it imports none of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Steps of an SMTP session (the command names of proto.smtp.client, and the steps before any
# command) after which a remote server may have answered.
CONNECT = "connect"
TLS = "tls"
# Failures decided here, before or instead of any SMTP exchange.
PHASE_DNS = "dns"
PHASE_ROUTING = "routing"
PHASE_EXPIRED = "expired"
PHASE_LOOP = "loop"
PHASE_ADMIN = "admin"
PHASE_THROTTLED = "throttled"
PHASE_INTERNAL = "internal"
LOCAL_PHASES = frozenset(
    {
        PHASE_DNS,
        PHASE_ROUTING,
        PHASE_EXPIRED,
        PHASE_LOOP,
        PHASE_ADMIN,
        PHASE_THROTTLED,
        PHASE_INTERNAL,
    }
)

# RFC 3464 §2.3.3 actions.
FAILED = "failed"
DELAYED = "delayed"
DELIVERED = "delivered"
RELAYED = "relayed"
EXPANDED = "expanded"
ACTIONS = (FAILED, DELAYED, DELIVERED, RELAYED, EXPANDED)

# Reasons that say the same message would fail the same way again: the recipient's address or
# domain is wrong or closed to mail, the sender is refused, or the message itself is (its size,
# content, form, signature). Not here: what passes with time or is the sending server's state
# (mailboxfull, systemfull, toomanyconn, speeding, blocked, requireptr, badreputation,
# networkerror, systemerror, mailererror, failedstarttls, expired, delayed) and what is unknown
# (onhold, undefined).
HARD_REASONS = frozenset(
    {
        "userunknown",
        "hostunknown",
        "notaccept",
        "hasmoved",
        "suspend",
        "norelaying",
        "suppressed",
        "rejected",
        "authfailure",
        "securityerror",
        "syntaxerror",
        "mesgtoobig",
        "exceedlimit",
        "contenterror",
        "notcompliantrfc",
        "policyviolation",
        "spamdetected",
        "virusdetected",
        "filtered",
    }
)


class Verdict(enum.Enum):
    """What the queue does with the recipient: done, bounce now, or retry on the schedule."""

    DELIVERED = "delivered"
    PERMANENT = "permanent"  # bounce now
    TEMPORARY = "temporary"  # retry on the schedule


_ACTION = {Verdict.DELIVERED: DELIVERED, Verdict.PERMANENT: FAILED, Verdict.TEMPORARY: DELAYED}


def verdict_for(code: int | None) -> Verdict:
    """A reply's verdict by its class (RFC 5321 §4.2.1); no reply at all is temporary
    (§4.5.4.1: a connection that fails is retried)."""
    if code is not None and 200 <= code < 300:
        return Verdict.DELIVERED
    if code is not None and code >= 500:
        return Verdict.PERMANENT
    return Verdict.TEMPORARY


def status_for(verdict: Verdict, code: int | None, enhanced: str) -> str:
    """The RFC 3463 status for a DSN: the remote's enhanced code, else one derived from its class."""
    if enhanced:
        return enhanced
    if verdict is Verdict.DELIVERED:
        return "2.0.0"
    if code is not None:
        return f"{str(code)[0]}.0.0"
    return "5.0.0" if verdict is Verdict.PERMANENT else "4.0.0"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's result of one delivery attempt (``recipient`` "" for a result about the
    whole connection, before any recipient was named), as recorded, reported and explained.

    ``code``/``enhanced``/``text`` are the remote server's own reply when there was one; for
    failures before any reply (DNS, connect, timeout) ``code`` is None, ``text`` is our own
    words and ``status`` is our RFC 3463 code for the condition. For a failure decided here
    after earlier replies (expiry), ``code``/``enhanced``/``text``/``remote_mta`` keep the last
    remote reply and ``note`` says what we decided.
    """

    recipient: str
    verdict: Verdict
    phase: str
    code: int | None
    enhanced: str
    text: str
    remote_mta: str = ""  # "mx1.example.net [192.0.2.1]"; "" when no remote host was involved
    reason: str = ""  # the bounce analyzer's word (todoku.bounce.judge_reply)
    status: str = ""  # RFC 3463 code for the DSN (enhanced, or derived)
    # The next hop announced DSN and got our NOTIFY: success reports are its job now
    # (RFC 3461 §5.2.2.3, no "relayed" report from us).
    dsn_handed_over: bool = False
    evidence: tuple[str, ...] = ()  # what decided ``reason`` (the classifier's words)
    note: str = ""  # our own words about a decision made here after remote replies (expiry)
    # Phase "tls": why the certificates were refused (OpenSSL's X509_V_ERR_* code, or
    # net.smtp_client.PEER_CHECK_REFUSED); None otherwise. Read by TLS reporting (queue.tlsrpt).
    verify_code: int | None = None

    @classmethod
    def reply(
        cls,
        recipient: str,
        phase: str,
        code: int | None,
        enhanced: str,
        text: str,
        remote_mta: str,
    ) -> Outcome:
        """What a remote server's reply (or its silence: ``code`` None) means for ``recipient``."""
        verdict = verdict_for(code)
        if code is None:
            # No reply at all: RFC 3463 4.4.1 (no answer from host) / 4.4.2 (bad connection).
            status = "4.4.1" if phase == CONNECT else "4.4.2"
        else:
            status = status_for(verdict, code, enhanced)
        return cls(recipient, verdict, phase, code, enhanced, text, remote_mta, "", status)

    @property
    def action(self) -> str:
        """RFC 3464 §2.3.3: delivered, failed (returned, never retried), delayed (retried)."""
        return _ACTION[self.verdict]

    @property
    def permanent(self) -> bool:
        """The message will not be retried for this recipient (``action == "failed"``)."""
        return self.verdict is Verdict.PERMANENT

    @property
    def hard(self) -> bool:
        """Sending the same message again later would fail the same way."""
        return self.verdict is Verdict.PERMANENT and self.reason in HARD_REASONS

    @property
    def decided_by(self) -> str:
        """ "remote" when a remote server's reply decided it, "local" when this server did."""
        if self.code is not None and self.remote_mta and self.phase not in LOCAL_PHASES:
            return "remote"
        return "local"

    @property
    def remote_lines(self) -> tuple[str, ...]:
        """The remote server's own lines (none when it never replied)."""
        return tuple(self.text.splitlines()) if self.code is not None else ()

    @property
    def delivered(self) -> bool:
        return self.verdict is Verdict.DELIVERED

    @property
    def diagnostic(self) -> str:
        """RFC 3464 §2.3.6 Diagnostic-Code value: "smtp; 550 5.1.1 text" when a reply exists."""
        if self.code is None:
            return ""
        enhanced = f" {self.enhanced}" if self.enhanced else ""
        return f"smtp; {self.code}{enhanced} {' '.join(self.text.splitlines())}".strip()

    def describe(self) -> str:
        where = f" ({self.remote_mta})" if self.remote_mta else ""
        note = f"{self.note}; " if self.note else ""
        if self.code is not None:
            enhanced = f" {self.enhanced}" if self.enhanced else ""
            reply = " ".join(self.text.splitlines())
            return f"{self.phase}{where}: {note}{self.code}{enhanced} {reply}"
        return f"{self.phase}{where}: {note}{self.text}".rstrip("; ")
