"""DKIM (RFC 6376) keys, rotation, signing and verification.

Keys live under ``<data_dir>/dkim/``: one directory per local domain holding ``<selector>.key``
files (mode 0600) and ``state.json``. Every domain has a key *set*: an Ed25519 key (RFC 8463) and
an RSA-2048 key, and mail is signed with both, because receivers that do not know Ed25519 yet
ignore that signature and check the RSA one (RFC 8463 §4 suggests dual signing).

Selectors are named by the date the set was made: ``20261128e`` (Ed25519) and ``20261128r``
(RSA); a second set on the same day gets ``20261128be`` / ``20261128br``.

Rotation (``todoku dkim rotate DOMAIN``) is two-step, so that no receiver ever sees a signature
whose key is not yet in DNS: the new set becomes *pending* and is printed by
``todoku dns-records`` next to the active one; signing switches to it only after the grace
period (default 3 days, enough for the administrator to publish it and for caches to expire).
The old set is then *retired*: still printed, so that mail signed with it and still in transit
verifies, until a further grace period has passed. The switch happens whenever keys are loaded
(start-up, and before each signing run via ``KeyRing.refresh``), with the time passed in.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

DEFAULT_GRACE = 3 * 86400.0
MAX_SIGNATURES = 5  # verified per message: bounded work whatever a sender adds
RSA_BITS = 2048
ED25519 = "ed25519"
RSA = "rsa"
_ALGORITHM = {ED25519: b"ed25519-sha256", RSA: b"rsa-sha256"}
# Headers we sign: the ones that make up what the reader sees and what threads the message.
# "from" twice is over-signing: a second From added in transit breaks the signature (RFC 6376 §8.15).
SIGNED_HEADERS = (
    "from",
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


class DkimError(Exception):
    """A key problem worded for the administrator (bad domain, unreadable key file)."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str  # ED25519 or RSA
    private: bytes  # in the form dkimpy wants: base64 seed (Ed25519) or PKCS#1 PEM (RSA)
    public_b64: str  # the p= value of the DNS record

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record_text(self) -> str:
        """The TXT record value (RFC 6376 §3.6.1; k=ed25519 from RFC 8463 §4.2)."""
        return f"v=DKIM1; k={self.algorithm}; p={self.public_b64}"


@dataclass(frozen=True, slots=True)
class KeySet:
    stamp: str  # selector prefix, e.g. "20261128"
    created: float
    keys: tuple[DkimKey, ...]

    @property
    def selectors(self) -> tuple[str, ...]:
        return tuple(k.selector for k in self.keys)


@dataclass
class DomainKeys:
    domain: str
    active: KeySet
    pending: KeySet | None = None
    retired: list[tuple[KeySet, float]] = field(default_factory=list)  # (set, retired at)
    switch_after: float = 0.0  # when pending becomes active

    def published(self) -> list[tuple[DkimKey, str]]:
        """Every key that must be in DNS now, with its role: active, pending or retired."""
        out = [(k, "active") for k in self.active.keys]
        if self.pending is not None:
            out += [(k, "pending") for k in self.pending.keys]
        for retired, _ in self.retired:
            out += [(k, "retired") for k in retired.keys]
        return out


def _new_key(domain: str, selector: str, algorithm: str) -> tuple[DkimKey, bytes]:
    """A fresh key, and the bytes of its private-key file."""
    if algorithm == ED25519:
        private_ed = ed25519.Ed25519PrivateKey.generate()
        seed = private_ed.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        raw_public = private_ed.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        file_bytes = base64.b64encode(seed) + b"\n"
        return _key_from_file(
            domain, selector, algorithm, file_bytes, base64.b64encode(raw_public).decode()
        ), file_bytes
    private_rsa = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    pem = private_rsa.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return _key_from_file(domain, selector, algorithm, pem), pem


def _key_from_file(
    domain: str, selector: str, algorithm: str, data: bytes, public_b64: str | None = None
) -> DkimKey:
    if public_b64 is None:
        if algorithm == ED25519:
            seed = base64.b64decode(data.strip())
            public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
            public_b64 = base64.b64encode(
                public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            ).decode()
        else:
            private = serialization.load_pem_private_key(data, password=None)
            der = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            public_b64 = base64.b64encode(der).decode()
    private_value = data.strip() if algorithm == ED25519 else data
    return DkimKey(domain, selector, algorithm, private_value, public_b64)


