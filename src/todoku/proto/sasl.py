"""SASL mechanisms PLAIN (RFC 4616) and LOGIN, shared by SMTP AUTH (RFC 4954) and POP3 AUTH (RFC 5034).

Each mechanism is a small step machine: feed it the client's decoded responses, and it either asks
for more (a challenge to send) or finishes with credentials. Checking them is the caller's job.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")


class SaslError(ValueError):
    """The client's response could not be decoded; the exchange is over."""


@dataclass(frozen=True, slots=True)
class Credentials:
    mechanism: str
    username: str
    password: str
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send this (base64-encoded) challenge and feed back the next response."""

    data: bytes


def decode_response(line: str) -> bytes:
    if line == "=":  # RFC 4954 §4: "=" is an empty initial response
        return b""
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslError("Invalid base64 data") from exc


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslError("Credentials are not UTF-8") from exc


class SaslExchange:
    """One authentication exchange for one mechanism."""

    def __init__(self, mechanism: str) -> None:
        mechanism = mechanism.upper()
        if mechanism not in MECHANISMS:
            raise SaslError("Unrecognized authentication type")
        self.mechanism = mechanism
        self._username: str | None = None

    def start(self, initial: bytes | None) -> Challenge | Credentials:
        if self.mechanism == "PLAIN":
            if initial is None:
                return Challenge(b"")
            return self._plain(initial)
        if initial is None:
            return Challenge(b"Username:")
        return self.step(initial)

    def step(self, response: bytes) -> Challenge | Credentials:
        if self.mechanism == "PLAIN":
            return self._plain(response)
        if self._username is None:
            self._username = _text(response)
            return Challenge(b"Password:")
        return Credentials("LOGIN", self._username, _text(response))

    @staticmethod
    def _plain(data: bytes) -> Credentials:
        parts = data.split(b"\0")
        if len(parts) != 3 or not parts[1]:
            raise SaslError("Invalid PLAIN credentials")
        authzid, authcid, password = (_text(p) for p in parts)
        return Credentials("PLAIN", authcid, password, authzid)
