"""Envelope addresses: parse and format RFC 5321 paths (with RFC 6531 SMTPUTF8) and parameters.

Relay safety rests on one rule: the domain that decides where mail goes is the part after the *last*
``@`` of the mailbox, after any source route (``@a,@b:``) is dropped as RFC 5321 §3.6.1 and
Appendix C ask. Percent hacks, ``!`` paths and quoted ``@`` stay inside the local part, where they
name (unknown) local users and never another host.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field

# RFC 5321 §4.1.2: atext of RFC 5322 plus, with SMTPUTF8, any non-ASCII (RFC 6531 §3.3).
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
_DOT_ATOM_ASCII = re.compile(rf"^[{_ATEXT}]+(\.[{_ATEXT}]+)*$")
_DOT_ATOM_UTF8 = re.compile(rf"^[{_ATEXT}\u0080-\U0010ffff]+(\.[{_ATEXT}\u0080-\U0010ffff]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)$")
_XTEXT_CHAR = re.compile(r"^[\x21-\x2a\x2c-\x3c\x3e-\x7e]$")
_ESMTP_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")  # RFC 5321 §4.1.2
# esmtp-value: RFC 5321 §4.1.2, widened to UTF-8 by RFC 6531 §3.3.
_ESMTP_VALUE = re.compile(r"^[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+$")
# General-address-literal: RFC 5321 §4.1.3.
_GENERAL_LITERAL = re.compile(r"^([A-Za-z0-9-]*[A-Za-z0-9]):([\x21-\x5a\x5e-\x7e]+)$")
# IDNA (RFC 3490 §3.1) treats these as label separators too; a domain that hides one inside a
# label would be read as a different name by a resolver.
_DOT_LOOKALIKES = frozenset("\u3002\uff0e\uff61")

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3


class AddressError(ValueError):
    """The text is not a valid address; the message says why in words fit for a reply.

    ``needs_smtputf8``: valid only in an SMTPUTF8 transaction (RFC 6531 §3.5 wants 553 5.6.7).
    ``bad_parameters``: the path was fine but the ESMTP parameters after it were not.
    """

    def __init__(
        self, message: str, *, needs_smtputf8: bool = False, bad_parameters: bool = False
    ) -> None:
        super().__init__(message)
        self.needs_smtputf8 = needs_smtputf8
        self.bad_parameters = bad_parameters


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: local part exactly as the peer meant it (quotes removed) and a domain.

    ``domain`` is lower-cased and without a trailing dot; an address literal keeps its brackets.
    """

    local: str
    domain: str

    @property
    def is_literal(self) -> bool:
        return self.domain.startswith("[")

    @property
    def needs_smtputf8(self) -> bool:
        return not (self.local.isascii() and self.domain.isascii())

    def __str__(self) -> str:
        local = self.local
        if not (_DOT_ATOM_ASCII.match(local) or _DOT_ATOM_UTF8.match(local)):
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{local}@{self.domain}"

    def key(self) -> str:
        """The form used to look the address up: case-insensitive, as nearly every MTA treats it."""
        return f"{self.local.lower()}@{self.domain}"


def normalise_domain(domain: str) -> str:
    domain = domain.strip().lower()
    domain = domain.removesuffix(".")
    return domain


def parse_address_literal(text: str) -> str:
    """``[1.2.3.4]``, ``[IPv6:...]`` or ``[tag:content]`` (RFC 5321 §4.1.3), in canonical form.

    IP addresses are rewritten canonically (``[IPv6:0::1]`` becomes ``[IPv6:::1]``) so that one
    host has one spelling when todoku compares or routes by it.
    """
    if not (text.startswith("[") and text.endswith("]")) or len(text) < 3:
        raise AddressError("Domain literal syntax error")
    inner = text[1:-1]
    if inner[:5].upper() == "IPV6:":
        try:
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:]).compressed}]"
        except ValueError:
            raise AddressError("Bad IPv6 address literal") from None
    if ":" not in inner:
        try:
            return f"[{ipaddress.IPv4Address(inner)}]"
        except ValueError:
            raise AddressError("Bad IPv4 address literal") from None
    match = _GENERAL_LITERAL.match(inner)
    if match is None:
        raise AddressError("Domain literal syntax error")
    return f"[{match.group(1).lower()}:{match.group(2)}]"


