"""What several fuzz targets share: their settings, a measure of retained memory, the corpus."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st

# The labelled bounce corpus (as tests/bounce/test_corpus.py): real bounces as seeds to mutate.
CORPUS = Path(os.environ.get("TODOKU_BOUNCE_CORPUS", "/work/shared/corpus/bounces")) / "maildir/bsd"


def fuzz_settings(fraction: float = 1.0) -> settings:
    """The ``todoku-fuzz`` profile (conftest.py), with ``fraction`` of its examples."""
    profile = settings.get_profile("todoku-fuzz")
    return settings(profile, max_examples=max(5, int(profile.max_examples * fraction)))


def retained_bytes(obj: object) -> int:
    """Octets of bytes, bytearray and str held by ``obj`` and whatever it refers to.

    A black-box measure of what a protocol core keeps between reads: it walks the object's
    attributes (``__dict__`` and ``__slots__``) and containers, whatever they are called, so the
    bound it checks survives a rewrite of the core's buffering.
    """
    seen: set[int] = set()
    total = 0
    stack: list[object] = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, (int, float, type)):
            continue
        seen.add(id(item))
        if isinstance(item, (bytes, bytearray, str)):
            total += len(item)
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset, deque)):
            stack.extend(item)
        else:
            stack.extend(getattr(item, "__dict__", {}).values())
            for klass in type(item).__mro__:
                for name in getattr(klass, "__slots__", ()):
                    if hasattr(item, name):
                        stack.append(getattr(item, name))
    return total


@cache
def corpus_messages() -> tuple[bytes, ...]:
    """Every corpus message (about 520, 3 MB), or none when the corpus is not on this machine."""
    if not CORPUS.is_dir():
        return ()
    return tuple(path.read_bytes() for path in sorted(CORPUS.glob("*.eml")))


# ----------------------------------------------------------------- structured mutations of mail

MAX_MESSAGE = 160 * 1024  # bounded input: the largest corpus message is 72 KB

# Seeds for when the corpus is absent, and fragments to splice into messages: the structure a
# MIME reader and a bounce parser act on (boundaries, encodings, encoded words, DSN fields).
SEEDS = (
    (
        b"From: MAILER-DAEMON@mx.example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\n<bob@example.test>: host mx said: 550 5.1.1 no\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n"
        b"\r\nFinal-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--B\r\n"
        b"Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n--B--\r\n"
    ),
)
FRAGMENTS = (
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"\n\n",
    b" ",
    b"\t",
    b":",
    b";",
    b"=",
    b'"',
    b"--",
    b"--B\r\n",
    b"--B--\r\n",
    b"\xff",
    b"\xc3",
    b"\x1b$B",
    b"=?",
    b"?=",
    b'Content-Type: multipart/mixed; boundary="B"\r\n',
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: message/delivery-status\r\n",
    b"Content-Type: message/global-delivery-status\r\n",
    b"Content-Type: text/plain; charset=",
    b"Content-Type: multipart/report; boundary=",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b'charset="iso-2022-jp"',
    b"charset=utf-16",
    b'charset="x-unknown-charset"',
    b"charset=shift_jis",
    b"=?utf-8?b?5a6b?=",
    b"=?iso-2022-jp?b?GyRCJDMbKEI=?=",
    b"=?utf-8?q?a=0D=0Ab?=",
    b"=?x?q?=FF?=",
    b"Subject: ",
    b"From: ",
    b"Status: 5.1.1\r\n",
    b"Status: 4.4.7\r\n",
    b"Action: delayed\r\n",
    b"Final-Recipient: rfc822; bob@example.test\r\n",
    b"Diagnostic-Code: smtp; 550 5.7.1 ",
    b"Remote-MTA: dns; mx.example.test\r\n",
    b"<bob@example.test>",
    b"550 5.1.1 ",
    b"421-4.7.0 ",
    b"X-Failed-Recipients: ",
    b"Auto-Submitted: auto-replied\r\n",
)


@st.composite
def mutated_message(draw: st.DrawFn) -> bytes:
    """A corpus message (or a seed) with a few structured mutations, at most MAX_MESSAGE octets.

    NUL octets are left out: a NUL inside a charset label is its own target (test_bounce_mime),
    kept apart so that this one stays green while that finding is open.
    """
    pool = corpus_messages() or SEEDS
    data = bytearray(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "flip", "truncate", "eol"]))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=8)))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 400))]
        elif kind == "duplicate":
            piece = bytes(data[at : at + draw(st.integers(1, 2000))])
            data[at:at] = piece * draw(st.integers(1, 8))
        elif kind == "flip" and at < len(data):
            data[at] = draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "eol":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n"))
    return bytes(data.replace(b"\0", b""))[:MAX_MESSAGE]
