"""Who lives here: local domains, users, aliases and postmaster; and who may send as whom.

Recipient resolution follows aliases (to any depth up to a limit, detecting cycles). An alias takes
precedence over a user of the same address, as virtual aliases do in Postfix. ``postmaster`` at
every local domain always works (RFC 5321 §4.5.1): an alias or a user if there is one, else the
mailbox ``postmaster@<first domain>``, which an administrator can read after
``todoku user add postmaster@<domain>``. Only the exact local part ``postmaster`` (any case) is
that mailbox; ``"postmaster@anything"@<domain>`` is an unknown user like any other.

The users and aliases are the store's (``store.directory.Directory``, whose lookups are async:
they may wait for storage, never on the event loop); this module is the policy on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from todoku.proto.smtp.address import Address
from todoku.store.directory import Directory as Accounts

MAX_ALIAS_DEPTH = 10


@dataclass(frozen=True, slots=True)
class Resolution:
    mailboxes: tuple[str, ...] = ()  # local mailboxes
    remote: tuple[str, ...] = ()  # forwarding targets elsewhere

    @property
    def found(self) -> bool:
        return bool(self.mailboxes or self.remote)


def is_postmaster(address: Address) -> bool:
    """The address names postmaster: ``<postmaster>`` or local part ``postmaster`` in any case."""
    return address.local.lower() == "postmaster"


class Directory:
    def __init__(self, accounts: Accounts, domains: tuple[str, ...]) -> None:
        self.accounts = accounts  # the store's users and aliases (AUTH reads them too)
        self.domains = domains

    def is_local(self, address: Address) -> bool:
        return address.domain == "" or address.domain in self.domains

    async def resolve(self, address: Address) -> Resolution:
        key = address.key() if address.domain else f"postmaster@{self.domains[0]}"
        mailboxes: list[str] = []
        remote: list[str] = []
        seen: set[str] = set()
        await self._expand(key, 0, seen, mailboxes, remote)
        # RFC 5321 §4.5.1: the reserved mailbox is exactly the local part "postmaster" (any
        # case). A quoted local part that merely starts with "postmaster@" is another, unknown
        # mailbox: the key's first "@" is not the local part's end when the local part holds one.
        if not mailboxes and not remote and is_postmaster(address):
            fallback = f"postmaster@{self.domains[0]}"
            if fallback != key:
                await self._expand(fallback, 0, seen, mailboxes, remote)
            if not mailboxes and not remote:
                mailboxes.append(fallback)
        return Resolution(tuple(dict.fromkeys(mailboxes)), tuple(dict.fromkeys(remote)))

    async def _expand(
        self, key: str, depth: int, seen: set[str], mailboxes: list[str], remote: list[str]
    ) -> None:
        if key in seen or depth > MAX_ALIAS_DEPTH:
            return
        seen.add(key)
        domain = key.rsplit("@", 1)[-1]
        if domain not in self.domains:
            remote.append(key)
            return
        targets = await self.accounts.alias_targets(key)
        if targets:
            for target in targets:
                if target == key:
                    if await self.accounts.get_user(key) is not None:
                        mailboxes.append(key)
                    continue
                await self._expand(target, depth + 1, seen, mailboxes, remote)
            return
        if await self.accounts.get_user(key) is not None:
            mailboxes.append(key)

    async def may_send_as(self, user: str, sender: Address | None) -> bool:
        """A user may send as their own address and as any alias that delivers to them."""
        if sender is None:
            return True
        key = sender.key()
        if key == user.lower():
            return True
        if sender.domain not in self.domains:
            return False
        return user.lower() in (await self.resolve(sender)).mailboxes
