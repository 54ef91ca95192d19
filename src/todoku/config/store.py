"""``[store]``: where todoku keeps users, mail and the queue (issues 14 and 19).

```toml
[store]
backend = "postgresql"                            # default "sqlite": the data directory
url = "postgresql://todoku@db.internal/todoku"    # libpq URL; sslmode and the rest honoured
password_file = "/etc/todoku/db-password"         # or the password in the URL
blobs = "postgresql"                              # message content in PostgreSQL (its default)
lease = "5m"                                      # how long a node's claim on an entry lasts
pool_size = 16                                    # connections per node
timeout = "10s"                                   # wait for a connection before answering 451
```

The embedded default needs none of it (``backend = "sqlite"``, content as files beside the
index in ``data_dir``); the keys of the PostgreSQL backend are refused there, so that a typo
does not leave a node quietly on its own SQLite. Errors name the key and never repeat a
password written in the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from todoku.config.load import ConfigError, parse_duration

if TYPE_CHECKING:
    from todoku.config.load import _Table

BACKENDS = ("sqlite", "postgresql")
POSTGRES_ONLY = ("url", "password_file", "lease", "pool_size", "timeout")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    backend: str = "sqlite"
    url: str | None = None  # postgresql only
    password_file: Path | None = None
    blobs: str = "files"  # "files" (sqlite) or "postgresql"
    lease: float = 300.0
    pool_size: int = 16
    timeout: float = 10.0

    def read_password(self) -> str | None:
        """The password in ``password_file`` (first line, without the line end), if any;
        ConfigError when it cannot be read."""
        if self.password_file is None:
            return None
        try:
            text = self.password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"store.password_file: cannot read {self.password_file}: {exc}")
        return text.splitlines()[0] if text else ""


def parse_store(table: _Table, base: Path) -> StoreConfig:
    backend = table.string("backend", "sqlite")
    if backend not in BACKENDS:
        raise ConfigError(f'store.backend: must be "sqlite" or "postgresql", got {backend!r}')
    if backend == "sqlite":
        for key in POSTGRES_ONLY:
            if table.has(key):
                raise ConfigError(f'{table.key(key)}: only with backend = "postgresql"')
        blobs = table.string("blobs", "files")
        if blobs != "files":
            raise ConfigError(
                f'store.blobs: with backend = "sqlite" message content is kept as files'
                f' ("files"), got {blobs!r}'
            )
        table.check_unknown()
        return StoreConfig()

    if not table.has("url"):
        raise ConfigError('store.url: missing (like "postgresql://todoku@db.internal/todoku")')
    url = table.string("url", "")
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        raise ConfigError("store.url: not a URL") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            'store.url: expected a "postgresql://user@host/database" URL,'
            f" got one starting {parts.scheme + ':' if parts.scheme else 'without a scheme'}"
        )
    password_file = None
    if table.has("password_file"):
        if has_password:
            raise ConfigError("store.password_file: the url has a password already; keep one")
        password_file = (base / table.string("password_file", "")).resolve()
        if not password_file.is_file():
            raise ConfigError(f"store.password_file: no such file: {password_file}")
    blobs = table.string("blobs", "postgresql")
    if blobs != "postgresql":
        raise ConfigError(
            'store.blobs: with backend = "postgresql" message content is kept in PostgreSQL'
            f' ("postgresql"), so that every node reads it; got {blobs!r}'
        )
    lease = parse_duration(table.get("lease", "5m"), "store.lease")
    if lease < 10:
        raise ConfigError("store.lease: at least 10s (a node renews it every third of it)")
    timeout = parse_duration(table.get("timeout", "10s"), "store.timeout")
    if timeout <= 0:
        raise ConfigError("store.timeout: must be more than 0")
    pool_size = table.integer("pool_size", 16, minimum=2)
    table.check_unknown()
    return StoreConfig(
        backend="postgresql",
        url=url,
        password_file=password_file,
        blobs="postgresql",
        lease=lease,
        pool_size=pool_size,
        timeout=timeout,
    )
