"""The header From of authenticated submissions: which addresses it names, and whether the
login may use them.

The envelope sender of a submission is checked at MAIL FROM (``Directory.may_send_as``), but the
address a reader sees, and the one DMARC aligns with and DKIM signs for, is the header ``From:``
(RFC 5322 §3.6.2). So at the end of DATA every address in every From field must pass the same
rule, or the message is refused. The From text is the client's: it is read by a small strict
parser that refuses anything it cannot read without guessing (nested routes, two addresses run
together, an ``@`` in a bare display name), rather than by a lenient one that another program
might read differently. Bounded: at most ``MAX_FROM_BYTES`` of From text and
``MAX_FROM_ADDRESSES`` addresses, in one linear pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from todoku.policy.directory import Directory
from todoku.proto.smtp.address import Address, AddressError, parse_mailbox
from todoku.proto.smtp.codes import Reply

MAX_FROM_BYTES = 8192  # all From fields together, unfolded; RFC 5322 §2.1.1 lines are <= 998
MAX_FROM_ADDRESSES = 32
MAX_COMMENT_DEPTH = 8

_SPECIALS = frozenset("<>,:;@.")


@dataclass(frozen=True, slots=True)
class FromHeader:
    """The addresses of the From fields, or why they could not be read (``problem``)."""

    addresses: tuple[Address, ...] = ()
    problem: str = ""


class _Unreadable(ValueError):
    pass


def from_fields(header: bytes) -> list[bytes]:
    """The unfolded values of every From field in ``header`` (a header section with CRLF line
    ends, as the SMTP core stores it); raises _Unreadable past ``MAX_FROM_BYTES``."""
    values: list[bytes] = []
    current: list[bytes] | None = None
    size = 0
    for line in header.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                size += len(line)
                if size > MAX_FROM_BYTES:
                    raise _Unreadable(f"the From: field is longer than {MAX_FROM_BYTES} bytes")
                current.append(line)
            continue
        if current is not None:
            values.append(b"".join(current))
            current = None
        name, sep, value = line.partition(b":")
        if sep and name.rstrip(b" \t").lower() == b"from":
            size += len(value)
            if size > MAX_FROM_BYTES:
                raise _Unreadable(f"the From: field is longer than {MAX_FROM_BYTES} bytes")
            current = [value]
    if current is not None:
        values.append(b"".join(current))
    return values


def _tokens(text: str) -> list[tuple[str, str]]:
    """RFC 5322 §3.2 lexical tokens: ("q", quoted content), ("l", domain literal), ("a", atom),
    or (special, special). Comments and white space separate tokens and are dropped."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\r\n":
            i += 1
        elif char == "(":
            depth = 0
            while i < n:
                c = text[i]
                if c == "\\":
                    i += 1
                elif c == "(":
                    depth += 1
                    if depth > MAX_COMMENT_DEPTH:
                        raise _Unreadable("comments nested too deep")
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            if depth != 0:
                raise _Unreadable("unclosed comment")
            i += 1
        elif char == '"':
            content: list[str] = []
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                    if i == n:
                        break
                content.append(text[i])
                i += 1
            if i >= n:
                raise _Unreadable("unclosed quoted string")
            out.append(("q", "".join(content)))
            i += 1
        elif char == "[":
            end = text.find("]", i)
            if end < 0 or "[" in text[i + 1 : end] or "\\" in text[i + 1 : end]:
                raise _Unreadable("bad domain literal")
            out.append(("l", text[i : end + 1]))
            i = end + 1
        elif char in _SPECIALS:
            out.append((char, char))
            i += 1
        elif char in ')]\\"' or ord(char) < 32 or ord(char) == 127:
            raise _Unreadable(f"unexpected {char!r}")
        else:
            start = i
            while i < n and text[i] not in _SPECIALS and text[i] not in ' \t\r\n()"[]\\':
                if ord(text[i]) < 32 or ord(text[i]) == 127:
                    raise _Unreadable("control character")
                i += 1
            out.append(("a", text[start:i]))
    return out


