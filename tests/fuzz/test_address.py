"""Fuzz the envelope address parser (proto/smtp/address.py) with hostile MAIL/RCPT arguments.

tests/proto/test_address.py formats valid addresses and parses them back. These targets start
from hostile text instead, as a client sends it, and check what the relay-safety rule and the
rest of todoku rely on:

* ``parse_path`` returns a ``PathArgs`` or raises ``AddressError``, nothing else;
* what it returns is canonical: parsing its own rendering gives the same address, the domain is
  lower-case without a trailing dot and at most 255 octets, the local part has no control
  character, and parameter names are upper-case ESMTP keywords;
* SMTPUTF8 only widens: an address valid without it is the same address with it.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings
from todoku.proto.smtp.address import (
    MAX_DOMAIN,
    AddressError,
    PathArgs,
    parse_mailbox,
    parse_path,
)

TOKENS = [
    "<",
    ">",
    "@",
    '"',
    "\\",
    ".",
    ":",
    ",",
    "[",
    "]",
    " ",
    "=",
    "%",
    "!",
    "+",
    "-",
    "a",
    "B",
    "0",
    "bob",
    "example.test",
    "EXAMPLE.TEST.",
    "xn--r8jz45g",
    "例え",
    "é",
    "ñ",
    "\u3002",
    "\uff0e",
    "ｅ",
    "IPv6:",
    "::1",
    "0::1",
    "192.0.2.1",
    "300.1.1.1",
    "tag:x",
    "postmaster",
    "Postmaster",
    "@relay.test,@b.test:",
    "\t",
    "\x00",
    "\x7f",
    "\r",
    "\x85",
    " NOTIFY=NEVER",
    " SIZE=10",
    " SMTPUTF8",
    " ORCPT=rfc822;a+40b",
    " X=",
    " =x",
    " 1A=b",
    " size=1 SIZE=2",
    "a" * 64,
    "a" * 65,
    "b." * 130,
]
ARGUMENT = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=16).map("".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)
_KEYWORD = re.compile(r"[A-Z0-9][A-Z0-9-]*")


def parse(argument: str, smtputf8: bool, allow_null: bool) -> PathArgs | None:
    try:
        return parse_path(argument, smtputf8=smtputf8, allow_null=allow_null)
    except AddressError:
        return None


@fuzz_settings(4)
@given(argument=ARGUMENT, smtputf8=st.booleans(), allow_null=st.booleans())
def test_a_parsed_path_is_canonical(argument: str, smtputf8: bool, allow_null: bool) -> None:
    path = parse(argument, smtputf8, allow_null)
    if path is None:
        return
    for name, value in path.params.items():
        assert _KEYWORD.fullmatch(name), name
        assert value is None or (value and " " not in value and "=" not in value)
    address = path.address
    if address is None:
        assert allow_null and path.raw == ""
        return
    assert not any(ord(c) < 32 or ord(c) == 127 for c in address.local), repr(address.local)
    if address.domain == "":  # RFC 5321 §4.1.1.3: <Postmaster> without a domain
        assert address.local == "postmaster"
        return
    domain = address.domain
    assert domain == domain.lower() and not domain.endswith(".")
    assert len(domain.encode("utf-8")) <= MAX_DOMAIN
    assert parse_mailbox(str(address), smtputf8=True) == address


@fuzz_settings(4)
@given(argument=ARGUMENT, allow_null=st.booleans())
def test_smtputf8_only_widens_what_is_accepted(argument: str, allow_null: bool) -> None:
    ascii_path = parse(argument, False, allow_null)
    if ascii_path is not None:
        assert parse(argument, True, allow_null) == ascii_path
