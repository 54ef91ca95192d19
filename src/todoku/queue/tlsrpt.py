"""SMTP TLS Reporting (RFC 8460) for outbound mail: what a TLS session to a destination's MX
came to, in the RFC's words, and the daily aggregate report made of such results.

This module is pure (no I/O): the vocabulary (``TlsSession``, the result types of §4.3), how
a session's outcome maps onto them (``outcome``), the ``_smtp._tls`` TXT record (§3), the JSON
report (§4.4), its file name (§5.1) and the message that carries it (§5.3). Recording to disk,
the daily run and the sending live in ``queue.tlsrpt_send``.

Which sessions count (§4.3): a direct delivery's connection that reached STARTTLS or should
have. Its policy is the hop's: ``sts`` (an MTA-STS policy, RFC 8461), ``tlsa`` (DANE TLSA
records, RFC 7672), or ``no-policy-found`` (opportunistic TLS). Connections that fail before
TLS matters (refused, timed out, a 4xx greeting) are not TLS sessions and are not counted;
relayed mail ([[relay]]) is not about the recipient domain's policy and is not counted either.
"""

from __future__ import annotations

import datetime
import gzip
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from todoku.queue.model import Hop, TlsPolicy

# RFC 8460 §4.4: policy-type.
STS = "sts"
TLSA = "tlsa"
NO_POLICY = "no-policy-found"

