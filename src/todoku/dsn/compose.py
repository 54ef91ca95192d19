"""Compose RFC 3464 / RFC 6522 delivery status notifications with the stdlib ``email`` package."""

from __future__ import annotations

import email.utils
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser

from todoku.dsn.model import RecipientReport, Report, ReportKind
from todoku.queue.schedule import describe_duration


def _explain(reason: str, lang: str, **facts: str) -> tuple[str, str]:
    """The bounce analyzer's plain-words cause and remedy (issue 5); imported lazily."""
    from todoku.bounce import explain_reason

    return explain_reason(reason or "undefined", lang, **facts)


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
    facts = {
        "recipient": r.final_recipient,
        "remote_mta": r.remote_mta,
        "diagnostic": r.diagnostic,
        "lifetime": describe_duration(report.lifetime, lang),
        "elapsed": describe_duration(report.elapsed, lang),
    }
    cause, remedy = _explain(r.reason, lang, **facts)
    said = r.diagnostic.partition(";")[2].strip() if r.diagnostic else r.detail
    if lang == "ja":
        lines = [f"<{r.final_recipient}>:"]
        if said:
            who = f"{r.remote_mta} の応答" if r.remote_mta and r.diagnostic else "詳細"
            lines.append(f"    {who}: {said}")
        lines += [f"    原因: {cause}", f"    対処: {remedy}"]
    else:
        lines = [f"<{r.final_recipient}>:"]
        if said:
            who = f"{r.remote_mta} said" if r.remote_mta and r.diagnostic else "Details"
            lines.append(f"    {who}: {said}")
        lines += [f"    What happened: {cause}", f"    What you can do: {remedy}"]
    return "\n".join(lines)


def human_text(report: Report) -> str:
    lang = report.lang
    host = report.reporting_mta
    lifetime = describe_duration(report.lifetime, lang)
    elapsed = describe_duration(report.elapsed, lang)
    subject = f" \"{report.original_subject}\"" if report.original_subject else ""
    if lang == "ja":
        subject = f"「{report.original_subject}」" if report.original_subject else ""
        intro = {
            ReportKind.FAILURE: f"メールサーバー {host} からのお知らせです。\n\n"
            f"あなたが送ったメール{subject}を、次の宛先に届けられませんでした。"
            "メールは返送します（このメールに添付しています）。",
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
            "delivered to one or more recipients. It is attached below.",
            ReportKind.DELAY: f"This is the mail system at host {host}.\n\n"
            f"Your message{subject} could not be delivered for {elapsed} to the recipients "
            f"below. This is only a warning: the server will keep trying until the message is "
            f"{lifetime} old. You do not need to send it again.",
            ReportKind.SUCCESS: f"This is the mail system at host {host}.\n\n"
            f"Your message{subject} was successfully passed on to the recipients below.",
        }[report.kind]
    paragraphs = [intro] + [_recipient_paragraph(report, r) for r in report.recipients]
    return "\n\n".join(paragraphs) + "\n"


def _date(when: float) -> str:
    return email.utils.formatdate(when, localtime=False, usegmt=True)


def delivery_status(report: Report) -> list[Message | str]:
    """The per-message and per-recipient field blocks of RFC 3464 §2.2 and §2.3."""
    per_message = Message(policy=policy.SMTP)
    if report.envid:
        per_message["Original-Envelope-Id"] = report.envid  # RFC 3464 §2.2.1
    per_message["Reporting-MTA"] = f"dns; {report.reporting_mta}"  # RFC 3464 §2.2.2 (required)
    per_message["X-Todoku-Queue-ID"] = report.queue_id
    per_message["Arrival-Date"] = _date(report.arrival_date)  # RFC 3464 §2.2.5
    blocks: list[Message | str] = [per_message]
    for r in report.recipients:
        block = Message(policy=policy.SMTP)
        if r.original_recipient:
            block["Original-Recipient"] = r.original_recipient  # RFC 3464 §2.3.1
        block["Final-Recipient"] = f"rfc822; {r.final_recipient}"  # §2.3.2 (required)
        block["Action"] = r.action  # §2.3.3 (required)
        block["Status"] = r.status  # §2.3.4 (required)
        if r.remote_mta:
            name = r.remote_mta.split(" [")[0].strip("[]")
            block["Remote-MTA"] = f"dns; {name}"  # §2.3.5
        if r.diagnostic:
            block["Diagnostic-Code"] = r.diagnostic  # §2.3.6: the remote's reply as received
        if r.last_attempt:
            block["Last-Attempt-Date"] = _date(r.last_attempt)  # §2.3.7
        if r.will_retry_until:
            block["Will-Retry-Until"] = _date(r.will_retry_until)  # §2.3.8 (delayed only)
        blocks.append(block)
    return blocks


def compose(report: Report, *, message_id_domain: str | None = None, now: float | None = None) -> bytes:
    """The whole report as bytes with CRLF line ends, ready to be stored and sent."""
    smtputf8 = not all(r.final_recipient.isascii() for r in report.recipients) or not report.to.isascii()
    out_policy = policy.SMTPUTF8 if smtputf8 else policy.SMTP
    message = EmailMessage(policy=out_policy)
    message["From"] = f"Mail Delivery System <MAILER-DAEMON@{report.reporting_mta}>"
    message["To"] = report.to
    message["Subject"] = subject_for(report)
    message["Date"] = _date(now if now is not None else report.arrival_date + report.elapsed)
    message["Message-ID"] = email.utils.make_msgid(
        f"{report.queue_id}.{report.kind.value}", domain=message_id_domain or report.reporting_mta
    )
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no autoresponder answers a report
    message["MIME-Version"] = "1.0"
    message.set_type("multipart/report")
    message.set_param("report-type", "delivery-status")  # RFC 6522 §3
    message.preamble = "This is a MIME-encapsulated message."

    text = EmailMessage(policy=out_policy)
    text.set_content(human_text(report), charset="utf-8", cte="8bit" if smtputf8 else None)
    text["Content-Description"] = "Notification"
    message.attach(text)

    status = EmailMessage(policy=out_policy)
    status["Content-Description"] = "Delivery report"
    status["Content-Type"] = "message/delivery-status"
    status.set_payload(delivery_status(report))  # one block per field group (RFC 3464 §2.1)
    message.attach(status)

    original = report.original
    if report.headers_only or report.kind is not ReportKind.FAILURE:
        # Only a returned message carries the content; warnings and successes show the headers.
        # RFC 3462/6522: text/rfc822-headers carries only the header block.
        head, _, _ = original.partition(b"\r\n\r\n")
        part = EmailMessage(policy=out_policy)
        part["Content-Description"] = "Undelivered Message Headers"
        part["Content-Type"] = "text/rfc822-headers"
        part.set_payload((head + b"\r\n").decode("utf-8", "replace"))
        message.attach(part)
    else:
        part = EmailMessage(policy=out_policy)
        part["Content-Description"] = "Undelivered Message"
        part["Content-Type"] = "message/rfc822"
        part["Content-Transfer-Encoding"] = "8bit"
        part.set_payload(original.decode("utf-8", "surrogateescape"))
        message.attach(part)
    return message.as_bytes(policy=out_policy)


def original_subject(original: bytes) -> str:
    head = original.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(head)
    return str(parsed.get("Subject", ""))[:200]
