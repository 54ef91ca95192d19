"""The From-field reader of policy/sender.py: what it reads, what it refuses to guess, its bounds,
and (Hypothesis) that no input makes it raise or read an address that is not there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todoku.policy.directory import Directory
from todoku.policy.sender import MAX_FROM_ADDRESSES, MAX_FROM_BYTES, check_from, parse_from
from todoku.proto.smtp.address import Address
from todoku.store.sqlite_backend import SqliteBackend


def header(value: bytes) -> bytes:
    return b"Subject: x\r\nFrom: " + value + b"\r\nTo: bob@example.test\r\n"


@pytest.mark.parametrize(
    ("value", "addresses"),
    [
        (b"alice@example.test", ["alice@example.test"]),
        (b"Alice <alice@example.test>", ["alice@example.test"]),
        (b'"Smith, Alice" <Alice@EXAMPLE.test>', ["Alice@example.test"]),
        (b"=?utf-8?b?44Ki44Oq44K5?= <alice@example.test>", ["alice@example.test"]),
        ("アリス <alice@example.test>".encode(), ["alice@example.test"]),
        (b"alice@example.test (Alice (the) Admin)", ["alice@example.test"]),
        (b"a@example.test,\r\n b@example.test", ["a@example.test", "b@example.test"]),
        (b"Team: a@example.test, B <b@example.test>;", ["a@example.test", "b@example.test"]),
        (b'"postmaster@x"@example.test', ['"postmaster@x"@example.test']),
        (b'"alice@example.test" <ceo@remote.test>', ["ceo@remote.test"]),
        (b"alice@[192.0.2.1]", ["alice@[192.0.2.1]"]),
    ],
)
def test_reads_addresses(value: bytes, addresses: list[str]) -> None:
    parsed = parse_from(header(value))
    assert parsed.problem == ""
    assert [str(a) for a in parsed.addresses] == addresses


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        b"Undisclosed recipients:;",
        b"alice@example.test <boss@example.test>",  # two readings: refuse rather than guess
        b"<alice@example.test> <boss@example.test>",
        b"<@relay.test:alice@example.test>",
        b"a@b@example.test",
        b"Alice <alice@example.test",
        b'"unclosed <alice@example.test>',
        b"(unclosed alice@example.test",
        b"Alice <>",
        b"alice@example.test;",
        b"Team: alice@example.test",
        b"alice@exa\x01mple.test",
        b"(" * 20 + b"x" + b")" * 20 + b" alice@example.test",
    ],
)
def test_refuses_what_it_cannot_read(value: bytes) -> None:
    parsed = parse_from(header(value))
    assert parsed.problem and parsed.addresses == ()


def test_no_from_field_claims_nothing() -> None:
    assert parse_from(b"Subject: x\r\nTo: bob@example.test\r\n") == parse_from(b"")
    assert parse_from(b"").addresses == () and parse_from(b"").problem == ""


def test_every_from_field_counts_and_folding_is_followed() -> None:
    parsed = parse_from(b"From: a@example.test\r\nSubject: s\r\nfrom :\r\n\tb@example.test\r\n")
    assert [str(a) for a in parsed.addresses] == ["a@example.test", "b@example.test"]


def test_bounds() -> None:
    long_name = b'"' + b"n" * MAX_FROM_BYTES + b'" <alice@example.test>'
    assert "longer than" in parse_from(header(long_name)).problem
    folded = b"alice@example.test" + b"\r\n (comment)" * (MAX_FROM_BYTES // 10)
    assert "longer than" in parse_from(header(folded)).problem
    many = b", ".join(b"u%d@example.test" % i for i in range(MAX_FROM_ADDRESSES + 1))
    assert "more than" in parse_from(header(many)).problem
    enough = b", ".join(b"u%d@example.test" % i for i in range(MAX_FROM_ADDRESSES))
    assert len(parse_from(header(enough)).addresses) == MAX_FROM_ADDRESSES


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    backend = SqliteBackend.open(tmp_path, ("example.test",))
    await backend.directory.add_user("alice@example.test", "h")
    await backend.directory.add_user("bob@example.test", "h")
    await backend.directory.add_alias("sales@example.test", "alice@example.test")
    yield Directory(backend.directory, ("example.test",))
    await backend.close()


async def test_check_from_replies(directory: Directory) -> None:
    user = "alice@example.test"
    assert await check_from(directory, user, header(b"Sales <SALES@Example.Test>")) is None
    refusal = await check_from(
        directory, user, header(b"Alice <alice@example.test>, bob@example.test")
    )
    assert refusal is not None
    assert (refusal.code, refusal.enhanced) == (550, "5.7.1")
    assert refusal.text == (
        "Message rejected: From: <bob@example.test> is not owned by user alice@example.test;"
        " use <alice@example.test> or an alias that delivers to it"
    )
    unreadable = await check_from(directory, user, header(b"alice@example.test <bob@example.test>"))
    assert unreadable is not None and (unreadable.code, unreadable.enhanced) == (550, "5.6.0")
    too_long = await check_from(directory, user, None)
    assert too_long is not None and "too long to check" in too_long.text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_an_answer(data: bytes) -> None:
    parsed = parse_from(b"From: " + data + b"\r\n")
    assert bool(parsed.problem) != bool(parsed.addresses) or parsed == parse_from(b"")
    for address in parsed.addresses:
        assert isinstance(address, Address) and address.domain


_ATOM = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~", min_size=1, max_size=8
)
_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(max_size=20),
            st.lists(_ATOM, min_size=1, max_size=3),
            st.lists(_LABEL, min_size=2, max_size=3),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_reads_back_what_was_written(mailboxes: list[tuple[str, list[str], list[str]]]) -> None:
    """Display names of any text (quoted as RFC 5322 §3.2.4 says) never change the addresses."""
    parts = []
    for name, local, domain in mailboxes:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
        parts.append(f'"{quoted}" <{".".join(local)}@{".".join(domain)}>')
    parsed = parse_from(header(", ".join(parts).encode()))
    assert parsed.problem == ""
    assert [str(a) for a in parsed.addresses] == [
        f"{'.'.join(lo)}@{'.'.join(do)}" for _, lo, do in mailboxes
    ]
