"""Where bounce messages come from: single RFC 5322 files, mbox files, Maildir folders, stdin.

Reading is the only I/O in the package; each input yields (name, bytes) or (name, error) so the
caller can report an unreadable file and go on with the others. A message is named by its path
as pathlib prints it ("./bounces//1.eml" -> "bounces/1.eml").
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


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


def _read(path: Path) -> Iterator[Input]:
    try:
        data = path.read_bytes()
    except OSError as error:
        yield Input(str(path), error=f"cannot read: {error.strerror or error}")
        return
    yield from _from_bytes(str(path), data)


def _files_in(folder: Path) -> list[Path]:
    """The regular, not hidden files directly in ``folder``, by name.

    os.scandir rather than Path.iterdir: a directory entry knows its type, where
    Path.is_file() makes a stat() call per file (listing the corpus's 520 files: 3.4 ms
    against 1.0 ms of CPU, best of 9)."""
    with os.scandir(folder) as entries:
        names = sorted(
            entry.name for entry in entries if not entry.name.startswith(".") and entry.is_file()
        )
    return [folder / name for name in names]


def _folder_files(folder: Path) -> list[Path]:
    """A Maildir's cur/ and new/ (never tmp/: half-written files), or every file below a folder."""
    maildir = [sub for sub in (folder / "cur", folder / "new") if sub.is_dir()]
    if maildir:
        return sorted(path for sub in maildir for path in _files_in(sub))
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "tmp" and not d.startswith("."))
        found.extend(Path(root, name) for name in sorted(names) if not name.startswith("."))
    return found


def read_inputs(arguments: list[str]) -> Iterator[Input]:
    for given in arguments:
        if given == "-":
            yield from _from_bytes("-", sys.stdin.buffer.read())
            continue
        path = Path(given)
        if path.is_dir():
            try:
                files = _folder_files(path)
            except OSError as error:
                yield Input(given, error=f"cannot read folder: {error.strerror or error}")
                continue
            for file in files:
                yield from _read(file)
        elif path.exists() or path.is_symlink():
            yield from _read(path)
        else:
            yield Input(given, error="no such file or folder")
