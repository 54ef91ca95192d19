"""Compose RFC 3464 / RFC 6522 delivery status notifications with the stdlib ``email`` package.

Nothing taken from outside reaches the ``email`` package's header machinery unbounded: its
parser's time and memory grow faster than linearly with the number of encoded words in a
value. The original message is copied as bytes, never parsed (its Subject is read by
``todoku.dsn.subject`` in bounded, linear time); every other value from outside (ENVID, ORCPT,
the remote's reply) is cut to a fixed length and stripped of control characters before it
becomes a header field (``_cleaned``). ``compose_safely`` falls back to a plain report without
anything copied when the full one cannot be composed.
"""

from __future__ import annotations

import email.utils
import logging
import re
import uuid
from dataclasses import replace
from email import policy
from email.message import EmailMessage

from todoku.dsn.durations import describe_duration
from todoku.dsn.model import RecipientReport, Report, ReportKind
from todoku.dsn.subject import SUBJECT_LIMIT, original_subject

log = logging.getLogger("todoku.dsn")

# Longest values a report copies from outside, in characters. The protocol limits (ENVID 100,
# ORCPT 500: RFC 3461 §4; a path 256: RFC 5321 §4.5.3.1.3) with room to spare; a remote's reply
# may be 200 lines of 4 KB, of which the first DIAGNOSTIC_LIMIT characters are kept.
ENVID_LIMIT = 200
ADDRESS_LIMIT = 600
NAME_LIMIT = 300
DIAGNOSTIC_LIMIT = 4000
_CUT = " [...]"
# Field lines: folded before FOLD_AT characters where a space allows (RFC 5322 §2.1.1), and a
# single word is cut to fit LINE_LIMIT.
FOLD_AT = 78
LINE_LIMIT = 998
_CHUNKS = re.compile(r" *[^ ]+| +$")
_CONTROL = {c: None for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]}
_CONTROL_AS_SPACE = dict.fromkeys(_CONTROL, " ")


def _explain(reason: str, lang: str, action: str, **facts: str) -> tuple[str, str]:
    """The bounce analyzer's plain-words cause and remedy with what the report's action means
    (issue 13): a returned message says that nothing retries it, as ``todoku explain`` does on
    this report. A delay warning's introduction already says that the server keeps trying, so
    its paragraphs add only the reason and retry_note's one sentence."""
    from todoku.bounce.analyze import explanation
    from todoku.bounce.explain import explain_reason, retry_note

    reason = reason or "undefined"
    if action == "delayed":
        cause, remedy = explain_reason(reason, lang, **facts)
        return cause, remedy + retry_note(reason, lang, action)
    return explanation(reason, lang, action, **facts)


_SUBJECTS = {
    ("en", ReportKind.FAILURE): "Undelivered Mail Returned to Sender",
    ("ja", ReportKind.FAILURE): "配送できなかったメールの返送",
    ("en", ReportKind.SUCCESS): "Successful Mail Delivery Report",
    ("ja", ReportKind.SUCCESS): "メール配送成功の通知",
}


def subject_for(report: Report) -> str:
    if report.kind is ReportKind.DELAY:
        duration = describe_duration(report.elapsed, report.lang)
        if report.lang == "ja":
            return f"警告: 過去{duration}メールを送信できていません"
        # The wording users and their mail filters know from sendmail/Postfix delay warnings.
        return f"Warning: could not send message for past {duration}"
    return _SUBJECTS[(report.lang if report.lang == "ja" else "en", report.kind)]


