"""Administration of the outbound queue and local submission: ``todoku queue ...`` and
``todoku sendmail``.

These commands change the database directly; a running server learns about it because each
command then replaces ``<data_dir>/run/queue.wake``, whose modification time the runner checks
five times a second (a ``stat``), rescanning the queue's due times when it changed. No socket or
signal is needed, and the change takes effect even if the server starts later.
"""

from __future__ import annotations

import email.utils
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from todoku.config import Config
from todoku.ingest import HEADER_SCAN_LIMIT, scan_headers
from todoku.outcome import PHASE_ADMIN, Outcome, Verdict
from todoku.policy.directory import Directory
from todoku.proto.smtp.address import AddressError, parse_mailbox
from todoku.queue.wake import touch_wake_file, wake_path
from todoku.store.api import (
    IncomingMessage,
    QueueEntry,
    RecipientResult,
    RemoteRecipient,
    Store,
)

# sysexits.h, which sendmail callers (cron, PHP's mail()) understand.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _entry_json(entry: QueueEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "sender": entry.sender,
        "size": entry.size,
        "received_at": entry.received_at,
        "next_attempt": entry.next_attempt,
        "attempts": entry.attempts,
        "held": entry.held,
        "delay_warned": entry.delay_warned,
        "last_error": entry.last_error,
        "recipients": [
            {
                "address": r.address,
                "state": r.state,
                "last_reply": r.last_reply,
                "phase": r.phase,
                "code": r.code,
                "enhanced": r.enhanced,
                "remote_mta": r.remote_mta,
                "reason": r.reason,
                "notify": list(r.notify),
                "orcpt": r.orcpt,
            }
            for r in entry.recipients
        ],
    }


# The reason word of a message the administrator took out of the queue (bounce.explain).
ADMINISTRATOR_REASON = "cancelled"


def administrator_results(entry: QueueEntry, hostname: str) -> list[RecipientResult]:
    """Every recipient not yet delivered, failed by the administrator (``queue bounce``,
    ``queue delete --bounce``): decided here, so no remote server and no reply code, and the
    reason that says so in the report the runner then sends."""
    text = f"removed from the queue and returned to the sender by the administrator of {hostname}"
    return [
        RecipientResult.of(
            Outcome(
                r.address,
                Verdict.PERMANENT,
                PHASE_ADMIN,
                None,
                "",
                text,
                reason=ADMINISTRATOR_REASON,
                status="5.0.0",
            )
        )
        for r in entry.recipients
        if r.state == "pending"
    ]


def return_to_sender(store: Store, entry: QueueEntry, hostname: str, now: float) -> int:
    """Fail every recipient not yet delivered as the administrator's decision, release the
    message and make it due now, so the runner sends the report (``queue bounce``, the admin
    pages' "return to sender"); returns how many recipients. The caller wakes the runner."""
    results = administrator_results(entry, hostname)
    store.record_results(entry.id, results, now)
    store.set_queue_held(entry.id, False, now)
    store.flush_queue(entry.id, None, now)
    return len(results)


def _print_entry(entry: QueueEntry) -> None:
    held = " (held)" if entry.held else ""
    click.echo(f"{entry.id}{held}  {entry.size:>8}  {_when(entry.received_at)}  <{entry.sender}>")
    pending = any(r.state == "pending" for r in entry.recipients)
    next_try = "on release" if entry.held else _when(entry.next_attempt) if pending else "-"
    click.echo(f"    attempts {entry.attempts}, next try {next_try}")
    for recipient in entry.recipients:
        reply = f"  ({recipient.last_reply})" if recipient.last_reply else ""
        click.echo(f"    {recipient.state:<9} <{recipient.address}>{reply}")
    if entry.last_error:
        click.echo(f"    last error: {entry.last_error}")


