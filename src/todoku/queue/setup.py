"""Assemble the outbound queue from the configuration (called by ``app.py``, the composition root)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable

from todoku.config import Config
from todoku.dns.dnspython import DnspythonResolver
from todoku.net.smtp_client import opportunistic_tls_context
from todoku.policy.directory import Directory
from todoku.proto.smtp.address import AddressError, parse_mailbox
from todoku.queue import tlsrpt
from todoku.queue.dane import Dane
from todoku.queue.mtasts import HttpsPolicyFetcher, MtaSts, PolicyCache, cache_directory
from todoku.queue.runner import QueueRunner, RunnerSettings
from todoku.queue.schedule import Schedule
from todoku.queue.tlsrpt_send import Enqueue, HttpsReportPoster, ReporterSettings, TlsReporter
from todoku.queue.transport import RelayTransport, SmtpTransport
from todoku.queue.wake import wake_path
from todoku.store.api import IncomingMessage, RemoteRecipient, SpooledBlob
from todoku.store.backend import Storage
from todoku.store.directory import Directory as Accounts


def _local_addresses(bound_hosts: Iterable[str]) -> set[str]:
    addresses = set()
    wildcard = False
    for host in bound_hosts:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if ip.is_unspecified:
            wildcard = True
        else:
            addresses.add(str(ip))
    if wildcard:
        # Listening on every address: every address of this machine is "us".
        addresses |= {"127.0.0.1", "::1"}
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None):
                addresses.add(str(info[4][0]))
        except OSError:
            pass
    return addresses


def self_matcher(config: Config, bound: Iterable[tuple[str, int]]) -> Callable[[str, str], bool]:
    """Is a hop this server? Its host name, or an address it listens on at the port we deliver
    to (another port on the same address is another server: a test MX, or a peer MTA)."""
    addresses = _local_addresses(h for h, port in bound if port == config.delivery.port)
    names = {config.hostname.lower().rstrip(".")}

    def is_self(host: str, ip: str) -> bool:
        return host.lower().rstrip(".") in names or (bool(ip) and ip in addresses)

    return is_self


def mailbox_finder(
    config: Config, accounts: Accounts
) -> Callable[[str], Awaitable[tuple[str, ...] | None]]:
    """Where a report to ``address`` goes: local mailboxes, () for an unknown local user,
    None when the address is elsewhere (the report is queued like any other mail)."""
    directory = Directory(accounts, config.domains)

    async def find(address: str) -> tuple[str, ...] | None:
        try:
            parsed = parse_mailbox(address)
        except AddressError:
            return ()
        if not directory.is_local(parsed):
            return None
        resolution = await directory.resolve(parsed)
        if resolution.remote and not resolution.mailboxes:
            return None
        return resolution.mailboxes

    return find


def _dkim_signer(config: Config) -> Callable[[bytes, str], bytes] | None:
    """DKIM signing of mail from local domains (the mailauth package's hook), if it loads."""
    try:
        from todoku.mailauth.setup import outbound_signer

        return outbound_signer(config)
    except Exception:
        logging.getLogger("todoku.queue").exception("DKIM signing unavailable; sending unsigned")
        return None


def report_enqueuer(storage: Storage) -> Enqueue:
    """Queue a report message (TLS-RPT) like any outgoing mail: content, then one accept;
    marked to go even where the destination's MTA-STS or DANE cannot be met."""

    async def enqueue(sender: str, recipients: tuple[str, ...], data: bytes) -> None:
        writer = storage.blobs.new_writer()
        writer.write(data)

        def message_for(blob: SpooledBlob) -> IncomingMessage:
            return IncomingMessage(
                blob=blob,
                sender=sender,
                remote=tuple(RemoteRecipient(r) for r in recipients),
                subject="TLS report",
                received_at=time.time(),
                # RFC 8460 §5.3: reports MUST be delivered despite TLS failures; RFC 8689 §4.1.
                tls_optional=True,
            )

        await storage.intake.accept(writer, message_for)

    return enqueue


def build_tls_reporter(config: Config, storage: Storage) -> TlsReporter | None:
    """Daily TLS reports (RFC 8460), or None when ``[tlsrpt] enabled = false``. Reports come
    from ``contact`` when it is an address of ours (so they are DKIM-signed for its domain),
    else from postmaster of the first domain."""
    settings = config.tlsrpt
    if not settings.enabled:
        return None
    contact_domain = settings.contact.rpartition("@")[2].lower()
    sender = (
        settings.contact
        if config.is_local_domain(contact_domain)
        else f"postmaster@{config.primary_domain}"
    )
    submitter = tlsrpt.Submitter(settings.organization, settings.contact, config.primary_domain)
    resolver = DnspythonResolver(config.nameservers)
    return TlsReporter(
        config.data_dir / "tlsrpt",
        ReporterSettings(submitter, sender, config.hostname),
        resolver,
        report_enqueuer(storage),
        HttpsReportPoster(resolver),
        signer=_dkim_signer(config),
    )


def build_runner(
    config: Config,
    storage: Storage,
    bound: Iterable[tuple[str, int]],
    tls_reporter: TlsReporter | None = None,
) -> QueueRunner:
    delivery = config.delivery
    settings = RunnerSettings(
        hostname=config.hostname,
        lang=config.lang,
        schedule=Schedule(delivery.retry, delivery.delay_warning, delivery.max_lifetime),
        max_connections_per_domain=delivery.max_connections_per_domain,
        max_hops=delivery.max_hops,
        wake_path=wake_path(config),
    )
    # RFC 7672 §2.1.1: DNSSEC results only from a resolver declared validating; DANE needs them.
    dnssec = config.dnssec == "validating"
    resolver = DnspythonResolver(config.nameservers, dnssec=dnssec)
    mta_sts = None
    if delivery.mta_sts:
        fetcher = HttpsPolicyFetcher(resolver)
        mta_sts = MtaSts(resolver, fetcher, PolicyCache(cache_directory(config.data_dir)))
        if tls_reporter is not None:
            mta_sts.on_problem = tls_reporter.policy_problem
    transport = SmtpTransport(config.hostname, delivery.port, opportunistic_tls_context())
    if tls_reporter is not None:
        transport.tls_observer = tls_reporter.observe_hop
    return QueueRunner(
        storage,
        resolver,
        transport,
        settings,
        is_self=self_matcher(config, bound),
        local_mailboxes=mailbox_finder(config, storage.directory),
        signer=_dkim_signer(config),
        relays=config.relays,
        relay_transport=lambda relay: RelayTransport(relay, config.hostname),
        mta_sts=mta_sts,
        dane=Dane(resolver) if dnssec else None,
    )