def _recipient_paragraph(report: Report, r: RecipientReport) -> str:
    lang = report.lang
    # What the remote server replied, when one did; else our own words about the failure.
    said = r.diagnostic.partition(";")[2].strip() if r.diagnostic else ""
    facts = {
        "recipient": r.final_recipient,
        "remote_mta": r.remote_mta if said else "",
        "lifetime": describe_duration(report.lifetime, lang),
        "elapsed": describe_duration(report.elapsed, lang),
        "reporting_mta": report.reporting_mta,
    }
    detail = "" if said else r.detail
    if r.reason == "expired" and detail:
        # Given up with no reply to show: "What happened" says how the last attempt failed
        # (the relay refused our login, the connection was refused, ...).
        facts["last_error"] = detail
        detail = ""
    cause, remedy = _explain(r.reason, lang, r.action, **facts)
    lines = [f"<{r.final_recipient}>:"]
    if lang == "ja":
        if said:
            lines.append(f"    {r.remote_mta or '相手サーバー'} の応答: {said}")
        elif detail:
            lines.append(f"    詳細: {detail}")
        lines += [f"    原因: {cause}", f"    対処: {remedy}"]
    else:
        if said:
            lines.append(f"    {r.remote_mta or 'The remote server'} said: {said}")
        elif detail:
            lines.append(f"    Details: {detail}")
        lines += [f"    What happened: {cause}", f"    What you can do: {remedy}"]
    return "\n".join(lines)


def human_text(report: Report) -> str:
    lang = report.lang
    host = report.reporting_mta
    lifetime = describe_duration(report.lifetime, lang)
    elapsed = describe_duration(report.elapsed, lang)
    subject = f' "{report.original_subject}"' if report.original_subject else ""
    if lang == "ja":
        subject = f"「{report.original_subject}」" if report.original_subject else ""
        intro = {
            ReportKind.FAILURE: f"メールサーバー {host} からのお知らせです。\n\n"
            f"あなたが送ったメール{subject}を、次の宛先に届けられませんでした。"
            + ("" if report.plain else "メールは返送します（このメールに添付しています）。"),
            ReportKind.DELAY: f"メールサーバー {host} からのお知らせです。\n\n"
            f"あなたが送ったメール{subject}は、{elapsed}経っても次の宛先にまだ届いていません。"
            f"このサーバーはメールが{lifetime}経つまで自動で送信を試み続けます。"
            "あなたが送り直す必要はありません。",
            ReportKind.SUCCESS: f"メールサーバー {host} からのお知らせです。\n\n"
            f"あなたが送ったメール{subject}を次の宛先へ送り届けました。",
        }[report.kind]
    else:
        intro = {
            ReportKind.FAILURE: f"This is the mail system at host {host}.\n\n"
            f"I'm sorry to have to inform you that your message{subject} could not be "
            "delivered to one or more recipients."
            + ("" if report.plain else " It is attached below."),
            ReportKind.DELAY: f"This is the mail system at host {host}.\n\n"
            f"Your message{subject} could not be delivered for {elapsed} to the recipients "
            f"below. This is only a warning: the server will keep trying until the message is "
            f"{lifetime} old. You do not need to send it again.",
            ReportKind.SUCCESS: f"This is the mail system at host {host}.\n\n"
            f"Your message{subject} was successfully passed on to the recipients below.",
        }[report.kind]
    paragraphs = [intro] + [_recipient_paragraph(report, r) for r in report.recipients]
    if report.plain:
        paragraphs.append(
            "元のメールとその詳細は、この通知に含められませんでした。"
            if lang == "ja"
            else "The original message and its details could not be included in this report."
        )
    return "\n\n".join(paragraphs) + "\n"


def _date(when: float) -> str:
    return email.utils.formatdate(when, localtime=False, usegmt=True)


def _needs_utf8(address: str) -> bool:
    return not address.isascii()


