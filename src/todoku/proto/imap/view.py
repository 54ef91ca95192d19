"""A session's view of its selected folder: message sequence numbers, and the untagged
responses that bring a client up to date (RFC 9051 §7.4.1 EXPUNGE, §7.3.1 EXISTS, FETCH FLAGS;
RFC 7162 §3.2.10 VANISHED).

Sequence numbers belong to the session: they change only when the session says so (RFC 9051
§7.5.1: no EXPUNGE during FETCH, STORE or SEARCH), so the driver calls ``update`` at the points
where a client may be told (NOOP, IDLE, after most commands) and otherwise only reads.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Protocol

from todoku.proto.imap.fetch import format_flags
from todoku.proto.imap.syntax import SequenceSet, format_sequence


class Entry(Protocol):
    @property
    def uid(self) -> int: ...

    @property
    def flags(self) -> frozenset[str]: ...

    @property
    def modseq(self) -> int: ...


class FolderView:
    def __init__(self, messages: Sequence[Entry], highest_modseq: int) -> None:
        self.uids: list[int] = [m.uid for m in messages]
        self.flags: dict[int, frozenset[str]] = {m.uid: m.flags for m in messages}
        self.modseqs: dict[int, int] = {m.uid: m.modseq for m in messages}
        self.highest_modseq = highest_modseq

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def resolve(self, sequence: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) of the messages a set names, ascending; "*" is the last message."""
        if not self.uids:
            return []
        out: list[tuple[int, int]] = []
        if uid:
            ranges = sorted(sequence.resolve(self.uids[-1]))
            for low, high in ranges:
                start = bisect.bisect_left(self.uids, low)
                end = bisect.bisect_right(self.uids, high)
                out += [(i + 1, self.uids[i]) for i in range(start, end)]
        else:
            for low, high in sorted(sequence.resolve(len(self.uids))):
                low, high = max(low, 1), min(high, len(self.uids))
                out += [(i, self.uids[i - 1]) for i in range(low, high + 1)]
        return sorted(set(out))

    def valid_sequence(self, sequence: SequenceSet) -> bool:
        """RFC 9051 §6.4.5: a message sequence number beyond EXISTS is an error (BAD)."""
        largest = len(self.uids)
        return all(1 <= low and high <= largest for low, high in sequence.resolve(largest)) or (
            not self.uids and all(low == -1 or high == -1 for low, high in sequence.ranges)
        )

    def update(
        self,
        current: Sequence[Entry],
        highest_modseq: int,
        *,
        vanished: bool,
        modseq: bool,
        quiet: Iterable[int] = (),
    ) -> list[bytes]:
        """The responses that turn the client's view into ``current``; the view follows.

        ``vanished``: QRESYNC is on, expunges are told as ``VANISHED uids``. ``modseq``:
        CONDSTORE is on, FETCH FLAGS carry MODSEQ. ``quiet``: UIDs whose flag change the client
        made itself with .SILENT (RFC 7162 §3.2 still reports them with CONDSTORE)."""
        out: list[bytes] = []
        now = {m.uid: m for m in current}
        gone = [u for u in self.uids if u not in now]
        if gone:
            if vanished:
                out.append(b"* VANISHED " + format_sequence(gone).encode() + b"\r\n")
                keep = set(gone)
                self.uids = [u for u in self.uids if u not in keep]
            else:
                for u in reversed(gone):
                    seq = self.seq_of(u)
                    assert seq is not None
                    out.append(b"* %d EXPUNGE\r\n" % seq)
                    del self.uids[seq - 1]
            for u in gone:
                self.flags.pop(u, None)
                self.modseqs.pop(u, None)
        skip = set(quiet) if not modseq else set()
        for u in self.uids:
            m = now[u]
            if m.flags != self.flags[u] or (modseq and m.modseq != self.modseqs[u]):
                changed_flags = m.flags != self.flags[u]
                self.flags[u] = m.flags
                self.modseqs[u] = m.modseq
                if u in skip or not (changed_flags or modseq):
                    continue
                seq = self.seq_of(u)
                assert seq is not None
                line = b"* %d FETCH (UID %d FLAGS " % (seq, u) + format_flags(m.flags)
                if modseq:
                    line += b" MODSEQ (%d)" % m.modseq
                out.append(line + b")\r\n")
        last = self.uids[-1] if self.uids else 0
        added = [m for m in current if m.uid > last]
        if added:
            for m in added:
                self.uids.append(m.uid)
                self.flags[m.uid] = m.flags
                self.modseqs[m.uid] = m.modseq
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        self.highest_modseq = max(self.highest_modseq, highest_modseq)
        return out
