"""``[[relay]]``: send some or all outbound mail through a smarthost (a provider's submission
server) instead of the recipient domain's MX, for connections whose port 25 is blocked.

```toml
[[relay]]
domains = ["*"]                 # "*", "example.com", "*.example.com" (subdomains only)
host = "smtp.provider.example:587"
tls = "starttls"                # or "implicit" (port 465); certificate and name always verified
user = "me@provider.example"    # optional, with password_file
password_file = "relay.secret"  # relative to the configuration file; private to its owner
ca_file = "provider-ca.pem"     # optional extra trusted CA
fallback_after = 0              # N > 0: deliver directly first, relay after N failed attempts
```

Invariants: the password itself is never part of the configuration value (only the file's path
is), so no error, log line or ``repr`` can show it; ``read_password`` reads the file anew for
each connection, so fixing it takes effect at the next attempt without a restart. Tables are
tried in order; the first whose ``domains`` match the recipient's domain is the one used.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from todoku.config.load import ConfigError, _Table

TLS_MODES = ("starttls", "implicit")
_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
MAX_PASSWORD_FILE = 4096


@dataclass(frozen=True, slots=True)
class RelayConfig:
    index: int
    domains: tuple[str, ...]
    host: str  # a host name or an IP address, without brackets
    port: int
    tls: str  # "starttls" | "implicit"
    user: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    fallback_after: int = 0

    @property
    def key(self) -> str:
        """``relay[0]``: the configuration key, as errors and logs name it."""
        return f"relay[{self.index}]"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        """``relay[0] (smtp.provider.example:587)``."""
        return f"{self.key} ({self.address})"

    def matching_pattern(self, domain: str) -> str | None:
        """The entry of ``domains`` that matches ``domain``, or None."""
        domain = domain.lower().rstrip(".")
        for pattern in self.domains:
            if pattern == "*" or pattern == domain:
                return pattern
            if pattern.startswith("*.") and domain.endswith(pattern[1:]):
                return pattern
        return None


class PasswordError(Exception):
    """The password file cannot be used now; the text names the key and the file, never content."""


def read_password(relay: RelayConfig) -> str:
    """The relay password, read from its file now (one trailing line end removed)."""
    path = relay.password_file
    if path is None:
        return ""
    key = f"{relay.key}.password_file"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PASSWORD_FILE + 1)
    except OSError as exc:
        raise PasswordError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PASSWORD_FILE:
        raise PasswordError(f"{key}: {path} is too long to hold a password")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PasswordError(f"{key}: {path} is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text or "\n" in text or "\r" in text or "\0" in text:
        raise PasswordError(f"{key}: {path} must hold the password on one line")
    return text


def _check_private(path: Path, key: str) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{key}: no such file: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{key}: not a regular file: {path}")
    if info.st_mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(
            f"{key}: {path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
        )
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{key}: cannot read {path}: permission denied")


def _host_port(value: object, key: str) -> tuple[str, int]:
    example = 'write it like "smtp.provider.example:587"'
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f'{key}: expected "host:port", {example}')
    text = value.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            raise ConfigError(f'{key}: put an IPv6 address in brackets, like "[2001:db8::1]:587"')
    if not sep or not host:
        raise ConfigError(f"{key}: the port is missing in {value!r}; {example}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{key}: not a port number: {port_text!r}; {example}")
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _NAME.match(host):
            raise ConfigError(f"{key}: not a host name: {host!r}") from None
    return host, int(port_text)


def _domains(value: object, key: str) -> tuple[str, ...]:
    example = 'a list like ["*"] or ["outlook.com", "*.onmicrosoft.com"]'
    if not isinstance(value, list) or not value or not all(isinstance(d, str) for d in value):
        raise ConfigError(f"{key}: expected {example}")
    patterns = []
    for raw in value:
        pattern = raw.strip().lower().rstrip(".")
        name = pattern.removeprefix("*.")
        if pattern != "*" and not _NAME.match(name):
            raise ConfigError(
                f'{key}: not a domain or pattern: {raw!r} (use "*" or "*.example.com")'
            )
        patterns.append(pattern)
    return tuple(patterns)


def _file_setting(table: _Table, name: str, base: Path) -> Path | None:
    """The file a setting names, relative to ``base``; None when the setting is absent."""
    if not table.has(name):
        return None
    value = table.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{table.key(name)}: expected a file name")
    return base / value


def _relay(table: _Table, index: int, base: Path) -> RelayConfig:
    key = table.key
    if not table.has("domains"):
        raise ConfigError(f'{key("domains")}: missing; write domains = ["*"] to relay all mail')
    domains = _domains(table.get("domains"), key("domains"))
    if not table.has("host"):
        raise ConfigError(f'{key("host")}: missing; write host = "smtp.provider.example:587"')
    host, port = _host_port(table.get("host"), key("host"))
    tls = table.string("tls", "starttls")
    if tls not in TLS_MODES:
        raise ConfigError(
            f'{key("tls")}: must be "starttls" (port 587) or "implicit" (port 465), got {tls!r}'
        )
    user = table.get("user")
    if user is not None and (not isinstance(user, str) or not user.strip()):
        raise ConfigError(f"{key('user')}: expected the login name as a string")
    password_file = _file_setting(table, "password_file", base)
    if password_file is not None:
        _check_private(password_file, key("password_file"))
        if user is None:
            raise ConfigError(f"{key('user')}: missing; password_file needs the login name")
    elif user is not None:
        raise ConfigError(f"{key('password_file')}: missing; user needs a password file")
    ca_file = _file_setting(table, "ca_file", base)
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"{key('ca_file')}: no such file: {ca_file}")
    fallback_after = table.integer("fallback_after", 0, minimum=0)
    table.check_unknown()
    return RelayConfig(
        index,
        domains,
        host,
        port,
        tls,
        user.strip() if user else None,
        password_file,
        ca_file,
        fallback_after,
    )


def parse_relays(value: Any, base: Path) -> tuple[RelayConfig, ...]:
    """The ``[[relay]]`` array of tables (``value`` is what TOML gave for ``relay``)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError("relay: expected [[relay]] tables")
    return tuple(_relay(_Table(t, f"relay[{i}]."), i, base) for i, t in enumerate(value))