def _fold(name: str, value: str) -> str:
    """One field as written: ``name: value`` and CRLF, folded before a space so that lines stay
    under FOLD_AT characters where the value allows and never pass RFC 5322's 998 octets (a
    word too long for that is cut: values are bounded and free of control characters by
    then). Unfolding gives the value back. Never encoded: RFC 3464 and RFC 6533 fields carry
    their text as is, and no encoded word is written for a reader to decode."""
    lines: list[str] = []
    line = f"{name}:"
    for chunk in _CHUNKS.findall(" " + value):
        spaces = len(chunk) - len(chunk.lstrip(" "))
        chunk = chunk[: spaces + LINE_LIMIT - 2]
        if spaces and len(line) + len(chunk) > FOLD_AT and len(line) > len(name) + 1:
            lines.append(line)
            line = ""
        line += chunk
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _block(fields: list[tuple[str, str]]) -> str:
    return "".join(_fold(name, value) for name, value in fields)


def delivery_status(report: Report, utf8: bool = False) -> list[str]:
    """The per-message and per-recipient field blocks of RFC 3464 §2.2 and §2.3, as text.

    Written here rather than by a header policy, which would fold long values into RFC 2047
    encoded words and decode encoded words given to it (issue 12). ``utf8``: the blocks go into
    a message/global-delivery-status part (RFC 6533 §6.2), where a non-ASCII address is written
    as is under the ``utf-8`` address type (RFC 6533 §3).

    Per recipient, what todoku decided itself is told apart from what a remote server said: a
    Remote-MTA and a Diagnostic-Code only when a remote server replied or was dialled, and
    ``X-Todoku-Reason`` the analyzer's word the text explains (bounce.extract reads it back)."""
    from todoku.bounce.extract import STATED_REASON_FIELD  # lazily, as _explain

    per_message: list[tuple[str, str]] = []
    if report.envid:
        per_message.append(("Original-Envelope-Id", report.envid))  # RFC 3464 §2.2.1
    per_message.append(("Reporting-MTA", f"dns; {report.reporting_mta}"))  # §2.2.2 (required)
    per_message.append(("X-Todoku-Queue-ID", report.queue_id))
    per_message.append(("Arrival-Date", _date(report.arrival_date)))  # RFC 3464 §2.2.5
    blocks = [_block(per_message)]
    for r in report.recipients:
        fields: list[tuple[str, str]] = []
        if r.original_recipient:
            fields.append(("Original-Recipient", r.original_recipient))  # RFC 3464 §2.3.1
        address_type = "utf-8" if utf8 and _needs_utf8(r.final_recipient) else "rfc822"
        fields.append(("Final-Recipient", f"{address_type}; {r.final_recipient}"))  # §2.3.2
        fields.append(("Action", r.action))  # §2.3.3 (required)
        fields.append(("Status", r.status))  # §2.3.4 (required)
        if r.remote_mta:
            name = r.remote_mta.split(" [")[0].strip("[]")
            fields.append(("Remote-MTA", f"dns; {name}"))  # §2.3.5
        if r.diagnostic:
            fields.append(("Diagnostic-Code", r.diagnostic))  # §2.3.6: the remote's reply
        if r.last_attempt:
            fields.append(("Last-Attempt-Date", _date(r.last_attempt)))  # §2.3.7
        if r.will_retry_until:
            fields.append(("Will-Retry-Until", _date(r.will_retry_until)))  # §2.3.8
        if r.reason:
            fields.append((STATED_REASON_FIELD, r.reason))  # an extension field (§3)
        blocks.append(_block(fields))
    return blocks


def _part(fields: list[tuple[str, str]], body: bytes) -> bytes:
    """One body part: its fields, a blank line, the body as given (never re-encoded)."""
    head = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("ascii")
    return head + b"\r\n" + body


def _transfer_encoding(body: bytes) -> list[tuple[str, str]]:
    # RFC 2046 §5.2.1: a message/* part is 7bit, 8bit or binary, never base64/QP. 8-bit bytes
    # (an 8BITMIME body, UTF-8 headers) are returned unchanged, so the sender gets back exactly
    # what they sent.
    return [] if body.isascii() else [("Content-Transfer-Encoding", "8bit")]


def _identifier(value: str, limit: int) -> str:
    """An identifier from outside (ENVID, ORCPT, an address, a host name): control characters
    dropped, cut to ``limit``. A CR or LF here would end the header field (issue 12)."""
    return value[: limit * 2].translate(_CONTROL)[:limit]


