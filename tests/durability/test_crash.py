"""SIGKILL the real server while many SMTP clients send, restart it, and count what survived.

Each round starts ``todoku serve``, lets ``TODOKU_CRASH_CLIENTS`` threads send uniquely tagged
messages over plain SMTP (to one mailbox, to two mailboxes at once, or through an alias into the
outbound queue), kills the process with SIGKILL after a random delay, restarts it and takes a
census of the data directory from outside (see ``census.py``). The promise under test is the one
in ``store/api.py``: a 250 means the message is durable, exactly once, in every place it was
addressed to; a message without a 250 is either wholly present or wholly absent; UIDs never move.

Scale with ``TODOKU_CRASH_ROUNDS`` (default 50 kill points) and ``TODOKU_CRASH_CLIENTS``
(default 20); ``TODOKU_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.conftest import TodokuServer
from tests.durability.census import message_bytes, take_census

ROUNDS = int(os.environ.get("TODOKU_CRASH_ROUNDS", "50"))
CLIENTS = int(os.environ.get("TODOKU_CRASH_CLIENTS", "20"))
SEED = int(os.environ.get("TODOKU_CRASH_SEED", str(int(time.time()))))
TIME_BUDGET = float(os.environ.get("TODOKU_CRASH_BUDGET", "150"))  # seconds for all rounds

ALICE = "alice@example.test"
BOB = "bob@example.test"
FORWARD = "fwd@example.test"  # an alias to a remote address: lands in the outbound queue
DESTINATIONS: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = (
    ((ALICE,), frozenset({ALICE})),
    ((BOB,), frozenset({BOB})),
    ((ALICE, BOB), frozenset({ALICE, BOB})),
    ((FORWARD,), frozenset({"queue"})),
)


@dataclass
class Ledger:
    """What the clients know: every tag they tried, and the ones that got 250."""

    expected: dict[str, frozenset[str]] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def sender_thread(
    port: int, round_no: int, client_no: int, ledger: Ledger, stop: threading.Event, rng: random.Random
) -> None:
    sequence = 0
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.ehlo("crash.example.net")
            while not stop.is_set() and sequence < 10_000:
                recipients, places = DESTINATIONS[(client_no + sequence) % len(DESTINATIONS)]
                tag = f"r{round_no}c{client_no}n{sequence}"
                sequence += 1
                data = message_bytes(tag, "sender@example.net", list(recipients), rng.randrange(0, 80))
                with ledger.lock:
                    ledger.expected[tag] = places
                client.sendmail("sender@example.net", list(recipients), data)
                # sendmail returned: every recipient was accepted and DATA got 250.
                with ledger.lock:
                    ledger.acknowledged.add(tag)
    except (OSError, smtplib.SMTPException):
        return  # the server died under us: whatever was not acknowledged is not owed


def run_round(server: TodokuServer, round_no: int, ledger: Ledger, rng: random.Random) -> None:
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=sender_thread,
            args=(server.ports["smtp"], round_no, n, ledger, stop, random.Random(rng.random())),
            daemon=True,
        )
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(0.05, 0.7))
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "an SMTP client did not notice the server had died"


def test_sigkill_during_smtp_loses_and_duplicates_nothing(
    make_server: Callable[..., TodokuServer],
) -> None:
    rng = random.Random(SEED)
    server = make_server(start=False, services=("smtp",))
    server.add_user(ALICE)
    server.add_user(BOB)
    server.cli("alias", "add", FORWARD, "friend@remote.test")
    server.start()
    ledger = Ledger()
    verified: dict[str, str] = {}
    seen_uids: dict[tuple[str, str], str] = {}
    started = time.monotonic()
    rounds_done = 0
    orphans = 0
    for round_no in range(ROUNDS):
        run_round(server, round_no, ledger, rng)
        server.start()  # recovery happens here
        census = take_census(server.data_dir, verified)
        rounds_done += 1
        context = f"round {round_no} (TODOKU_CRASH_SEED={SEED})"
        assert census.damaged_rows == [], f"{context}: rows without complete data"
        assert census.orphans_partial == [], f"{context}: partial files outside tmp/"
        assert census.tmp_files == 0, f"{context}: tmp/ not swept at start-up"
        assert census.counter_errors == [], f"{context}: {census.counter_errors}"
        for key, blob_id in seen_uids.items():  # RFC 1939 §7: a UIDL never changes
            assert census.uids.get(key) == blob_id, f"{context}: {key} moved or vanished"
        seen_uids = dict(census.uids)
        orphans = census.orphans_complete
        if time.monotonic() - started > TIME_BUDGET and rounds_done >= 50:
            break

    lost, duplicated, partial, unacknowledged_present = [], [], [], 0
    for tag, places in ledger.expected.items():
        found: Counter[str] = census.placements.get(tag, Counter())
        if any(count > 1 for count in found.values()) or set(found) - places:
            duplicated.append(tag)
        if tag in ledger.acknowledged:
            if set(found) != places:
                lost.append(tag)
        elif found:
            unacknowledged_present += 1
            if set(found) != places:
                partial.append(tag)  # a commit is all or nothing across its mailboxes
    strangers = set(census.placements) - set(ledger.expected)
    print(
        f"\ncrash test: {rounds_done} kill points, {CLIENTS} clients, seed {SEED}:"
        f" sent {len(ledger.expected)}, acknowledged {len(ledger.acknowledged)},"
        f" found {len(census.placements)}, lost {len(lost)}, duplicated {len(duplicated)},"
        f" present without 250 {unacknowledged_present}, orphan files {orphans},"
        f" {time.monotonic() - started:.0f}s"
    )
    assert rounds_done >= min(ROUNDS, 50)
    assert len(ledger.acknowledged) > 0, "no message was ever acknowledged: the test proved nothing"
    assert lost == [], f"lost {len(lost)} acknowledged messages, e.g. {lost[:5]}"
    assert duplicated == [], f"duplicated {len(duplicated)} messages, e.g. {duplicated[:5]}"
    assert partial == [], f"half-delivered messages: {partial[:5]}"
    assert strangers == set(), f"messages nobody sent: {sorted(strangers)[:5]}"