# RFC 8460 §4.3: result types. Negotiation failures (§4.3.1) ...
STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
CERTIFICATE_EXPIRED = "certificate-expired"
CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
VALIDATION_FAILURE = "validation-failure"
# ... and policy failures, DANE (§4.3.2.1) and MTA-STS (§4.3.2.2).
TLSA_INVALID = "tlsa-invalid"
DNSSEC_INVALID = "dnssec-invalid"
DANE_REQUIRED = "dane-required"
STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
STS_POLICY_INVALID = "sts-policy-invalid"
STS_WEBPKI_INVALID = "sts-webpki-invalid"
RESULT_TYPES = frozenset(
    {
        STARTTLS_NOT_SUPPORTED,
        CERTIFICATE_HOST_MISMATCH,
        CERTIFICATE_EXPIRED,
        CERTIFICATE_NOT_TRUSTED,
        VALIDATION_FAILURE,
        TLSA_INVALID,
        DNSSEC_INVALID,
        DANE_REQUIRED,
        STS_POLICY_FETCH_ERROR,
        STS_POLICY_INVALID,
        STS_WEBPKI_INVALID,
    }
)

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) → result type and the name reported as
# "failure-reason-code" (§4.4: "a text field ... e.g. an error code from the TLS library").
_VERIFY_CODES: dict[int, tuple[str, str]] = {
    2: (CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT"),
    7: (VALIDATION_FAILURE, "X509_V_ERR_CERT_SIGNATURE_FAILURE"),
    9: (VALIDATION_FAILURE, "X509_V_ERR_CERT_NOT_YET_VALID"),
    10: (CERTIFICATE_EXPIRED, "X509_V_ERR_CERT_HAS_EXPIRED"),
    18: (CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"),
    19: (CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN"),
    20: (CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
    21: (CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
    23: (VALIDATION_FAILURE, "X509_V_ERR_CERT_REVOKED"),
    24: (CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_INVALID_CA"),
    27: (CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_CERT_UNTRUSTED"),
    62: (CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH"),
    64: (CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_IP_ADDRESS_MISMATCH"),
}
PEER_CHECK_REFUSED = -1  # net.smtp_client.PEER_CHECK_REFUSED: DANE refused the certificates

MAX_POLICIES = 20  # policies in one domain's report (one per TLSA RRset, plus sts/no-policy)
MAX_DETAILS = 100  # failure-details per policy; more are counted in the summary only
MAX_RUA = 5  # reporting URIs used from one record
MAX_TEXT = 200  # characters of a reason code or additional information


@dataclass(frozen=True, slots=True)
class TlsSession:
    """One TLS session (or one policy that could not be had), as TLS-RPT counts it."""

    domain: str  # the policy domain: the recipient domain (RFC 8460 §3)
    policy_type: str  # STS, TLSA or NO_POLICY
    result: str  # "" for a successful session, else one of RESULT_TYPES
    mx_host: str = ""  # receiving-mx-hostname
    receiving_ip: str = ""
    sending_ip: str = ""
    reason_code: str = ""  # failure-reason-code
    policy_strings: tuple[str, ...] = ()
    policy_mx: tuple[str, ...] = ()
    at: float = 0.0  # when (seconds since the epoch)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> TlsSession | None:
        """None for a line that is not a session (a torn last line after a crash)."""
        try:
            data = json.loads(line)
            session = cls(
                domain=str(data["domain"]),
                policy_type=str(data["policy_type"]),
                result=str(data["result"]),
                mx_host=str(data["mx_host"]),
                receiving_ip=str(data["receiving_ip"]),
                sending_ip=str(data["sending_ip"]),
                reason_code=str(data["reason_code"])[:MAX_TEXT],
                policy_strings=tuple(str(s) for s in data["policy_strings"]),
                policy_mx=tuple(str(s) for s in data["policy_mx"]),
                at=float(data["at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.policy_type not in (STS, TLSA, NO_POLICY):
            return None
        if session.result and session.result not in RESULT_TYPES:
            return None
        return session


def policy_type(policy: TlsPolicy | None) -> str:
    if policy is None:
        return NO_POLICY
    return TLSA if policy.mode == "dane" else STS


def session_for(
    hop: Hop, result: str, reason_code: str = "", sending_ip: str = "", at: float = 0.0
) -> TlsSession:
    policy = hop.tls_policy
    return TlsSession(
        domain=hop.domain or (policy.domain if policy is not None else ""),
        policy_type=policy_type(policy),
        result=result,
        mx_host=hop.host,
        receiving_ip=hop.ip,
        sending_ip=sending_ip,
        reason_code=reason_code[:MAX_TEXT],
        policy_strings=policy.strings if policy is not None else (),
        policy_mx=policy.mx if policy is not None else (),
        at=at,
    )


def failure_result(
    policy: TlsPolicy | None, phase: str, verify_code: int | None
) -> tuple[str, str] | None:
    """(result type, failure-reason-code) for a session that failed in ``phase``; None when
    the failure was not about TLS (connect, greeting: not a TLS session, §4.3)."""
    if phase == "starttls":
        return STARTTLS_NOT_SUPPORTED, ""  # not offered, or refused (§4.3.1)
    if phase != "tls":
        return None
    if verify_code == PEER_CHECK_REFUSED:
        # RFC 8460 §4.3.2.1: none of the TLSA records matched what the server presented.
        return TLSA_INVALID, "no TLSA record matches the certificate chain"
    if verify_code is not None:
        result, name = _VERIFY_CODES.get(
            verify_code, (VALIDATION_FAILURE, f"X509_V_ERR {verify_code}")
        )
        return result, name
    return VALIDATION_FAILURE, "TLS handshake failed"


# ------------------------------------------------------------------ the _smtp._tls record

_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def record_name(domain: str) -> str:
    return f"_smtp._tls.{domain}"


def parse_record(texts: Sequence[str]) -> tuple[str, ...] | None:
    """The rua URIs of a domain's TLSRPT record (RFC 8460 §3), or None when there is no
    usable one: records not starting with "v=TLSRPTv1" are discarded, and anything but exactly
    one record left means the domain does not take reports. Only mailto: and https: URIs are
    kept, at most MAX_RUA."""
    records = [t for t in texts if t.startswith("v=TLSRPTv1")]
    if len(records) != 1:
        return None
    fields = [f.strip(" \t") for f in records[0].split(";")]
    if fields[0] != "v=TLSRPTv1":
        return None
    uris: list[str] = []
    for part in fields[1:]:
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq or not _EXT_NAME.fullmatch(name):
            return None  # §3: the record does not follow the grammar
        if name == "rua" and not uris:
            uris = [u.strip(" \t") for u in value.split(",") if u.strip(" \t")]
    usable = tuple(u for u in uris if u.lower().startswith(("mailto:", "https:")))
    return usable[:MAX_RUA] or None


def mailto_address(uri: str) -> str | None:
    """The address of a "mailto:" URI (RFC 6068), without its query; None if it has none."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "mailto":
        return None
    address = unquote(parts.path).strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>,\r\n" for c in address):
        return None
    if len(address) > 254:
        return None
    return address


# ------------------------------------------------------------------ the report (§4.4)


def day_of(when: float) -> str:
    """The UTC day of ``when``: reports cover whole UTC days (RFC 8460 §4.1)."""
    return time.strftime("%Y-%m-%d", time.gmtime(when))


def day_bounds(day: str) -> tuple[int, int]:
    """First and last second of a UTC day, as seconds since the epoch."""
    start = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.UTC)
    begin = int(start.timestamp())
    return begin, begin + 86399


def _rfc3339(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True, slots=True)
class Submitter:
    organization: str  # organization-name
    contact: str  # contact-info (an address)
    domain: str  # the submitter's domain (§5.1 file name, §5.3 Subject and headers)


def report_id(day: str, domain: str, submitter: Submitter) -> str:
    """Unique per day, policy domain and submitter, and the same when a crash makes the day's
    reports go out again (so a receiver can tell a repeat)."""
    return f"{day}.{domain}@{submitter.domain}"


@dataclass
class _PolicyCounts:
    policy: dict[str, object]
    successes: int = 0
    failures: int = 0
    details: dict[tuple[str, ...], dict[str, object]] = field(default_factory=dict)


def _detail(session: TlsSession) -> dict[str, object]:
    """One "failure-details" entry (RFC 8460 §4.4), optional fields only when known."""
    detail: dict[str, object] = {"result-type": session.result}
    if session.sending_ip:
        detail["sending-mta-ip"] = session.sending_ip
    if session.receiving_ip:
        detail["receiving-ip"] = session.receiving_ip
    if session.mx_host:
        detail["receiving-mx-hostname"] = session.mx_host
    detail["failed-session-count"] = 0
    if session.reason_code:
        detail["failure-reason-code"] = session.reason_code
    return detail


def build_report(
    day: str, domain: str, sessions: Iterable[TlsSession], submitter: Submitter
) -> dict[str, object]:
    """The JSON report (RFC 8460 §4.4) for ``domain``'s sessions on ``day``: one entry per
    policy seen, its session counts, and failures grouped by result type, addresses, MX host
    and reason code."""
    begin, end = day_bounds(day)
    policies: dict[tuple[str, tuple[str, ...], tuple[str, ...]], _PolicyCounts] = {}
    for session in sessions:
        key = (session.policy_type, session.policy_strings, session.policy_mx)
        counts = policies.get(key)
        if counts is None:
            if len(policies) >= MAX_POLICIES:
                continue
            policy: dict[str, object] = {"policy-type": session.policy_type}
            if session.policy_strings:
                policy["policy-string"] = list(session.policy_strings)
            policy["policy-domain"] = domain
            if session.policy_mx:
                policy["mx-host"] = list(session.policy_mx)
            counts = policies[key] = _PolicyCounts(policy)
        if not session.result:
            counts.successes += 1
            continue
        counts.failures += 1
        group = (
            session.result,
            session.sending_ip,
            session.receiving_ip,
            session.mx_host,
            session.reason_code,
        )
        detail = counts.details.get(group)
        if detail is None:
            if len(counts.details) >= MAX_DETAILS:
                continue  # counted in the summary only
            detail = counts.details[group] = _detail(session)
        detail["failed-session-count"] = int(str(detail["failed-session-count"])) + 1
    entries: list[dict[str, object]] = []
    for counts in policies.values():
        entry: dict[str, object] = {
            "policy": counts.policy,
            "summary": {
                "total-successful-session-count": counts.successes,
                "total-failure-session-count": counts.failures,
            },
        }
        if counts.details:
            entry["failure-details"] = list(counts.details.values())
        entries.append(entry)
    return {
        "organization-name": submitter.organization,
        "date-range": {"start-datetime": _rfc3339(begin), "end-datetime": _rfc3339(end)},
        "contact-info": submitter.contact,
        "report-id": report_id(day, domain, submitter),
        "policies": entries,
    }


def gzipped(report: dict[str, object]) -> bytes:
    """The report as RFC 8460 §5.2 sends it: JSON, gzip (``application/tlsrpt+gzip``)."""
    data = json.dumps(report, indent=1).encode("utf-8")
    return gzip.compress(data, mtime=0)


def filename(day: str, domain: str, submitter: Submitter) -> str:
    """RFC 8460 §5.1: sender "!" policy-domain "!" begin "!" end "." extension."""
    begin, end = day_bounds(day)
    return f"{submitter.domain}!{domain}!{begin}!{end}.json.gz"


def compose_email(
    *,
    day: str,
    domain: str,
    submitter: Submitter,
    sender: str,
    recipients: Sequence[str],
    report: bytes,
    hostname: str,
    now: float,
) -> bytes:
    """The report mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt", a short text,
    then the gzipped JSON as ``application/tlsrpt+gzip`` named per §5.1. CRLF line ends."""
    rid = report_id(day, domain, submitter)
    message = MIMEMultipart("report", report_type="tlsrpt")
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(now, usegmt=True)
    message["Subject"] = f"Report Domain: {domain} Submitter: {submitter.domain} Report-ID: <{rid}>"
    message["Message-ID"] = f"<tlsrpt.{rid.replace('@', '.')}@{hostname}>"
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter.domain
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    text = (
        f"This is an aggregate TLS report (RFC 8460) from {submitter.organization} for mail "
        f"sent to {domain} on {day} (UTC).\r\n"
        f"Questions about it: {submitter.contact}\r\n"
    )
    message.attach(MIMEText(text, "plain", "us-ascii"))
    attachment = MIMEApplication(report, "tlsrpt+gzip")
    attachment.add_header(
        "Content-Disposition", "attachment", filename=filename(day, domain, submitter)
    )
    message.attach(attachment)
    return message.as_bytes(policy=SMTP)
