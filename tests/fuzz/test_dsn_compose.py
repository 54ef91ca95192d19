"""Fuzz the DSN composer (dsn/compose.py) with hostile originals, subjects, ENVIDs and recipients.

Everything a report copies comes from outside: the original's header block and Subject (any
sender), the ENVID and ORCPT (the client's MAIL and RCPT), the recipient address, the remote's
reply and host name. Whatever they hold, ``compose`` either refuses cleanly (``ValueError``) or
writes a report that

* has CRLF line ends only (the original is stored with CRLF), so no bare CR or LF;
* parses back with ``email.message_from_bytes`` as a multipart/report with exactly our top-level
  fields (From, To, Subject, ...), nothing injected, and our Subject;
* has one per-message block and one block per recipient in its delivery-status part, each with
  only RFC 3464 fields, and carries a clean ENVID, recipient and status as given;
* returns the original byte for byte when it is a failure report with the whole message.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import Message

from hypothesis import assume, example, given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings
from todoku.dsn.compose import compose, original_subject, subject_for
from todoku.dsn.model import RecipientReport, Report, ReportKind
from todoku.proto.smtp.address import Address, decode_xtext

TOP_FIELDS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "mime-version",
    "content-type",
}
PER_MESSAGE = {"original-envelope-id", "reporting-mta", "x-todoku-queue-id", "arrival-date"}
PER_RECIPIENT = {
    "original-recipient",
    "final-recipient",
    "action",
    "status",
    "remote-mta",
    "diagnostic-code",
    "last-attempt-date",
    "will-retry-until",
    "x-todoku-reason",  # an RFC 3464 §3 extension field: the reason word the text explains
}
ACTIONS = {ReportKind.FAILURE: "failed", ReportKind.DELAY: "delayed", ReportKind.SUCCESS: "relayed"}

HOSTILE = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "\r\n",
                "\r",
                "\n",
                "\r\nX-Injected: yes",
                "\r\n\r\n",
                "\0",
                "\x1b[31m",
                "\x85",
                "\u2028",
                "\t",
                " ",
                ";",
                ":",
                '"',
                "=?utf-8?b?5a6b?=",
                "=?utf-8?q?=0D=0A?=",
                "é",
                "例え",
                "\udcff"[:0],
                "a" * 80,
                "x" * 990,
                "bob@example.test",
                "<",
                ">",
            ]
        ),
        st.text(max_size=8),
    ),
    max_size=8,
).map("".join)


def is_clean(text: str) -> bool:
    """Printable ASCII, short enough to be written as is (long values: the last target)."""
    return text.isascii() and text.isprintable() and len(text) < 40 and text.strip() == text


def has_encoded_word(report: Report) -> bool:
    values = [report.to, report.envid or ""]
    for r in report.recipients:
        values += [r.final_recipient, r.original_recipient or "", r.remote_mta, r.diagnostic]
    return any("=?" in v for v in values)


@st.composite
def originals(draw: st.DrawFn) -> bytes:
    """An original message as todoku stores it (CRLF line ends) with a hostile header block."""
    subject = draw(
        st.one_of(
            HOSTILE,
            st.integers(1, 400).map(lambda n: "=?utf-8?b?5a6b?= " * n),
            st.text(max_size=60),
        )
    )
    lines = [f"Subject: {subject}", *draw(st.lists(HOSTILE.map(lambda t: f"X-H: {t}"), max_size=3))]
    lines += draw(
        st.lists(st.sampled_from([" folded", "\tmore", "no colon", "From: a@b"]), max_size=3)
    )
    head = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    head = draw(st.sampled_from([head, head.replace(b"\xc3", b"\xff")]))
    body = draw(st.sampled_from([b"", b"body\r\n", b".\r\n", b"\xff\xfe\r\n", b"--B\r\n"]))
    raw = head + b"\r\n\r\n" + body
    # Stored content has only CRLF line ends (the SMTP core normalises bare CR and LF).
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


RECIPIENT = st.builds(
    lambda final, orcpt, status, mta, diagnostic, detail, reason, action: RecipientReport(
        final_recipient=final,
        original_recipient=None if orcpt is None else f"rfc822;{orcpt}",
        action=action,
        status=status,
        remote_mta=mta,
        diagnostic=diagnostic and f"smtp; 550 5.1.1 {diagnostic}",
        last_attempt=1_700_000_100.0,
        will_retry_until=None,
        reason=reason,
        detail=detail,
    ),
    final=st.one_of(st.just("bob@example.test"), st.just("ü@例え.test"), HOSTILE),
    orcpt=st.one_of(st.none(), HOSTILE),
    status=st.sampled_from(["5.1.1", "4.4.1", "2.0.0"]),
    mta=st.one_of(st.just(""), st.just("mx1.remote.test [192.0.2.1]"), HOSTILE),
    diagnostic=st.one_of(st.just(""), HOSTILE),
    detail=st.one_of(st.just(""), HOSTILE),
    reason=st.sampled_from(["userunknown", "mailboxfull", "delayed", "", "nosuchreason"]),
    action=st.just(""),
)


# The envelope sender a report goes to: an address the SMTP core accepted (any printable local
# part, quoted when it must be; parse_path refuses control characters).
SENDERS = st.one_of(
    st.just("alice@example.test"),
    HOSTILE.filter(lambda t: t.isprintable()).map(lambda t: str(Address(t or "a", "example.test"))),
)


@st.composite
def reports(draw: st.DrawFn) -> Report:
    kind = draw(st.sampled_from(list(ReportKind)))
    original = draw(originals())
    recipients = tuple(
        RecipientReport(**{**{f: getattr(r, f) for f in r.__slots__}, "action": ACTIONS[kind]})
        for r in draw(st.lists(RECIPIENT, min_size=1, max_size=3))
    )
    return Report(
        kind=kind,
        reporting_mta="mx.example.test",
        to=draw(SENDERS),
        queue_id="Q1",
        arrival_date=1_700_000_000.0,
        recipients=recipients,
        original=original,
        headers_only=draw(st.booleans()),
        lang=draw(st.sampled_from(["en", "ja"])),
        envid=draw(st.one_of(st.none(), st.just("E-7"), HOSTILE)),
        original_subject=original_subject(original),  # as the queue runner does
        elapsed=4 * 3600.0,
        lifetime=5 * 86400.0,
    )


def field_groups(part: bytes) -> list[Message]:
    """The field blocks of a delivery-status body, split at blank lines (RFC 3464 §2.1)."""
    body = part.partition(b"\r\n\r\n")[2]
    chunks = [c for c in body.split(b"\r\n\r\n") if c.strip()]
    # compat32: the values as written, encoded words left alone.
    texts = [c.decode("utf-8", "replace") + "\r\n" for c in chunks]
    return [email.message_from_string(t, policy=policy.compat32) for t in texts]


def value(block: Message, name: str) -> str:
    return re.sub(r"\r?\n", "", str(block[name]))


@fuzz_settings(0.5)
@given(report=reports())
def test_a_report_parses_back_with_our_fields_or_is_refused(report: Report) -> None:
    # Values that hold an RFC 2047 encoded word are the next target's.
    assume(not has_encoded_word(report))
    check_report(report)


def _report(
    envid: str | None = None,
    orcpt: str | None = None,
    diagnostic: str = "",
    to: str = "alice@example.test",
) -> Report:
    recipient = RecipientReport(
        "bob@example.test", orcpt, "failed", "5.1.1", "mx.remote.test", diagnostic
    )
    return Report(
        ReportKind.FAILURE,
        "mx.example.test",
        to,
        "Q1",
        1_700_000_000.0,
        (recipient,),
        b"Subject: x\r\n\r\nbody\r\n",
        False,
        envid=envid,
    )


# What a client can send: MAIL FROM:<a@b> ENVID=+3D?utf-8?q?a+3D0D+3D0AX-Env:_1?+3D decodes to
# an ENVID without any control character, which the email package decodes as an encoded word
# and writes back with a real CR LF: a field of the attacker's choosing in the report.
_ENVID = decode_xtext("+3D?utf-8?q?a+3D0D+3D0AX-Env:_1?+3D")


@fuzz_settings(0.5)
@given(report=reports())
@example(report=_report(envid=_ENVID))
@example(report=_report(to="=?utf-8?b?5a6b?=@example.test"))
@example(report=_report(orcpt="rfc822;=?utf-8?q?=0D=0AX-Injected:_yes?="))
@example(report=_report(diagnostic="smtp; 550 =?utf-8?q?=0D=0A=0D=0AStatus:_2.0.0?="))
def test_encoded_words_from_outside_inject_nothing(report: Report) -> None:
    check_report(report)


def check_report(report: Report) -> None:
    try:
        data = compose(report, now=1_700_000_200.0)
    except ValueError:
        return  # a clean refusal (what a caller can catch and fall back from)
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    message = email.message_from_bytes(data, policy=policy.default)
    assert {name.lower() for name in message} == TOP_FIELDS, message.keys()
    assert len(message.keys()) == len(TOP_FIELDS)
    assert str(message["Subject"]) == subject_for(report)
    if is_clean(report.to) and report.to.isascii():
        # Written as is. (Compared raw: Python's reader decodes an RFC 2047 word even inside an
        # address, where RFC 2047 §5 does not allow one, so '=?utf-8?b?5a6b?=@x' reads as '宛@x';
        # that is the reader's display, not a field this report added.)
        head = data.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nTo: " + report.to.encode() + b"\r\n" in b"\r\n" + head + b"\r\n"
        assert len(message["To"].addresses) == 1
    assert message.get_content_type() == "multipart/report"
    boundary = message.get_boundary()
    assert boundary
    delimiter = b"\r\n--" + boundary.encode()
    parts = data.split(delimiter)[1:-1]
    assert data.split(delimiter)[-1].startswith(b"--")
    assert len(parts) in (2, 3)
    groups = field_groups(parts[1])
    assert len(groups) == 1 + len(report.recipients), [g.keys() for g in groups]
    per_message, *per_recipient = groups
    assert {k.lower() for k in per_message} <= PER_MESSAGE
    if report.envid and is_clean(report.envid):
        assert value(per_message, "Original-Envelope-Id") == report.envid
    for block, recipient in zip(per_recipient, report.recipients, strict=True):
        names = [k.lower() for k in block]
        assert set(names) <= PER_RECIPIENT and len(names) == len(set(names)), names
        assert value(block, "Status") == recipient.status
        assert value(block, "Action") == recipient.action
        if is_clean(recipient.final_recipient):
            assert value(block, "Final-Recipient").endswith(recipient.final_recipient)
    if len(parts) == 3 and report.kind is ReportKind.FAILURE and not report.headers_only:
        assert report.original.rstrip(b"\r\n") in parts[2]


@fuzz_settings()
@given(original=originals())
def test_the_original_subject_is_bounded_text(original: bytes) -> None:
    subject = original_subject(original)
    assert isinstance(subject, str) and len(subject) <= 200
    assert not re.search(r"[\r\n]", subject) or "=?" in original.decode("latin-1")


_LONG_ADDRESS = "a" * 64 + "@" + "sub." * 5 + "example.test"  # 95 octets, a valid address


@fuzz_settings(0.2)
@given(local=st.text(alphabet="abcdefghij.-", min_size=40, max_size=64))
@example(local="a" * 64)
def test_long_addresses_are_written_as_they_are(local: str) -> None:
    address = _LONG_ADDRESS.replace("a" * 64, local.strip(".-") or "a")
    recipient = RecipientReport(address, f"rfc822;{address}", "failed", "5.1.1")
    report = Report(
        ReportKind.FAILURE,
        "mx.example.test",
        "alice@example.test",
        "Q1",
        1_700_000_000.0,
        (recipient,),
        b"Subject: x\r\n\r\nbody\r\n",
        False,
    )
    data = compose(report, now=1_700_000_200.0)
    parts = data.split(b"\r\n--" + email.message_from_bytes(data).get_boundary("").encode())
    block = field_groups(parts[2])[1]
    assert value(block, "Final-Recipient").split(";", 1)[1].strip() == address
    assert value(block, "Original-Recipient") == f"rfc822;{address}"
