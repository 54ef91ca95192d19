"""DKIM checked from a file a piece at a time (issue 12, finding 7) gives dkimpy's answers: the
streamed body canonicalisation against dkimpy's own on hostile bodies cut anywhere, and whole
verifications against ``verify_signatures`` for every canonicalisation, ``l=``, and damage."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path

import dkim as dkimpy  # type: ignore[import-untyped]
import pytest
from dkim.canonicalization import CanonicalizationPolicy  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from todoku.config.load import PolicyConfig
from todoku.mailauth.dkim import KeyStore, Signer, verify_signatures
from todoku.mailauth.dkim_stream import BodyCanonicaliser, _Hasher, verify_held
from todoku.mailauth.inbound import HEADER_TOO_LARGE, MAX_HEADER, InboundPolicy, hold
from todoku.mailauth.lookup import TableLookups

PIECES = st.sampled_from(
    [b"a", b"b c", b" ", b"\t", b"  \t ", b"\r", b"\n", b"\r\n", b"\r\r\n", b" \r\n", b"\r\n\r\n"]
)
HEADER = (
    b"From: Someone <someone@sender.test>\r\nTo: alice@example.test\r\nSubject: stream\r\n"
    b"Message-ID: <s@sender.test>\r\n\r\n"
)


def dkimpy_body_hash(body: bytes, relaxed: bool, limit: int | None) -> bytes:
    """What dkimpy hashes: the body as its parser splits it, canonicalised whole."""
    _headers, parsed = dkimpy.rfc822_parse(HEADER + body)
    policy = CanonicalizationPolicy.from_c_value(
        b"relaxed/relaxed" if relaxed else b"simple/simple"
    )
    canonical = policy.canonicalize_body(parsed)
    return hashlib.sha256(canonical if limit is None else canonical[:limit]).digest()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(PIECES, max_size=40),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=40),
    st.booleans(),
    st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
)
def test_streamed_body_hash_is_dkimpys_however_the_body_is_cut(
    parts: list[bytes], cuts: list[int], relaxed: bool, limit: int | None
) -> None:
    body = b"".join(parts)
    if relaxed and not body.endswith(b"\n") and body.rstrip(b"\r").endswith((b" ", b"\t")):
        # RFC 6376 §3.4.4 (a) drops that whitespace; dkimpy keeps it (module docstring). SMTP
        # content always ends with CRLF.
        body += b"\r\n"
    hasher = _Hasher("sha256", limit)
    canonicaliser = BodyCanonicaliser(relaxed, [hasher])
    at = 0
    for cut in cuts * (len(body) // max(sum(cuts), 1) + 1):
        canonicaliser.update(body[at : at + cut])
        at += cut
    assert at >= len(body)
    canonicaliser.finish()
    assert hasher.hash.digest() == dkimpy_body_hash(body, relaxed, limit)


def sign(
    key_store_dir: Path, message: bytes, canon: bytes, length: bool
) -> tuple[bytes, dict[str, list[str]]]:
    signer = Signer(KeyStore(key_store_dir), ("sender.test",))
    fields = b""
    for key in signer.keys("sender.test").active.keys:
        fields += (
            dkimpy.sign(
                message,
                key.selector.encode(),
                b"sender.test",
                key.private,
                canonicalize=(canon, canon),
                signature_algorithm=b"ed25519-sha256"
                if key.algorithm == "ed25519"
                else b"rsa-sha256",
                include_headers=[b"from", b"to", b"subject"],
                length=length,
            )
            .replace(b"\r\n", b"\n")
            .replace(b"\n", b"\r\n")
        )
    records = {k.record_name: [k.record_text] for k, _ in signer.keys("sender.test").published()}
    return fields, records


BODY = b"Hello,\r\n\r\n  spaced \t out  \r\n.dot\r\n\r\n\r\n" * 3000  # about 100 KB: many pieces


@pytest.mark.parametrize("canon", [b"simple", b"relaxed"])
@pytest.mark.parametrize("length", [False, True])
@pytest.mark.parametrize(
    "change",
    [
        b"",  # untouched
        b"appended line\r\n",  # allowed by l=, a body hash mismatch otherwise
        b"\r\n\r\n",  # trailing empty lines: ignored by both canonicalisations
    ],
)
def test_verdicts_match_dkimpy_on_the_whole_message(
    tmp_path: Path, canon: bytes, length: bool, change: bytes
) -> None:
    message = HEADER + BODY
    fields, records = sign(tmp_path, message, canon, length)
    received = fields + message + change
    expected = verify_signatures(received, records)
    header_end = received.index(b"\r\n\r\n") + 4
    file = io.BytesIO(received)
    file.seek(header_end)
    streamed = verify_held(received[:header_end], file, records)
    assert [(r.result, r.domain, r.selector, r.algorithm) for r in streamed] == [
        (r.result, r.domain, r.selector, r.algorithm) for r in expected
    ]
    assert {r.result for r in streamed} == {
        "fail" if change == b"appended line\r\n" and not length else "pass"
    }
    # A changed header field is caught by dkimpy's header check, as before.
    forged = received.replace(b"Subject: stream", b"Subject: streams")
    file = io.BytesIO(forged)
    file.seek(header_end + 1)
    forged_results = verify_held(forged[: header_end + 1], file, records)
    assert [r.result for r in forged_results] == [
        r.result for r in verify_signatures(forged, records)
    ]
    assert {r.result for r in forged_results} == {"fail"}


def test_a_header_section_longer_than_the_bound_is_refused() -> None:
    padding = b"X-Padding: " + b"p" * 900 + b"\r\n"
    huge = padding * (MAX_HEADER // len(padding) + 2) + b"\r\nbody\r\n"
    assert hold(io.BytesIO(huge)) is None
    policy = InboundPolicy(PolicyConfig(), TableLookups(records={}), "mx.example.test")
    verdict = asyncio.run(policy.on_message("203.0.113.9", "h.test", "a@sender.test", huge))
    assert verdict.reject == HEADER_TOO_LARGE
    just_under = padding * (MAX_HEADER // len(padding) - 1) + b"\r\nbody\r\n"
    held = hold(io.BytesIO(just_under))
    assert (
        held is not None and held.header.endswith(b"\r\n\r\n") and held.body_at == len(held.header)
    )
