"""SMTP TLS reports (RFC 8460 §4.4) that other servers send about mail to our domains: per
policy, how many TLS sessions succeeded and which failed, why, at which MX host.

The JSON is bounded before and while it is read: ``unpack``'s size limits, nesting (a
RecursionError from a deeply nested document is a ReportError), and the number of policies and
failure details kept.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from todoku.reports.unpack import ReportError

MAX_POLICIES = 1000
MAX_DETAILS = 10_000  # failure-details in one report, over all policies
MAX_TEXT = 256


@dataclass(frozen=True, slots=True)
class TlsFailure:
    result_type: str
    count: int
    sending_ip: str = ""
    receiving_ip: str = ""
    mx_host: str = ""
    reason_code: str = ""


@dataclass(frozen=True, slots=True)
class TlsPolicyResult:
    policy_type: str  # sts, tlsa, no-policy-found
    domain: str
    mx_hosts: tuple[str, ...]
    successes: int
    failures: int
    details: tuple[TlsFailure, ...]


@dataclass(frozen=True, slots=True)
class TlsReport:
    organization: str
    contact: str
    report_id: str
    start: str  # RFC 3339 date-time, as sent
    end: str
    policies: tuple[TlsPolicyResult, ...]

    @property
    def successes(self) -> int:
        return sum(p.successes for p in self.policies)

    @property
    def failures(self) -> int:
        return sum(p.failures for p in self.policies)


def _string(data: dict[str, Any], key: str, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ReportError(f'"{key}" is not a string')
    return value[:MAX_TEXT]


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**12:
        raise ReportError(f'"{key}" is not a count')
    return value


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportError(f"{what} is not a JSON object")
    return value


def parse(data: bytes) -> TlsReport:
    """A TLS report from its (unpacked) JSON; ReportError when a field RFC 8460 §4.4 requires
    is missing or of the wrong type."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"not JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise ReportError("JSON nested too deeply") from None
    report = _object(document, "the report")
    date_range = _object(report.get("date-range"), '"date-range"')
    policies_value = report.get("policies")
    if not isinstance(policies_value, list):
        raise ReportError('"policies" is not a list')
    if len(policies_value) > MAX_POLICIES:
        raise ReportError(f"more than {MAX_POLICIES} policies")
    policies = []
    details_seen = 0
    for entry_value in policies_value:
        entry = _object(entry_value, "a policy entry")
        policy = _object(entry.get("policy"), '"policy"')
        summary = _object(entry.get("summary"), '"summary"')
        mx_value = policy.get("mx-host", [])
        mx_hosts = (
            tuple(m[:MAX_TEXT] for m in mx_value if isinstance(m, str))[:100]
            if isinstance(mx_value, list)
            else ()
        )
        details_value = entry.get("failure-details", [])
        if not isinstance(details_value, list):
            raise ReportError('"failure-details" is not a list')
        details_seen += len(details_value)
        if details_seen > MAX_DETAILS:
            raise ReportError(f"more than {MAX_DETAILS} failure details")
        details = []
        for detail_value in details_value:
            detail = _object(detail_value, "a failure detail")
            details.append(
                TlsFailure(
                    result_type=_string(detail, "result-type"),
                    count=_count(detail, "failed-session-count"),
                    sending_ip=_string(detail, "sending-mta-ip", required=False),
                    receiving_ip=_string(detail, "receiving-ip", required=False),
                    mx_host=_string(detail, "receiving-mx-hostname", required=False),
                    reason_code=_string(detail, "failure-reason-code", required=False),
                )
            )
        policies.append(
            TlsPolicyResult(
                policy_type=_string(policy, "policy-type"),
                domain=_string(policy, "policy-domain").lower(),
                mx_hosts=mx_hosts,
                successes=_count(summary, "total-successful-session-count"),
                failures=_count(summary, "total-failure-session-count"),
                details=tuple(details),
            )
        )
    return TlsReport(
        organization=_string(report, "organization-name"),
        contact=_string(report, "contact-info", required=False),
        report_id=_string(report, "report-id"),
        start=_string(date_range, "start-datetime"),
        end=_string(date_range, "end-datetime"),
        policies=tuple(policies),
    )


def describe(report: TlsReport) -> str:
    """One line: "tlsrpt 2026-12-01 google.com example.org: 120 sessions, 3 failed
    (certificate-expired: 3)"."""
    day = report.start[:10]
    try:
        datetime.date.fromisoformat(day)
    except ValueError:
        day = "?"
    domains = sorted({p.domain for p in report.policies}) or ["-"]
    by_type: dict[str, int] = {}
    for policy in report.policies:
        for detail in policy.details:
            by_type[detail.result_type] = by_type.get(detail.result_type, 0) + detail.count
    worst = sorted(by_type.items(), key=lambda item: -item[1])[:3]
    detail_text = f" ({', '.join(f'{_safe(t)}: {n}' for t, n in worst)})" if worst else ""
    return (
        f"tlsrpt {day} {_safe(report.organization)} {','.join(_safe(d) for d in domains[:3])}: "
        f"{report.successes + report.failures} sessions, {report.failures} failed{detail_text}"
    )


def _safe(text: str) -> str:
    cleaned = "".join(c if c.isprintable() and not c.isspace() else "_" for c in text)
    return cleaned[:80] or "-"