def next_routes(config: Config, entry: QueueEntry) -> list[dict[str, Any]]:
    """Which way each pending recipient domain goes at the next attempt (queue.routing.choose)."""
    from todoku.queue.mtasts import cache_directory, describe_cached
    from todoku.queue.routing import choose

    domains = dict.fromkeys(
        r.address.rpartition("@")[2].lower() for r in entry.recipients if r.state == "pending"
    )
    routes = []
    for domain in domains:
        choice = choose(config.relays, domain, entry.attempts)
        relay = choice.relay
        why = choice.why
        if relay is None and config.delivery.mta_sts:
            policy = describe_cached(cache_directory(config.data_dir), domain, time.time())
            why += f"; {policy}" if policy else ""
        if relay is None and config.dnssec == "validating":
            why += (
                "; DANE (RFC 7672) on: MX hosts with DNSSEC-signed TLSA records get only TLS "
                "that matches them"
            )
        routes.append(
            {
                "domain": domain,
                "route": "relay" if relay is not None else "mx",
                "relay": relay.key if relay is not None else None,
                "why": why,
            }
        )
    return routes


def register(
    queue_group: click.Group,
    main: click.Group,
    *,
    with_config: Callable[..., Any],
    fail: Callable[..., None],
    open_store: Callable[[Config], Any],
) -> None:
    """Add the queue commands and ``sendmail`` to the CLI (helpers passed in: no import cycle)."""

    def changed(config: Config) -> None:
        touch_wake_file(wake_path(config))

    def find(store: Any, queue_id: str) -> QueueEntry:
        entry = store.get_queue_entry(queue_id)
        if entry is None:
            store.close()
            fail(f"{queue_id}: no such message in the queue (see 'todoku queue list')")
        return entry  # type: ignore[no-any-return]

    @queue_group.command("list")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per queued message.")
    @with_config
    def queue_list(config: Config, as_json: bool) -> None:
        """Every queued message: recipients and their state, attempts, next try, last error."""
        store = open_store(config)
        try:
            entries = store.list_queue()
        finally:
            store.close()
        for entry in entries:
            if as_json:
                click.echo(json.dumps(_entry_json(entry), ensure_ascii=False))
            else:
                _print_entry(entry)
        if not as_json:
            click.echo(f"-- {len(entries)} message{'s' if len(entries) != 1 else ''} in the queue")

    @queue_group.command("show")
    @click.argument("queue_id")
    @click.option("--json", "as_json", is_flag=True)
    @with_config
    def queue_show(config: Config, queue_id: str, as_json: bool) -> None:
        """One message: envelope, every attempt so far, and its header."""
        store = open_store(config)
        try:
            entry = find(store, queue_id)
            history = store.queue_history(queue_id)
            with store.open_blob(entry.blob_id) as handle:
                head = handle.read(HEADER_SCAN_LIMIT).partition(b"\r\n\r\n")[0]
        finally:
            store.close()
        routes = next_routes(config, entry)
        if as_json:
            extra = {"history": history, "routes": routes}
            click.echo(json.dumps(_entry_json(entry) | extra, ensure_ascii=False))
            return
        _print_entry(entry)
        if routes:
            click.echo("  route:")
            for route in routes:
                click.echo(f"    {route['domain']}: {route['why']}")
        click.echo("  attempts:")
        for row in history:
            code = f"{row['code']} {row['enhanced']} ".replace("None ", "") if row["code"] else ""
            click.echo(
                f"    {_when(float(str(row['time'])))}  <{row['recipient']}>  {row['state']}"
                f"  {row['phase']}  {row['remote_mta'] or '-'}  {code}{row['text']}"
                f"  [{row['reason'] or '-'}]"
            )
        click.echo("  header:")
        for line in head.decode("utf-8", "replace").splitlines():
            click.echo(f"    {line}")

    @queue_group.command("flush")
    @click.argument("queue_id", required=False)
    @click.option("--domain", default=None, help="Only messages with recipients at this domain.")
    @with_config
    def queue_flush(config: Config, queue_id: str | None, domain: str | None) -> None:
        """Try again now (one message, one domain, or everything)."""
        store = open_store(config)
        try:
            if queue_id is not None:
                find(store, queue_id)
            count = store.flush_queue(queue_id, domain, time.time())
        finally:
            store.close()
        changed(config)
        click.echo(f"{count} message{'s' if count != 1 else ''} will be retried now")

    @queue_group.command("hold")
    @click.argument("queue_id")
    @with_config
    def queue_hold(config: Config, queue_id: str) -> None:
        """Keep a message in the queue without trying it, until 'release'."""
        set_held(config, queue_id, held=True)

    @queue_group.command("release")
    @click.argument("queue_id")
    @with_config
    def queue_release(config: Config, queue_id: str) -> None:
        """Let a held message go again (it is tried at once)."""
        set_held(config, queue_id, held=False)

    def set_held(config: Config, queue_id: str, *, held: bool) -> None:
        store = open_store(config)
        try:
            find(store, queue_id)
            store.set_queue_held(queue_id, held, time.time())
        finally:
            store.close()
        changed(config)
        click.echo(f"{queue_id}: {'held' if held else 'released'}")

    def give_back(config: Config, queue_id: str) -> int:
        store = open_store(config)
        try:
            count = return_to_sender(store, find(store, queue_id), config.hostname, time.time())
        finally:
            store.close()
        changed(config)
        return count

    @queue_group.command("bounce")
    @click.argument("queue_id")
    @with_config
    def queue_bounce(config: Config, queue_id: str) -> None:
        """Give up on a message: its sender gets a bounce for every recipient not yet delivered."""
        count = give_back(config, queue_id)
        click.echo(f"{queue_id}: returned to sender ({count} recipient{'s' if count != 1 else ''})")

    @queue_group.command("delete")
    @click.argument("queue_id")
    @click.option(
        "--bounce",
        "with_bounce",
        is_flag=True,
        help="Tell the sender (a bounce) instead of deleting silently.",
    )
    @with_config
    def queue_delete(config: Config, queue_id: str, with_bounce: bool) -> None:
        """Remove a message from the queue, silently or with a bounce to its sender."""
        if with_bounce:
            count = give_back(config, queue_id)
            click.echo(f"{queue_id}: deleted; bounce for {count} recipient(s) to the sender")
            return
        store = open_store(config)
        try:
            find(store, queue_id)
            store.delete_queue_entry(queue_id)
        finally:
            store.close()
        changed(config)
        click.echo(f"{queue_id}: deleted")

    @main.command(
        "sendmail",
        context_settings={"ignore_unknown_options": False, "allow_interspersed_args": True},
    )
    @click.option("-t", "extract", is_flag=True, help="Take recipients from To:, Cc: and Bcc:.")
    @click.option("-f", "-r", "sender", default=None, metavar="SENDER", help="Envelope sender.")
    @click.option("-F", "full_name", default=None, help="Full name for a From: that is added.")
    @click.option(
        "-i", "ignore_dots", is_flag=True, help="A lone '.' line does not end the message."
    )
    @click.option(
        "-o",
        "options",
        multiple=True,
        metavar="OPT",
        help="sendmail -o options: -oi is -i, others are accepted and ignored.",
    )
    @click.option("-B", "body_type", default=None, hidden=True)
    @click.option("-N", "notify", default=None, help="DSN NOTIFY: never, or failure,delay,success.")
    @click.option("-v", "verbose", is_flag=True, hidden=True)
    @click.argument("recipients", nargs=-1)
    @with_config
    def sendmail(
        config: Config,
        extract: bool,
        sender: str | None,
        full_name: str | None,
        ignore_dots: bool,
        options: tuple[str, ...],
        body_type: str | None,
        notify: str | None,
        verbose: bool,
        recipients: tuple[str, ...],
    ) -> None:
        """The sendmail command line of cron, PHP mail() and scripts: queue stdin durably.

        Link it as /usr/sbin/sendmail with a two-line wrapper script (see the README)."""
        if "i" in options:
            ignore_dots = True
        raw = sys.stdin.buffer.read()
        message = _normalise(raw, ignore_dots)
        header_block, _, _ = message.partition(b"\r\n\r\n")
        facts = scan_headers(header_block + b"\r\n")
        wanted = list(recipients)
        if extract:
            wanted += _header_recipients(header_block)
            message = _drop_bcc(message)
        if not wanted:
            fail("no recipients (give them as arguments, or use -t)", EX_USAGE)
        if len(message) > config.max_message_size:
            fail(
                f"message too big: {len(message)} bytes, limit {config.max_message_size}",
                EX_DATAERR,
            )
        if facts.received_count > config.delivery.max_hops:
            fail("too many Received: header fields (a mail loop?)", EX_DATAERR)
        envelope_sender = (
            sender if sender is not None else f"{getpass.getuser()}@{config.primary_domain}"
        )
        if envelope_sender and envelope_sender != "<>":
            try:
                envelope_sender = str(parse_mailbox(envelope_sender.strip("<>")))
            except AddressError as exc:
                fail(f"{envelope_sender}: not a valid sender address ({exc})", EX_DATAERR)
        else:
            envelope_sender = ""
        notify_values = tuple(n.strip().upper() for n in notify.split(",")) if notify else ()
        store = open_store(config)
        try:
            directory = Directory(store, config.domains)
            mailboxes: list[str] = []
            remote: list[RemoteRecipient] = []
            for text in dict.fromkeys(wanted):
                try:
                    address = parse_mailbox(text.strip().strip("<>"))
                except AddressError as exc:
                    store.close()
                    fail(f"{text}: not a valid address ({exc})", EX_NOUSER)
                    raise
                if directory.is_local(address):
                    resolution = directory.resolve(address)
                    if not resolution.found:
                        store.close()
                        fail(f"<{address}>: no such local user", EX_NOUSER)
                    mailboxes += resolution.mailboxes
                    remote += [RemoteRecipient(r, None, notify_values) for r in resolution.remote]
                else:
                    remote.append(RemoteRecipient(str(address), None, notify_values))
            writer = store.new_blob()
            now = time.time()
            prefix = _added_headers(config, writer.blob_id, facts, envelope_sender, full_name, now)
            try:
                writer.write(prefix + message)
                blob = writer.finish()
            except OSError as exc:
                writer.abort()
                store.close()
                fail(f"cannot store the message: {exc}", EX_TEMPFAIL)
                raise
            store.commit_sync(
                IncomingMessage(
                    blob=blob,
                    sender=envelope_sender,
                    mailboxes=tuple(mailboxes),
                    remote=tuple(remote),
                    subject=facts.subject,
                    smtputf8=not (
                        envelope_sender.isascii() and all(r.address.isascii() for r in remote)
                    ),
                    received_at=now,
                )
            )
        finally:
            store.close()
        if remote:
            changed(config)
        if verbose:
            click.echo(f"queued as {blob.blob_id}", err=True)


