"""``todoku diagnose ADDRESS`` when a ``[[relay]]`` takes the mail: check the way the queue
would go, through the smarthost, rather than the domain's MX.

Steps: the route (which relay, and why), the relay host's addresses (the queue's resolver,
``queue.routing.relay_route``), the password file (read as the queue reads it), then connect,
TLS verified with the relay's CA file and name (``tls`` of the table, no plain-text step),
EHLO, login, MAIL FROM and RCPT TO the address; never DATA. The password is never shown.

``todoku diagnose --relay`` runs the same steps for each ``[[relay]]`` without an address: the
sender is the recipient too, as for ``--submission``.
"""

from __future__ import annotations

import asyncio
import ssl

from todoku.config import Config
from todoku.config.relay import PasswordError, RelayConfig, read_password
from todoku.diag.report import FAIL, OK, Report, Step, text
from todoku.diag.submission import _Checker, _Stop
from todoku.dns.resolver import Resolver
from todoku.net.smtp_client import verified_tls_context
from todoku.queue.routing import RouteChoice, relay_route


async def diagnose_via_relay(
    address: str,
    choice: RouteChoice,
    *,
    resolver: Resolver,
    sender: str,
    helo_name: str,
    lang: str,
    timeout: float,
) -> Report:
    relay = choice.relay
    assert relay is not None
    report = Report("address", address, lang)
    report.add(Step("route", OK, choice.describe))
    return await _checked(report, relay, address, resolver, sender, helo_name, lang, timeout)


async def diagnose_relay(
    relay: RelayConfig,
    *,
    resolver: Resolver,
    sender: str,
    helo_name: str,
    lang: str,
    timeout: float,
) -> Report:
    """``todoku diagnose --relay``: the relay's addresses, TLS, login and MAIL FROM ``sender``
    (then RCPT TO ``sender``, as ``--submission`` does; never DATA), whatever the domains."""
    report = Report("relay", relay.label, lang)
    return await _checked(report, relay, sender, resolver, sender, helo_name, lang, timeout)


async def _checked(
    report: Report,
    relay: RelayConfig,
    address: str,
    resolver: Resolver,
    sender: str,
    helo_name: str,
    lang: str,
    timeout: float,
) -> Report:
    """Run the relay's steps into ``report`` and give it its verdict (both commands)."""
    try:
        await _check(report, relay, address, resolver, sender, helo_name, lang, timeout)
    except _Stop:
        pass
    if not report.set_failed_verdict():
        report.verdict = text(lang, "verdict_relay_ok", target=address, relay=relay.label)
    return report


async def _check(
    report: Report,
    relay: RelayConfig,
    address: str,
    resolver: Resolver,
    sender: str,
    helo_name: str,
    lang: str,
    timeout: float,
) -> None:
    facts = {"relay": relay.label, "key": relay.key, "host": relay.host}
    routed = await relay_route(resolver, relay)
    if routed.failure is not None:
        report.add(
            Step(
                "relay",
                FAIL,
                routed.failure.text,
                text(lang, "relay_unresolved", **facts),
                text(lang, "relay_unresolved_fix", **facts),
                "networkerror",
            )
        )
        return
    hop = routed.hops[0]
    report.add(Step("relay", OK, f"{relay.host} → {', '.join(h.ip for h in routed.hops)}"))
    password = ""
    if relay.user is not None:
        try:
            password = read_password(relay)
        except PasswordError as exc:
            report.add(
                Step(
                    "login",
                    FAIL,
                    str(exc),
                    text(lang, "relay_password", **facts),
                    text(lang, "relay_password_fix", **facts),
                    "securityerror",
                )
            )
            return
    try:
        context = verified_tls_context(str(relay.ca_file) if relay.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        report.add(
            Step(
                "tls",
                FAIL,
                f"{relay.key}.ca_file: {exc}",
                text(lang, "relay_ca", **facts),
                text(lang, "relay_ca_fix", **facts),
                "failedstarttls",
            )
        )
        return
    checker = _Checker(
        report,
        relay.host,
        relay.port,
        relay.user or "",
        password,
        sender,
        relay.tls,
        helo_name,
        lang,
        timeout,
        address=hop.ip,
        recipient=address,
        strict_context=context,
    )
    await checker.run()


def run_relays(config: Config, *, sender: str | None, lang: str, timeout: float) -> list[Report]:
    """One report per ``[[relay]]``, in the order the queue tries them."""
    from todoku.dns.dnspython import DnspythonResolver

    resolver = DnspythonResolver(config.nameservers, lifetime=timeout)

    async def run() -> list[Report]:
        return [
            await diagnose_relay(
                relay,
                resolver=resolver,
                sender=sender or relay.user or f"postmaster@{config.primary_domain}",
                helo_name=config.hostname,
                lang=lang,
                timeout=timeout,
            )
            for relay in config.relays
        ]

    return asyncio.run(run())
