"""Message content in PostgreSQL: ``blobs`` rows and their ``blob_chunks`` (issue 19).

A writer keeps what arrives in a spooled temporary file (memory up to ``SPOOL_IN_MEMORY``, then
an unlinked file on local disk): nothing of it is durable until it reaches the database, and
that is fine, since no client has been answered yet. ``finish`` writes the content in one
transaction as an unpublished blob (durable, invisible); ``publish`` makes it visible. The accept
path (``PgIntake.accept``) does not go through ``finish``: it writes the content, the blob row
and every row that refers to it in ONE transaction, so the client's 250 waits for exactly one
commit of the database, and a crash anywhere before it leaves nothing behind.

Content is cut into rows of ``CHUNK`` bytes so that no single value comes near PostgreSQL's
1 GB limit and a reader does not need one huge allocation per value. Reading (``open``) gathers
the chunks into a spooled file the caller reads like any other.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from todoku.store.api import SpooledBlob, StorageFull
from todoku.store.blobs import is_blob_id, new_blob_id

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from todoku.store.postgres.backend import Database

CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 1024 * 1024


class PgContentWriter:
    def __init__(self, blobs: PgBlobs) -> None:
        self.blob_id = new_blob_id()
        self._blobs = blobs
        self._spool: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self._hash = hashlib.sha256()
        self._size = 0
        self._failed: OSError | None = None
        self._finished = False  # finish() wrote it as an unpublished blob
        self._spent = False

    def write(self, data: bytes) -> None:
        if self._failed is not None or self._spent:
            return
        try:
            self._spool.write(data)
        except OSError as exc:
            self._failed = exc
            return
        self._hash.update(data)
        self._size += len(data)

    def seal(self) -> SpooledBlob:
        """What was written, as a ``SpooledBlob``; the error kept by ``write`` if there was one."""
        if self._failed is not None:
            failed = self._failed
            self.close()
            if failed.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(failed.errno, "Insufficient system storage") from failed
            raise failed
        if self._spent:
            raise OSError(errno.EINVAL, "this content was already finished or aborted")
        return SpooledBlob(self.blob_id, self._size, self._hash.hexdigest())

    def chunks(self) -> Iterator[tuple[str, int, bytes]]:
        """(blob id, sequence number, bytes) rows of ``blob_chunks``; none for empty content."""
        self._spool.seek(0)
        seq = 0
        while piece := self._spool.read(CHUNK):
            yield self.blob_id, seq, piece
            seq += 1

    def close(self) -> None:
        self._spent = True
        self._spool.close()

    async def finish(self) -> SpooledBlob:
        blob = self.seal()
        try:
            await self._blobs.db.run_write(
                lambda conn: insert_content(conn, self, blob, published=False)
            )
        finally:
            self.close()
        self._finished = True
        return blob

    def abort(self) -> None:
        if self._finished and not self._spent:
            return
        was_finished = self._finished
        self.close()
        if was_finished:
            self._blobs.forget_later(self.blob_id)


async def insert_content(
    conn: AsyncConnection[Any], writer: PgContentWriter, blob: SpooledBlob, *, published: bool
) -> None:
    """The blob row and its chunks (inside the caller's transaction)."""
    await conn.execute(
        "INSERT INTO blobs (id, size, sha256, created_at, published) VALUES (%s, %s, %s, %s, %s)",
        (blob.blob_id, blob.size, blob.sha256, time.time(), published),
    )
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO blob_chunks (blob_id, seq, data) VALUES (%s, %s, %s)", writer.chunks()
        )


class PgBlobs:
    def __init__(self, db: Database) -> None:
        self.db = db

    def new_writer(self) -> PgContentWriter:
        return PgContentWriter(self)

    async def publish(self, blobs: Sequence[SpooledBlob]) -> None:
        ids = [b.blob_id for b in blobs]

        async def publish(conn: AsyncConnection[Any]) -> None:
            cur = await conn.execute(
                "UPDATE blobs SET published = true WHERE id = ANY(%s) AND NOT published", (ids,)
            )
            if cur.rowcount != len(set(ids)):
                raise FileNotFoundError(
                    errno.ENOENT, "content to publish is not (or no longer) there"
                )

        try:
            await self.db.run_write(publish)
        except BaseException:
            # None of the group is published, and its content goes: the clients send again.
            await self.db.run_write(lambda conn: _delete_unpublished(conn, ids))
            raise

    def forget_later(self, blob_id: str) -> None:
        """An aborted writer's finished content: removed in the background (``drain`` waits)."""
        self.db.spawn(self.db.run_write(lambda conn: _delete_unpublished(conn, [blob_id])))

    async def open(self, blob_id: str) -> BinaryIO:
        if not is_blob_id(blob_id):
            raise ValueError(f"not a message content id: {blob_id[:40]!r}")
        out: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            async with self.db.connection() as conn:
                cur = await conn.execute(
                    "SELECT size FROM blobs WHERE id = %s AND published", (blob_id,)
                )
                row = await cur.fetchone()
                if row is None:
                    raise FileNotFoundError(errno.ENOENT, f"no message content {blob_id}")
                cur = await conn.execute(
                    "SELECT data FROM blob_chunks WHERE blob_id = %s ORDER BY seq", (blob_id,)
                )
                async for (data,) in cur:
                    out.write(data)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        return cast(BinaryIO, out)

    def open_blocking(self, blob_id: str) -> BinaryIO:
        """``open`` from a worker thread: the read runs on the backend's event loop."""
        loop = self.db.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("open_blocking is for worker threads, not the event loop")
        return asyncio.run_coroutine_threadsafe(self.open(blob_id), loop).result(
            timeout=self.db.timeout * 2
        )


async def _delete_unpublished(conn: AsyncConnection[Any], ids: list[str]) -> None:
    await conn.execute("DELETE FROM blobs WHERE id = ANY(%s) AND NOT published", (ids,))
