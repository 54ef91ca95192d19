"""The domain types the storage interfaces speak (issue 14), and what is left of the first,
synchronous ``Store``.

The interfaces: ``store.directory`` (users, aliases, domains), ``store.queue`` (the outbound
queue), ``store.content`` (message content), ``store.intake`` (an accepted message into its
mailboxes and the queue) and ``store.mailboxes``; ``store.backend.Storage`` bundles them.

Invariants every backend keeps:
- ``Intake.accept`` returns only when the message content and every row that refers to it are on
  stable storage; a crash at any point before that leaves no row pointing at missing data.
- A message's UID in a mailbox never changes and is never reused within one UIDVALIDITY.
- Message content is immutable once committed; one blob may be shared by many mailboxes and the
  queue, and is removed only when nothing refers to it any more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from todoku.outcome import Outcome, Verdict


class StorageFull(OSError):
    """No space left for new data: answer 452 4.3.1 and let the client retry later."""


@dataclass(frozen=True, slots=True)
class User:
    address: str
    password_hash: str
    created_at: float
    admin: bool = False  # may administer the server (web administration); never set by upgrading


@dataclass(frozen=True, slots=True)
class Alias:
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    mailbox: str
    uid: int
    uidvalidity: int
    blob_id: str
    size: int
    received_at: float
    sender: str
    subject: str
    deleted_at: float | None = None
    folder: str = "INBOX"  # the folder it is in (or was in, when deleted)

    @property
    def unique_id(self) -> str:
        """Stable across restarts and deletions of other messages (POP3 UIDL, RFC 1939 §7)."""
        return f"{self.uidvalidity}.{self.uid}"


# What a POP3 login needs of each live message, as plain tuples (a maildrop of thousands is read
# at every login, and building a StoredMessage per row costs more than the query):
# (message id, size, unique id exactly as ``StoredMessage.unique_id``, blob id), in UID order.
MaildropRow = tuple[int, int, str, str]


@dataclass(frozen=True, slots=True)
class RemoteRecipient:
    address: str
    orcpt: str | None = None
    notify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueRecipient:
    address: str
    orcpt: str | None
    notify: tuple[str, ...]
    state: str  # "pending", "delivered", "failed"
    last_reply: str
    # The latest result, kept whole for reports (RFC 3464 fields) and the bounce analyzer.
    phase: str = ""
    code: int | None = None
    enhanced: str = ""
    remote_mta: str = ""
    reason: str = ""
    status: str = ""  # RFC 3463 status for the DSN
    reported: bool = False  # every report owed for this recipient is stored (or none is owed)
    updated_at: float = 0.0

    @property
    def outcome(self) -> Outcome:
        """The latest result as recorded (``RecipientResult.of`` wrote it)."""
        verdict = _VERDICT_OF_STATE.get(self.state, Verdict.TEMPORARY)
        return Outcome(
            self.address,
            verdict,
            self.phase,
            self.code,
            self.enhanced,
            self.last_reply,
            self.remote_mta,
            self.reason,
            self.status,
        )


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """One recipient's outcome of one attempt as the store writes it, as soon as it is known:
    the row form of a ``todoku.outcome.Outcome`` (``of``), with the queue's state word."""

    address: str
    state: str  # "pending" (retry), "delivered", "failed"
    phase: str
    code: int | None
    enhanced: str
    text: str
    remote_mta: str
    reason: str
    status: str
    domain: str = ""

    @classmethod
    def of(cls, outcome: Outcome) -> RecipientResult:
        # A decision made here after remote replies (expiry) keeps the last reply's words; our
        # own words are stored only when there is no reply to keep.
        return cls(
            outcome.recipient,
            _STATE_OF_VERDICT[outcome.verdict],
            outcome.phase,
            outcome.code,
            outcome.enhanced,
            outcome.text or outcome.note,
            outcome.remote_mta,
            outcome.reason,
            outcome.status,
            outcome.recipient.rpartition("@")[2].lower(),
        )


