"""The ``todoku`` command line (click): serve, config check, users, aliases, queue.

Errors an administrator can fix (configuration, unknown user, bad address) are one line on
stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

# Start-up time matters (``todoku explain`` over a folder, ``todoku sendmail`` from cron): this
# module imports only click at the top. Each command imports its heavy modules (asyncio, the
# configuration schema, the queue, DNS, mailauth) inside its own function, and the command groups
# registered by other packages are added on first use (_LazyGroup below).
import json
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from todoku import __version__

if TYPE_CHECKING:
    from todoku.config import Config

F = TypeVar("F", bound=Callable[..., Any])


# config.load.DEFAULT_PATHS[0], written out so that finding the file does not import the whole
# configuration schema (explain only reads its `lang`); tests/bounce/test_cli.py checks they agree.
DEFAULT_CONFIG_PATH = "todoku.toml"


def find_config_path(explicit: str | None) -> Path:
    """The configuration file: --config (after the subcommand, else before it), else
    $TODOKU_CONFIG, else ./todoku.toml."""
    if not explicit:
        ctx = click.get_current_context(silent=True)
        explicit = ctx.meta.get(_CONFIG_META) if ctx is not None else None
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("TODOKU_CONFIG") or DEFAULT_CONFIG_PATH)


_CONFIG_META = "todoku.config_path"


def _remember_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--config`` given to a group (``todoku --config PATH queue list``): kept in the context's
    shared ``meta`` for the command; an inner group's value replaces an outer one's."""
    if value is not None:
        ctx.meta[_CONFIG_META] = value


class _Group(click.Group):
    """A group that accepts ``--config`` too, so the global option works before or after the
    subcommand (the README promises it on every command); its subgroups are the same kind."""

    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--config"],
                default=None,
                metavar="PATH",
                expose_value=False,
                callback=_remember_config,
                help="Configuration file (default: $TODOKU_CONFIG, then ./todoku.toml).",
            )
        )


class _LazyGroup(_Group):
    """A click group whose commands registered by other packages are added on first use.

    ``todoku queue ...``, ``todoku sendmail`` and the mailauth commands live in modules that import
    asyncio, dnspython and crypto; registering them only when a command is not found (or when
    help lists every command) keeps every other command's start-up free of those imports.
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and _load_registered_commands():
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        _load_registered_commands()
        return super().list_commands(ctx)


_REGISTRATIONS: list[Callable[[], None]] = []


def _load_registered_commands() -> bool:
    """Run the pending registrations once; True if any ran (so a retried lookup may now succeed)."""
    if not _REGISTRATIONS:
        return False
    pending = list(_REGISTRATIONS)
    _REGISTRATIONS.clear()
    for register in pending:
        register()
    return True


def fail(message: str, status: int = 2) -> None:
    click.echo(f"todoku: {message}", err=True)
    sys.exit(status)


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        default=None,
        metavar="PATH",
        help="Configuration file (default: $TODOKU_CONFIG, then ./todoku.toml).",
    )(func)


def _load(config_path: str | None) -> Config:
    """The configuration, or one line and exit status 2."""
    from todoku.config import ConfigError, load_config

    try:
        return load_config(find_config_path(config_path))
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
        raise


def with_config(func: Callable[..., Any]) -> Callable[..., Any]:
    @config_option
    @wraps(func)
    def wrapper(config_path: str | None, **kwargs: Any) -> Any:
        from todoku.config import ConfigError, load_config

        try:
            config = load_config(find_config_path(config_path))
            return func(config, **kwargs)
        except ConfigError as exc:
            fail(f"configuration error: {exc}")

    return wrapper


def local_address(config: Config, text: str) -> str:
    from todoku.proto.smtp.address import AddressError, parse_mailbox

    try:
        address = parse_mailbox(text.strip())
    except AddressError as exc:
        fail(f"{text}: not a valid mail address ({exc})")
        raise
    if address.domain not in config.domains:
        fail(f"{text}: {address.domain} is not a local domain (domains = {list(config.domains)})")
    return address.key()


def any_address(text: str) -> str:
    from todoku.proto.smtp.address import AddressError, parse_mailbox

    try:
        return parse_mailbox(text.strip()).key()
    except AddressError as exc:
        fail(f"{text}: not a valid mail address ({exc})")
        raise


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="todoku")
def main() -> None:
    """todoku (届く): a mail server that delivers mail, never loses it, and says why when it can't."""


