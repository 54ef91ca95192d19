"""Bounce analysis: why could this mail not be delivered, and what can the sender do?

The package is pure and offline: it reads bounce messages (RFC 3464 DSNs and the free-text
reports of many MTAs) or the SMTP replies our own outbound queue receives, reduces them to
evidence (recipient, status, reply code, remote MTA, diagnostic text), classifies the evidence
into one reason word of the taxonomy (Sisimai 5.2 vocabulary, so results can be compared) and
explains the reason in plain English or Japanese.

Public API (the outbound queue codes against these two; keep the signatures stable):

* ``classify_reply(code, enhanced, text) -> reason``
* ``explain_reason(reason, lang, **facts) -> (cause, remedy)``
"""

from __future__ import annotations

from todoku.bounce.classify import classify_reply
from todoku.bounce.explain import REASONS, explain_reason

__all__ = ["REASONS", "classify_reply", "explain_reason"]
