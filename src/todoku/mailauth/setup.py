"""Build the mail-authentication parts from the configuration (called by ``app.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from todoku.config import Config
from todoku.mailauth import dmarc
from todoku.mailauth.dkim import KeyStore, Signer
from todoku.mailauth.inbound import InboundPolicy
from todoku.mailauth.lookup import lookups_for


def inbound_policy(config: Config) -> InboundPolicy | None:
    """The MX's checks, or None when ``[policy]`` turns every one of them off (then the MX
    path does no extra work at all)."""
    policy = config.policy
    active = (
        policy.authentication
        or policy.dnsbl
        or policy.max_connections_per_minute
        or policy.max_messages_per_minute
        or policy.greylist
    )
    if not active:
        return None
    if policy.authentication:
        # DMARC's organisational domains: a newer list in the data directory, if the operator
        # put one there, else the bundled one; read now rather than in the first SMTP session.
        used = dmarc.use_public_suffix_list(config.data_dir / dmarc.PSL_FILE_NAME)
        logging.getLogger("todoku.dmarc").info("public suffix list: %s", used)
    return InboundPolicy(policy, lookups_for(config.nameservers), config.hostname)


def key_store(config: Config) -> KeyStore:
    return KeyStore(config.data_dir, grace=config.policy.dkim_rotation_grace)


def dkim_signer(config: Config) -> Signer:
    """The signer for the queue, with every local domain's keys made now if missing (so the
    first start creates them, and ``todoku dns-records`` can print them right away).

    Keys made here are logged in one line that names the command printing their DNS records:
    until they are published, receivers cannot check the signatures (a backup restored into a
    new data directory makes them too, when the backup had none)."""
    store = key_store(config)
    # KeyStore makes a domain's keys when its state file is missing (mailauth.dkim docstring).
    new = [d for d in config.domains if not (store.root / d / "state.json").exists()]
    signer = Signer(store, config.domains)
    signer.ensure_all()
    if new:
        selectors = [s for d in new for s in signer.keys(d).active.selectors]
        logging.getLogger("todoku.dkim").info(
            "made DKIM keys for %s (selectors %s) in %s: publish them, run 'todoku dns-records'"
            " for the DNS records",
            ", ".join(new),
            ", ".join(dict.fromkeys(selectors)),
            store.root,
        )
    return signer


def prepare_dkim_keys(config: Config) -> None:
    """Make missing DKIM keys (first start) and apply a due rotation step; runs in a worker
    thread after the listeners are up, so RSA key generation never delays start-up. A problem
    is logged, never fatal: the server still receives mail without its signing keys."""
    try:
        dkim_signer(config)
    except Exception:
        logging.getLogger("todoku.dkim").exception(
            "cannot prepare DKIM keys in %s", config.data_dir / "dkim"
        )


def outbound_signer(config: Config) -> Callable[[bytes, str], bytes]:
    """The queue runner's ``signer`` hook: (stored message, envelope sender) → DKIM-Signature
    fields to send in front of it, or b"" (not a local domain). The queue calls it only for
    authenticated submissions (``QueueEntry.submitted_by``)."""
    return Signer(key_store(config), config.domains).outbound_prefix