@main.command()
@with_config
def serve(config: Config) -> None:
    """Run every configured listener in this process until SIGTERM or Ctrl-C."""
    import asyncio

    from todoku.app import new_event_loop
    from todoku.app import serve as run_server
    from todoku.config import ConfigError
    from todoku.log import setup_logging

    setup_logging(config.log_level)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(run_server(config))
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    except KeyboardInterrupt:
        pass


@main.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@with_config
def config_check(config: Config) -> None:
    """Read the configuration and report the first problem, or print a summary."""
    from todoku.store.datadir import check_data_dir

    check_data_dir(config)
    click.echo(f"{config.path}: ok")
    click.echo(f"  hostname  {config.hostname}")
    click.echo(f"  domains   {', '.join(config.domains)}")
    click.echo(f"  data_dir  {config.data_dir}")
    for service, address in config.listen.items():
        click.echo(f"  listen    {service:<12} {address}")


UNKNOWN = 1  # an address that names nothing here: an answer, not a usage error (that is 2)


def _require_known(store: Any, key: str) -> None:
    """A command on an address with no user and no stored mail is an error (exit 1, one line),
    not an empty answer (``mailbox deleted nosuch@...`` used to say "0 deleted messages")."""
    if store.get_user(key) is not None or store.list_messages(key) or store.list_deleted(key):
        return
    targets = store.alias_targets(key)
    if targets:
        fail(f"{key}: an alias (of {', '.join(targets)}), not a mailbox", UNKNOWN)
    fail(f"{key}: no such user or mailbox (see 'todoku user list')", UNKNOWN)


def _store(config: Config) -> Any:
    from todoku.store.backends import open_store

    return open_store(config)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        fail("password too short: use at least 8 characters")
    return password


@main.group()
def user() -> None:
    """Add, list, change and remove mail users (their address is their login)."""


@user.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--admin", is_flag=True, help="The user may administer the server.")
@with_config
def user_add(config: Config, address: str, password_stdin: bool, admin: bool) -> None:
    from todoku.cli.storage import command_storage
    from todoku.policy.auth import hash_password
    from todoku.store.directory import UserExists

    key = local_address(config, address)
    exists = f"{key}: user already exists (use 'todoku user passwd' to change the password)"
    with command_storage(config) as storage:
        if storage.run(storage.directory.get_user(key)) is not None:
            fail(exists)
        password_hash = hash_password(_read_password(password_stdin))
        try:
            storage.run(storage.directory.add_user(key, password_hash, admin=admin))
        except UserExists:
            fail(exists)  # added meanwhile by another command
    click.echo(f"added {key}{' (administrator)' if admin else ''}")


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_config
def user_passwd(config: Config, address: str, password_stdin: bool) -> None:
    from todoku.cli.storage import command_storage
    from todoku.policy.auth import hash_password

    key = local_address(config, address)
    with command_storage(config) as storage:
        if storage.run(storage.directory.get_user(key)) is None:
            fail(f"{key}: no such user (see 'todoku user list')", UNKNOWN)
        password_hash = hash_password(_read_password(password_stdin))
        storage.run(storage.directory.set_password(key, password_hash))
    click.echo(f"password changed for {key}")


@user.command("admin")
@click.argument("address")
@click.option("--revoke", is_flag=True, help="Take administration away instead.")
@with_config
def user_admin(config: Config, address: str, revoke: bool) -> None:
    """Let a user administer the server (the web administration), or with --revoke no longer."""
    from todoku.cli.storage import command_storage

    key = local_address(config, address)
    with command_storage(config) as storage:
        found = storage.run(storage.directory.set_admin(key, not revoke))
    if not found:
        fail(f"{key}: no such user (see 'todoku user list')", UNKNOWN)
    click.echo(f"{key}: {'no longer an administrator' if revoke else 'administrator'}")


@user.command("del")
@click.argument("address")
@with_config
def user_del(config: Config, address: str) -> None:
    """Remove a user's login. Their stored mail stays in the data directory."""
    from todoku.cli.storage import command_storage

    key = local_address(config, address)
    with command_storage(config) as storage:
        deleted = storage.run(storage.directory.delete_user(key))
    if not deleted:
        fail(f"{key}: no such user (see 'todoku user list')", UNKNOWN)
    click.echo(f"deleted {key} (stored mail is kept)")


@user.command("list")
@with_config
def user_list(config: Config) -> None:
    from todoku.cli.storage import command_storage

    with command_storage(config) as storage:
        users = storage.run(storage.directory.users())
    for entry in users:
        created = time.strftime("%Y-%m-%d", time.gmtime(entry.created_at))
        role = "\tadministrator" if entry.admin else ""
        click.echo(f"{entry.address}\tcreated {created}{role}")


