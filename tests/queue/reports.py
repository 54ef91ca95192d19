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
    assert message.get_param("report-type") == "delivery-status"
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3, [p.get_content_type() for p in parts]
    human, status, returned = parts
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    blocks = status.get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2
    assert returned.get_content_type() in ("message/rfc822", "text/rfc822-headers")
    return ParsedReport(message, human.get_content(), blocks[0], blocks[1:], returned)