def _write_private(path: Path, data: bytes) -> None:
    """Create the key file with mode 0600 from the start (never briefly world-readable)."""
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


class KeyStore:
    """The ``<data_dir>/dkim`` directory: creates, loads and rotates key sets."""

    def __init__(self, data_dir: Path, grace: float = DEFAULT_GRACE) -> None:
        self.root = data_dir / "dkim"
        self.grace = grace

    def _dir(self, domain: str) -> Path:
        domain = domain.lower().rstrip(".")
        if not domain or "/" in domain or domain.startswith("."):
            raise DkimError(f"{domain!r}: not a domain name")
        return self.root / domain

    def _make_set(self, domain: str, now: float, taken: set[str]) -> tuple[KeySet, dict[str, str]]:
        day = time.strftime("%Y%m%d", time.gmtime(now))
        stamp = day
        suffix = iter("bcdefghijklmnopqrstuvwxyz")
        while any(s.startswith(stamp) and len(s) == len(stamp) + 1 for s in taken):
            stamp = day + next(suffix)
        directory = self._dir(domain)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.chmod(directory, 0o700)
        keys = []
        files = {}
        for algorithm, letter in ((ED25519, "e"), (RSA, "r")):
            selector = f"{stamp}{letter}"
            key, data = _new_key(domain, selector, algorithm)
            _write_private(directory / f"{selector}.key", data)
            keys.append(key)
            files[selector] = algorithm
        return KeySet(stamp, now, tuple(keys)), files

    def _load_set(self, domain: str, entry: dict[str, object]) -> KeySet:
        directory = self._dir(domain)
        keys = []
        selectors = entry["selectors"]
        assert isinstance(selectors, dict)
        for selector, algorithm in selectors.items():
            path = directory / f"{selector}.key"
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DkimError(f"{path}: cannot read DKIM key: {exc.strerror}") from None
            keys.append(_key_from_file(domain, selector, str(algorithm), data))
        return KeySet(str(entry["stamp"]), float(entry["created"]), tuple(keys))  # type: ignore[arg-type]

    @staticmethod
    def _entry(key_set: KeySet) -> dict[str, object]:
        return {
            "stamp": key_set.stamp,
            "created": key_set.created,
            "selectors": {k.selector: k.algorithm for k in key_set.keys},
        }

    def _save(self, keys: DomainKeys) -> None:
        state = {
            "active": self._entry(keys.active),
            "pending": self._entry(keys.pending) if keys.pending else None,
            "switch_after": keys.switch_after,
            "retired": [{"set": self._entry(s), "retired_at": at} for s, at in keys.retired],
        }
        path = self._dir(keys.domain) / "state.json"
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(state, indent=1))
        os.replace(temp, path)

    def load(self, domain: str, now: float | None = None) -> DomainKeys:
        """The domain's keys, made on first use, with a due rotation step applied."""
        now = time.time() if now is None else now
        domain = domain.lower().rstrip(".")
        path = self._dir(domain) / "state.json"
        if not path.exists():
            key_set, _ = self._make_set(domain, now, set())
            keys = DomainKeys(domain, key_set)
            self._save(keys)
            return keys
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DkimError(f"{path}: unreadable DKIM state ({exc})") from None
        keys = DomainKeys(
            domain,
            self._load_set(domain, state["active"]),
            self._load_set(domain, state["pending"]) if state.get("pending") else None,
            [
                (self._load_set(domain, r["set"]), float(r["retired_at"]))
                for r in state.get("retired", [])
            ],
            float(state.get("switch_after", 0.0)),
        )
        if self._advance(keys, now):
            self._save(keys)
        return keys

    def _advance(self, keys: DomainKeys, now: float) -> bool:
        changed = False
        if keys.pending is not None and now >= keys.switch_after:
            keys.retired.append((keys.active, now))
            keys.active, keys.pending = keys.pending, None
            changed = True
        still = [(s, at) for s, at in keys.retired if now < at + self.grace]
        if len(still) != len(keys.retired):
            for gone, _ in keys.retired:
                if (gone, _) not in still:
                    for key in gone.keys:
                        (self._dir(keys.domain) / f"{key.selector}.key").unlink(missing_ok=True)
            keys.retired = still
            changed = True
        return changed

    def rotate(
        self, domain: str, now: float | None = None, grace: float | None = None
    ) -> DomainKeys:
        """Make a new pending set; signing switches to it after ``grace`` seconds."""
        now = time.time() if now is None else now
        keys = self.load(domain, now)
        if keys.pending is not None:
            raise DkimError(
                f"{domain}: a rotation is already pending (selectors {', '.join(keys.pending.selectors)})"
            )
        taken = set(keys.active.selectors) | {s for r, _ in keys.retired for s in r.selectors}
        keys.pending, _ = self._make_set(domain, now, taken)
        keys.switch_after = now + (self.grace if grace is None else grace)
        self._save(keys)
        return keys