def _text(value: str, limit: int) -> str:
    """Free text from outside (a remote's reply): control characters become spaces; cut to
    ``limit``, saying so."""
    value = value[: limit * 2].translate(_CONTROL_AS_SPACE)
    return value if len(value) <= limit else value[: limit - len(_CUT)] + _CUT


def _cleaned(report: Report) -> Report:
    """``report`` with every value from outside bounded and free of control characters, so
    that composing it costs time linear in fixed bounds and never raises on them (an ENVID
    with CR LF from before they were refused at MAIL FROM)."""
    return replace(
        report,
        to=_identifier(report.to, ADDRESS_LIMIT),
        envid=_identifier(report.envid, ENVID_LIMIT) if report.envid else report.envid,
        original_subject=_text(report.original_subject, SUBJECT_LIMIT),
        recipients=tuple(
            replace(
                r,
                final_recipient=_identifier(r.final_recipient, ADDRESS_LIMIT),
                original_recipient=(
                    _identifier(r.original_recipient, ADDRESS_LIMIT)
                    if r.original_recipient
                    else r.original_recipient
                ),
                action=_identifier(r.action, NAME_LIMIT),
                status=_identifier(r.status, NAME_LIMIT),
                remote_mta=_identifier(r.remote_mta, NAME_LIMIT),
                diagnostic=_text(r.diagnostic, DIAGNOSTIC_LIMIT),
                reason=_identifier(r.reason, NAME_LIMIT),
                detail=_text(r.detail, DIAGNOSTIC_LIMIT),
            )
            for r in report.recipients
        ),
    )


def plain(report: Report) -> Report:
    """The report without anything copied from the original or from outside: no returned
    message or headers, no Subject, ENVID, ORCPT or remote reply. What is left is our own:
    who, what happened (the status and the analyzer's reason), where, when."""
    return replace(
        report,
        original=b"",
        headers_only=True,
        envid=None,
        original_subject="",
        plain=True,
        recipients=tuple(
            replace(r, original_recipient=None, diagnostic="", detail="") for r in report.recipients
        ),
    )


def compose_safely(
    report: Report, *, message_id_domain: str | None = None, now: float | None = None
) -> bytes:
    """``compose``; when that fails (whatever the original holds: MemoryError included), the
    ``plain`` report instead, so that a report owed is written once rather than retried forever.
    Raises only if even the plain report cannot be composed."""
    try:
        return compose(report, message_id_domain=message_id_domain, now=now)
    except Exception:  # the plain report below is the answer to any failure
        log.exception(
            "%s: the %s report could not be composed; writing a plain one without "
            "the original message",
            report.queue_id,
            report.kind.value,
        )
    return compose(plain(report), message_id_domain=message_id_domain, now=now)


