"""SIGKILL the real server while it hands mail to a smarthost ([[relay]], issue 15), restart it,
and count what the relay received.

The relay (todoku's own server core with STARTTLS and AUTH, ``tests/queue/fakerelay.py``) is
slow to say 250, so kills land while it holds messages the server has not heard back about.
Between a kill and the restart the queue is read from outside (``census.py``). The promises:

- no loss: every message that got its 250 at submission reaches the relay, and the queue ends
  empty with no report to the sender;
- no duplicate across a restart for a message whose delivery the server had recorded: what had
  left the queue before a kill reaches the relay exactly once;
- the only copies sent twice are of messages the relay had taken while the server was waiting
  for its 250 at the moment of a kill (RFC 5321 §6.1 leaves that window to the sender: it must
  not lose the message, so it sends it again).

``TODOKU_RELAY_CRASH_ROUNDS`` (default 4) kill points; ``TODOKU_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
import smtplib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.conftest import PASSWORD, TodokuServer, client_tls_context
from tests.dnsserver import DnsServer
from tests.durability.census import TAG_PATTERN, message_bytes, take_census
from tests.net.test_outbound_e2e import mailbox, queue_json, wait_until
from tests.queue.fakerelay import RELAY_NAME, FakeRelay, make_ca, threaded_relay

ROUNDS = int(os.environ.get("TODOKU_RELAY_CRASH_ROUNDS", "4"))
SEED = int(os.environ.get("TODOKU_CRASH_SEED", str(int(time.time()))))
PER_ROUND = 12  # messages submitted before each kill
ALICE = "alice@example.test"
SECRET = "provider-pass-42"


def submit_tagged(server: TodokuServer, tags: list[str]) -> None:
    """Each message got its 250 when this returns (authenticated submission, STARTTLS)."""
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=20) as client:
        client.starttls(context=client_tls_context())
        client.login(ALICE, PASSWORD)
        for tag in tags:
            data = message_bytes(tag, ALICE, [f"{tag}@remote.test"], 5)
            assert client.sendmail(ALICE, [f"{tag}@remote.test"], data) == {}


def relayed_tags(relay: FakeRelay) -> Counter[str]:
    found: Counter[str] = Counter()
    for message in list(relay.messages):
        match = TAG_PATTERN.search(message.data)
        assert match is not None, "the relay got a message without its tag"
        found[match.group(1).decode()] += 1
    return found


def test_sigkill_during_relayed_delivery_loses_and_duplicates_nothing(
    make_server: Callable[..., TodokuServer], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    ca = make_ca(str(tmp_path))
    with (
        DnsServer() as dns,
        threaded_relay(
            ca.server_context(RELAY_NAME), users={"me@provider.test": SECRET}, data_delay=0.3
        ) as relay,
    ):
        dns.add(RELAY_NAME, "A", "127.0.0.1")
        extra = (
            f'[dns]\nnameservers = ["{dns.address}"]\n\n'
            '[delivery]\nretry = ["1s"]\ndelay_warning = "0"\nmax_lifetime = "1h"\n\n'
            f'[[relay]]\ndomains = ["*"]\nhost = "{RELAY_NAME}:{relay.port}"\n'
            f'user = "me@provider.test"\npassword_file = "relay.secret"\nca_file = "{ca.ca_file}"\n'
        )
        server = make_server(extra=extra, start=False)
        secret = server.root / "relay.secret"
        secret.write_text(SECRET + "\n")
        os.chmod(secret, 0o600)
        server.add_user(ALICE)
        server.start()

        submitted: list[str] = []
        # Copies at the relay of each message the queue had retired (delivered, recorded) when
        # a kill came: no copy may follow.
        retired: dict[str, int] = {}
        in_flight: set[str] = set()  # at the relay but still queued when a kill came
        for round_no in range(ROUNDS):
            tags = [f"k{round_no}m{n}" for n in range(PER_ROUND)]
            submit_tagged(server, tags)
            submitted += tags
            wanted = rng.randint(1, PER_ROUND - 2)
            wait_until(
                lambda t=tags, w=wanted: sum(relayed_tags(relay)[x] for x in t) >= w,  # type: ignore[misc]
                what="the relay to take some messages",
            )
            time.sleep(rng.uniform(0, 0.3))  # anywhere in the relay's slow 250
            server.kill()
            counts = relayed_tags(relay)
            census = take_census(server.data_dir)
            queued = {tag for tag, places in census.placements.items() if places["queue"]}
            assert census.damaged_rows == [], f"seed {SEED}: {census.damaged_rows}"
            assert set(submitted) - set(counts) <= queued, f"seed {SEED}: lost before relaying"
            for tag in set(submitted) - queued:
                retired.setdefault(tag, counts[tag])
            in_flight |= set(counts) & queued
            server.start()

        wait_until(lambda: not queue_json(server), timeout=60, what="the queue to drain")
        found = relayed_tags(relay)
        lost = [t for t in submitted if found[t] == 0]
        twice = {t for t, n in found.items() if n > 1}
        assert set(found) <= set(submitted), "the relay got messages nobody sent"
        assert lost == [], f"seed {SEED}: lost {lost}"
        again = sorted(t for t, copies in retired.items() if found[t] != copies)
        assert again == [], f"seed {SEED}: sent again after being recorded as delivered: {again}"
        assert twice <= in_flight, f"seed {SEED}: duplicated outside a kill's window: {twice}"
        assert mailbox(server) == []  # no bounce, no delay report
        print(
            f"\nrelay crash test: {ROUNDS} kill points, seed {SEED}: submitted {len(submitted)},"
            f" relayed {sum(found.values())}, in flight at a kill {len(in_flight)},"
            f" sent twice {len(twice)}"
        )
