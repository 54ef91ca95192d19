"""Envelope paths: what each relay trick parses to, and which domain would decide routing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from todoku.proto.smtp.address import (
    Address,
    AddressError,
    decode_xtext,
    encode_xtext,
    parse_mailbox,
    parse_params,
    parse_path,
)


def rcpt(text: str, *, smtputf8: bool = False) -> Address:
    path = parse_path(text, smtputf8=smtputf8, allow_null=False)
    assert path.address is not None
    return path.address


# (RCPT TO argument, local part, the domain that decides where the mail goes)
RELAY_TRICKS = [
    ("<user%elsewhere.test@example.test>", "user%elsewhere.test", "example.test"),
    (
        "<user%elsewhere.test%example.test@example.test>",
        "user%elsewhere.test%example.test",
        "example.test",
    ),
    ("<elsewhere.test!user@example.test>", "elsewhere.test!user", "example.test"),
    ("<@example.test:user@elsewhere.test>", "user", "elsewhere.test"),
    ("<@elsewhere.test:user@example.test>", "user", "example.test"),
    ("<@a.test,@b.test:user@elsewhere.test>", "user", "elsewhere.test"),
    ('<"user@elsewhere.test"@example.test>', "user@elsewhere.test", "example.test"),
    ('<"user@elsewhere.test">' + "", None, None),
    ('<"user%elsewhere.test"@example.test>', "user%elsewhere.test", "example.test"),
    ('<"a\\"@b"@example.test>', 'a"@b', "example.test"),
    ("<user@[127.0.0.1]>", "user", "[127.0.0.1]"),
    ("<user@[IPv6:0:0::1]>", "user", "[IPv6:::1]"),
    ("<user@[ipv6:::FFFF:7f00:1]>", "user", "[IPv6:::ffff:7f00:1]"),
    ("<user@EXAMPLE.TEST>", "user", "example.test"),
    ("<USER@Example.Test.>", "USER", "example.test"),
    ("<user@example.test.>", "user", "example.test"),
    ("user@elsewhere.test", "user", "elsewhere.test"),  # no brackets, as Postfix tolerates
    ("<user@elsewhere.test@example.test>", None, None),
    ("<user@example.test..>", None, None),
    ("<user@.example.test>", None, None),
    ("<user@[300.1.1.1]>", None, None),
    ("<user@[1.2.3.4>", None, None),
    ("<user@[IPv6:1.2.3.4]>", None, None),
    ("<user@[evil.test]>", None, None),
    ("<user@-example.test>", None, None),
    ("<user@exa_mple.test>", None, None),
    ("<@:user@example.test>", None, None),
    ("<@elsewhere.test user@example.test>", None, None),
    ("<user>", None, None),
    ("<user@>", None, None),
    ("<@example.test>", None, None),
    ("<user@example.test", None, None),
    ("<us\x01er@example.test>", None, None),
    ('<"us\x01er"@example.test>', None, None),
]


@pytest.mark.parametrize(("text", "local", "domain"), RELAY_TRICKS)
def test_relay_tricks_route_by_the_last_domain_or_are_refused(
    text: str, local: str | None, domain: str | None
) -> None:
    if domain is None:
        with pytest.raises(AddressError):
            rcpt(text)
        return
    address = rcpt(text)
    assert (address.local, address.domain) == (local, domain)


def test_address_literal_is_marked() -> None:
    assert rcpt("<u@[192.0.2.1]>").is_literal
    assert not rcpt("<u@example.test>").is_literal
    assert rcpt("<u@[x-tag:some-thing]>").domain == "[x-tag:some-thing]"


def test_postmaster_without_domain() -> None:
    assert rcpt("<Postmaster>") == Address("postmaster", "")
    assert rcpt("<@example.test:POSTMASTER>") == Address("postmaster", "")
    with pytest.raises(AddressError):
        rcpt("<postmistress>")


def test_null_path_only_where_allowed() -> None:
    assert parse_path("<>", smtputf8=False, allow_null=True).address is None
    with pytest.raises(AddressError):
        parse_path("<>", smtputf8=False, allow_null=False)


def test_utf8_needs_smtputf8_and_says_so() -> None:
    with pytest.raises(AddressError) as info:
        rcpt("<jösé@example.test>")
    assert info.value.needs_smtputf8
    with pytest.raises(AddressError) as info:
        rcpt("<a@例え.test>")
    assert info.value.needs_smtputf8
    assert rcpt("<jösé@例え.TEST>", smtputf8=True) == Address("jösé", "例え.test")
    with_param = parse_path("<jösé@example.test> SMTPUTF8", smtputf8=False, allow_null=True)
    assert with_param.address == Address("jösé", "example.test")


@pytest.mark.parametrize(
    "domain",
    ["ｅｘａｍｐｌｅ.test", "example\u3002test", "example\uff0etest", "e\u0301xample.test"],
)
def test_lookalike_unicode_domains_are_refused(domain: str) -> None:
    with pytest.raises(AddressError):
        rcpt(f"<a@{domain}>", smtputf8=True)


def test_length_limits() -> None:
    assert rcpt("<" + "a" * 64 + "@example.test>").local == "a" * 64
    with pytest.raises(AddressError):
        rcpt("<" + "a" * 65 + "@example.test>")
    with pytest.raises(AddressError):
        rcpt("<a@" + "b" * 64 + ".test>")
    with pytest.raises(AddressError):
        rcpt("<a@" + ".".join(["b" * 60] * 5) + ">")


def test_params_after_the_path() -> None:
    path = parse_path(
        "<a@example.test>  SIZE=10 BODY=8BITMIME smtputf8", smtputf8=False, allow_null=True
    )
    assert path.params == {"SIZE": "10", "BODY": "8BITMIME", "SMTPUTF8": None}
    assert parse_path('<"a>b"@example.test> X=1', smtputf8=False, allow_null=True).params == {
        "X": "1"
    }


@pytest.mark.parametrize("text", ["SIZE=1 size=2", "=1", "-X=1", "X=", "X=a=b=\x7f", "X_Y=1"])
def test_bad_params(text: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_params(text)
    assert info.value.bad_parameters


def test_xtext() -> None:
    assert decode_xtext("rfc822+3Bbob+40example.test") == "rfc822;bob@example.test"
    assert encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    for bad in ["a+", "a+4", "a+GG", "a b", "a=b"]:
        with pytest.raises(AddressError):
            decode_xtext(bad)


# ------------------------------------------------------------------ round trips

_ATOM = st.text(alphabet=st.sampled_from("abcXYZ019!#$%&'*+-/=?^_`{|}~"), min_size=1, max_size=10)
_DOT_ATOM = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_QUOTED = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=0, max_size=20
)
_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
_DOMAIN = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(lambda ip: f"[{ip}]"),
    st.ip_addresses(v=6).map(lambda ip: f"[IPv6:{ip.compressed}]"),
)


@given(local=st.one_of(_DOT_ATOM, _QUOTED), domain=_DOMAIN)
def test_format_then_parse_is_identity(local: str, domain: str) -> None:
    address = Address(local, domain)
    assert parse_mailbox(str(address), smtputf8=False) == address
    path = parse_path(f"<{address}> NOTIFY=NEVER", smtputf8=False, allow_null=False)
    assert path.address == address


_UTF8_ATOM = st.text(alphabet=st.sampled_from("abcé日本語ñü-+_"), min_size=1, max_size=8)


@given(
    local=_UTF8_ATOM,
    labels=st.lists(
        st.sampled_from(["例え", "münchen", "test", "xn--r8jz45g"]), min_size=1, max_size=3
    ),
)
def test_utf8_format_then_parse_is_identity(local: str, labels: list[str]) -> None:
    address = Address(local, ".".join(labels))
    assert parse_mailbox(str(address), smtputf8=True) == address


# Printable text round-trips; control characters are refused on decoding (RFC 3461 §4,
# tests/proto/test_xtext.py).
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30))
def test_xtext_round_trip(text: str) -> None:
    encoded = encode_xtext(text)
    assert encoded.isascii() and " " not in encoded and "=" not in encoded
    assert decode_xtext(encoded) == text
