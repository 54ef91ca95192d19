"""What a reload (SIGHUP) changes: two configurations compared key by key, by their names in
``todoku.toml``, and the keys only a restart can change.

``app.py`` swaps what can be swapped while sessions run (TLS contexts, limits, authentication
and policy settings, listeners, logging); sessions already in progress keep the settings they
started with. The keys in ``RESTART_KEYS`` are read once at start-up by parts that cannot be
rebuilt under running sessions or deliveries (the data directory and the account the server runs
as; the host name, domains, language, DNS and delivery settings the outbound queue and its
reports were built with): a reload logs that they need a restart and keeps the running values.
``[[relay]]`` tables are swapped: the next attempt of each message is routed by the new ones.

Relay settings are compared without their password files' content: a configuration value never
holds a password (``config.relay``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from todoku.config.load import SERVICES, Config

RESTART_KEYS = (
    "data_dir",
    "user",
    "group",
    "hostname",
    "domains",
    "lang",
    "dns.",
    "delivery.",
)


@dataclass(frozen=True, slots=True)
class Change:
    key: str  # as written in todoku.toml: "limits.max_recipients"
    old: str
    new: str
    needs_restart: bool

    def __str__(self) -> str:
        if self.needs_restart:
            return f"{self.key}: changed to {self.new}, needs a restart; keeping {self.old}"
        return f"{self.key}: {self.old} -> {self.new}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def keys(config: Config) -> dict[str, str]:
    """Every setting of ``config`` under its key path, written for a log line."""
    tls = "(self-signed in data_dir)"
    flat: dict[str, Any] = {
        "hostname": config.hostname,
        "domains": list(config.domains),
        "data_dir": config.data_dir,
        "lang": config.lang,
        "user": config.user,
        "group": config.group,
    }
    for service in SERVICES:
        address = config.listen.get(service)
        flat[f"listen.{service}"] = address
    flat["tls.cert"] = tls if config.tls.self_signed else config.tls.cert
    flat["tls.key"] = tls if config.tls.self_signed else config.tls.key
    flat |= {
        "limits.max_message_size": config.max_message_size,
        "limits.max_recipients": config.max_recipients,
        "limits.max_connections": config.max_connections,
        "limits.max_connections_per_ip": config.max_connections_per_ip,
        "limits.send_timeout": _seconds(config.send_timeout),
        "auth.allow_plaintext_on_loopback": config.allow_plaintext_auth_on_loopback,
        "auth.fail_delay_after": config.auth_fail_delay_after,
        "auth.fail_delay": _seconds(config.auth_fail_delay),
        "auth.lockout_after": config.auth_lockout_after,
        "auth.lockout_time": _seconds(config.auth_lockout_seconds),
        "retention.deleted": _seconds(config.deleted_retention),
        "dns.nameservers": list(config.nameservers),
        "log.level": config.log_level,
        "log.file": config.log_file,
        "log.format": config.log_format,
    }
    for name, value in dataclasses.asdict(config.delivery).items():
        flat[f"delivery.{name}"] = value
    for name, value in dataclasses.asdict(config.policy).items():
        flat[f"policy.{name}"] = value
    flat["relay"] = [dataclasses.asdict(relay) for relay in config.relays]
    return {key: ("(unset)" if value is None else str(value)) for key, value in flat.items()}


def needs_restart(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESTART_KEYS)


def changes(old: Config, new: Config) -> list[Change]:
    """The keys whose values differ, in the order of ``keys``."""
    before, after = keys(old), keys(new)
    found = []
    for key, value in after.items():
        if before.get(key) != value:
            shown_old, shown_new = before.get(key, "(unset)"), value
            if key == "relay":  # a table of several keys: say that it changed, not how
                shown_old, shown_new = "the running [[relay]] tables", "the file's new ones"
            found.append(Change(key, shown_old, shown_new, needs_restart(key)))
    return found


def keep_restart_keys(old: Config, new: Config) -> Config:
    """``new`` with the running values of every key only a restart can change."""
    tls = new.tls
    if tls.self_signed and old.tls.self_signed:
        tls = old.tls  # in the running data directory
    return dataclasses.replace(
        new,
        data_dir=old.data_dir,
        user=old.user,
        group=old.group,
        hostname=old.hostname,
        domains=old.domains,
        lang=old.lang,
        nameservers=old.nameservers,
        delivery=old.delivery,
        tls=tls,
    )
