"""Finding the reports in a received message: attachments (or a whole body) that hold a DMARC
aggregate report (zip, gzip or plain XML) or a TLS report (gzip or plain JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.parser import BytesParser

from todoku.reports import dmarc, tlsrpt
from todoku.reports.unpack import ReportError, unpack

MAX_MESSAGE = 32 * 1024 * 1024  # bytes of a message looked at
MAX_PARTS = 32  # MIME parts looked at in one message

_TYPES = frozenset(
    {
        "application/tlsrpt+gzip",
        "application/tlsrpt+json",
        "application/zip",
        "application/x-zip-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/xml",
        "text/xml",
        "application/json",
        "application/octet-stream",
    }
)
_NAMES = (".xml", ".xml.gz", ".zip", ".json", ".json.gz", ".gz")


@dataclass(frozen=True, slots=True)
class Found:
    """One report attachment: the report, or why it could not be read."""

    kind: str  # "dmarc", "tlsrpt" or "" (not recognised)
    filename: str
    report: dmarc.DmarcReport | tlsrpt.TlsReport | None = None
    problem: str = ""

    def describe(self) -> str:
        if isinstance(self.report, dmarc.DmarcReport):
            return dmarc.describe(self.report)
        if isinstance(self.report, tlsrpt.TlsReport):
            return tlsrpt.describe(self.report)
        name = "".join(c if c.isprintable() else "_" for c in self.filename)[:80]
        return f"{self.kind or 'report'} {name or '-'}: unreadable: {self.problem}"


def read_report(data: bytes, filename: str = "", content_type: str = "") -> Found:
    """One attachment's report, recognised by what it unpacks to (JSON or XML)."""
    try:
        content = unpack(data)
    except ReportError as exc:
        return Found("", filename, problem=str(exc))
    start = content.lstrip()[:1]
    if start == b"{" or content_type.startswith("application/tlsrpt"):
        try:
            return Found("tlsrpt", filename, tlsrpt.parse(content))
        except ReportError as exc:
            return Found("tlsrpt", filename, problem=str(exc))
    if start == b"<":
        try:
            return Found("dmarc", filename, dmarc.parse(content))
        except ReportError as exc:
            return Found("dmarc", filename, problem=str(exc))
    return Found("", filename, problem="neither XML nor JSON")


def reports_in(message: bytes) -> list[Found]:
    """Every report in a received message (none: not a report message)."""
    if len(message) > MAX_MESSAGE:
        return [Found("", "", problem=f"message larger than {MAX_MESSAGE} bytes")]
    parsed = BytesParser(policy=policy.compat32).parsebytes(message)
    found = []
    for count, part in enumerate(parsed.walk()):
        if count >= MAX_PARTS:
            break
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = str(part.get_filename() or "")
        named = filename.lower().endswith(_NAMES)
        if content_type not in _TYPES and not named:
            continue
        if content_type == "application/octet-stream" and not named:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        found.append(read_report(payload, filename, content_type))
    return found
