"""The ``Blobs`` contract (store/content.py): every backend passes these unchanged."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from todoku.store.backend import Storage


async def read(storage: Storage, blob_id: str) -> bytes:
    with await storage.blobs.open(blob_id) as handle:
        return handle.read()


async def test_finished_content_is_readable_once_published(storage: Storage) -> None:
    writer = storage.blobs.new_writer()
    pieces = [b"Subject: hello\r\n", b"\r\n", b"body\r\n"]
    for piece in pieces:
        writer.write(piece)
    blob = await writer.finish()
    content = b"".join(pieces)
    assert blob.blob_id == writer.blob_id
    assert (blob.size, blob.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    with pytest.raises(FileNotFoundError):
        await storage.blobs.open(blob.blob_id)  # finished is durable, not yet visible
    await storage.blobs.publish([blob])
    assert await read(storage, blob.blob_id) == content


async def test_large_content_reads_back_whole(storage: Storage) -> None:
    piece = bytes(range(256)) * 256  # 64 KiB
    writer = storage.blobs.new_writer()
    for _ in range(40):  # 2.5 MiB, past what a backend may hold in memory
        writer.write(piece)
    blob = await writer.finish()
    await storage.blobs.publish([blob])
    content = await read(storage, blob.blob_id)
    assert len(content) == blob.size == 40 * len(piece)
    assert hashlib.sha256(content).hexdigest() == blob.sha256


async def test_empty_content_is_content(storage: Storage) -> None:
    writer = storage.blobs.new_writer()
    blob = await writer.finish()
    await storage.blobs.publish([blob])
    assert blob.size == 0 and await read(storage, blob.blob_id) == b""


async def test_a_group_is_published_together_and_ids_differ(storage: Storage) -> None:
    writers = [storage.blobs.new_writer() for _ in range(30)]
    assert len({w.blob_id for w in writers}) == 30
    for n, writer in enumerate(writers):
        writer.write(b"message %d\r\n" % n)
    blobs = await asyncio.gather(*(w.finish() for w in writers))
    await storage.blobs.publish(blobs)
    contents = await asyncio.gather(*(read(storage, b.blob_id) for b in blobs))
    assert contents == [b"message %d\r\n" % n for n in range(30)]


async def test_open_blocking_reads_the_same_from_a_worker_thread(storage: Storage) -> None:
    writer = storage.blobs.new_writer()
    writer.write(b"from a thread\r\n")
    blob = await writer.finish()
    await storage.blobs.publish([blob])

    def read_blocking() -> bytes:
        with storage.blobs.open_blocking(blob.blob_id) as handle:
            return handle.read()

    assert await asyncio.to_thread(read_blocking) == b"from a thread\r\n"


async def test_aborted_content_is_never_readable(storage: Storage) -> None:
    writer = storage.blobs.new_writer()
    writer.write(b"half a message")
    writer.abort()
    with pytest.raises(FileNotFoundError):
        await storage.blobs.open(writer.blob_id)


async def test_something_that_is_no_blob_id_is_refused(storage: Storage) -> None:
    for bad in ("../../etc/passwd", "", "0123456789abcdeg"):
        with pytest.raises(ValueError):
            await storage.blobs.open(bad)
    with pytest.raises(FileNotFoundError):
        await storage.blobs.open("0123456789ABCDEF")  # well formed, never written
