"""Taking a report out of its wrapping: gzip (RFC 1952), zip, or none, with bounds on what goes
in and what comes out, so a few kilobytes cannot unpack into gigabytes (a "zip bomb")."""

from __future__ import annotations

import io
import zipfile
import zlib

MAX_PACKED = 10 * 1024 * 1024  # bytes of one attachment, compressed
MAX_UNPACKED = 32 * 1024 * 1024  # bytes of one report once unpacked
MAX_ZIP_MEMBERS = 16  # a report zip holds one file; a few more are tolerated, then refused
_PIECE = 64 * 1024


class ReportError(Exception):
    """A report that cannot be read, with one line that says why."""


def gunzip(data: bytes, limit: int = MAX_UNPACKED) -> bytes:
    """Decompress gzip data, refusing more than ``limit`` bytes of output."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while pending:
            out += decompressor.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise ReportError(f"unpacks to more than {limit} bytes")
            pending = decompressor.unconsumed_tail
            if decompressor.eof:
                break
    except zlib.error as exc:
        raise ReportError(f"not valid gzip data ({exc})") from None
    if not decompressor.eof:
        raise ReportError("gzip data cut short")
    return bytes(out)


def unzip(data: bytes, limit: int = MAX_UNPACKED) -> tuple[str, bytes]:
    """The first file of a zip archive (name, content), its size checked as it is read, not
    only as the archive declares it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReportError(f"not a zip archive ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            raise ReportError("an empty zip archive")
        if len(archive.infolist()) > MAX_ZIP_MEMBERS:
            raise ReportError(f"a zip archive of more than {MAX_ZIP_MEMBERS} files")
        member = members[0]
        if member.flag_bits & 0x1:
            raise ReportError("an encrypted zip archive")
        if member.file_size > limit:
            raise ReportError(f"unpacks to more than {limit} bytes")
        out = bytearray()
        try:
            with archive.open(member) as handle:
                while piece := handle.read(_PIECE):
                    out += piece
                    if len(out) > limit:
                        raise ReportError(f"unpacks to more than {limit} bytes")
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, zlib.error) as exc:
            raise ReportError(f"cannot unpack {member.filename[:80]!r} ({exc})") from None
        return member.filename, bytes(out)


def unpack(data: bytes, limit: int = MAX_UNPACKED) -> bytes:
    """The report inside ``data``: recognised by its first bytes (gzip 1f 8b, zip "PK"), else
    taken as it is."""
    if len(data) > MAX_PACKED:
        raise ReportError(f"larger than {MAX_PACKED} bytes")
    if data.startswith(b"\x1f\x8b"):
        return gunzip(data, limit)
    if data.startswith(b"PK\x03\x04"):
        return unzip(data, limit)[1]
    if len(data) > limit:
        raise ReportError(f"larger than {limit} bytes")
    return data
