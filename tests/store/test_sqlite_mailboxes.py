"""The SQLite ``Mailboxes`` where it meets the rest of the store: SMTP delivery (the group commit
writer thread) and POP3's deletions announce their changes to IMAP sessions waiting on the
change feed; quarantined mail goes to Junk; a change made by another process (a CLI command)
reaches a waiting session as RESYNC. The contract suite covers the interface itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from todoku.store.api import IncomingMessage
from todoku.store.mailboxes import INBOX, ChangeKind, SpecialUse
from todoku.store.sqlite import SqliteStore

ALICE = "alice@example.test"


def incoming(store: SqliteStore, subject: str, junk: bool = False) -> IncomingMessage:
    writer = store.new_blob()
    writer.write(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
    return IncomingMessage(
        blob=writer.finish(), sender="s@example.net", mailboxes=(ALICE,), subject=subject, junk=junk
    )


async def test_smtp_delivery_wakes_a_waiting_imap_session(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    try:
        mailboxes = store.mailboxes()
        token = await mailboxes.highest_modseq(ALICE)
        waiting = asyncio.create_task(mailboxes.wait_changes(ALICE, token, timeout=60))
        await asyncio.sleep(0.05)  # the session is idling before the mail comes
        await store.commit(incoming(store, "hello"))
        [change] = await asyncio.wait_for(waiting, timeout=30)
        [message] = await mailboxes.messages(ALICE, INBOX)
        assert (change.kind, change.folder, change.uids) == (
            ChangeKind.EXISTS,
            INBOX,
            (message.uid,),
        )
    finally:
        store.close()


async def test_pop3_deletion_is_an_expunge_imap_sees(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    try:
        store.commit_sync(incoming(store, "one"))
        store.commit_sync(incoming(store, "two"))
        mailboxes = store.mailboxes()
        token = await mailboxes.highest_modseq(ALICE)
        [first, second] = store.list_maildrop(ALICE)
        assert store.mark_deleted(ALICE, [first[0]], 1.0) == 1  # POP3 DELE 1, QUIT
        [change] = await mailboxes.wait_changes(ALICE, token, timeout=5)
        assert change.kind is ChangeKind.EXPUNGE
        uid = int(first[2].split(".")[1])
        assert await mailboxes.vanished(ALICE, INBOX, token) == [uid] == list(change.uids)
        assert [m.uid for m in await mailboxes.messages(ALICE, INBOX)] == [
            int(second[2].split(".")[1])
        ]
        [gone] = await mailboxes.deleted(ALICE)
        assert gone.folder == INBOX
    finally:
        store.close()


async def test_quarantined_mail_goes_to_the_junk_role_folder(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    try:
        store.commit_sync(incoming(store, "spam", junk=True))
        mailboxes = store.mailboxes()
        junk = await mailboxes.folder(ALICE, "Junk")
        assert (junk.messages, junk.special_use) == (1, SpecialUse.JUNK)
        assert store.list_maildrop(ALICE) == []  # not in INBOX, so not for POP3
        # The user renamed the Junk folder: the role still finds it.
        await mailboxes.rename_folder(ALICE, "Junk", "Spam")
        store.commit_sync(incoming(store, "more spam", junk=True))
        assert (await mailboxes.folder(ALICE, "Spam")).messages == 2
        assert "Junk" not in {f.name for f in await mailboxes.folders(ALICE)}
    finally:
        store.close()


async def test_another_processes_change_reaches_a_waiter_as_resync(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    other = None
    try:
        store.commit_sync(incoming(store, "one"))
        mailboxes = store.mailboxes()
        token = await mailboxes.highest_modseq(ALICE)
        other = SqliteStore(tmp_path / "data")  # as `todoku mailbox undelete` would open it
        [row] = other.list_maildrop(ALICE)
        other.mark_deleted(ALICE, [row[0]], 1.0)
        [change] = await mailboxes.wait_changes(ALICE, token, timeout=0.05)
        assert change.kind is ChangeKind.RESYNC
        assert change.modseq == await mailboxes.highest_modseq(ALICE)
    finally:
        store.close()
        if other is not None:
            other.close()


async def test_pop3_deletes_nothing_an_imap_session_moved_out_of_inbox(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    try:
        store.commit_sync(incoming(store, "keep me"))
        mailboxes = store.mailboxes()
        await mailboxes.ensure_defaults(ALICE)
        [row] = store.list_maildrop(ALICE)  # a POP3 session's snapshot at login
        [message] = await mailboxes.messages(ALICE, INBOX)
        await mailboxes.move(ALICE, INBOX, [message.uid], "Archive")  # IMAP, meanwhile
        assert store.mark_deleted(ALICE, [row[0]], 1.0) == 0  # POP3's QUIT
        assert (await mailboxes.folder(ALICE, "Archive")).messages == 1
        assert await mailboxes.deleted(ALICE) == []
    finally:
        store.close()
