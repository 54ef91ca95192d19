"""Read the reports todoku stores, with the standard ``email`` package only."""

from __future__ import annotations

import email
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message


@dataclass
class ParsedReport:
    message: EmailMessage
    human: str
    per_message: Message
    recipients: list[Message]
    returned: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


def parse_report(data: bytes) -> ParsedReport:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/report"
    report_type = message.get_param("report-type")
    assert report_type in ("delivery-status", "global-delivery-status")
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3, [p.get_content_type() for p in parts]
    human, status, returned = parts
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == f"message/{report_type}"
    if report_type == "delivery-status":
        blocks = status.get_payload()
        assert returned.get_content_type() in ("message/rfc822", "text/rfc822-headers")
    else:
        # RFC 6533: the stdlib parser leaves message/global-delivery-status unparsed; its
        # blocks are field groups separated by blank lines, like the ASCII ones.
        payload = status.get_payload()
        inner = payload[0] if isinstance(payload, list) else payload
        text = (
            inner.as_bytes(policy=policy.SMTPUTF8).decode("utf-8")
            if isinstance(inner, Message)
            else str(inner)
        )
        blocks = [
            email.message_from_string(chunk + "\n", policy=policy.SMTPUTF8)
            for chunk in text.replace("\r\n", "\n").split("\n\n")
            if chunk.strip()
        ]
        assert returned.get_content_type() in (
            "message/global",
            "message/global-headers",
            "message/rfc822",
            "text/rfc822-headers",
        )
    assert isinstance(blocks, list) and len(blocks) >= 2
    return ParsedReport(message, human.get_content(), blocks[0], blocks[1:], returned)
