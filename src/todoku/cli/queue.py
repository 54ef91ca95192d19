"""``todoku queue ...`` and ``todoku sendmail``: the outbound queue and local submission.

What is shown and decided is in ``queue/admin.py``; these commands read and change the queue
through the storage interfaces (``cli/storage.py``), then touch ``<data_dir>/run/queue.wake`` so
that a running server rescans its due times.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from todoku.cli.storage import CommandStorage, command_storage
from todoku.config import Config
from todoku.ingest import HEADER_SCAN_LIMIT, scan_headers
from todoku.policy.directory import Directory
from todoku.proto.smtp.address import AddressError, parse_mailbox
from todoku.queue.admin import (
    added_headers,
    drop_bcc,
    entry_json,
    header_recipients,
    next_routes,
    normalise,
    return_to_sender,
)
from todoku.queue.wake import touch_wake_file, wake_path
from todoku.store.api import IncomingMessage, QueueEntry, RemoteRecipient, SpooledBlob, StorageFull

# sysexits.h, which sendmail callers (cron, PHP's mail()) understand.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


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


def register(
    queue_group: click.Group,
    main: click.Group,
    *,
    with_config: Callable[..., Any],
    fail: Callable[..., None],
) -> None:
    """Add the queue commands and ``sendmail`` to the CLI (helpers passed in: no import cycle)."""

    def changed(config: Config) -> None:
        touch_wake_file(wake_path(config))

    def find(storage: CommandStorage, queue_id: str) -> QueueEntry:
        entry = storage.run(storage.queue.get(queue_id))
        if entry is None:
            fail(f"{queue_id}: no such message in the queue (see 'todoku queue list')")
            raise AssertionError  # fail() exits
        return entry

    @queue_group.command("list")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per queued message.")
    @with_config
    def queue_list(config: Config, as_json: bool) -> None:
        """Every queued message: recipients and their state, attempts, next try, last error."""
        with command_storage(config) as storage:
            entries = storage.run(storage.queue.entries())
        for entry in entries:
            if as_json:
                click.echo(json.dumps(entry_json(entry), ensure_ascii=False))
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
        with command_storage(config) as storage:
            entry = find(storage, queue_id)
            history = storage.run(storage.queue.history(queue_id))
            with storage.run(storage.blobs.open(entry.blob_id)) as handle:
                head = handle.read(HEADER_SCAN_LIMIT).partition(b"\r\n\r\n")[0]
        ways = next_routes(config, entry)
        if as_json:
            extra = {"history": [asdict(row) for row in history], "routes": ways}
            click.echo(json.dumps(entry_json(entry) | extra, ensure_ascii=False))
            return
        _print_entry(entry)
        if ways:
            click.echo("  route:")
            for route in ways:
                click.echo(f"    {route['domain']}: {route['why']}")
        click.echo("  attempts:")
        for row in history:
            code = f"{row.code} {row.enhanced} " if row.code else ""
            click.echo(
                f"    {_when(row.time)}  <{row.recipient}>  {row.state}"
                f"  {row.phase}  {row.remote_mta or '-'}  {code}{row.text}"
                f"  [{row.reason or '-'}]"
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
        with command_storage(config) as storage:
            if queue_id is not None:
                find(storage, queue_id)
            count = storage.run(storage.queue.flush(queue_id, domain, time.time()))
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
        with command_storage(config) as storage:
            find(storage, queue_id)
            storage.run(storage.queue.hold(queue_id, held, time.time()))
        changed(config)
        click.echo(f"{queue_id}: {'held' if held else 'released'}")

    def give_back(config: Config, queue_id: str) -> int:
        with command_storage(config) as storage:
            entry = find(storage, queue_id)
            queue = storage.queue
            count = storage.run(return_to_sender(queue, entry, config.hostname, time.time()))
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
        with command_storage(config) as storage:
            find(storage, queue_id)
            storage.run(storage.queue.delete(queue_id))
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
        message = normalise(raw, ignore_dots)
        header_block, _, _ = message.partition(b"\r\n\r\n")
        facts = scan_headers(header_block + b"\r\n")
        wanted = list(recipients)
        if extract:
            wanted += header_recipients(header_block)
            message = drop_bcc(message)
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
        with command_storage(config) as storage:
            directory = Directory(storage.directory, config.domains)
            mailboxes: list[str] = []
            remote: list[RemoteRecipient] = []
            for text in dict.fromkeys(wanted):
                try:
                    address = parse_mailbox(text.strip().strip("<>"))
                except AddressError as exc:
                    fail(f"{text}: not a valid address ({exc})", EX_NOUSER)
                    raise
                if directory.is_local(address):
                    resolution = storage.run(directory.resolve(address))
                    if not resolution.found:
                        fail(f"<{address}>: no such local user", EX_NOUSER)
                    mailboxes += resolution.mailboxes
                    remote += [RemoteRecipient(r, None, notify_values) for r in resolution.remote]
                else:
                    remote.append(RemoteRecipient(str(address), None, notify_values))
            try:
                writer = storage.blobs.new_writer()
            except OSError as exc:
                fail(f"cannot store the message: {exc}", EX_TEMPFAIL)
                raise
            now = time.time()
            prefix = added_headers(config, writer.blob_id, facts, envelope_sender, full_name, now)
            writer.write(prefix + message)
            smtputf8 = not (envelope_sender.isascii() and all(r.address.isascii() for r in remote))

            def message_for(blob: SpooledBlob) -> IncomingMessage:
                return IncomingMessage(
                    blob=blob,
                    sender=envelope_sender,
                    mailboxes=tuple(mailboxes),
                    remote=tuple(remote),
                    subject=facts.subject,
                    smtputf8=smtputf8,
                    received_at=now,
                )

            try:
                queue_id = storage.run(storage.intake.accept(writer, message_for))
            except (StorageFull, OSError) as exc:
                fail(f"cannot store the message: {exc}", EX_TEMPFAIL)
                raise
        if remote:
            changed(config)
        if verbose:
            click.echo(f"queued as {queue_id}", err=True)
