"""A user's story with the real ``todoku serve`` (issue 15): port 25 is blocked, so mail goes
through the provider's relay. The password file is wrong at first: the mail stays queued, the
log and ``queue show`` say why, and fixing the file then ``todoku queue flush`` sends it, with
no restart. The relay is todoku's own server core with AUTH and a trustme CA."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TodokuServer
from tests.dnsserver import DnsServer
from tests.net.test_outbound_e2e import ALICE, mailbox, queue_json, submit, wait_until
from tests.queue.fakerelay import RELAY_NAME, make_ca, threaded_relay

SECRET = "provider-pass-42"
WRONG = "typo-pass-41"


def test_wrong_relay_password_is_explained_then_fixed_without_restart(
    make_server: Callable[..., TodokuServer], tmp_path: Path
) -> None:
    ca = make_ca(str(tmp_path))
    with (
        DnsServer() as dns,
        threaded_relay(ca.server_context(RELAY_NAME), users={"me@provider.test": SECRET}) as relay,
    ):
        dns.add(RELAY_NAME, "A", "127.0.0.1")
        extra = (
            f'[dns]\nnameservers = ["{dns.address}"]\n\n[delivery]\nretry = ["1h"]\n\n'
            f'[[relay]]\ndomains = ["*"]\nhost = "{RELAY_NAME}:{relay.port}"\n'
            f'user = "me@provider.test"\npassword_file = "relay.secret"\nca_file = "{ca.ca_file}"\n'
        )
        server = make_server(extra=extra, start=False)
        secret = server.root / "relay.secret"
        secret.write_text(WRONG + "\n")
        os.chmod(secret, 0o600)
        server.add_user(ALICE)
        server.start()

        submit(server, ["bob@remote.test"])
        wait_until(
            lambda: any(r["phase"] == "auth" for e in queue_json(server) for r in e["recipients"]),  # type: ignore[attr-defined]
            what="the refused login",
        )
        [entry] = queue_json(server)
        shown = server.cli("queue", "show", str(entry["id"])).stdout
        assert f'remote.test: relay {RELAY_NAME}:{relay.port} (relay[0] matches "*")' in shown
        assert "login to the relay relay[0]" in shown and "535 5.7.8" in shown
        assert "configuration problem on this server" in shown
        assert "login to the relay relay[0]" in server.log()

        secret.write_text(SECRET + "\n")
        server.cli("queue", "flush")
        wait_until(lambda: not queue_json(server), what="the queue to drain after the fix")
        assert [m.recipients for m in relay.messages] == [["bob@remote.test"]]
        assert relay.logins == [("me@provider.test", False), ("me@provider.test", True)]
        assert mailbox(server) == []  # no bounce, no delay report (delay_warning unset: 4h)
        log = server.log()
        assert SECRET not in log and WRONG not in log
