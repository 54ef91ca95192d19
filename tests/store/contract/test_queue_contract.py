"""The ``Queue`` contract (store/queue.py), with the ``Intake`` that makes entries
(store/intake.py): every backend passes these unchanged."""

from __future__ import annotations

import asyncio
import threading

from todoku.store.api import IncomingMessage, QueueEntry, RecipientResult, RemoteRecipient
from todoku.store.backend import Storage

SENDER = "alice@example.test"
CAROL = "carol@remote.test"
DAVE = "dave@other.test"


async def accept(
    storage: Storage,
    remote: tuple[str, ...] = (CAROL, DAVE),
    *,
    received_at: float = 1000.0,
    mailboxes: tuple[str, ...] = (),
    **fields: object,
) -> str:
    writer = storage.blobs.new_writer()
    writer.write(b"Subject: queued\r\n\r\nhello\r\n")
    recipients = tuple(RemoteRecipient(r, f"rfc822;{r}", ("FAILURE",)) for r in remote)
    return await storage.intake.accept(
        writer,
        lambda blob: IncomingMessage(
            blob=blob,
            sender=SENDER,
            mailboxes=mailboxes,
            remote=recipients,
            subject="queued",
            received_at=received_at,
            **fields,  # type: ignore[arg-type]
        ),
    )


async def entry(storage: Storage, queue_id: str) -> QueueEntry:
    found = await storage.queue.get(queue_id)
    assert found is not None
    return found


def result(address: str, state: str, code: int = 250, text: str = "ok") -> RecipientResult:
    enhanced = {250: "2.0.0", 450: "4.2.0", 550: "5.1.1"}[code]
    return RecipientResult(
        address,
        state,
        "rcpt",
        code,
        enhanced,
        text,
        "mx.remote.test",
        "" if code == 250 else "mailboxfull",
        enhanced,
        address.rpartition("@")[2],
    )


async def test_tls_required_no_is_kept_with_the_entry(storage: Storage) -> None:
    """RFC 8689 §4.1 "TLS-Required: No" (the server's own TLS reports): kept, and off unless
    set."""
    marked = await entry(storage, await accept(storage, tls_optional=True))
    plain = await entry(storage, await accept(storage, received_at=1001.0))
    assert marked.tls_optional and not plain.tls_optional


async def test_accepted_mail_for_elsewhere_is_an_entry_with_its_envelope(storage: Storage) -> None:
    queue_id = await accept(
        storage,
        envid="ENV1",
        ret="HDRS",
        smtputf8=True,
        submitted_by=SENDER,
        requiretls=True,
    )
    e = await entry(storage, queue_id)
    assert (e.id, e.blob_id, e.sender, e.envid, e.ret) == (
        queue_id,
        queue_id,
        SENDER,
        "ENV1",
        "HDRS",
    )
    assert e.smtputf8 and e.requiretls and e.submitted_by == SENDER
    assert (e.received_at, e.next_attempt, e.attempts, e.held, e.delay_warned) == (
        1000.0,
        1000.0,
        0,
        False,
        False,
    )
    assert e.size == len(b"Subject: queued\r\n\r\nhello\r\n")
    assert [(r.address, r.orcpt, r.notify, r.state) for r in e.recipients] == [
        (CAROL, f"rfc822;{CAROL}", ("FAILURE",), "pending"),
        (DAVE, f"rfc822;{DAVE}", ("FAILURE",), "pending"),
    ]
    with await storage.blobs.open(e.blob_id) as handle:
        assert handle.read().startswith(b"Subject: queued")
    assert [x.id for x in await storage.queue.entries()] == [queue_id]


async def test_local_only_mail_makes_no_entry(storage: Storage) -> None:
    queue_id = await accept(storage, remote=(), mailboxes=("alice@example.test",))
    assert await storage.queue.get(queue_id) is None
    assert await storage.queue.entries() == []
    assert await storage.queue.due() == []


async def test_entries_are_oldest_first(storage: Storage) -> None:
    late = await accept(storage, received_at=2000.0)
    early = await accept(storage, received_at=1000.0)
    assert [e.id for e in await storage.queue.entries()] == [early, late]


