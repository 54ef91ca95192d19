"""``todoku diagnose ADDRESS``: can mail to ADDRESS be delivered from here, and if not, why?

The steps follow outbound delivery exactly: the queue's MX routing (``queue.routing.route``,
with the same self-detection) decides the hops, then each hop is dialled on ``delivery.port``
until one answers, and the dialogue stops after RCPT TO (RSET, QUIT; never DATA).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

from todoku.bounce import explain_reason
from todoku.diag import probe
from todoku.diag.report import FAIL, OK, WARN, Report, Step, reply_step, text
from todoku.dns.resolver import DnsStatus, Resolver
from todoku.net.smtp_client import SmtpSession, opportunistic_tls_context, remote_mta_name
from todoku.proto.smtp import client as proto
from todoku.proto.smtp.address import AddressError, parse_mailbox
from todoku.queue.model import Hop
from todoku.queue.routing import route

SMTP_PORT = 25  # RFC 5321 §4.5.4.2; the port home and mobile providers block outbound


def connect_failure_step(
    lang: str,
    domain: str,
    port: int,
    timeout: float,
    outcomes: list[tuple[Hop, str, bool]],
    relays: int = 0,
) -> Step:
    """Explain why no hop could be connected to. ``outcomes``: (hop, error text, timed out).
    When port 25 times out the remedy is a smarthost: the [[relay]] block to add, or (with
    ``relays`` already configured, none matching) the domain to add to one."""
    detail = "; ".join(f"{remote_mta_name(h.host, h.ip)}:{port} {why}" for h, why, _ in outcomes)
    facts = {"domain": domain, "port": port, "timeout": f"{timeout:g}"}
    if all(timed_out for _, _, timed_out in outcomes):
        key = "connect_timeout_25" if port == SMTP_PORT else "connect_timeout"
    elif all("refused" in why.lower() for _, why, _ in outcomes):
        key = "connect_refused"
    else:
        key = "connect_timeout"
    remedy = text(lang, key + "_fix", **facts)
    if key == "connect_timeout_25":
        extra = "relay_add_domain" if relays else "relay_block"
        remedy += " " + text(lang, extra, **facts)
    return Step("connect", FAIL, detail, text(lang, key, **facts), remedy, "networkerror")


async def diagnose_address(
    address: str,
    *,
    resolver: Resolver,
    is_self: Callable[[str, str], bool],
    port: int,
    helo_name: str,
    sender: str,
    lang: str,
    timeout: float,
    relays: int = 0,
) -> Report:
    """``relays``: how many [[relay]] tables exist (none matched this address's domain)."""
    report = Report("address", address, lang)
    await _run(report, address, resolver, is_self, port, helo_name, sender, lang, timeout, relays)
    report.set_failed_verdict()
    return report


async def _run(
    report: Report,
    address: str,
    resolver: Resolver,
    is_self: Callable[[str, str], bool],
    port: int,
    helo_name: str,
    sender: str,
    lang: str,
    timeout: float,
    relays: int,
) -> None:
    # 1. syntax
    try:
        mailbox = parse_mailbox(address.strip())
    except AddressError as exc:
        report.add(
            Step(
                "syntax",
                FAIL,
                address,
                text(lang, "syntax_bad", address=address, why=exc),
                text(lang, "syntax_bad_fix"),
                "syntaxerror",
            )
        )
        return
    recipient = str(mailbox)
    domain = mailbox.domain
    report.add(Step("syntax", OK, recipient))

    # 2. domain and 3. MX: the queue's own routing decides; the raw answers are shown.
    mx_answer = await resolver.mx(domain)
    if mx_answer.status is DnsStatus.NXDOMAIN:
        cause, remedy = explain_reason("hostunknown", lang, recipient=recipient, domain=domain)
        report.add(Step("domain", FAIL, f"{domain}: NXDOMAIN", cause, remedy, "hostunknown"))
        return
    if mx_answer.status.is_temporary:
        report.add(
            Step(
                "domain",
                FAIL,
                mx_answer.detail or mx_answer.status.value,
                text(lang, "dns_temporary", domain=domain, detail=mx_answer.status.value),
                text(lang, "dns_temporary_fix"),
                "networkerror",
            )
        )
        return
    report.add(Step("domain", OK, f"{domain} exists"))
    routed = await route(resolver, domain, is_self=is_self, shuffle=lambda hops: None)
    shown_mx = ", ".join(f"{r.preference} {r.host or '.'}" for r in mx_answer.records)
    if routed.failure is not None:
        failure = routed.failure
        if failure.enhanced == "5.1.10" or failure.text.endswith("(null MX)"):
            cause, remedy = explain_reason("notaccept", lang, recipient=recipient, domain=domain)
            report.add(
                Step("mx", FAIL, f"null MX ({shown_mx}): RFC 7505", cause, remedy, "notaccept")
            )
        elif "loops back" in failure.text:
            host = next((r.host for r in mx_answer.records if is_self(r.host, "")), "")
            host = host or (mx_answer.records[0].host if mx_answer.records else domain)
            report.add(
                Step(
                    "mx",
                    FAIL,
                    shown_mx or f"implicit MX {domain}",
                    text(lang, "mx_loop", domain=domain, host=host),
                    text(lang, "mx_loop_fix", domain=domain),
                    "networkerror",
                )
            )
        elif not mx_answer.records:
            cause, remedy = explain_reason("hostunknown", lang, recipient=recipient, domain=domain)
            report.add(
                Step(
                    "mx",
                    FAIL,
                    f"no MX and no A/AAAA record for {domain}",
                    cause,
                    remedy,
                    "hostunknown",
                )
            )
        elif failure.verdict.name == "TEMPORARY":
            report.add(
                Step(
                    "mx",
                    FAIL,
                    failure.text,
                    text(lang, "dns_temporary", domain=domain, detail=failure.text),
                    text(lang, "dns_temporary_fix"),
                    "networkerror",
                )
            )
        else:
            report.add(
                Step(
                    "mx",
                    FAIL,
                    failure.text,
                    text(lang, "mx_unresolvable", domain=domain, hosts=shown_mx),
                    text(lang, "mx_unresolvable_fix"),
                    "hostunknown",
                )
            )
        return
    hops_shown = ", ".join(remote_mta_name(h.host, h.ip) for h in routed.hops)
    if mx_answer.records:
        report.add(Step("mx", OK, f"{shown_mx} → {hops_shown}"))
    else:
        # RFC 5321 §5.1: without MX records the domain's own addresses are the implicit MX.
        report.add(Step("mx", OK, f"no MX record; implicit MX (A/AAAA of {domain}) → {hops_shown}"))

    # 4. TCP connect: hops in order until one answers.
    failures: list[tuple[Hop, str, bool]] = []
    session: SmtpSession | None = None
    for hop in routed.hops:
        try:
            session = await probe.dial(hop.host, hop.ip, port, timeout)
            break
        except TimeoutError:
            failures.append((hop, f"timed out after {timeout:g} s", True))
        except ConnectionRefusedError:
            failures.append((hop, "connection refused", False))
        except OSError as exc:
            failures.append((hop, os.strerror(exc.errno) if exc.errno else str(exc), False))
    if session is None:
        report.add(connect_failure_step(lang, domain, port, timeout, failures, relays))
        return
    mta = session.remote_mta
    skipped = "".join(f" (after {remote_mta_name(h.host, h.ip)}: {why})" for h, why, _ in failures)
    report.add(Step("connect", WARN if failures else OK, f"{mta}:{port}{skipped}"))
    try:
        await _dialogue(report, session, recipient, sender, helo_name, lang, timeout)
    finally:
        await probe.finish(session)


async def _dialogue(
    report: Report,
    session: SmtpSession,
    recipient: str,
    sender: str,
    helo_name: str,
    lang: str,
    timeout: float,
) -> None:
    mta = session.remote_mta
    facts = {"recipient": recipient, "remote_mta": mta}
    try:
        # 5. greeting and EHLO
        greeting = await probe.greeting(session)
    except probe.OtherService as other:
        report.add(
            Step(
                "greeting",
                FAIL,
                other.text,
                text(
                    lang, "other_service", remote_mta=mta, service=other.service, detail=other.text
                ),
                text(lang, "other_service_fix"),
                "networkerror",
            )
        )
        session.usable = False
        return
    except probe.Failed as failed:
        key = "greeting_timeout" if failed.timed_out else "closed"
        report.add(
            Step(
                "greeting",
                FAIL,
                failed.text,
                text(lang, key, timeout=f"{timeout:g}", detail=failed.text),
                text(lang, key + "_fix"),
                "networkerror" if failed.timed_out else "blocked",
            )
        )
        session.usable = False
        return
    if greeting.code != 220:  # RFC 5321 §3.1: 554 means "no SMTP service here" for us
        report.add(
            reply_step(
                "greeting",
                lang,
                greeting.code,
                greeting.enhanced,
                greeting.text,
                proto.GREETING,
                **facts,
            )
        )
        return
    report.add(Step("greeting", OK, str(greeting)))
    try:
        hello = await probe.ehlo(session, helo_name)
        if hello.code != 250:
            report.add(
                reply_step(
                    "ehlo", lang, hello.code, hello.enhanced, hello.text, proto.EHLO, **facts
                )
            )
            return
        offered = " ".join(sorted(session.conn.extensions)) or "HELO only"
        report.add(Step("ehlo", OK, offered))
        # 6. STARTTLS, as the queue does it: opportunistic (RFC 7435), certificate not checked.
        if session.conn.supports("STARTTLS"):
            reply = await probe.command(session, session.conn.starttls(), proto.STARTTLS)
            if reply.code != 220:
                report.add(Step("starttls", WARN, str(reply), text(lang, "no_starttls")))
            else:
                try:
                    description = await probe.start_tls(
                        session, opportunistic_tls_context(), session.host
                    )
                except (ssl.SSLError, TimeoutError, OSError) as exc:
                    session.usable = False
                    report.add(
                        Step(
                            "starttls",
                            FAIL,
                            str(exc) or type(exc).__name__,
                            text(lang, "tls_failed", detail=str(exc) or type(exc).__name__),
                            text(lang, "tls_failed_fix"),
                            "failedstarttls",
                        )
                    )
                    return
                report.add(Step("starttls", OK, description))
                hello = await probe.ehlo(session, helo_name)  # RFC 3207 §4.2: EHLO again
                if hello.code != 250:
                    report.add(
                        reply_step(
                            "ehlo",
                            lang,
                            hello.code,
                            hello.enhanced,
                            hello.text,
                            proto.EHLO,
                            **facts,
                        )
                    )
                    return
                report.add(
                    Step("ehlo", OK, " ".join(sorted(session.conn.extensions)) or "HELO only")
                )
        else:
            report.add(Step("starttls", WARN, "not offered", text(lang, "no_starttls")))
        # 7. MAIL FROM and RCPT TO; never DATA.
        mail = await probe.command(session, session.conn.mail(sender), proto.MAIL)
        if mail.code != 250:
            report.add(
                reply_step("mail", lang, mail.code, mail.enhanced, mail.text, proto.MAIL, **facts)
            )
            return
        report.add(Step("mail", OK, f"<{sender}>: {mail}"))
        rcpt = await probe.command(session, session.conn.rcpt(recipient), proto.RCPT)
        if rcpt.code not in (250, 251):
            report.add(
                reply_step("rcpt", lang, rcpt.code, rcpt.enhanced, rcpt.text, proto.RCPT, **facts)
            )
            return
        report.add(Step("rcpt", OK, f"<{recipient}>: {rcpt}"))
        report.verdict = text(lang, "verdict_address_ok", target=recipient, mx=mta)
    except probe.Failed as failed:
        session.usable = False
        report.add(
            Step(
                failed.phase if failed.phase in ("ehlo", "starttls", "mail", "rcpt") else "ehlo",
                FAIL,
                failed.text,
                text(lang, "closed", detail=failed.text),
                text(lang, "closed_fix"),
                "networkerror",
            )
        )
