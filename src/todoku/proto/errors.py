"""Errors raised by the protocol cores (after h11: local misuse vs remote misbehaviour)."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error a protocol core raises."""


class LocalProtocolError(ProtocolError):
    """The code driving the core used it wrongly (a bug in todoku, never the peer's fault)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol in a way that ends the conversation."""