async def test_the_listener_hears_of_new_entries_only(storage: Storage) -> None:
    heard: list[tuple[str, float]] = []
    done = threading.Event()

    def listener(items: list[tuple[str, float]]) -> None:
        heard.extend(items)
        done.set()

    storage.intake.on_queued(listener)
    await accept(storage, remote=(), mailboxes=("alice@example.test",))
    queue_id = await accept(storage, received_at=1234.0)
    assert await asyncio.to_thread(done.wait, 10)
    assert heard == [(queue_id, 1234.0)]
    storage.intake.on_queued(None)
    await accept(storage)
    assert heard == [(queue_id, 1234.0)]


async def test_begin_attempt_counts_and_moves_the_next_attempt(storage: Storage) -> None:
    queue_id = await accept(storage)
    assert await storage.queue.begin_attempt(queue_id, 1001.0, 1300.0) == 1
    assert await storage.queue.begin_attempt(queue_id, 1301.0, 1900.0) == 2
    e = await entry(storage, queue_id)
    assert (e.attempts, e.next_attempt) == (2, 1900.0)
    assert await storage.queue.begin_attempt("0123456789ABCDEF", 1.0, 2.0) == 0


async def test_results_are_kept_and_a_final_state_is_never_overwritten(storage: Storage) -> None:
    q = storage.queue
    queue_id = await accept(storage)
    await q.begin_attempt(queue_id, 1001.0, 1300.0)
    retired = await q.record_results(
        queue_id, [result(CAROL, "delivered"), result(DAVE, "pending", 450, "try later")], 1002.0
    )
    assert retired is False
    await q.end_attempt(queue_id, 1600.0, "dave: 450 try later")
    e = await entry(storage, queue_id)
    carol, dave = e.recipients
    assert (carol.state, carol.code, carol.remote_mta, carol.updated_at) == (
        "delivered",
        250,
        "mx.remote.test",
        1002.0,
    )
    assert (dave.state, dave.last_reply, dave.enhanced, dave.reason) == (
        "pending",
        "try later",
        "4.2.0",
        "mailboxfull",
    )
    assert (e.next_attempt, e.last_error) == (1600.0, "dave: 450 try later")
    # A late "failed" for carol changes nothing; dave fails for good.
    await q.record_results(
        queue_id, [result(CAROL, "failed", 550, "no"), result(DAVE, "failed", 550, "gone")], 1700.0
    )
    carol, dave = (await entry(storage, queue_id)).recipients
    assert (carol.state, dave.state, dave.last_reply, dave.status) == (
        "delivered",
        "failed",
        "gone",
        "5.1.1",
    )
    history = await q.history(queue_id)
    assert [(h.time, h.recipient, h.state, h.code) for h in history] == [
        (1002.0, CAROL, "delivered", 250),
        (1002.0, DAVE, "pending", 450),
        (1700.0, CAROL, "failed", 550),
        (1700.0, DAVE, "failed", 550),
    ]
    assert history[0].domain == "remote.test" and history[1].text == "try later"


async def test_an_entry_retires_only_when_every_recipient_is_final_and_reported(
    storage: Storage,
) -> None:
    q = storage.queue
    queue_id = await accept(storage)
    await q.record_results(queue_id, [result(CAROL, "delivered")], 1002.0)
    assert await q.retire(queue_id) is False  # dave pending, carol not reported
    assert await q.mark_reported(queue_id, [CAROL], retire=True) is False  # dave still pending
    carol, _ = (await entry(storage, queue_id)).recipients
    assert carol.reported
    await q.record_results(queue_id, [result(DAVE, "failed", 550)], 1003.0)
    assert await q.retire(queue_id) is False  # dave's failure not reported yet
    assert await q.mark_reported(queue_id, [DAVE]) is False
    assert await q.get(queue_id) is not None
    assert await q.retire(queue_id) is True
    assert await q.get(queue_id) is None
    assert await q.history(queue_id) == []
    assert await q.retire(queue_id) is True  # gone is gone


async def test_results_reports_and_retirement_in_one_write(storage: Storage) -> None:
    q = storage.queue
    queue_id = await accept(storage)
    done = await q.record_results(
        queue_id,
        [result(CAROL, "delivered"), result(DAVE, "delivered")],
        1002.0,
        reported=[CAROL, DAVE],
        retire=True,
    )
    assert done is True
    assert await q.get(queue_id) is None


