"""DMARC aggregate reports (RFC 7489 §7.2, the XML schema of Appendix C): who sent mail as our
domain, from which addresses, and how SPF and DKIM judged it.

The XML is read with the standard library's expat, set up so that a report can carry no DTD at
all: a DOCTYPE, an entity declaration or an external entity reference ends the parse (no entity
expansion, no "billion laughs", no file or network access). Elements are counted and their
depth is bounded; element names are compared without their namespace (RFC 7489's reports have
none; DMARCbis drafts add one).
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

from todoku.reports.unpack import ReportError

MAX_ELEMENTS = 200_000  # elements in one report (a record has about 20)
MAX_DEPTH = 16  # the schema nests 5 deep
MAX_RECORDS = 10_000
MAX_TEXT = 256  # characters kept of any one value


@dataclass(frozen=True, slots=True)
class AuthResult:
    method: str  # "dkim" or "spf"
    domain: str
    result: str  # pass, fail, none, neutral, temperror, permerror, softfail, policy
    selector: str = ""  # DKIM only


@dataclass(frozen=True, slots=True)
class DmarcRow:
    source_ip: str
    count: int
    disposition: str  # none, quarantine, reject
    dkim: str  # the DMARC evaluation: pass or fail (aligned DKIM)
    spf: str  # pass or fail (aligned SPF)
    header_from: str
    auth: tuple[AuthResult, ...] = ()

    @property
    def passed(self) -> bool:
        """DMARC passes when aligned DKIM or aligned SPF passes (RFC 7489 §4.2)."""
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True, slots=True)
class DmarcReport:
    org_name: str
    email: str
    report_id: str
    begin: int  # seconds since the epoch
    end: int
    domain: str  # policy_published/domain
    policy: str  # policy_published/p
    rows: tuple[DmarcRow, ...]

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.rows)

    @property
    def failed(self) -> int:
        return sum(r.count for r in self.rows if not r.passed)


def _local(tag: str) -> str:
    """The name without its namespace (expat reports "uri}name")."""
    return tag.rpartition("}")[2]


def parse_xml(data: bytes) -> ET.Element:
    """An ElementTree of ``data``; ReportError for a DTD, an entity, malformed XML or a document
    past the bounds."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    depth = 0
    elements = 0

    def refuse(*_: object) -> int:
        raise ReportError("the XML carries a DTD or entity declarations; refused")

    def start(tag: str, attributes: dict[str, str]) -> None:
        nonlocal depth, elements
        depth += 1
        elements += 1
        if depth > MAX_DEPTH:
            raise ReportError(f"XML nested deeper than {MAX_DEPTH}")
        if elements > MAX_ELEMENTS:
            raise ReportError(f"more than {MAX_ELEMENTS} XML elements")
        builder.start(_local(tag), {})

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(_local(tag))

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ReportError(f"not well-formed XML ({exc})") from None
    try:
        return builder.close()
    except (AssertionError, IndexError) as exc:  # no element at all
        raise ReportError(f"no XML document ({exc or 'empty'})") from None


def _text(element: ET.Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    if found is None or found.text is None:
        return ""
    return found.text.strip()[:MAX_TEXT]


def _integer(element: ET.Element | None, path: str, what: str) -> int:
    text = _text(element, path)
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise ReportError(f"{what} is {text[:20]!r}, not a number")
    return int(text)


def parse(data: bytes) -> DmarcReport:
    """A DMARC aggregate report from its (unpacked) XML."""
    root = parse_xml(data)
    if root.tag != "feedback":
        raise ReportError(f"the XML is a <{root.tag[:40]}>, not a DMARC <feedback> report")
    metadata = root.find("report_metadata")
    published = root.find("policy_published")
    if metadata is None or published is None:
        raise ReportError("no report_metadata or policy_published")
    rows: list[DmarcRow] = []
    for record in root.iterfind("record"):
        if len(rows) >= MAX_RECORDS:
            raise ReportError(f"more than {MAX_RECORDS} records")
        row = record.find("row")
        evaluated = row.find("policy_evaluated") if row is not None else None
        auth: list[AuthResult] = []
        results = record.find("auth_results")
        for method in ("dkim", "spf"):
            for found in results.iterfind(method) if results is not None else ():
                auth.append(
                    AuthResult(
                        method,
                        _text(found, "domain").lower(),
                        _text(found, "result").lower(),
                        _text(found, "selector") if method == "dkim" else "",
                    )
                )
        rows.append(
            DmarcRow(
                source_ip=_text(row, "source_ip"),
                count=_integer(row, "count", "row/count"),
                disposition=_text(evaluated, "disposition").lower(),
                dkim=_text(evaluated, "dkim").lower(),
                spf=_text(evaluated, "spf").lower(),
                header_from=_text(record, "identifiers/header_from").lower(),
                auth=tuple(auth),
            )
        )
    return DmarcReport(
        org_name=_text(metadata, "org_name"),
        email=_text(metadata, "email"),
        report_id=_text(metadata, "report_id"),
        begin=_integer(metadata, "date_range/begin", "date_range/begin"),
        end=_integer(metadata, "date_range/end", "date_range/end"),
        domain=_text(published, "domain").lower(),
        policy=_text(published, "p").lower(),
        rows=tuple(rows),
    )


def describe(report: DmarcReport) -> str:
    """One line: "dmarc 2026-12-01 google.com example.org: 12 messages from 3 addresses, 2 failed
    DMARC (192.0.2.9: 2)"."""
    day = datetime.datetime.fromtimestamp(report.begin, datetime.UTC).strftime("%Y-%m-%d")
    sources = len({r.source_ip for r in report.rows})
    failing: dict[str, int] = {}
    for row in report.rows:
        if not row.passed:
            failing[row.source_ip] = failing.get(row.source_ip, 0) + row.count
    worst = sorted(failing.items(), key=lambda item: -item[1])[:3]
    detail = f" ({', '.join(f'{ip}: {n}' for ip, n in worst)})" if worst else ""
    return (
        f"dmarc {day} {_safe(report.org_name)} {_safe(report.domain)}: {report.messages} "
        f"messages from {sources} addresses, {report.failed} failed DMARC{detail}"
    )


def _safe(text: str) -> str:
    """Report text for a terminal: printable, one word."""
    cleaned = "".join(c if c.isprintable() and not c.isspace() else "_" for c in text)
    return cleaned[:80] or "-"