# ----------------------------------------------------------------- signing


class Signer:
    """Signs outgoing mail for local domains; the queue calls it just before sending.

    ``signature_headers(message, domain)`` returns the DKIM-Signature fields to put in front of
    the message (Ed25519 first, then RSA), or b"" when the domain is not ours.
    """

    def __init__(
        self,
        store: KeyStore,
        domains: tuple[str, ...],
        algorithms: tuple[str, ...] = (ED25519, RSA),
    ) -> None:
        self.store = store
        self.domains = tuple(d.lower() for d in domains)
        self.algorithms = algorithms  # both by default; one only to test a verifier on each
        self._cache: dict[str, tuple[float, DomainKeys]] = {}

    def ensure_all(self, now: float | None = None) -> None:
        for domain in self.domains:
            self.keys(domain, now)

    def keys(self, domain: str, now: float | None = None) -> DomainKeys:
        now = time.time() if now is None else now
        cached = self._cache.get(domain)
        if (
            cached is not None
            and now - cached[0] < 60
            and (cached[1].pending is None or now < cached[1].switch_after)
        ):
            return cached[1]
        loaded = self.store.load(domain, now)
        self._cache[domain] = (now, loaded)
        return loaded

    def signing_domain(self, message: bytes, sender: str) -> str | None:
        """The From header's domain when it is local (that is what DMARC aligns with), else the
        envelope sender's domain when local, else None."""
        from_domain = header_from_domain(message)
        if from_domain and from_domain in self.domains:
            return from_domain
        sender_domain = sender.rpartition("@")[2].lower()
        return sender_domain if sender_domain in self.domains else None

    def outbound_prefix(self, message: bytes, sender: str) -> bytes:
        """The queue's hook: DKIM-Signature fields for a message leaving this server, or b""
        when no key can sign it. Whether to sign at all is not decided here from the message's
        text: the queue calls this only for entries the server recorded as an authenticated
        submission (``QueueEntry.submitted_by``). Header fields are written by the sender, and
        a Received field naming an authenticated sender is as easy to forge as any other."""
        try:
            return self.signature_headers(message, sender)
        except DkimError:
            return b""

    def signature_headers(self, message: bytes, sender: str, now: float | None = None) -> bytes:
        import dkim as dkimpy  # type: ignore[import-untyped]

        domain = self.signing_domain(message, sender)
        if domain is None:
            return b""
        present = {name.lower() for name in _header_names(message)}
        include = [h.encode() for h in SIGNED_HEADERS if h in present or h == "from"]
        out = b""
        for key in self.keys(domain, now).active.keys:
            if key.algorithm not in self.algorithms:
                continue
            signature = dkimpy.sign(
                message,
                key.selector.encode(),
                domain.encode(),
                key.private,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=_ALGORITHM[key.algorithm],
                include_headers=include,
            )
            out += signature.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return out


def _header_block(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    return message if end < 0 else message[: end + 2]


def _header_names(message: bytes) -> list[str]:
    names = []
    for line in _header_block(message).splitlines():
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().decode("ascii", "replace"))
    return names


def header_values(message: bytes, name: str) -> list[str]:
    """Unfolded values of every ``name:`` field in the header block."""
    values: list[str] = []
    current: list[bytes] | None = None
    wanted = name.lower().encode()
    for line in _header_block(message).splitlines():
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            values.append(b" ".join(p.strip() for p in current).decode("utf-8", "replace"))
            current = None
        field_name, sep, value = line.partition(b":")
        if sep and field_name.strip().lower() == wanted:
            current = [value]
    if current is not None:
        values.append(b" ".join(p.strip() for p in current).decode("utf-8", "replace"))
    return values