_STATE_OF_VERDICT = {
    Verdict.DELIVERED: "delivered",
    Verdict.PERMANENT: "failed",
    Verdict.TEMPORARY: "pending",
}
_VERDICT_OF_STATE = {state: verdict for verdict, state in _STATE_OF_VERDICT.items()}


@dataclass(frozen=True, slots=True)
class QueueEntry:
    id: str
    blob_id: str
    sender: str
    size: int
    received_at: float
    next_attempt: float
    attempts: int
    held: bool
    envid: str | None
    ret: str | None
    smtputf8: bool
    last_error: str
    recipients: tuple[QueueRecipient, ...] = ()
    delay_warned: bool = False
    # The login of the authenticated submission that queued this message, written by the server
    # when it accepted it; None for mail that came in on the MX, reports and local injection.
    # The only thing that decides DKIM signing: never the message's own header text.
    submitted_by: str | None = None
    # RFC 8689 §4.1: the submission asked for REQUIRETLS; delivered only over verified TLS.
    requiretls: bool = False
    # RFC 8689 §4.1 "TLS-Required: No": delivered without the destination's MTA-STS or DANE
    # (IncomingMessage.tls_optional; kept in the queue row's ``extra``).
    tls_optional: bool = False


@dataclass(frozen=True, slots=True)
class SpooledBlob:
    """Content made durable by ``BlobWriter.finish``, not yet published (store.content)."""

    blob_id: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """An accepted message and where it goes: local mailboxes and/or the outbound queue."""

    blob: SpooledBlob
    sender: str  # "" for the null reverse-path
    mailboxes: tuple[str, ...] = ()
    remote: tuple[RemoteRecipient, ...] = ()
    subject: str = ""
    envid: str | None = None
    ret: str | None = None
    smtputf8: bool = False
    received_at: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)
    submitted_by: str | None = None  # the authenticated login that submitted it (QueueEntry)
    requiretls: bool = False  # MAIL ... REQUIRETLS (RFC 8689), kept with the queue entry
    # RFC 8689 §4.1 "TLS-Required: No": deliver even when the destination's MTA-STS or DANE
    # cannot be met. Set only by the server itself, for its TLS reports (RFC 8460 §5.3: they
    # MUST go despite TLS failures); never from a message's header text.
    tls_optional: bool = False
    junk: bool = False  # DMARC quarantine: filed into each mailbox's Junk folder, not INBOX


EXTRA_TLS_OPTIONAL = "tls_optional"  # the key in the queue row's ``extra`` JSON


def queue_extra(message: IncomingMessage) -> str:
    """The queue row's ``extra`` JSON for ``message``: its own ``extra``, and the flags that
    travel there rather than in columns of their own."""
    extra = dict(message.extra)
    if message.tls_optional:
        extra[EXTRA_TLS_OPTIONAL] = "yes"
    return json.dumps(extra)


def tls_optional_in(extra: object) -> bool:
    """Read back from a queue row's ``extra`` (JSON text, or a mapping from a jsonb column)."""
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            return False
    return isinstance(extra, dict) and extra.get(EXTRA_TLS_OPTIONAL) == "yes"


class Store(Protocol):
    """What is left of the first, synchronous store interface: the POP3 maildrop and the purge of
    deleted mail, until the ``Mailboxes`` interface (store.mailboxes) takes them over. Users and
    aliases are ``store.directory``, the queue ``store.queue``, content ``store.content`` and
    accepting a message ``store.intake``. Each method blocks: callers run it on a worker thread.
    """

    def list_messages(self, mailbox: str) -> list[StoredMessage]: ...
    def list_maildrop(self, mailbox: str) -> list[MaildropRow]: ...
    def mark_deleted(self, mailbox: str, message_ids: list[int], when: float) -> int: ...
    def list_deleted(self, mailbox: str) -> list[StoredMessage]: ...
    def undelete(self, mailbox: str, message_ids: list[int] | None, since: float | None) -> int: ...
    def purge_deleted(self, older_than: float) -> int: ...
    def close(self) -> None: ...
