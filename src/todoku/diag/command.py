"""Glue between ``todoku diagnose`` (click, in ``todoku.cli.mailauth``) and the checks.

Exit status: 0 when sending works (warnings allowed), 1 when a step failed, 2 for usage or
configuration errors (raised by the caller).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from todoku.config import Config
from todoku.diag.report import Report

if TYPE_CHECKING:
    from todoku.queue.routing import RouteChoice

DEFAULT_TIMEOUT = 10.0


def _bound_listeners(config: Config) -> list[tuple[str, int]]:
    return [(listen.host, listen.port) for listen in config.listen.values()]


def run_address(
    config: Config, address: str, *, sender: str | None, lang: str, timeout: float
) -> Report:
    from todoku.diag.delivery import diagnose_address
    from todoku.dns.dnspython import DnspythonResolver
    from todoku.queue.setup import self_matcher

    resolver = DnspythonResolver(config.nameservers, lifetime=timeout)
    sender = sender or f"postmaster@{config.primary_domain}"
    choice = _relay_choice(config, address)
    if choice is not None and choice.relay is not None:
        from todoku.diag.relay import diagnose_via_relay

        # The way the queue sends a new message: through the relay that matches first.
        return asyncio.run(
            diagnose_via_relay(
                address.strip(),
                choice,
                resolver=resolver,
                sender=sender,
                helo_name=config.hostname,
                lang=lang,
                timeout=timeout,
            )
        )
    # The same test the queue uses to avoid delivering to itself: our name, or an address we
    # listen on at the delivery port.
    is_self = self_matcher(config, _bound_listeners(config))
    return asyncio.run(
        diagnose_address(
            address,
            resolver=resolver,
            is_self=is_self,
            port=config.delivery.port,
            helo_name=config.hostname,
            sender=sender,
            lang=lang,
            timeout=timeout,
            relays=len(config.relays),
        )
    )


def _relay_choice(config: Config, address: str) -> RouteChoice | None:
    """The queue's choice for a new message to ``address`` (no failed attempts yet)."""
    from todoku.proto.smtp.address import AddressError, parse_mailbox
    from todoku.queue.routing import choose

    if not config.relays:
        return None
    try:
        domain = parse_mailbox(address.strip()).domain
    except AddressError:
        return None  # the address check reports it
    return choose(config.relays, domain, 0)


def run_submission(
    config: Config,
    target: str,
    *,
    user: str,
    password: str,
    sender: str | None,
    tls_mode: str,
    lang: str,
    timeout: float,
) -> Report:
    from todoku.diag.submission import diagnose_submission

    return asyncio.run(
        diagnose_submission(
            target,
            user=user,
            password=password,
            sender=sender or user,
            tls_mode=tls_mode,
            helo_name=config.hostname,
            lang=lang,
            timeout=timeout,
        )
    )


def emit(report: Report, as_json: bool, echo: Callable[[str], None]) -> int:
    echo(report.to_json() if as_json else report.to_text().rstrip("\n"))
    return 0 if report.ok else 1
