"""Put COUNT messages into a stopped todoku's outbound queue through the store API (bench/run.py).

    queue_fill.py DATA_DIR COUNT SIZE RECIPIENT_DOMAIN [--sender ADDRESS] [--defer SECONDS]

The rows and files are exactly those an accepted message leaves behind (``SqliteStore.commit``),
so the server that starts afterwards finds an ordinary queue. The fill itself is not timed and
need not survive a crash: fsync is skipped, of the files and of the index. ``--defer`` moves every entry's next attempt that far into the future, like a queue whose
remote was down: the server indexes them (workload 5) and ``todoku queue flush`` releases them
(workload 2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

GROUP = 1024  # commits in flight at once; the store's writer thread makes one transaction of them


def message_bytes(number: int, size: int) -> bytes:
    head = (
        f"From: bench@example.test\r\nTo: rcpt{number}@remote.test\r\nSubject: bench {number}\r\n"
        f"Message-ID: <{number}.{time.time_ns()}@example.test>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def fill(
    data_dir: Path, count: int, size: int, domain: str, sender: str, defer: float
) -> None:
    import sqlite3

    from todoku.store import sqlite as sqlite_store
    from todoku.store.api import IncomingMessage, RemoteRecipient

    # Untimed set-up (see the module docstring): no fsync of files, none of the index.
    os.fsync = lambda fd: None
    connect = sqlite_store._connect

    def connect_without_sync(path: Path) -> sqlite3.Connection:
        conn = connect(path)
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    sqlite_store._connect = connect_without_sync
    SqliteStore = sqlite_store.SqliteStore
    store = SqliteStore(data_dir)
    try:
        done = 0
        while done < count:
            batch = []
            for number in range(done, min(count, done + GROUP)):
                writer = store.new_blob()
                writer.write(message_bytes(number, size))
                blob = writer.finish()
                batch.append(
                    store.commit(
                        IncomingMessage(
                            blob=blob,
                            sender=sender,
                            remote=(RemoteRecipient(f"rcpt{number}@{domain}"),),
                            subject=f"bench {number}",
                        )
                    )
                )
            await asyncio.gather(*batch)
            done += len(batch)
        if defer:
            # Every entry's next attempt in the future, in one statement (no message is held).
            store.flush_queue(None, None, time.time() + defer)
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("size", type=int)
    parser.add_argument("domain")
    parser.add_argument("--sender", default="bench@example.test")
    parser.add_argument("--defer", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(fill(args.data_dir, args.count, args.size, args.domain, args.sender, args.defer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
