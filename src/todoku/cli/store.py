"""``todoku store ...``: the storage backend's own upkeep (issue 19)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import click

from todoku.config import Config


def register(
    main: click.Group, *, with_config: Callable[..., Any], fail: Callable[[str], None]
) -> None:
    @main.group("store")
    def store_group() -> None:
        """The store: where users, mail and the queue are kept ([store] in the configuration)."""

    @store_group.command("migrate")
    @with_config
    def migrate(config: Config) -> None:
        """Bring the store's schema up to date (PostgreSQL: one node at a time, under a lock)."""
        from todoku.app import migrate_storage
        from todoku.store.postgres.schema import NewerSchema

        try:
            click.echo(asyncio.run(migrate_storage(config)))
        except NewerSchema as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"store: {exc.strerror or exc}")
