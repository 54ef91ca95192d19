"""SIGKILL the real server while many SMTP clients send, restart it, and count what survived.

Each round starts ``todoku serve``, lets ``TODOKU_CRASH_CLIENTS`` threads send uniquely tagged
messages over plain SMTP (to one mailbox, to two mailboxes at once, or through an alias into the
outbound queue) while POP3 clients read and delete in both mailboxes, kills the process with
SIGKILL after a random delay, restarts it and takes a census of the data directory from outside
(see ``census.py``). The promise under test is the one in ``store/api.py``: a 250 means the
message is durable, exactly once, in every place it was addressed to; a message without a 250 is
either wholly present or wholly absent; a UIDL, once seen, names the same message for ever; a
deletion confirmed by QUIT's +OK (RFC 1939 §6) survives; every mailbox opens after the restart.

Scale with ``TODOKU_CRASH_ROUNDS`` (default 50 kill points) and ``TODOKU_CRASH_CLIENTS``
(default 20); ``TODOKU_CRASH_SEED`` replays a run.

Most messages are small, so their content goes into the index's transaction (one fsync per
group); about one in eight is larger than ``INLINE_LIMIT`` and takes the file path, so kills land
in both paths and in groups that mix them.
"""

from __future__ import annotations

import os
import poplib
import random
import smtplib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.conftest import PASSWORD, TodokuServer
from tests.durability.census import TAG_PATTERN, Census, is_complete, message_bytes, take_census
from todoku.store.blobs import INLINE_LIMIT

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
    retrieved: dict[tuple[str, str], str] = field(default_factory=dict)  # (mailbox, UIDL) -> tag
    deletions_confirmed: set[tuple[str, str]] = field(default_factory=set)
    bad_retrievals: list[str] = field(default_factory=list)
    pop3_quits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def sender_thread(
    port: int,
    round_no: int,
    client_no: int,
    ledger: Ledger,
    stop: threading.Event,
    rng: random.Random,
) -> None:
    sequence = 0
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.ehlo("crash.example.net")
            while not stop.is_set() and sequence < 10_000:
                recipients, places = DESTINATIONS[(client_no + sequence) % len(DESTINATIONS)]
                tag = f"r{round_no}c{client_no}n{sequence}"
                sequence += 1
                # Lines of about 60 bytes: up to 5 KiB, or past INLINE_LIMIT (a file).
                lines = rng.randrange(0, 80)
                if rng.random() < 0.125:
                    lines = INLINE_LIMIT // 60 + rng.randrange(1, 400)
                data = message_bytes(tag, "sender@example.net", list(recipients), lines)
                with ledger.lock:
                    ledger.expected[tag] = places
                client.sendmail("sender@example.net", list(recipients), data)
                # sendmail returned: every recipient was accepted and DATA got 250.
                with ledger.lock:
                    ledger.acknowledged.add(tag)
    except (OSError, smtplib.SMTPException):
        return  # the server died under us: whatever was not acknowledged is not owed


def pop3_thread(
    port: int, mailbox: str, ledger: Ledger, stop: threading.Event, rng: random.Random
) -> None:
    """Log in, read a few messages, delete some, QUIT; again until told to stop or the server dies."""
    try:
        for _ in range(1000):
            if stop.is_set():
                return
            client = poplib.POP3("127.0.0.1", port, timeout=20)
            try:
                client.user(mailbox)
                client.pass_(PASSWORD)
            except poplib.error_proto:  # [IN-USE] while a previous session's lock is released
                client.close()
                time.sleep(0.05)
                continue
            listing = [line.decode().split() for line in client.uidl()[1]]
            marked = []
            for number, uidl in rng.sample(listing, min(4, len(listing))):
                data = b"".join(line + b"\r\n" for line in client.retr(int(number))[1])
                match = TAG_PATTERN.search(data)
                if match is None or not is_complete(data):
                    ledger.bad_retrievals.append(f"{mailbox} {uidl}")
                    continue
                with ledger.lock:
                    ledger.retrieved[(mailbox, uidl)] = match.group(1).decode()
                if rng.random() < 0.5:
                    client.dele(int(number))
                    marked.append((mailbox, uidl))
            if client.quit().startswith(b"+OK"):
                with ledger.lock:
                    ledger.deletions_confirmed.update(marked)
                    ledger.pop3_quits += 1
            stop.wait(0.3)  # each login costs an Argon2 verification: leave the CPU to SMTP
    except (OSError, EOFError, poplib.error_proto):
        return  # the server died under us


