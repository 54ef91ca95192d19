"""Where bounce messages come from: single RFC 5322 files, mbox files, Maildir folders, stdin.

Reading is the only I/O in the package; each input yields (name, bytes) or (name, error) so the
caller can report an unreadable file and go on with the others.

Paths are handled with ``os`` and ``os.path`` rather than pathlib: ``todoku explain`` is often run
over a whole folder from a script, and pathlib (with urllib.parse, fnmatch and ntpath behind it)
was a tenth of its start-up imports.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Input:
    name: str  # the file, "FILE#N" for the Nth message of an mbox, "-" for stdin
    data: bytes = b""
    error: str = ""  # set when the input could not be read


# An mbox message starts with a "From " envelope line after a blank line (RFC 4155 §2).
_MBOX_SEPARATOR = re.compile(rb"\n\n(?=From \S*[ \t][^\n]*\n)")
_ESCAPED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)


def split_mbox(data: bytes) -> list[bytes]:
    """Messages of an mbox (a lone message with or without a From_ line gives itself)."""
    if not data.startswith(b"From "):
        return [data]
    parts = _MBOX_SEPARATOR.split(data)
    if len(parts) == 1:
        return [data]
    # mboxrd quoting: ">From " in a body was "From " (one '>' is removed).
    return [_ESCAPED_FROM.sub(rb"\1", part) for part in parts if part.strip()]


def _from_bytes(name: str, data: bytes) -> Iterator[Input]:
    messages = split_mbox(data)
    if len(messages) == 1:
        yield Input(name, messages[0])
        return
    for index, message in enumerate(messages, 1):
        yield Input(f"{name}#{index}", message)


def _read(path: str) -> Iterator[Input]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        yield Input(path, error=f"cannot read: {error.strerror or error}")
        return
    yield from _from_bytes(path, data)


def _files_in(folder: str) -> list[str]:
    """The regular, not hidden files directly in ``folder``, by name."""
    with os.scandir(folder) as entries:
        return sorted(entry.path for entry in entries
                      if not entry.name.startswith(".") and entry.is_file())


def _folder_files(folder: str) -> list[str]:
    """A Maildir's cur/ and new/ (never tmp/: half-written files), or every file below a folder."""
    maildir = [os.path.join(folder, sub) for sub in ("cur", "new")]
    if any(os.path.isdir(sub) for sub in maildir):
        return sorted(p for sub in maildir if os.path.isdir(sub) for p in _files_in(sub))
    found: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "tmp" and not d.startswith("."))
        found.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith("."))
    return found


def _clean(path: str) -> str:
    """A path as the user typed it, without "." parts and doubled slashes ("./a//b" → "a/b"):
    the name printed for each message, as pathlib would print it ("..", which may cross a
    symbolic link, stays)."""
    parts = [part for part in path.split("/") if part and part != "."]
    joined = "/".join(parts)
    return "/" + joined if path.startswith("/") else joined or "."


def read_inputs(arguments: list[str]) -> Iterator[Input]:
    for given in arguments:
        if given == "-":
            yield from _from_bytes("-", sys.stdin.buffer.read())
            continue
        argument = _clean(given)
        if os.path.isdir(argument):
            try:
                files = _folder_files(argument)
            except OSError as error:
                yield Input(given, error=f"cannot read folder: {error.strerror or error}")
                continue
            for file in files:
                yield from _read(file)
        elif os.path.lexists(argument):
            yield from _read(argument)
        else:
            yield Input(given, error="no such file or folder")