@main.group()
def alias() -> None:
    """Addresses that deliver to other addresses (local users or elsewhere)."""


@alias.command("add")
@click.argument("source")
@click.argument("target")
@with_config
def alias_add(config: Config, source: str, target: str) -> None:
    from todoku.cli.storage import command_storage

    source_key = local_address(config, source)
    target_key = any_address(target)
    with command_storage(config) as storage:
        directory = storage.directory
        local_target = target_key.rpartition("@")[2] in config.domains
        if (
            local_target
            and storage.run(directory.get_user(target_key)) is None
            and not storage.run(directory.alias_targets(target_key))
        ):
            # Mail to it would bounce: a local target must be a user or another alias.
            fail(f"{target_key}: no such user or alias here (add the user first)", UNKNOWN)
        storage.run(directory.add_alias(source_key, target_key))
    click.echo(f"{source_key} -> {target_key}")


@alias.command("del")
@click.argument("source")
@click.argument("target", required=False)
@with_config
def alias_del(config: Config, source: str, target: str | None) -> None:
    from todoku.cli.storage import command_storage

    source_key = local_address(config, source)
    with command_storage(config) as storage:
        target_key = any_address(target) if target else None
        count = storage.run(storage.directory.delete_alias(source_key, target_key))
    if not count:
        shown = f"{source_key} -> {any_address(target)}" if target else source_key
        fail(f"{shown}: no such alias (see 'todoku alias list')", UNKNOWN)
    click.echo(f"removed {count} alias entr{'y' if count == 1 else 'ies'} for {source_key}")


@alias.command("list")
@with_config
def alias_list(config: Config) -> None:
    from todoku.cli.storage import command_storage

    with command_storage(config) as storage:
        aliases = storage.run(storage.directory.aliases())
    for entry in aliases:
        click.echo(f"{entry.source} -> {entry.target}")


@main.group()
def mailbox() -> None:
    """Mail that POP3 clients deleted: list it and bring it back (kept for retention.deleted)."""


def _since(text: str) -> float:
    """``2026-11-28``, ``2026-11-28 14:00`` (local time), ISO 8601 with an offset, or ``2h``/``3d`` ago."""
    from datetime import datetime

    from todoku.config.load import ConfigError, parse_duration

    if text.strip() and text.strip()[-1].isalpha():
        try:
            return time.time() - parse_duration(text, "--since")
        except ConfigError:
            pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        fail(
            f"--since {text}: not a date (use 2026-11-28, '2026-11-28 14:00' or 2h / 3d for 'ago')"
        )
        raise


