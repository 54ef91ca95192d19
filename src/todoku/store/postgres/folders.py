"""Folders and MODSEQ in PostgreSQL: the steps that delivery and ``Mailboxes`` share (issue 19).

A user's ``mail_users`` row is the lock of their mailboxes: every change first takes the next
MODSEQ with ``UPDATE mail_users ... RETURNING``, which holds that row until the transaction
ends. Changes to one user's mail are so serialised on every node, while different users proceed
in parallel. UIDVALIDITY values come from the same row (never reused for that user), and a
folder's UIDNEXT from the folder's own row, under the same lock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from todoku.store.api import SpooledBlob
from todoku.store.mailboxes import INBOX

if TYPE_CHECKING:
    from psycopg import AsyncConnection


async def lock_user(conn: AsyncConnection[Any], user: str) -> tuple[int, bool]:
    """Create the user's mail record (with INBOX) if missing and lock it; (current MODSEQ,
    whether the default folders were made)."""
    cur = await conn.execute(
        "INSERT INTO mail_users (address) VALUES (%s) ON CONFLICT DO NOTHING RETURNING modseq",
        (user,),
    )
    if await cur.fetchone() is not None:
        await make_folder(conn, user, INBOX, None, subscribed=True, modseq=1)
    cur = await conn.execute(
        "SELECT modseq, defaults_done FROM mail_users WHERE address = %s FOR UPDATE", (user,)
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


async def next_modseq(conn: AsyncConnection[Any], user: str) -> int:
    """The next MODSEQ of a locked user."""
    cur = await conn.execute(
        "UPDATE mail_users SET modseq = modseq + 1 WHERE address = %s RETURNING modseq", (user,)
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def make_folder(
    conn: AsyncConnection[Any],
    user: str,
    name: str,
    special_use: str | None,
    *,
    subscribed: bool,
    modseq: int,
) -> int:
    """A new folder with a UIDVALIDITY the user's folders never had; its id."""
    cur = await conn.execute(
        "UPDATE mail_users SET last_uidvalidity = greatest(%s, last_uidvalidity + 1)"
        " WHERE address = %s RETURNING last_uidvalidity",
        (int(time.time()), user),
    )
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        "INSERT INTO folders (address, name, special_use, uidvalidity, highest_modseq, subscribed)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (user, name, special_use, row[0], max(modseq, 1), subscribed),
    )
    made = await cur.fetchone()
    assert made is not None
    return int(made[0])


async def folder_id(conn: AsyncConnection[Any], user: str, name: str) -> int | None:
    cur = await conn.execute(
        "SELECT id FROM folders WHERE address = %s AND name = %s AND NOT gone", (user, name)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def add_message(
    conn: AsyncConnection[Any],
    folder: int,
    modseq: int,
    flags: list[str],
    blob_id: str,
    size: int,
    internaldate: float,
    sender: str,
    subject: str,
) -> int:
    """A message under the folder's next UID; the UID."""
    cur = await conn.execute(
        "UPDATE folders SET uidnext = uidnext + 1, highest_modseq = %s WHERE id = %s"
        " RETURNING uidnext - 1",
        (modseq, folder),
    )
    row = await cur.fetchone()
    assert row is not None
    uid = int(row[0])
    await conn.execute(
        "INSERT INTO messages (folder_id, uid, modseq, flags, size, internaldate, blob_id,"
        " sender, subject) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (folder, uid, modseq, flags, size, internaldate, blob_id, sender, subject),
    )
    return uid


async def deliver_to_inbox(
    conn: AsyncConnection[Any],
    user: str,
    blob: SpooledBlob,
    when: float,
    sender: str,
    subject: str,
) -> tuple[int, int]:
    """A delivered message into the user's INBOX (inside the accept transaction); (MODSEQ, UID)."""
    await lock_user(conn, user)
    inbox = await folder_id(conn, user, INBOX)
    modseq = await next_modseq(conn, user)
    if inbox is None:  # renamed away and not made again yet
        inbox = await make_folder(conn, user, INBOX, None, subscribed=True, modseq=modseq)
    uid = await add_message(conn, inbox, modseq, [], blob.blob_id, blob.size, when, sender, subject)
    return modseq, uid
