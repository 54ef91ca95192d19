"""Giving up root: the server binds its ports as root, then runs as ``user`` (issue 16).

Order (``app.build_server``): ``account_for`` decides whom to become, and refuses root on a
public address without ``user``; ``prepare_data_dir`` checks that the data directory belongs to
that account (creating it for the account on a first start); the listeners are bound and a
configured TLS key is read while still root; then ``drop`` switches the group list, the group and
the user, in that order (once the user is switched, the group can no longer be). Everything after
that (the database, message files, DKIM keys, the self-signed certificate, the run/ state) is
opened and created as the account, so it all belongs to it.

Files read again later, as the account: the TLS certificate and key on SIGHUP, the relay password
files at each delivery, the configuration file on SIGHUP, the log file when it is reopened.
``check_later_reads`` says at start-up which of them the account cannot read (a relay password
file it cannot read is an error: mail would wait in the queue for a file it never can read).

Every refusal is a ``ConfigError``: one line, exit status 2.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from todoku.config import Config, ConfigError
from todoku.store.datadir import make_private_dir

log = logging.getLogger("todoku.app")


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    uid: int
    gid: int
    group: str


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def account_for(config: Config) -> Account | None:
    """The account to switch to after binding, or None when the server stays who it is."""
    euid = os.geteuid()
    if config.user is None:
        if euid == 0:
            addresses = [*config.listen.values(), config.web.https, config.web.http]
            public = [str(a) for a in addresses if a is not None and not a.is_loopback]
            if public:
                raise ConfigError(
                    f'user: refusing to serve {public[0]} as root; set user = "todoku" (an'
                    " account to switch to once the ports are bound), or start todoku as that"
                    " account with CAP_NET_BIND_SERVICE (contrib/todoku.service)"
                )
        return None
    try:
        entry = pwd.getpwnam(config.user)
    except KeyError:
        raise ConfigError(
            f"user: no such account: {config.user} (create it: useradd --system {config.user})"
        ) from None
    gid = entry.pw_gid
    if config.group is not None:
        try:
            gid = grp.getgrnam(config.group).gr_gid
        except KeyError:
            raise ConfigError(f"group: no such group: {config.group}") from None
    account = Account(entry.pw_name, entry.pw_uid, gid, _group_name(gid))
    if euid == 0:
        return None if account.uid == 0 else account
    if euid == account.uid:
        return None  # started as the account already (systemd User=): nothing to switch
    raise ConfigError(
        f"user: started as {_user_name(euid)}, which cannot switch to {account.name}"
        f" (start todoku as root, or as {account.name})"
    )


def prepare_data_dir(config: Config, account: Account) -> None:
    """The data directory must belong to ``account``; a missing one is created for it."""
    path = config.data_dir
    if not path.exists():
        make_private_dir(path)
        os.chown(path, account.uid, account.gid)
        log.info("created %s for %s", path, account.name)
        return
    owner = path.stat().st_uid
    if owner != account.uid:
        raise ConfigError(
            f"data_dir: {path} belongs to {_user_name(owner)}, not {account.name};"
            f" fix with: chown -R {account.name}:{account.group} {path}"
        )


def hand_over(path: Path | None, account: Account) -> None:
    """Give a file the server created as root (its log file) to ``account``, to reopen later."""
    if path is None:
        return
    try:
        if path.stat().st_uid == 0:
            os.chown(path, account.uid, account.gid)
    except OSError as exc:
        log.warning("cannot give %s to %s: %s", path, account.name, exc.strerror)


def drop(account: Account) -> None:
    """Become ``account`` for good: no supplementary groups, its group, its user."""
    os.setgroups([])
    os.setgid(account.gid)
    os.setuid(account.uid)
    if os.getuid() != account.uid or os.geteuid() != account.uid or os.getegid() != account.gid:
        raise ConfigError(f"user: could not switch to {account.name}")  # never expected
    os.environ["HOME"] = pwd.getpwuid(account.uid).pw_dir
    # Modules are imported lazily all along (codecs, parts of dnspython): code the account
    # cannot read would fail later in the middle of a session, so it fails here, in one line.
    import todoku

    for code in (Path(os.__file__).parent, Path(todoku.__file__).parent):
        if not os.access(
            code / "__init__.py" if code.name == "todoku" else code / "os.py", os.R_OK
        ):
            raise ConfigError(
                f"user: {account.name} cannot read the Python code in {code}"
                " (install todoku and Python where that account can read them)"
            )
    log.info(
        "running as %s (uid %d, gid %d) after binding the listeners",
        account.name,
        account.uid,
        account.gid,
    )


def check_later_reads(config: Config) -> None:
    """Say now which files the server reads again later that it cannot read as who it is."""
    from todoku.config.relay import PasswordError, read_password

    me = _user_name(os.geteuid())
    for relay in config.relays:
        try:
            read_password(relay)
        except PasswordError as exc:
            raise ConfigError(
                f"{exc} as {me}; fix with: chown {me} {relay.password_file}"
            ) from None
    if config.path is not None and not os.access(config.path, os.R_OK):
        log.warning(
            "%s is not readable by %s: SIGHUP cannot reload it (restart to change settings)",
            config.path,
            me,
        )
    if not config.tls.self_signed:
        for name, path in (("tls.cert", config.tls.cert), ("tls.key", config.tls.key)):
            if not os.access(path, os.R_OK):
                log.warning(
                    "%s: %s is not readable by %s: loaded now, but SIGHUP cannot load a renewed"
                    " one (README: Running in production, certificates)",
                    name,
                    path,
                    me,
                )
    if config.log_file is not None and not os.access(config.log_file.parent, os.W_OK):
        log.warning(
            "log.file: %s is not writable by %s: after a rotation the log file must be created"
            " for it (logrotate: create 0640 %s adm)",
            config.log_file.parent,
            me,
            me,
        )