def _duration_words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:g} {unit}{'s' if value != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


@mailbox.command("deleted")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@with_config
def mailbox_deleted(config: Config, address: str, as_json: bool) -> None:
    """List the messages of ADDRESS that were deleted but can still be brought back."""
    key = local_address(config, address)
    store = _store(config)
    try:
        _require_known(store, key)
        messages = store.list_deleted(key)
    finally:
        store.close()
    purge_note = ""
    if config.deleted_retention > 0:
        purge_note = f"; each is kept {_duration_words(config.deleted_retention)} after deletion"
    if as_json:
        for m in messages:
            record = {
                "id": m.id,
                "date": m.received_at,
                "from": m.sender,
                "subject": m.subject,
                "deleted_at": m.deleted_at,
                "size": m.size,
                "folder": m.folder,
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        return
    if messages:
        header = f"{'ID':>6}  {'DATE':<16}  {'DELETED AT':<16}  {'FOLDER':<12}  {'FROM':<30}"
        click.echo(f"{header}  SUBJECT")
    for m in messages:
        deleted = _when(m.deleted_at) if m.deleted_at is not None else "-"
        sender = f"<{m.sender}>"
        click.echo(
            f"{m.id:>6}  {_when(m.received_at):<16}  {deleted:<16}  {m.folder:<12}"
            f"  {sender:<30}  {m.subject}"
        )
    plural = "s" if len(messages) != 1 else ""
    click.echo(f"-- {len(messages)} deleted message{plural} in {key}{purge_note}")


@mailbox.command("undelete")
@click.argument("address")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Bring back every deleted message.")
@click.option("--since", metavar="DATE", help="Bring back messages deleted at or after DATE.")
@with_config
def mailbox_undelete(
    config: Config, address: str, ids: tuple[int, ...], all_: bool, since: str | None
) -> None:
    """Put deleted messages of ADDRESS back into their folders; they get new UIDs (and POP3
    UIDLs), so POP3 and IMAP clients fetch them again.

    Give message IDs (from 'todoku mailbox deleted'), or --all, or --since DATE.
    """
    chosen = sum((bool(ids), all_, since is not None))
    if chosen != 1:
        fail("say which messages: message IDs, --all, or --since DATE (exactly one of these)")
    key = local_address(config, address)
    since_time = _since(since) if since is not None else None
    store = _store(config)
    try:
        _require_known(store, key)
        if ids:
            deleted = {m.id for m in store.list_deleted(key)}
            unknown = [str(i) for i in ids if i not in deleted]
            if unknown:
                fail(
                    f"{key}: no deleted message with id {', '.join(unknown)} (see 'todoku mailbox deleted')"
                )
        count = store.undelete(key, list(ids) if ids else None, since_time)
    finally:
        store.close()
    click.echo(f"restored {count} message{'s' if count != 1 else ''} to {key}")


@main.group()
def reports() -> None:
    """Reports other servers send about your domains (DMARC aggregate, TLS-RPT)."""


@reports.command("list")
@click.option(
    "--mailbox",
    "mailboxes",
    multiple=True,
    metavar="ADDRESS",
    help="Read this mailbox (again for more); default: where postmaster@ of each domain goes.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per report.")
@with_config
def reports_list(config: Config, mailboxes: tuple[str, ...], as_json: bool) -> None:
    """List the DMARC aggregate and TLS reports received in the report mailboxes.

    The records `todoku dns-records` prints ask for them at postmaster@ of each domain."""
    import dataclasses

    from todoku.cli.storage import command_storage
    from todoku.queue.setup import mailbox_finder
    from todoku.reports.mail import MAX_MESSAGE, reports_in

    with command_storage(config) as storage:
        store = storage.sqlite_store  # the mailboxes, until Mailboxes is wired (issue 14)
        if store is None:
            fail("reports list reads the embedded store; not yet available on PostgreSQL")
            return
        if mailboxes:
            keys = [local_address(config, m) for m in mailboxes]
        else:
            find = mailbox_finder(config, storage.directory)
            found_in: list[str] = []
            for domain in config.domains:
                where = storage.run(find(f"postmaster@{domain}"))
                found_in += where or ()
            keys = list(dict.fromkeys(found_in))
        found = 0
        for key in keys:
            for message in store.list_messages(key):
                with storage.blobs.open_blocking(message.blob_id) as handle:
                    data = handle.read(MAX_MESSAGE + 1)
                for report in reports_in(data):
                    found += 1
                    if as_json:
                        record = {
                            "mailbox": key,
                            "message": message.id,
                            "received": message.received_at,
                            "kind": report.kind,
                            "report": dataclasses.asdict(report.report) if report.report else None,
                            "problem": report.problem,
                        }
                        click.echo(json.dumps(record, ensure_ascii=False))
                    else:
                        click.echo(f"{_when(message.received_at)}  {report.describe()}")
    if not as_json:
        plural = "s" if found != 1 else ""
        click.echo(f"-- {found} report{plural} in {', '.join(keys) or 'no mailbox'}")


@main.group("queue", cls=_LazyGroup)
def queue_group() -> None:
    """The outbound queue: mail waiting to be delivered to other servers."""


def _register_queue_commands() -> None:
    """queue list/show/flush/hold/release/delete/bounce and sendmail live in cli/queue.py."""
    from todoku.cli import queue

    queue.register(queue_group, main, with_config=with_config, fail=fail)


_REGISTRATIONS.append(_register_queue_commands)


# ---------------------------------------------------------------------- integrity and backups


def _progress_bar() -> Callable[[str, int, int], None]:
    """A one-line progress bar on stderr when it is a terminal; silent in scripts and logs."""
    if not sys.stderr.isatty():
        return lambda phase, done, total: None
    last = [0.0]

    def show(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done != total and now - last[0] < 0.1:
            return
        last[0] = now
        width = 30
        filled = width * done // max(total, 1)
        end = "\n" if done == total else ""
        bar = "#" * filled + "." * (width - filled)
        click.echo(f"\r{phase:<26} [{bar}] {done}/{total}{end}", nl=False, err=True)

    return show


@main.command()
@click.option(
    "--repair", is_flag=True, help="Fix what can be fixed; damaged files go to lost+found."
)
@with_config
def fsck(config: Config, repair: bool) -> None:
    """Check every message file and index record; exit 0 clean, 1 repaired, 4 problems left."""
    from todoku.store.fsck import fsck as run_fsck

    report = run_fsck(config.data_dir, repair=repair, progress=_progress_bar())
    for line in report.lines():
        click.echo(line)
    sys.exit(report.exit_status)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per recipient.")
@click.option(
    "--lang",
    type=click.Choice(["en", "ja"]),
    default=None,
    help="Language of the explanations (default: the configuration's lang, else en).",
)
@config_option
@click.argument("inputs", nargs=-1, required=True, metavar="FILE_OR_DIR...")
def explain(
    config_path: str | None, as_json: bool, lang: str | None, inputs: tuple[str, ...]
) -> None:
    """Say why mail bounced and what to do: bounce files, mbox files, Maildir folders or - (stdin)."""
    from todoku.bounce.command import language_from_config, run_explain

    chosen = lang or language_from_config(find_config_path(config_path))
    status = run_explain(
        list(inputs), chosen, as_json, click.echo, lambda line: click.echo(line, err=True)
    )
    sys.exit(status)


def _register_mailauth_commands() -> None:
    """dns-records, diagnose, dkim status/rotate live in cli/mailauth.py."""
    from todoku.cli import mailauth

    mailauth.register(main, with_config=with_config, fail=fail)


_REGISTRATIONS.append(_register_mailauth_commands)


def _register_store_commands() -> None:
    """store migrate lives in todoku.cli.store."""
    from todoku.cli import store

    store.register(main, with_config=with_config, fail=fail)


_REGISTRATIONS.append(_register_store_commands)


@main.command("backup")
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--verify",
    is_flag=True,
    help="Check the backup in DESTINATION against its manifest instead (exit 1 on any problem).",
)
@config_option
def backup_command(config_path: str | None, destination: Path, verify: bool) -> None:
    """Copy the index, every message file, the DKIM keys and the self-signed TLS files to
    DESTINATION, online; again later = incremental. --verify checks a backup (no configuration
    needed): every file's size and SHA-256, and the index's integrity."""
    from todoku.store.backup import BackupError, backup
    from todoku.store.backup import verify as verify_backup

    if verify:
        checked = verify_backup(destination, progress=_progress_bar())
        for line in checked.lines():
            click.echo(line if checked.ok else f"todoku: {line}", err=not checked.ok)
        sys.exit(0 if checked.ok else 1)
    config = _load(config_path)
    try:
        result = backup(config.data_dir, destination, progress=_progress_bar())
    except BackupError as exc:
        fail(str(exc))
        return
    for line in result.lines():
        click.echo(line)


@main.command("restore")
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--mailbox", "address", default=None, metavar="ADDR", help="Restore only this mailbox."
)
@with_config
def restore_command(config: Config, source: Path, address: str | None) -> None:
    """Bring back messages from a backup; messages already present are not duplicated."""
    from todoku.store.backup import BackupError, restore
    from todoku.store.datadir import check_data_dir

    mailbox = local_address(config, address) if address else None
    check_data_dir(config)
    try:
        result = restore(source, config.data_dir, mailbox=mailbox, progress=_progress_bar())
    except BackupError as exc:
        fail(str(exc))
        return
    for line in result.lines():
        click.echo(line)


@main.command("export")
@click.argument("address")
@click.option("--format", "fmt", type=click.Choice(["mbox", "maildir"]), required=True)
@click.argument("destination", type=click.Path(path_type=Path))
@click.option(
    "--folder", default="INBOX", show_default=True, help="Which folder (a/b for a sub-folder)."
)
@with_config
def export_command(config: Config, address: str, fmt: str, destination: Path, folder: str) -> None:
    """Write a folder of a mailbox to an mbox file or a Maildir folder (flags and dates kept)."""
    from todoku.store.mailboxes import MailboxError
    from todoku.store.transfer import TransferError, export_mailbox

    mailbox = local_address(config, address)
    store = _store(config)
    try:
        result = export_mailbox(
            store, mailbox, fmt, destination, progress=_progress_bar(), folder=folder
        )
    except (TransferError, MailboxError) as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"{destination}: {exc.strerror}")
        return
    finally:
        store.close()
    click.echo(result.line("export", str(destination)))


@main.command("import")
@click.argument("address")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--folder", default="INBOX", show_default=True, help="Into which folder (made if missing)."
)
@with_config
def import_command(config: Config, address: str, source: Path, folder: str) -> None:
    """Add the messages of an mbox file or Maildir folder to a mailbox; twice = no duplicates."""
    from todoku.store.mailboxes import MailboxError
    from todoku.store.transfer import TransferError, import_mailbox

    mailbox = local_address(config, address)
    store = _store(config)
    try:
        result = import_mailbox(store, mailbox, source, progress=_progress_bar(), folder=folder)
    except (TransferError, MailboxError) as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"{source}: {exc.strerror}")
        return
    finally:
        store.close()
    click.echo(result.line("import", mailbox))