def parse_domain(text: str, *, smtputf8: bool) -> str:
    if text.startswith("["):
        return parse_address_literal(text)
    domain = normalise_domain(text)
    if not domain:
        raise AddressError("Domain name missing")
    if len(domain.encode("utf-8")) > MAX_DOMAIN:
        raise AddressError("Domain name too long")
    if not domain.isascii():
        if not smtputf8:
            raise AddressError("Non-ASCII domain requires SMTPUTF8", needs_smtputf8=True)
        # RFC 6531 §3.3 / RFC 5890: U-labels are NFC; a compatibility form (full-width letters,
        # a look-alike dot) would name another domain once a resolver maps it, so refuse it.
        if unicodedata.normalize("NFKC", domain).lower() != domain or any(
            c in _DOT_LOOKALIKES for c in domain
        ):
            raise AddressError("Domain name is not in normalised form")
    for label in domain.split("."):
        if not _LABEL.match(label):
            raise AddressError("Domain name syntax error")
    return domain


def _parse_local_part(text: str, *, smtputf8: bool) -> str:
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise AddressError("Quoted local part syntax error")
        body = text[1:-1]
        out = []
        escaped = False
        for char in body:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                raise AddressError("Quoted local part syntax error")
            else:
                out.append(char)
        if escaped:
            raise AddressError("Quoted local part syntax error")
        local = "".join(out)
    else:
        pattern = _DOT_ATOM_UTF8 if smtputf8 else _DOT_ATOM_ASCII
        if not pattern.match(text):
            if not smtputf8 and not text.isascii():
                raise AddressError("Non-ASCII local part requires SMTPUTF8", needs_smtputf8=True)
            raise AddressError("Local part syntax error")
        local = text
    if not local.isascii() and not smtputf8:
        raise AddressError("Non-ASCII local part requires SMTPUTF8", needs_smtputf8=True)
    if any(ord(c) < 32 or ord(c) == 127 for c in local):
        raise AddressError("Control character in address")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise AddressError("Local part too long")
    return local


def _split_mailbox(text: str) -> tuple[str, str]:
    """Split at the ``@`` that separates local part and domain (the last one outside quotes)."""
    in_quotes = False
    escaped = False
    at = -1
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and in_quotes:
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == "@" and not in_quotes:
            at = index
    if at < 0:
        raise AddressError("Domain name required")
    return text[:at], text[at + 1 :]


def parse_mailbox(text: str, *, smtputf8: bool = True) -> Address:
    """Parse ``local@domain`` (no angle brackets)."""
    local_text, domain_text = _split_mailbox(text)
    if not local_text:
        raise AddressError("Local part missing")
    return Address(
        _parse_local_part(local_text, smtputf8=smtputf8),
        parse_domain(domain_text, smtputf8=smtputf8),
    )


def _strip_source_route(inner: str) -> str:
    # RFC 5321 §4.1.2 A-d-l: "@one,@two:mailbox". Servers MUST accept and SHOULD ignore it (App. C).
    if inner.startswith("@"):
        colon = inner.find(":")
        if colon < 0:
            raise AddressError("Source route syntax error")
        for hop in inner[:colon].split(","):
            if not hop.startswith("@"):
                raise AddressError("Source route syntax error")
            parse_domain(hop[1:], smtputf8=True)  # ignored, but it must still be a domain
        return inner[colon + 1 :]
    return inner


@dataclass(frozen=True, slots=True)
class PathArgs:
    """A MAIL FROM or RCPT TO argument: the path (None for ``<>``) and ESMTP parameters."""

    address: Address | None
    raw: str
    params: dict[str, str | None] = field(default_factory=dict)


