#!/usr/bin/env python3
"""Durable accept through the storage interface: SQLite against PostgreSQL, one and three nodes.

    python bench/store_accept.py [--messages 2000] [--size 1024] [--concurrency 20] [--rounds 3]

Each message is written through ``Blobs.new_writer`` and stored with ``Intake.accept`` for one
remote recipient (content, blob row and queue entry), the call SMTP's 250 waits for; the rate
is messages per second of wall-clock time with ``concurrency`` accepts in flight. Runs, in
alternating order each round: the SQLite backend on a fresh data directory; PostgreSQL (a
private cluster started here with the server's defaults: fsync and synchronous_commit on) with
one node; and three nodes, each a process of its own with its own pool, on the same database.

This measures the store, not SMTP: ``bench/run.py`` measures the server against Postfix. What
limits PostgreSQL here is the round trips of each accept (five statements) and the one WAL
flush per commit that the server shares between concurrent commits; on this 2-core machine the
database server, the client processes and the benchmark share the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgcluster import PgCluster
from todoku.store.api import IncomingMessage, RemoteRecipient
from todoku.store.backend import Storage

DOMAINS = ("example.test",)


async def _accept_many(storage: Storage, count: int, size: int, concurrency: int) -> float:
    body = b"Subject: bench\r\n\r\n" + b"x" * max(0, size - 18)
    remote = (RemoteRecipient("someone@remote.test"),)
    left = count

    async def one_sender() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            writer = storage.blobs.new_writer()
            writer.write(body)
            await storage.intake.accept(
                writer,
                lambda blob: IncomingMessage(
                    blob=blob, sender="a@example.test", remote=remote, received_at=time.time()
                ),
            )

    started = time.perf_counter()
    await asyncio.gather(*(one_sender() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _sqlite(count: int, size: int, concurrency: int) -> float:
    from todoku.store.sqlite_backend import SqliteBackend

    with tempfile.TemporaryDirectory() as root:
        storage = SqliteBackend.open(Path(root) / "data", DOMAINS)
        try:
            return count / await _accept_many(storage, count, size, concurrency)
        finally:
            await storage.close()


async def _postgres_node(url: str, count: int, size: int, concurrency: int) -> float:
    from todoku.store.postgres.backend import PostgresBackend

    storage = await PostgresBackend.open(url, DOMAINS, pool_size=concurrency, migrate=False)
    try:
        return await _accept_many(storage, count, size, concurrency)
    finally:
        await storage.close()


def _node_process(args: tuple[str, int, int, int, float]) -> tuple[float, float]:
    url, count, size, concurrency, start_at = args
    while time.time() < start_at:  # every node starts at the same moment
        time.sleep(0.001)
    begin = time.time()
    asyncio.run(_postgres_node(url, count, size, concurrency))
    return begin, time.time()


def _postgres(cluster: PgCluster, nodes: int, count: int, size: int, concurrency: int) -> float:
    url = cluster.new_database()
    try:
        per_node = count // nodes
        jobs = [(url, per_node, size, max(1, concurrency // nodes), time.time() + 2.0)] * nodes
        with multiprocessing.get_context("spawn").Pool(nodes) as pool:
            spans = pool.map(_node_process, jobs)
        elapsed = max(end for _, end in spans) - min(begin for begin, _ in spans)
        return per_node * nodes / elapsed
    finally:
        cluster.drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=21)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    cluster = PgCluster.start(fsync=True)
    try:
        cluster.execute(f"CREATE DATABASE {cluster.template}")
        from todoku.store.postgres.backend import migrate_database

        asyncio.run(migrate_database(cluster.url(cluster.template)))
        results: dict[str, list[float]] = {"sqlite": [], "postgresql-1": [], "postgresql-3": []}
        n, s, c = options.messages, options.size, options.concurrency
        for round_number in range(options.rounds):
            runs = [
                ("sqlite", lambda: asyncio.run(_sqlite(n, s, c))),
                ("postgresql-1", lambda: _postgres(cluster, 1, n, s, c)),
                ("postgresql-3", lambda: _postgres(cluster, 3, n, s, c)),
            ]
            if round_number % 2:
                runs.reverse()
            for name, run in runs:
                rate = run()
                results[name].append(rate)
                print(f"round {round_number + 1} {name:<13} {rate:8.0f} messages/s", flush=True)
        base = statistics.median(results["sqlite"])
        print(f"\n{n} messages of {s} bytes, {c} in flight; medians of {options.rounds} rounds")
        for name, rates in results.items():
            median = statistics.median(rates)
            print(f"{name:<13} {median:8.0f} messages/s  {median / base:5.2f}x sqlite")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
