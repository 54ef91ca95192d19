"""The ``Mailboxes`` contract (store/mailboxes.py): what every backend must do, run on each.

Each test states one promise of the interface that IMAP, POP3 or the CLI relies on."""

from __future__ import annotations

import asyncio

import pytest

from tests.store.contract.conftest import Backend
from todoku.store.mailboxes import (
    DELETED,
    FLAGGED,
    INBOX,
    SEEN,
    BadFlag,
    BadFolderName,
    ChangeKind,
    FolderExists,
    FolderHasChildren,
    FolderNotFound,
    InboxProtected,
    SpecialUse,
    StoreMode,
)

USER = "alice@example.org"


async def _append(
    b: Backend, folder: str, data: bytes = b"Subject: x\r\n\r\nhi\r\n", **kw: object
) -> int:
    blob = await b.put(data)
    appended = await b.mailboxes.append(USER, folder, blob, **kw)  # type: ignore[arg-type]
    return appended.uid


async def _fill(b: Backend, folder: str, count: int) -> list[int]:
    return [
        await _append(b, folder, f"Subject: {i}\r\n\r\nbody {i}\r\n".encode()) for i in range(count)
    ]


# ------------------------------------------------------------------------------- folders


async def test_a_new_user_has_inbox_and_defaults_come_at_first_login(backend: Backend) -> None:
    mb = backend.mailboxes
    assert [f.name for f in await mb.folders(USER)] == [INBOX]
    await mb.ensure_defaults(USER)
    folders = {f.name: f for f in await mb.folders(USER)}
    assert set(folders) == {INBOX, "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert folders["Sent"].special_use is SpecialUse.SENT
    assert folders["Junk"].special_use is SpecialUse.JUNK
    assert folders["Trash"].special_use is SpecialUse.TRASH
    assert folders[INBOX].special_use is None
    assert all(f.subscribed for f in folders.values())
    assert len({f.uidvalidity for f in folders.values()}) == 6


async def test_defaults_are_made_once_a_deleted_default_stays_deleted(backend: Backend) -> None:
    mb = backend.mailboxes
    await mb.ensure_defaults(USER)
    await mb.delete_folder(USER, "Trash")
    await mb.ensure_defaults(USER)
    assert "Trash" not in {f.name for f in await mb.folders(USER)}


async def test_users_are_separate_and_compared_without_case(backend: Backend) -> None:
    mb = backend.mailboxes
    await _append(backend, INBOX)
    assert (await mb.folder("ALICE@Example.org", "inbox")).messages == 1
    assert (await mb.folder("bob@example.org", INBOX)).messages == 0


async def test_create_makes_parents_and_refuses_duplicates(backend: Backend) -> None:
    mb = backend.mailboxes
    made = await mb.create_folder(USER, "Projects/2026/todoku")
    assert made.name == "Projects/2026/todoku"
    assert made.messages == 0
    names = [f.name for f in await mb.folders(USER)]
    assert names == [INBOX, "Projects", "Projects/2026", "Projects/2026/todoku"]
    with pytest.raises(FolderExists):
        await mb.create_folder(USER, "Projects/2026")
    with pytest.raises(FolderExists):
        await mb.create_folder(USER, "inbox")


@pytest.mark.parametrize("name", ["", "/a", "a/", "a//b", "a*", "b%", "x\x00y", "x" * 300])
async def test_bad_folder_names_are_refused(backend: Backend, name: str) -> None:
    with pytest.raises(BadFolderName):
        await backend.mailboxes.create_folder(USER, name)


async def test_inbox_is_case_insensitive_also_as_a_parent(backend: Backend) -> None:
    mb = backend.mailboxes
    await mb.create_folder(USER, "inbox/Lists")
    assert "INBOX/Lists" in {f.name for f in await mb.folders(USER)}
    await _append(backend, "Inbox")
    assert (await mb.folder(USER, "INBOX")).messages == 1


async def test_unknown_folder_is_an_error(backend: Backend) -> None:
    mb = backend.mailboxes
    with pytest.raises(FolderNotFound):
        await mb.folder(USER, "Nope")
    with pytest.raises(FolderNotFound):
        await mb.messages(USER, "Nope")
    with pytest.raises(FolderNotFound):
        await mb.append(USER, "Nope", await backend.put(b"x"))


async def test_rename_keeps_uids_uidvalidity_and_moves_children(backend: Backend) -> None:
    mb = backend.mailboxes
    await mb.create_folder(USER, "Work/Old")
    uids = await _fill(backend, "Work", 2)
    before = await mb.folder(USER, "Work")
    child = await mb.folder(USER, "Work/Old")
    await mb.rename_folder(USER, "Work", "Job")
    after = await mb.folder(USER, "Job")
    assert after.uidvalidity == before.uidvalidity
    assert [m.uid for m in await mb.messages(USER, "Job")] == uids
    assert (await mb.folder(USER, "Job/Old")).uidvalidity == child.uidvalidity
    names = {f.name for f in await mb.folders(USER)}
    assert "Work" not in names
    assert "Work/Old" not in names
    with pytest.raises(FolderExists):
        await mb.rename_folder(USER, "Job", INBOX)


async def test_renaming_inbox_moves_its_mail_and_leaves_it_empty(backend: Backend) -> None:
    mb = backend.mailboxes
    uids = await _fill(backend, INBOX, 3)
    old = await mb.folder(USER, INBOX)
    await mb.rename_folder(USER, INBOX, "Old mail")
    assert [m.uid for m in await mb.messages(USER, "Old mail")] == uids
    inbox = await mb.folder(USER, INBOX)
    assert inbox.messages == 0
    assert inbox.uidvalidity != old.uidvalidity


async def test_delete_rules(backend: Backend) -> None:
    mb = backend.mailboxes
    with pytest.raises(InboxProtected):
        await mb.delete_folder(USER, "inbox")
    await mb.create_folder(USER, "A/B")
    with pytest.raises(FolderHasChildren):
        await mb.delete_folder(USER, "A")
    with pytest.raises(FolderNotFound):
        await mb.delete_folder(USER, "Zzz")
    await mb.delete_folder(USER, "A/B")
    await mb.delete_folder(USER, "A")
    assert [f.name for f in await mb.folders(USER)] == [INBOX]


async def test_a_recreated_folder_gets_a_new_uidvalidity(backend: Backend) -> None:
    mb = backend.mailboxes
    first = await mb.create_folder(USER, "Tmp")
    await _fill(backend, "Tmp", 2)
    await mb.delete_folder(USER, "Tmp")
    second = await mb.create_folder(USER, "Tmp")
    assert second.uidvalidity != first.uidvalidity


async def test_subscriptions(backend: Backend) -> None:
    mb = backend.mailboxes
    await mb.create_folder(USER, "News")
    assert not (await mb.folder(USER, "News")).subscribed
    await mb.subscribe(USER, "News", True)
    assert (await mb.folder(USER, "News")).subscribed
    await mb.subscribe(USER, "News", False)
    assert not (await mb.folder(USER, "News")).subscribed


# ------------------------------------------------------------------------------ messages


async def test_append_gives_increasing_uids_and_status_counts(backend: Backend) -> None:
    mb = backend.mailboxes
    before = await mb.folder(USER, INBOX)
    blob = await backend.put(b"Subject: hello\r\n\r\nbody\r\n")
    first = await mb.append(USER, INBOX, blob, [SEEN], 1_700_000_000.0)
    second = await mb.append(USER, INBOX, await backend.put(b"x" * 100))
    assert first.uidvalidity == before.uidvalidity
    assert first.uid >= before.uidnext
    assert second.uid > first.uid
    assert second.modseq > first.modseq > before.highest_modseq
    status = await mb.folder(USER, INBOX)
    assert status.messages == 2
    assert status.unseen == 1
    assert status.size == blob.size + 100
    assert status.uidnext > second.uid
    assert status.highest_modseq == second.modseq
    messages = await mb.messages(USER, INBOX)
    assert [m.uid for m in messages] == [first.uid, second.uid]
    assert messages[0].flags == frozenset({SEEN})
    assert messages[0].internaldate == 1_700_000_000.0
    assert messages[0].blob_id == blob.blob_id
    assert messages[0].size == blob.size


async def test_flags_are_normalised_and_bad_ones_refused(backend: Backend) -> None:
    mb = backend.mailboxes
    uid = await _append(backend, INBOX, flags=["\\SEEN", "\\recent", "$Label1"])
    (message,) = await mb.messages(USER, INBOX)
    assert message.uid == uid
    assert message.flags == frozenset({SEEN, "$Label1"})
    with pytest.raises(BadFlag):
        await mb.store_flags(USER, INBOX, [uid], StoreMode.ADD, ["\\Bogus"])
    with pytest.raises(BadFlag):
        await mb.store_flags(USER, INBOX, [uid], StoreMode.ADD, ["two words"])


async def test_store_add_remove_replace_and_modseq(backend: Backend) -> None:
    mb = backend.mailboxes
    a, b, c = await _fill(backend, INBOX, 3)
    start = await mb.highest_modseq(USER)
    stored = await mb.store_flags(USER, INBOX, [a, b, 999], StoreMode.ADD, [SEEN])
    assert [m.uid for m in stored.changed] == [a, b]
    assert stored.failed == ()
    modseq = stored.changed[0].modseq
    assert modseq > start
    assert {m.modseq for m in stored.changed} == {modseq}
    # Nothing changes: no new MODSEQ, nothing reported changed.
    again = await mb.store_flags(USER, INBOX, [a], StoreMode.ADD, [SEEN])
    assert again.changed == ()
    assert await mb.highest_modseq(USER) == modseq
    await mb.store_flags(USER, INBOX, [a], StoreMode.REPLACE, [FLAGGED, "work"])
    await mb.store_flags(USER, INBOX, [b], StoreMode.REMOVE, [SEEN])
    flags = {m.uid: m.flags for m in await mb.messages(USER, INBOX)}
    assert flags == {a: frozenset({FLAGGED, "work"}), b: frozenset(), c: frozenset()}
    changed = await mb.messages(USER, INBOX, changed_since=modseq)
    assert [m.uid for m in changed] == [a, b]
    assert (await mb.folder(USER, INBOX)).highest_modseq == await mb.highest_modseq(USER)


async def test_unchangedsince_leaves_newer_messages_and_says_which(backend: Backend) -> None:
    mb = backend.mailboxes
    a, b = await _fill(backend, INBOX, 2)
    seen_at = await mb.highest_modseq(USER)
    await mb.store_flags(USER, INBOX, [b], StoreMode.ADD, [FLAGGED])
    stored = await mb.store_flags(USER, INBOX, [a, b], StoreMode.ADD, [SEEN], seen_at)
    assert stored.failed == (b,)
    assert [m.uid for m in stored.changed] == [a]
    flags = {m.uid: m.flags for m in await mb.messages(USER, INBOX)}
    assert flags[b] == frozenset({FLAGGED})


async def test_copy_keeps_flags_and_source(backend: Backend) -> None:
    mb = backend.mailboxes
    await mb.create_folder(USER, "Keep")
    a, b = await _fill(backend, INBOX, 2)
    await mb.store_flags(USER, INBOX, [b], StoreMode.ADD, [FLAGGED])
    copied = await mb.copy(USER, INBOX, [b, a, 77], "Keep")
    target = await mb.folder(USER, "Keep")
    assert copied.uidvalidity == target.uidvalidity
    assert [src for src, _ in copied.uids] == [a, b]
    kept = {m.uid: m for m in await mb.messages(USER, "Keep")}
    assert kept[copied.uids[1][1]].flags == frozenset({FLAGGED})
    source = {m.uid: m for m in await mb.messages(USER, INBOX)}
    assert kept[copied.uids[0][1]].blob_id == source[a].blob_id
    assert len(source) == 2


async def test_move_expunges_the_source_without_keeping_deleted_copies(backend: Backend) -> None:
    mb = backend.mailboxes
    await mb.ensure_defaults(USER)
    a, b, c = await _fill(backend, INBOX, 3)
    before = await mb.highest_modseq(USER)
    moved = await mb.move(USER, INBOX, [a, c], "Archive")
    assert [src for src, _ in moved.uids] == [a, c]
    assert [m.uid for m in await mb.messages(USER, INBOX)] == [b]
    assert [m.uid for m in await mb.messages(USER, "Archive")] == [t for _, t in moved.uids]
    assert await mb.vanished(USER, INBOX, before) == [a, c]
    assert await mb.deleted(USER) == []


async def test_expunge_takes_only_deleted_flagged_mail_and_keeps_it_recoverable(
    backend: Backend,
) -> None:
    mb = backend.mailboxes
    await mb.create_folder(USER, "Lists")
    a, b, c = await _fill(backend, "Lists", 3)
    before = await mb.highest_modseq(USER)
    await mb.store_flags(USER, "Lists", [a, b], StoreMode.ADD, [DELETED])
    assert await mb.expunge(USER, "Lists", [b, c]) == [b]  # UID EXPUNGE: only in the set
    assert await mb.expunge(USER, "Lists") == [a]
    assert [m.uid for m in await mb.messages(USER, "Lists")] == [c]
    assert await mb.vanished(USER, "Lists", before) == [a, b]
    assert await mb.vanished(USER, "Lists", await mb.highest_modseq(USER)) == []
    deleted = await mb.deleted(USER)
    assert sorted((d.folder, d.uid) for d in deleted) == [("Lists", a), ("Lists", b)]
    # Undelete puts them back into their folder, under new UIDs (clients fetch them again).
    assert await mb.undelete(USER, [d.id for d in deleted if d.uid == a]) == 1
    uids = [m.uid for m in await mb.messages(USER, "Lists")]
    assert len(uids) == 2
    assert uids[0] == c
    assert uids[1] > c
    assert [d.uid for d in await mb.deleted(USER)] == [b]


async def test_pop3_remove_is_a_recoverable_expunge_whatever_the_flags(backend: Backend) -> None:
    mb = backend.mailboxes
    a, b = await _fill(backend, INBOX, 2)
    assert await mb.remove(USER, INBOX, [a, 404]) == [a]
    assert [m.uid for m in await mb.messages(USER, INBOX)] == [b]
    (gone,) = await mb.deleted(USER)
    assert (gone.folder, gone.uid) == (INBOX, a)
    assert await mb.undelete(USER) == 1
    assert len(await mb.messages(USER, INBOX)) == 2


async def test_uids_are_never_reused(backend: Backend) -> None:
    mb = backend.mailboxes
    (a,) = await _fill(backend, INBOX, 1)
    await mb.remove(USER, INBOX, [a])
    (b,) = await _fill(backend, INBOX, 1)
    assert b > a


async def test_a_deleted_folders_mail_comes_back_into_a_folder_of_that_name(
    backend: Backend,
) -> None:
    mb = backend.mailboxes
    await mb.create_folder(USER, "Old")
    await _fill(backend, "Old", 2)
    await mb.delete_folder(USER, "Old")
    assert {d.folder for d in await mb.deleted(USER)} == {"Old"}
    assert await mb.undelete(USER, since=0.0) == 2
    assert (await mb.folder(USER, "Old")).messages == 2


async def test_undelete_since_and_purge(backend: Backend) -> None:
    mb = backend.mailboxes
    a, b = await _fill(backend, INBOX, 2)
    await mb.remove(USER, INBOX, [a, b])
    deleted = await mb.deleted(USER)
    when = max(d.deleted_at for d in deleted)
    assert await mb.undelete(USER, since=when + 1) == 0
    assert await mb.purge_deleted(older_than=when - 1) == 0
    assert await mb.purge_deleted(older_than=when + 1) == 2
    assert await mb.deleted(USER) == []
    assert await mb.undelete(USER) == 0


async def test_usage_counts_live_mail_in_every_folder(backend: Backend) -> None:
    mb = backend.mailboxes
    await mb.create_folder(USER, "Other")
    await _append(backend, INBOX, b"a" * 10)
    await _append(backend, "Other", b"b" * 20)
    gone = await _append(backend, "Other", b"c" * 40)
    await mb.remove(USER, "Other", [gone])
    usage = await mb.usage(USER)
    assert (usage.messages, usage.octets) == (2, 30)


# ------------------------------------------------------------------------------- changes


async def test_a_waiting_session_wakes_on_another_sessions_change(backend: Backend) -> None:
    mb = backend.mailboxes
    token = await mb.highest_modseq(USER)
    waiting = asyncio.create_task(mb.wait_changes(USER, token, timeout=30))
    await asyncio.sleep(0)  # the waiter is registered before the delivery
    uid = await _append(backend, INBOX)
    changes = await asyncio.wait_for(waiting, timeout=10)
    assert [(c.kind, c.folder, c.uids) for c in changes] == [(ChangeKind.EXISTS, INBOX, (uid,))]
    assert changes[0].modseq == await mb.highest_modseq(USER)


async def test_changes_since_a_token_are_listed_in_order(backend: Backend) -> None:
    mb = backend.mailboxes
    token = await mb.highest_modseq(USER)
    await mb.create_folder(USER, "F")
    (uid,) = await _fill(backend, "F", 1)
    await mb.store_flags(USER, "F", [uid], StoreMode.ADD, [DELETED])
    await mb.expunge(USER, "F")
    await mb.rename_folder(USER, "F", "G")
    changes = await mb.wait_changes(USER, token, timeout=0)
    kinds = [(c.kind, c.folder) for c in changes]
    assert kinds == [
        (ChangeKind.FOLDER_CREATED, "F"),
        (ChangeKind.EXISTS, "F"),
        (ChangeKind.FLAGS, "F"),
        (ChangeKind.EXPUNGE, "F"),
        (ChangeKind.FOLDER_RENAMED, "G"),
    ]
    assert changes[-1].previous_name == "F"
    assert [c.modseq for c in changes] == sorted(c.modseq for c in changes)


async def test_nothing_new_times_out_empty_and_users_do_not_see_each_other(
    backend: Backend,
) -> None:
    mb = backend.mailboxes
    token = await mb.highest_modseq(USER)
    assert await mb.wait_changes(USER, token, timeout=0.01) == []
    bob = "bob@example.org"
    bob_token = await mb.highest_modseq(bob)
    await _append(backend, INBOX)
    assert await mb.wait_changes(bob, bob_token, timeout=0.01) == []
    assert len(await mb.wait_changes(USER, token, timeout=0.01)) == 1