def split_path_and_params(arg: str) -> tuple[str, str]:
    """Separate ``<path>`` from the parameters after it; tolerate a missing ``<>`` (as Postfix)."""
    arg = arg.strip()
    if arg.startswith("<"):
        in_quotes = False
        escaped = False
        for index, char in enumerate(arg):
            if escaped:
                escaped = False
            elif char == "\\" and in_quotes:
                escaped = True
            elif char == '"':
                in_quotes = not in_quotes
            elif char == ">" and not in_quotes:
                return arg[1:index], arg[index + 1 :]
        raise AddressError("Missing '>' in address")
    path, _, rest = arg.partition(" ")
    return path, rest


def parse_params(text: str) -> dict[str, str | None]:
    """RFC 5321 §4.1.2 esmtp-param list.

    A keyword given twice is refused: honouring either value would be a guess at what the client
    meant (two SIZE values, two RET values).
    """
    params: dict[str, str | None] = {}
    for word in text.split(" "):
        if not word:
            continue
        name, eq, value = word.partition("=")
        if not _ESMTP_KEYWORD.match(name) or (eq and not _ESMTP_VALUE.match(value)):
            raise AddressError(f"Bad parameter syntax: {word[:40]}", bad_parameters=True)
        key = name.upper()
        if key in params:
            raise AddressError(f"Duplicate parameter: {key}", bad_parameters=True)
        params[key] = value if eq else None
    return params


def parse_path(arg: str, *, smtputf8: bool, allow_null: bool) -> PathArgs:
    path_text, rest = split_path_and_params(arg)
    params = parse_params(rest)
    utf8 = smtputf8 or "SMTPUTF8" in params
    if path_text == "":
        if not allow_null:
            raise AddressError("Recipient address required")
        return PathArgs(None, "", params)
    if len(path_text) > MAX_PATH:
        raise AddressError("Address too long")
    mailbox = _strip_source_route(path_text)
    if "@" not in mailbox and not mailbox.startswith('"') and mailbox.lower() == "postmaster":
        # RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted.
        return PathArgs(Address("postmaster", ""), path_text, params)
    return PathArgs(parse_mailbox(mailbox, smtputf8=utf8), path_text, params)


def has_control_character(text: str) -> bool:
    """A C0 or C1 control character, DEL, or a Unicode line or paragraph separator: none of
    them belongs in an envelope identifier, and CR or LF would break a report's header field."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in text)


def decode_xtext(text: str) -> str:
    """RFC 3461 §4: xtext with ``+HH`` escapes, as used in ENVID and ORCPT.

    The escaped octets are read as UTF-8 when they form it (what ``encode_xtext`` writes, and
    what RFC 6533 clients send), else one character per octet, so decoding never fails on them.
    What they decode to must be printable (RFC 3461 §4.2, §4.4): a control character (``+0D``,
    ``+0A``, ``+00``, ``+1B``...) is refused, since it would end up in a report's header fields.
    """
    out = bytearray()
    index = 0
    while index < len(text):
        char = text[index]
        if char == "+":
            hexpart = text[index + 1 : index + 3]
            if len(hexpart) != 2 or not all(c in "0123456789ABCDEFabcdef" for c in hexpart):
                raise AddressError("Bad xtext encoding")
            out.append(int(hexpart, 16))
            index += 3
            continue
        if not _XTEXT_CHAR.match(char):
            raise AddressError("Bad xtext encoding")
        out += char.encode("ascii")
        index += 1
    try:
        decoded = out.decode("utf-8")
    except UnicodeDecodeError:
        decoded = out.decode("latin-1")
    if has_control_character(decoded):
        raise AddressError("Control character in xtext")
    return decoded


def encode_xtext(text: str) -> str:
    return "".join(
        c if _XTEXT_CHAR.match(c) else "".join(f"+{b:02X}" for b in c.encode("utf-8")) for c in text
    )
