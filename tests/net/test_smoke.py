"""A first end-to-end check: the real server process, smtplib, local delivery on disk."""

from __future__ import annotations

import smtplib

from tests.conftest import PASSWORD, TodokuServer, client_tls_context
from tests.durability.census import stored_contents


def test_submission_delivers_locally_and_queues_remote(server: TodokuServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as client:
        client.starttls(context=client_tls_context())
        client.login("alice@example.test", PASSWORD)
        refused = client.sendmail(
            "alice@example.test",
            ["alice@example.test", "friend@remote.test"],
            b"Subject: smoke\r\n\r\nhello\r\n",
        )
    assert refused == {}
    queue = server.cli("queue", "list").stdout
    assert "friend@remote.test" in queue
    contents = stored_contents(server.data_dir)  # small: kept in the index, not as a file
    assert len(contents) == 1
    assert contents[0].endswith(b"Subject: smoke\r\n\r\nhello\r\n")