def compose(
    report: Report, *, message_id_domain: str | None = None, now: float | None = None
) -> bytes:
    """The whole report as bytes with CRLF line ends, ready to be stored and sent.

    The parts are joined here rather than by the ``email`` generator because the returned
    message must go back byte for byte: the generator re-encodes a payload it holds as text and
    fails on 8-bit content. RFC 6533: when a recipient address or the returned header block is
    UTF-8, the report is a global one (message/global-delivery-status, message/global,
    message/global-headers). A report with no original (``plain``) has no third part.

    Values from outside are bounded and cleaned first (``_cleaned``): this never raises on a
    control character and never hands the ``email`` package an unbounded value to parse."""
    report = _cleaned(report)
    original = report.original
    head, _, _ = original.partition(b"\r\n\r\n")
    utf8_addresses = any(_needs_utf8(r.final_recipient) for r in report.recipients) or _needs_utf8(
        report.to
    )
    utf8_headers = not head.isascii()
    # A remote's reply in UTF-8 (RFC 6533 §3 allows it in a global report's Diagnostic-Code).
    utf8_fields = (
        not all(
            r.diagnostic.isascii()
            and (r.original_recipient or "").isascii()
            and r.remote_mta.isascii()
            for r in report.recipients
        )
        or not (report.envid or "").isascii()
    )
    global_report = utf8_addresses or utf8_headers or utf8_fields
    out_policy = policy.SMTPUTF8 if utf8_addresses else policy.SMTP

    boundary = f"{report.queue_id}.{uuid.uuid4().hex}/{report.reporting_mta}"
    while boundary.encode() in original:  # RFC 2046 §5.1.1: must not occur in any part
        boundary = f"{report.queue_id}.{uuid.uuid4().hex}/{report.reporting_mta}"

    message = EmailMessage(policy=out_policy)
    message["From"] = f"Mail Delivery System <MAILER-DAEMON@{report.reporting_mta}>"
    if "=?" in report.to:
        # An address that looks like an RFC 2047 word: the header parser would decode it (and
        # write another address); written as it came, as the envelope has it.
        message.set_raw("To", report.to)
    else:
        message["To"] = report.to
    message["Subject"] = subject_for(report)
    message["Date"] = _date(now if now is not None else report.arrival_date + report.elapsed)
    message["Message-ID"] = email.utils.make_msgid(
        f"{report.queue_id}.{report.kind.value}", domain=message_id_domain or report.reporting_mta
    )
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no autoresponder answers a report
    message["MIME-Version"] = "1.0"
    report_type = "global-delivery-status" if global_report else "delivery-status"
    # RFC 6522 §3: report-type names the subtype of the second part.
    message["Content-Type"] = f'multipart/report; report-type={report_type}; boundary="{boundary}"'

    text = EmailMessage(policy=out_policy)
    text.set_content(human_text(report), charset="utf-8", cte="8bit" if utf8_addresses else None)
    del text["MIME-Version"]  # only the top level carries it (RFC 2045 §4)
    text["Content-Description"] = "Notification"
    notification = text.as_bytes(policy=out_policy)

    # RFC 3464 §2.1: the blocks are separated by blank lines.
    blocks = "\r\n".join(delivery_status(report, global_report)).encode("utf-8")
    status = _part(
        [("Content-Description", "Delivery report"), ("Content-Type", f"message/{report_type}")]
        + _transfer_encoding(blocks),
        blocks,
    )

    if not original:
        returned = b""  # RFC 6522 §3: the third part is optional
    elif report.headers_only or report.kind is not ReportKind.FAILURE:
        # Only a returned message carries the content; warnings and successes show the headers.
        # RFC 6522 §4: text/rfc822-headers carries only the header block (RFC 6533 §6.3: the
        # UTF-8 one is message/global-headers).
        content_type = "message/global-headers" if utf8_headers else "text/rfc822-headers"
        body = head + b"\r\n"
        returned = _part(
            [("Content-Description", "Undelivered Message Headers"), ("Content-Type", content_type)]
            + _transfer_encoding(body),
            body,
        )
    else:
        content_type = "message/global" if utf8_headers else "message/rfc822"  # RFC 6533 §6.1
        body = original if original.endswith(b"\r\n") else original + b"\r\n"
        returned = _part(
            [("Content-Description", "Undelivered Message"), ("Content-Type", content_type)]
            + _transfer_encoding(body),
            body,
        )

    delimiter = b"--" + boundary.encode()
    header_block = message.as_bytes(policy=out_policy).partition(b"\r\n\r\n")[0]
    out = [header_block + b"\r\n\r\n", b"This is a MIME-encapsulated message.\r\n"]
    for part in (notification, status, returned) if returned else (notification, status):
        out += [b"\r\n", delimiter, b"\r\n", part if part.endswith(b"\r\n") else part + b"\r\n"]
    out += [delimiter, b"--\r\n"]
    return b"".join(out)


__all__ = ["compose", "compose_safely", "original_subject", "plain"]