def header_from_domains(message: bytes) -> list[str]:
    """The domains of the RFC 5322 From field's addresses (usually exactly one)."""
    import email.utils

    domains = []
    for value in header_values(message, "from"):
        for _, address in email.utils.getaddresses([value]):
            if "@" in address:
                domains.append(address.rpartition("@")[2].lower().rstrip(".>"))
    return domains


def header_from_domain(message: bytes) -> str | None:
    domains = set(header_from_domains(message))
    return domains.pop() if len(domains) == 1 else None


# ----------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: str  # pass, fail, neutral, temperror, permerror, policy (RFC 8601 §2.7.1)
    domain: str  # d=
    selector: str  # s=
    algorithm: str  # a=
    detail: str = ""


def _tags(value: bytes) -> dict[bytes, bytes]:
    tags = {}
    for part in value.split(b";"):
        name, sep, content = part.partition(b"=")
        if sep:
            tags[name.strip()] = b"".join(content.split())
    return tags


def signature_keys(message: bytes) -> list[tuple[str, str]]:
    """(domain, selector) of every DKIM-Signature field, in order."""
    out = []
    for value in header_values(message, "dkim-signature"):
        tags = _tags(value.encode("utf-8", "replace"))
        out.append(
            (
                tags.get(b"d", b"").decode(errors="replace").lower(),
                tags.get(b"s", b"").decode(errors="replace"),
            )
        )
    return out


class KeyLookupFailed(Exception):
    """A key query whose DNS lookup failed for now: the signature's result is temperror."""


def key_query(key_records: Mapping[str, list[str] | None]) -> Callable[..., bytes]:
    """dkimpy's ``dnsfunc``, answered from ``key_records`` (``selector._domainkey.domain`` →
    TXT strings, or None for a temporary DNS failure, raised as ``KeyLookupFailed``)."""

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        key = name.decode().lower().rstrip(".")
        texts = key_records.get(key, [])
        if texts is None:
            raise KeyLookupFailed(key)
        return texts[0].encode() if texts else b""

    return dnsfunc


def verify_signatures(
    message: bytes, key_records: Mapping[str, list[str] | None]
) -> list[DkimResult]:
    """Check every signature with dkimpy, answering its key queries from ``key_records``
    (``selector._domainkey.domain`` → TXT strings, or None for a temporary DNS failure), which
    the caller fetched through our resolver beforehand. CPU work: run in a worker thread."""
    import dkim as dkimpy

    results = []
    dnsfunc = key_query(key_records)
    checker = dkimpy.DKIM(message)
    for index, (domain, selector) in list(enumerate(signature_keys(message)))[:MAX_SIGNATURES]:
        values = header_values(message, "dkim-signature")[index].encode()
        algorithm = _tags(values).get(b"a", b"").decode(errors="replace")
        try:
            ok = checker.verify(idx=index, dnsfunc=dnsfunc)
        except KeyLookupFailed:
            results.append(
                DkimResult("temperror", domain, selector, algorithm, "key lookup failed")
            )
            continue
        except dkimpy.KeyFormatError as exc:
            results.append(DkimResult("permerror", domain, selector, algorithm, str(exc)))
            continue
        except dkimpy.ValidationError as exc:
            # A body that changed is a signature that fails; a malformed signature is permerror.
            word = "fail" if "body hash mismatch" in str(exc) else "permerror"
            results.append(DkimResult(word, domain, selector, algorithm, str(exc)[:200]))
            continue
        except Exception as exc:  # noqa: BLE001 - a hostile signature never breaks delivery
            results.append(DkimResult("permerror", domain, selector, algorithm, type(exc).__name__))
            continue
        if ok:
            results.append(DkimResult("pass", domain, selector, algorithm))
        else:
            texts = key_records.get(f"{selector}._domainkey.{domain}".lower(), [])
            if not texts:
                results.append(
                    DkimResult("permerror", domain, selector, algorithm, "no key in DNS")
                )
            else:
                results.append(
                    DkimResult("fail", domain, selector, algorithm, "signature did not verify")
                )
    return results