def check_mailboxes_open(server: TodokuServer, census: Census, context: str) -> None:
    """After the restart each mailbox opens and lists exactly its undeleted messages."""
    for mailbox in (ALICE, BOB):
        client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
        try:
            client.user(mailbox)
            client.pass_(PASSWORD)
            listed = {line.decode().split()[1] for line in client.uidl()[1]}
        finally:
            client.quit()
        stored = {uidl for (box, uidl) in census.uids if box == mailbox} - {
            uidl for (box, uidl) in census.deleted if box == mailbox
        }
        assert listed == stored, f"{context}: {mailbox} lists other messages than it stores"


def run_round(server: TodokuServer, round_no: int, ledger: Ledger, rng: random.Random) -> None:
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=sender_thread,
            args=(server.ports["smtp"], round_no, n, ledger, stop, random.Random(rng.random())),
            daemon=True,
        )
        for n in range(CLIENTS)
    ] + [
        threading.Thread(
            target=pop3_thread,
            args=(server.ports["pop3"], mailbox, ledger, stop, random.Random(rng.random())),
            daemon=True,
        )
        for mailbox in (ALICE, BOB)
    ]
    acknowledged_before = len(ledger.acknowledged)
    quits_before = ledger.pop3_quits
    # Every third round also waits for a whole POP3 session (RETR, DELE, QUIT), so that kills
    # land among reads and deletions and confirmed deletions are there to check.
    quits_wanted = 1 if round_no % 3 == 0 else 0
    for thread in threads:
        thread.start()
    # Kill after a random number of acknowledgements (a busy machine may be slow to give the
    # first ones), plus a random slice of time so the kill lands at any step of a commit.
    wanted = rng.randint(1, 60)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        len(ledger.acknowledged) - acknowledged_before < wanted
        or ledger.pop3_quits - quits_before < quits_wanted
    ):
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.05))
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "an SMTP client did not notice the server had died"


def test_sigkill_during_smtp_loses_and_duplicates_nothing(
    make_server: Callable[..., TodokuServer],
) -> None:
    rng = random.Random(SEED)
    # Outbound delivery must not empty the queue under the census: a DNS server that refuses
    # every query is a temporary failure, so queued mail stays queued (next try in minutes).
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    dead_dns = closed.getsockname()[1]
    closed.close()
    server = make_server(
        start=False,
        services=("smtp", "pop3"),
        extra=f'[dns]\nnameservers = ["127.0.0.1:{dead_dns}"]\n',
    )
    config = server.config_path.read_text()
    server.config_path.write_text(
        config.replace("[auth]\n", "[auth]\nallow_plaintext_on_loopback = true\n")
    )
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
        for key, tag in ledger.retrieved.items():  # what a POP3 client saw under a UIDL
            assert verified.get(census.uids.get(key, "")) == tag, f"{context}: UIDL {key} changed"
        missing_deletions = ledger.deletions_confirmed - census.deleted
        assert not missing_deletions, f"{context}: confirmed deletions undone: {missing_deletions}"
        assert ledger.bad_retrievals == [], f"{context}: incomplete RETR {ledger.bad_retrievals}"
        if round_no % 10 == 9 or round_no == ROUNDS - 1:
            check_mailboxes_open(server, census, context)
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
        f" POP3 retrieved {len(ledger.retrieved)}, deleted {len(ledger.deletions_confirmed)},"
        f" {time.monotonic() - started:.0f}s"
    )
    assert rounds_done >= min(ROUNDS, 50)
    assert len(ledger.acknowledged) > 0, "no message was ever acknowledged: the test proved nothing"
    assert lost == [], f"lost {len(lost)} acknowledged messages, e.g. {lost[:5]}"
    assert duplicated == [], f"duplicated {len(duplicated)} messages, e.g. {duplicated[:5]}"
    assert partial == [], f"half-delivered messages: {partial[:5]}"
    assert strangers == set(), f"messages nobody sent: {sorted(strangers)[:5]}"