def _normalise(raw: bytes, ignore_dots: bool) -> bytes:
    """CRLF line ends; without -i a line of one '.' ends the message (classic sendmail)."""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not ignore_dots and b"." in lines:
        lines = lines[: lines.index(b".")]
    body = b"\r\n".join(lines)
    return body + b"\r\n" if body else b""


_ADDRESS_FIELDS = re.compile(
    rb"^(to|cc|bcc)[ \t]*:(.*(?:\r\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE
)


def _header_recipients(header_block: bytes) -> list[str]:
    values = [
        m.group(2).replace(b"\r\n", b" ").decode("utf-8", "replace")
        for m in _ADDRESS_FIELDS.finditer(header_block + b"\r\n")
    ]
    return [address for _, address in email.utils.getaddresses(values) if address]


def _drop_bcc(message: bytes) -> bytes:
    head, sep, body = message.partition(b"\r\n\r\n")
    kept = re.sub(rb"(?im)^bcc[ \t]*:.*(?:\r\n[ \t].*)*(?:\r\n|$)", b"", head + b"\r\n")
    return kept.rstrip(b"\r\n") + sep + body if sep else kept


def _added_headers(
    config: Config, queue_id: str, facts: Any, sender: str, full_name: str | None, now: float
) -> bytes:
    date = email.utils.formatdate(now, localtime=True)
    out = (
        f"Received: by {config.hostname} (todoku sendmail, uid {os.getuid()})\r\n"
        f"\tid {queue_id}; {date}\r\n"
    )
    if not facts.has_from and sender:
        out += f"From: {email.utils.formataddr((full_name or '', sender))}\r\n"
    if not facts.has_date:
        out += f"Date: {date}\r\n"
    if not facts.has_message_id:
        out += f"Message-ID: <{queue_id}.{int(now)}@{config.hostname}>\r\n"
    return out.encode("utf-8")
