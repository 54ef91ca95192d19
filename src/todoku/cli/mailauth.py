"""``todoku dns-records``, ``todoku diagnose`` and ``todoku dkim rotate|status`` (registered on
the main command group by ``todoku.cli.main``). What they print and check lives in
``todoku.mailauth`` (records, keys) and ``todoku.diag`` (the diagnoses)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from todoku.config import Config


def register(
    main: click.Group, *, with_config: Callable[..., Any], fail: Callable[..., None]
) -> None:
    from todoku.mailauth.dkim import DkimError
    from todoku.mailauth.setup import key_store

    def domains_of(config: Config, domain: str | None) -> tuple[str, ...]:
        if domain is None:
            return config.domains
        domain = domain.lower().rstrip(".")
        if domain not in config.domains:
            fail(f"{domain}: not a local domain (domains = {list(config.domains)})")
        return (domain,)

    @main.command("dns-records")
    @click.argument("domain", required=False)
    @click.option(
        "--ipv4", "ipv4", multiple=True, metavar="ADDRESS", help="The server's public IPv4 address."
    )
    @click.option(
        "--ipv6", "ipv6", multiple=True, metavar="ADDRESS", help="The server's public IPv6 address."
    )
    @with_config
    def dns_records(
        config: Config, domain: str | None, ipv4: tuple[str, ...], ipv6: tuple[str, ...]
    ) -> None:
        """Print every DNS record to publish for DOMAIN (default: all local domains), ready to paste."""
        import ipaddress

        from todoku.mailauth.lookup import lookups_for
        from todoku.mailauth.records import records_for, render

        for ip in ipv4 + ipv6:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                fail(f"{ip}: not an IP address")
        if not ipv4 and not ipv6:
            lookups = lookups_for(config.nameservers)

            async def addresses() -> tuple[tuple[str, ...], tuple[str, ...]]:
                four, six = await asyncio.gather(
                    lookups.ipv4(config.hostname), lookups.ipv6(config.hostname)
                )
                return four.records, six.records

            ipv4, ipv6 = asyncio.run(addresses())
        store = key_store(config)
        try:
            for index, name in enumerate(domains_of(config, domain)):
                keys = store.load(name)
                if index:
                    click.echo("")
                click.echo(
                    render(
                        config,
                        name,
                        records_for(config, name, keys, ipv4, ipv6),
                        bool(ipv4 or ipv6),
                    ),
                    nl=False,
                )
        except (DkimError, OSError) as exc:
            fail(f"dkim: {exc}")

    @main.command("diagnose")
    @click.argument("address", required=False)
    @click.option(
        "--self",
        "self_check",
        is_flag=True,
        help="Check this server's own DNS records (MX, A/AAAA, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV).",
    )
    @click.option(
        "--submission",
        "submission",
        default=None,
        metavar="HOST:PORT",
        help="Check a mail program's sending settings against this submission server.",
    )
    @click.option(
        "--relay",
        "relay_check",
        is_flag=True,
        help="Check each [[relay]] smarthost: connection, TLS, login and MAIL FROM (no message).",
    )
    @click.option(
        "--user", "user", default=None, metavar="USER", help="Account name for --submission."
    )
    @click.option(
        "--password-stdin",
        "password_stdin",
        is_flag=True,
        help="Read the password for --submission from standard input (else it is asked for).",
    )
    @click.option(
        "--from",
        "sender",
        default=None,
        metavar="ADDRESS",
        help="Sender address (--submission: default USER; ADDRESS: default postmaster@first domain).",
    )
    @click.option(
        "--tls",
        "tls_mode",
        type=click.Choice(["auto", "implicit", "starttls", "none"]),
        default="auto",
        help="--submission: implicit TLS, STARTTLS or none (auto: implicit on 465; elsewhere STARTTLS, or TLS when the server stays silent).",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(0.1, 300),
        default=10.0,
        show_default=True,
        help="Seconds to wait for each connection, reply or DNS answer.",
    )
    @click.option("--json", "as_json", is_flag=True, help="One JSON object with every step.")
    @click.option(
        "--lang",
        type=click.Choice(["en", "ja"]),
        default=None,
        help="Language (default: the configuration's lang).",
    )
    @with_config
    def diagnose(
        config: Config,
        address: str | None,
        self_check: bool,
        submission: str | None,
        relay_check: bool,
        user: str | None,
        password_stdin: bool,
        sender: str | None,
        tls_mode: str,
        timeout: float,
        as_json: bool,
        lang: str | None,
    ) -> None:
        """Say why mail cannot be sent: ADDRESS (live delivery check), --submission (a mail program's
        settings) or --self (this server's DNS records)."""
        chosen = lang or config.lang
        if sum((address is not None, self_check, submission is not None, relay_check)) != 1:
            fail("diagnose: give exactly one of ADDRESS, --submission HOST:PORT, --relay or --self")
        if relay_check:
            if not config.relays:
                fail("diagnose: --relay: no [[relay]] in the configuration")
                return
            from todoku.diag.command import emit
            from todoku.diag.relay import run_relays

            reports = run_relays(config, sender=sender, lang=chosen, timeout=timeout)
            sys.exit(max(emit(r, as_json, click.echo) for r in reports))
        if address is not None or submission is not None:
            from todoku.diag.command import emit, run_address, run_submission

            if submission is not None:
                if not user:
                    fail("diagnose: --submission needs --user USER")
                    return
                if password_stdin:
                    password = sys.stdin.readline().rstrip("\r\n")
                else:
                    password = click.prompt("Password", hide_input=True, err=True)
                report = run_submission(
                    config,
                    submission,
                    user=user,
                    password=password,
                    sender=sender,
                    tls_mode=tls_mode,
                    lang=chosen,
                    timeout=timeout,
                )
            else:
                assert address is not None
                report = run_address(config, address, sender=sender, lang=chosen, timeout=timeout)
            sys.exit(emit(report, as_json, click.echo))

        from todoku.mailauth.lookup import lookups_for
        from todoku.mailauth.records import diagnose as run_diagnose
        from todoku.mailauth.records import report as records_report

        store = key_store(config)
        try:
            keys = {d: store.load(d) for d in config.domains}
        except (DkimError, OSError) as exc:
            fail(f"dkim: {exc}")
            return
        findings = asyncio.run(run_diagnose(config, lookups_for(config.nameservers), keys, chosen))
        text, status = records_report(findings, config, chosen)
        from todoku.diag.dane import dane_line

        text = dane_line(config, chosen) + text  # the verdict stays the last line
        if as_json:
            # The same shape as the other diagnoses' --json: one object, the verdict in words.
            import dataclasses
            import json

            click.echo(
                json.dumps(
                    {
                        "kind": "self",
                        "target": config.hostname,
                        "ok": status == 0,
                        "verdict": text.rstrip("\n").rpartition("\n")[2],
                        "findings": [dataclasses.asdict(f) for f in findings],
                    },
                    ensure_ascii=False,
                )
            )
        else:
            click.echo(text, nl=False)
        sys.exit(status)

    @main.group("dkim")
    def dkim_group() -> None:
        """DKIM signing keys: status and rotation."""

    @dkim_group.command("status")
    @click.argument("domain", required=False)
    @with_config
    def dkim_status(config: Config, domain: str | None) -> None:
        store = key_store(config)
        try:
            for name in domains_of(config, domain):
                keys = store.load(name)
                for key, role in keys.published():
                    click.echo(f"{name}\t{role}\t{key.selector}\t{key.algorithm}")
                if keys.pending is not None:
                    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(keys.switch_after))
                    click.echo(
                        f"{name}\tsigning switches to {', '.join(keys.pending.selectors)} at {when}"
                    )
        except (DkimError, OSError) as exc:
            fail(f"dkim: {exc}")

    @dkim_group.command("rotate")
    @click.argument("domain")
    @with_config
    def dkim_rotate(config: Config, domain: str) -> None:
        """Make new keys for DOMAIN: publish them now, signing switches after policy.dkim_rotation_grace."""
        (name,) = domains_of(config, domain)
        try:
            keys = key_store(config).rotate(name)
        except (DkimError, OSError) as exc:
            fail(f"dkim: {exc}")
            return
        assert keys.pending is not None
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(keys.switch_after))
        click.echo(
            f"{name}: new selectors {', '.join(keys.pending.selectors)}; publish these records now:"
        )
        for key in keys.pending.keys:
            click.echo(f'{key.record_name}.\tIN\tTXT\t"{key.record_text}"')
        click.echo(
            f"signing switches to them at {when} (the running server picks this up by itself)"
        )