def _addr_spec(tokens: list[tuple[str, str]]) -> Address:
    """local-part "@" domain (RFC 5322 §3.4.1): a dot-atom or one quoted string, then a
    dot-atom or a domain literal; checked again by the SMTP address parser."""
    if tokens.count(("@", "@")) != 1:
        raise _Unreadable("not one address")
    at = tokens.index(("@", "@"))
    local, domain = tokens[:at], tokens[at + 1 :]
    if len(local) == 1 and local[0][0] == "q":
        quoted = local[0][1].replace("\\", "\\\\").replace('"', '\\"')
        local_text = f'"{quoted}"'
    elif (dotted := _dot_atom(local)) is not None:
        local_text = dotted
    else:
        raise _Unreadable("bad local part")
    if len(domain) == 1 and domain[0][0] == "l":
        domain_text = domain[0][1]
    elif (dotted := _dot_atom(domain)) is not None:
        domain_text = dotted
    else:
        raise _Unreadable("bad domain")
    try:
        return parse_mailbox(f"{local_text}@{domain_text}")
    except AddressError as exc:
        raise _Unreadable(str(exc)) from exc


def _dot_atom(tokens: list[tuple[str, str]]) -> str | None:
    """The text of atoms joined by single dots (RFC 5322 §3.2.3 dot-atom), or None."""
    if (
        tokens
        and all(kind == ("a" if k % 2 == 0 else ".") for k, (kind, _) in enumerate(tokens))
        and len(tokens) % 2
    ):
        return "".join(value for _, value in tokens)
    return None


def _mailbox(tokens: list[tuple[str, str]]) -> Address:
    """name-addr (a phrase of atoms, quoted strings and dots, then <addr-spec>) or addr-spec."""
    if ("<", "<") not in tokens:
        return _addr_spec(tokens)
    start = tokens.index(("<", "<"))
    if tokens[-1] != (">", ">") or any(kind not in ("a", "q", ".") for kind, _ in tokens[:start]):
        raise _Unreadable("bad display name or angle brackets")
    inner = tokens[start + 1 : -1]
    if any(kind in ("<", ">", ":", ",") for kind, _ in inner):
        raise _Unreadable("a source route or a second address inside <>")
    return _addr_spec(inner)


def parse_from(header: bytes) -> FromHeader:
    """Every address of every From field of ``header``; groups (RFC 5322 §3.4) are opened."""
    try:
        addresses: list[Address] = []
        for value in from_fields(header):
            text = value.decode("utf-8", "replace")
            item: list[tuple[str, str]] = []
            in_group = False
            before = len(addresses)
            for token in [*_tokens(text), (",", ",")]:
                kind = token[0]
                if kind == ":" and not in_group and "<" not in (k for k, _ in item):
                    if any(k not in ("a", "q", ".") for k, _ in item):
                        raise _Unreadable("bad group name")
                    in_group, item = True, []
                elif kind in (",", ";"):
                    if kind == ";":
                        if not in_group:
                            raise _Unreadable("';' outside a group")
                        in_group = False
                    if item:
                        addresses.append(_mailbox(item))
                        if len(addresses) > MAX_FROM_ADDRESSES:
                            raise _Unreadable(f"more than {MAX_FROM_ADDRESSES} addresses")
                    item = []
                else:
                    item.append(token)
            if in_group:
                raise _Unreadable("unclosed group")
            if len(addresses) == before:
                raise _Unreadable("no address")
        return FromHeader(tuple(addresses))
    except _Unreadable as exc:
        return FromHeader(problem=str(exc))


async def check_from(directory: Directory, user: str, header: bytes | None) -> Reply | None:
    """The refusal for a submission by ``user`` whose header section (None: longer than the
    header scan reads) has a From field naming an address ``user`` may not send as; None when
    every From address is one of theirs, or there is no From field at all."""
    if header is None:
        return from_unreadable("the header section is too long to check")
    parsed = parse_from(header)
    if parsed.problem:
        return from_unreadable(parsed.problem)
    for address in parsed.addresses:
        if not await directory.may_send_as(user, address):
            return from_not_owned(address, user)
    return None


def from_unreadable(problem: str) -> Reply:
    return Reply(550, "5.6.0", f"Message rejected: cannot read the From: header field ({problem})")


def from_not_owned(address: Address, user: str) -> Reply:
    # The same rule as MAIL FROM (codes.sender_not_owned), for the address the reader sees.
    return Reply(
        550,
        "5.7.1",
        f"Message rejected: From: <{address}> is not owned by user {user};"
        f" use <{user}> or an alias that delivers to it",
    )
