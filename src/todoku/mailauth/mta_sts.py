"""Our own MTA-STS policy (RFC 8461 §3.2): the text the https listener serves at
``/.well-known/mta-sts.txt`` (todoku.web), and its id for the ``_mta-sts`` TXT record
(``todoku dns-records``).

The id is a hash of the policy text, so it changes exactly when the policy does: senders
re-fetch a policy when the id they see in DNS differs from the one they cached (RFC 8461 §3.3),
and an id that changed on every ``dns-records`` run (the time of the run, before) asked
administrators to republish a record for nothing.
"""

from __future__ import annotations

import hashlib

from todoku.config import Config


def policy_text(config: Config) -> str:
    """The policy file: ``key: value`` lines ending in CRLF (RFC 8461 §3.2), one ``mx`` line for
    the configured host name (the name every local domain's MX points at, ``dns-records``)."""
    lines = [
        "version: STSv1",
        f"mode: {config.web.mta_sts_mode}",
        f"mx: {config.hostname}",
        f"max_age: {config.web.mta_sts_max_age}",
    ]
    return "".join(f"{line}\r\n" for line in lines)


def policy_id(text: str) -> str:
    """RFC 8461 §3.1: ``id`` is 1 to 32 letters and digits; 32 hex digits of SHA-256 (128 bits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