async def test_held_entries_are_not_due_and_release_makes_them_due(storage: Storage) -> None:
    q = storage.queue
    queue_id = await accept(storage)
    other = await accept(storage)
    await q.begin_attempt(queue_id, 1001.0, 5000.0)
    assert await q.hold(queue_id, True, 1100.0) is True
    assert (await entry(storage, queue_id)).held
    assert [d.queue_id for d in await q.due()] == [other]
    assert await q.hold(queue_id, False, 1200.0) is True
    e = await entry(storage, queue_id)
    assert not e.held and e.next_attempt == 1200.0
    due = {d.queue_id: d for d in await q.due()}
    assert set(due) == {queue_id, other}
    assert (due[queue_id].next_attempt, due[queue_id].received_at) == (1200.0, 1000.0)
    assert await q.hold("0123456789ABCDEF", True, 1.0) is False


async def test_flush_one_a_domain_or_all(storage: Storage) -> None:
    q = storage.queue
    to_carol = await accept(storage, remote=(CAROL,))
    to_dave = await accept(storage, remote=(DAVE,))
    for queue_id in (to_carol, to_dave):
        await q.begin_attempt(queue_id, 1001.0, 9000.0)
    assert await q.flush(None, "Other.Test.", 2000.0) == 1
    assert (await entry(storage, to_dave)).next_attempt == 2000.0
    assert (await entry(storage, to_carol)).next_attempt == 9000.0
    assert await q.flush(to_carol, None, 2100.0) == 1
    assert (await entry(storage, to_carol)).next_attempt == 2100.0
    assert await q.flush(None, None, 2200.0) == 2
    assert {e.next_attempt for e in await q.entries()} == {2200.0}
    # A domain whose recipients are all final is not flushed.
    await q.record_results(to_dave, [result(DAVE, "delivered")], 2300.0)
    assert await q.flush(None, "other.test", 2400.0) == 0


async def test_delete_removes_whatever_the_state(storage: Storage) -> None:
    q = storage.queue
    queue_id = await accept(storage)
    await q.record_results(queue_id, [result(CAROL, "pending", 450)], 1002.0)
    assert await q.delete(queue_id) is True
    assert await q.get(queue_id) is None
    assert await q.delete(queue_id) is False
    # A result that arrives for a deleted entry leaves it deleted.
    assert await q.record_results(queue_id, [result(DAVE, "delivered")], 1003.0) is False
    assert await q.get(queue_id) is None and await q.entries() == []


async def test_the_delay_warning_is_remembered(storage: Storage) -> None:
    q = storage.queue
    queue_id = await accept(storage)
    await q.mark_delay_warned(queue_id)
    assert (await entry(storage, queue_id)).delay_warned
    [due] = await q.due()
    assert due.delay_warned


async def test_many_writes_at_once_each_land(storage: Storage) -> None:
    q = storage.queue
    ids = [await accept(storage, remote=(CAROL,)) for _ in range(40)]
    numbers = await asyncio.gather(*(q.begin_attempt(i, 1001.0, 1500.0) for i in ids))
    assert numbers == [1] * 40
    retired = await asyncio.gather(
        *(
            q.record_results(i, [result(CAROL, "delivered")], 1002.0, reported=[CAROL], retire=True)
            for i in ids[:20]
        ),
        *(q.end_attempt(i, 1800.0, "later") for i in ids[20:]),
    )
    assert retired[:20] == [True] * 20
    await q.drain()
    left = await q.entries()
    assert sorted(e.id for e in left) == sorted(ids[20:])
    assert {(e.next_attempt, e.last_error, e.attempts) for e in left} == {(1800.0, "later", 1)}


async def test_a_write_is_not_undone_by_its_caller_giving_up(storage: Storage) -> None:
    q = storage.queue
    queue_id = await accept(storage)
    task = asyncio.ensure_future(q.record_results(queue_id, [result(CAROL, "delivered")], 1002.0))
    await asyncio.sleep(0)
    task.cancel()
    await q.drain()
    carol, _ = (await entry(storage, queue_id)).recipients
    assert carol.state == "delivered"
