"""Sealed internal records: an HMAC-SHA256 that proves a record on an internal topic was written by
a lapse worker, the admin API or ``lapse policy publish`` — not by whoever else can write the topic.

Internal topics carry control records that the workers act on without further checks: the policy
in force (``policy``), IDS alerts resolved to a user, events forwarded to their user's partition
and operators' manual revokes (``user-requests``), and pickled models (``model-snapshots``).
Every such record is sealed by its producer and opened by its consumer; a record that does not
open is refused (never applied), counted and audited.

Format (version 1), the record's value::

    offset  size  field
    0       3     magic  b"\\xffLS"  (0xff never starts UTF-8 text, so never JSON or an event)
    3       1     version  0x01
    4       4     key id   first 4 bytes of HMAC(mac key, "lapse/internal-record/kid")
    8       8     sealed at, milliseconds since the epoch (unsigned, big-endian)
    16      32    tag      HMAC-SHA256(mac key, bytes 0..15 || u16 len(topic) || u32 len(key)
                                       || topic || key || payload)
    48      ...   payload  the record as it was before sealing (JSON, event bytes, a pickle)

48 bytes of overhead, one HMAC per record (a 600-byte payload: about 2.3 µs to seal, 2.6 µs to open).
The tag binds the **full topic name** (prefix included) and the **record key**, so a sealed
record copied onto another topic, another user's key or another deployment's prefix does not
open; the header (version, key id, time) is inside the tag too. The time lets a consumer refuse
stale replays where it matters: the policy follower refuses a record sealed before the one in
force (a replayed older, laxer policy), snapshots restore the newest by seal time, and
``user-requests`` records older than the topic's retention are refused.

Keys
    ``LAPSE_INTERNAL_KEY`` or ``LAPSE_INTERNAL_KEY_FILE`` (``Settings.internal_key``): one secret
    of at least 32 characters per line (e.g. ``openssl rand -hex 32``); the first line seals,
    every line opens (rotation: put the new secret first, keep the old one until every worker
    runs with both and the compacted topics were re-sealed). Without it, the key is derived from
    the worker's signing key (``LAPSE_SIGNING_KEY[_FILE]``, which every worker has): every
    process that shares the signing key shares the MAC key, with no extra secret to distribute.
    Either way the MAC key is HKDF-SHA256(secret, salt, label) (RFC 5869), never the secret
    itself; a derived key is never used for anything else. No key at all is a configuration
    error, not a random per-process key (which would silently split a multi-worker deployment).

The worker calls :func:`seal_request` for every record it produces on ``user-requests`` and
:func:`open_request` for every record it reads there; the admin API and the policy publisher
use :meth:`Sealer.seal`; the policy follower and the snapshot loader :meth:`Sealer.open_stamped`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from streams.config import Settings
    from streams.engine.decisions import Output

log = logging.getLogger("lapse.sealed")

MAGIC = b"\xffLS"
VERSION = 1
_HEAD = struct.Struct(">3sB4sQ")  # magic, version, key id, sealed at (ms)
_BIND = struct.Struct(">HI")      # len(topic), len(key)
HEAD_LEN = _HEAD.size             # 16
TAG_LEN = 32
OVERHEAD = HEAD_LEN + TAG_LEN     # 48

#: every reason a record is refused (the ``reason`` label of ``lapse_forged_records_total``)
REASONS = ("unsealed", "malformed", "unknown_key", "bad_tag", "stale")
#: the topics whose records are sealed (logical names: the ``topic`` label of the metric)
SEALED_TOPICS = ("policy", "user-requests", "model-snapshots", "sightings")
#: ``user-requests`` records sealed longer ago than the topic's retention are refused as stale
REQUEST_MAX_AGE_S = 2 * 24 * 3600.0
MIN_SECRET_CHARS = 32

_SALT = b"lapse/internal-records"
_LABEL_MAC = b"lapse internal record MAC key v1"
_LABEL_KID = b"lapse/internal-record/kid"


class ForgedRecord(ValueError):
    """A record on an internal topic that does not open: unsealed, malformed, sealed with a key this
    process does not hold, altered or moved (``bad_tag``), or too old (``stale``).

    ``reason`` is one of :data:`REASONS`; ``detail`` says more, for the log and the audit record.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"ForgedRecord: unknown reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Opened(NamedTuple):
    payload: bytes
    sealed_at: float  # epoch seconds (millisecond resolution)


def hkdf_sha256(secret: bytes, salt: bytes = _SALT, info: bytes = _LABEL_MAC, length: int = 32) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract, then expand).

    >>> hkdf_sha256(bytes.fromhex("0b" * 22), bytes.fromhex("000102030405060708090a0b0c"),
    ...             bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42).hex()[:32]  # RFC 5869 test case 1
    '3cb25f25faacd57a90434f64d0362f2a'
    """
    prk = hmac.digest(salt, secret, "sha256")
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([i]), "sha256")
        out += block
        i += 1
    return out[:length]


def derive_key(secret: bytes) -> bytes:
    """The 32-byte MAC key for internal records derived from ``secret`` (fixed salt and label)."""
    return hkdf_sha256(secret)


class Sealer:
    """Seals and opens internal records under one MAC key (plus older keys that only open).

    >>> s = Sealer(b"k" * 32, clock=lambda: 1767225600.0)
    >>> v = s.seal("lapse.policy", b"current", b'{"version":"v1"}')
    >>> len(v) - len(b'{"version":"v1"}'), s.open("lapse.policy", b"current", v)
    (48, b'{"version":"v1"}')
    >>> s.open("lapse.user-requests", b"current", v)
    Traceback (most recent call last):
    ...
    streams.service.pipeline.sealed.ForgedRecord: bad_tag: tag does not verify for this topic and key (altered, moved to another topic or key, or forged)
    >>> Sealer(b"x" * 32).open("lapse.policy", b"current", v)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streams.service.pipeline.sealed.ForgedRecord: unknown_key: sealed under key id ... this process holds ...
    """

    __slots__ = ("_mac", "_kid", "_keys", "_clock", "_topics")

    def __init__(self, key: bytes, previous: tuple[bytes, ...] = (), *,
                 clock: Callable[[], float] = time.time) -> None:
        for k in (key, *previous):
            if not isinstance(k, (bytes, bytearray)) or len(k) < 16:
                raise ValueError("Sealer: a MAC key is at least 16 bytes (use derive_key on a secret)")
        self._keys: dict[bytes, Any] = {}
        for k in (key, *previous):
            kid = hmac.digest(bytes(k), _LABEL_KID, "sha256")[:4]
            self._keys.setdefault(kid, hmac.new(bytes(k), digestmod=hashlib.sha256))
        self._kid = hmac.digest(bytes(key), _LABEL_KID, "sha256")[:4]
        self._mac = self._keys[self._kid]
        self._clock = clock
        self._topics: dict[str, bytes] = {}

    @property
    def key_id(self) -> str:
        """The sealing key's id (hex), as it appears in sealed records and ``unknown_key`` reasons."""
        return self._kid.hex()

    # -- construction from the configuration ----------------------------------------------------
    @classmethod
    def from_secrets(cls, text: str, origin: str = "LAPSE_INTERNAL_KEY", **kw: Any) -> "Sealer":
        """One secret per line (``#`` comments and blank lines skipped); the first seals."""
        secrets = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if not secrets:
            from streams.config import ConfigError

            raise ConfigError(f"{origin}: no secret in it")
        for i, s in enumerate(secrets, 1):
            if len(s) < MIN_SECRET_CHARS:
                from streams.config import ConfigError

                raise ConfigError(f"{origin}: secret on line {i} is shorter than {MIN_SECRET_CHARS} characters")
        keys = [derive_key(s.encode()) for s in secrets]
        return cls(keys[0], tuple(keys[1:]), **kw)

    @classmethod
    def from_signing_key(cls, env: Mapping[str, str] | None = None, **kw: Any) -> "Sealer":
        """The key derived from the signing key's private bytes (canonical PKCS#8 DER, so the
        same key read from a file, a variable or an encrypted PEM gives the same MAC key).
        Raises :class:`streams.publish.keys.KeyConfigError` when no signing key is configured."""
        from cryptography.hazmat.primitives import serialization

        from streams.publish.keys import load_signing_key

        private = load_signing_key(env=env).key.private_key
        der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cls(derive_key(b"signing-key:" + der), **kw)

    @classmethod
    def from_settings(cls, settings: "Settings", env: Mapping[str, str] | None = None, **kw: Any) -> "Sealer":
        """``settings.internal_key`` when set, else derived from the signing key in ``env``
        (default ``os.environ``). Raises ``ConfigError`` when neither is configured."""
        if settings.internal_key:
            return cls.from_secrets(settings.internal_key, **kw)
        return cls._derived(os.environ if env is None else env, **kw)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kw: Any) -> "Sealer":
        """:meth:`from_settings` for the variables alone (``LAPSE_INTERNAL_KEY[_FILE]``, else the
        signing key), for callers that have no :class:`~streams.config.Settings`."""
        from streams.config import _read_secret

        env = dict(os.environ if env is None else env)
        text = _read_secret(env, "LAPSE_INTERNAL_KEY", {})
        if text:
            return cls.from_secrets(text, **kw)
        return cls._derived(env, **kw)

    @classmethod
    def _derived(cls, env: Mapping[str, str], **kw: Any) -> "Sealer":
        from streams.config import ConfigError
        from streams.publish.keys import KeyConfigError

        try:
            return cls.from_signing_key(env, **kw)
        except KeyConfigError as exc:
            raise ConfigError(f"no key for internal records: set LAPSE_INTERNAL_KEY(_FILE), or the "
                              f"LAPSE_SIGNING_KEY(_FILE) the workers use ({exc})") from None

    # -- the format -----------------------------------------------------------------------------
    def _topic(self, topic: str) -> bytes:
        b = self._topics.get(topic)
        if b is None:
            if len(self._topics) > 1024:
                self._topics.clear()
            b = self._topics[topic] = topic.encode()
        return b

    def seal(self, topic: str, key: bytes | None, payload: bytes) -> bytes:
        """The record value that carries ``payload`` to ``topic`` under ``key``."""
        t = self._topic(topic)
        k = key or b""
        head = _HEAD.pack(MAGIC, VERSION, self._kid, int(self._clock() * 1000))
        mac = self._mac.copy()
        mac.update(head + _BIND.pack(len(t), len(k)) + t + k + payload)
        return head + mac.digest() + payload

    def _open(self, topic: str, key: bytes | None, value: bytes | None) -> tuple[bytes, int]:
        if not value or value[:3] != MAGIC:
            raise ForgedRecord("unsealed", "the record carries no seal" if value else "empty record (tombstone)")
        if len(value) < OVERHEAD:
            raise ForgedRecord("malformed", f"{len(value)} bytes, shorter than a seal ({OVERHEAD})")
        _, version, kid, ms = _HEAD.unpack_from(value)
        if version != VERSION:
            raise ForgedRecord("malformed", f"unknown seal version {version}")
        mac = self._keys.get(kid)
        if mac is None:
            raise ForgedRecord("unknown_key", f"sealed under key id {kid.hex()}; this process holds "
                                              f"{', '.join(k.hex() for k in self._keys)}")
        t = self._topic(topic)
        k = key or b""
        payload = value[OVERHEAD:]
        mac = mac.copy()
        mac.update(value[:HEAD_LEN] + _BIND.pack(len(t), len(k)) + t + k + payload)
        if not hmac.compare_digest(mac.digest(), value[HEAD_LEN:OVERHEAD]):
            raise ForgedRecord("bad_tag", "tag does not verify for this topic and key (altered, moved to "
                                          "another topic or key, or forged)")
        return payload, ms

    def open_stamped(self, topic: str, key: bytes | None, value: bytes | None) -> Opened:
        """``(payload, sealed_at)`` of a sealed record read from ``topic`` under ``key``;
        raises :class:`ForgedRecord` (never for a genuine record of this topic and key)."""
        payload, ms = self._open(topic, key, value)
        return Opened(payload, ms / 1000.0)

    def open(self, topic: str, key: bytes | None, value: bytes | None, *, max_age_s: float | None = None,
             now: float | None = None) -> bytes:
        """The payload of a sealed record; raises :class:`ForgedRecord`. With ``max_age_s``, a record
        sealed longer ago than that (by ``now``, default the sealer's clock) is ``stale``."""
        payload, ms = self._open(topic, key, value)
        if max_age_s is not None:
            age = (self._clock() if now is None else now) - ms / 1000.0
            if age > max_age_s:
                raise ForgedRecord("stale", f"sealed {age:.0f} s ago, more than {max_age_s:.0f} s")
        return payload


def sealer_of(service: Any) -> Sealer:
    """The Service's Sealer (``service.sealer``); built from its settings and kept there when the
    Service was constructed without one. Raises ``ConfigError`` when no key is configured."""
    sealer = getattr(service, "sealer", None)
    if sealer is None:
        sealer = Sealer.from_settings(service.settings)
        service.sealer = sealer
    return sealer


# ---------------------------------------------------------------------------------------------- user-requests

def seal_request(sealer: Sealer, topic: str, key: bytes, value: bytes) -> bytes:
    """The value of a record the worker (or the admin API) produces on ``user-requests``.

    ``value`` is the plain payload: canonical event bytes (a forward) or a JSON envelope
    (``{"kind": "target" | "manual_revoke", ...}``); ``key`` the user, encoded, exactly the key
    the record is produced under.
    """
    return sealer.seal(topic, key, value)


def open_request(sealer: Sealer, topic: str, key: bytes | None, value: bytes | None, *,
                 now: float | None = None, max_age_s: float | None = REQUEST_MAX_AGE_S) -> bytes | ForgedRecord:
    """The plain payload of a record read on ``user-requests``, or the :class:`ForgedRecord` that
    refuses it (returned, not raised: the caller dead-letters and audits it and goes on).

    >>> s = Sealer(b"k" * 32)
    >>> v = seal_request(s, "lapse.user-requests", b"u1", b'{"kind":"manual_revoke"}')
    >>> open_request(s, "lapse.user-requests", b"u1", v)
    b'{"kind":"manual_revoke"}'
    >>> open_request(s, "lapse.user-requests", b"u2", v).reason
    'bad_tag'
    >>> open_request(s, "lapse.user-requests", b"u1", b'{"kind":"manual_revoke"}').reason
    'unsealed'
    """
    try:
        return sealer.open(topic, key, value, max_age_s=max_age_s, now=now)
    except ForgedRecord as err:
        return err


# ---------------------------------------------------------------------------------------------- refusals

def metric_labels(topic: str, reason: str) -> tuple[str, str]:
    """``(topic, reason)`` labels of ``lapse_forged_records_total``, from a fixed set: ``topic`` is
    the logical name (prefix dropped; anything else is ``other``), ``reason`` one of :data:`REASONS`.

    >>> metric_labels("lapse.user-requests", "bad_tag"), metric_labels("x.y", "nope")
    (('user-requests', 'bad_tag'), ('other', 'malformed'))
    """
    name = next((t for t in SEALED_TOPICS if topic.endswith(t)), "other")
    return name, reason if reason in REASONS else "malformed"


def forged_audit(topic: str, partition: int | None, offset: int | None, key: bytes | None, err: ForgedRecord,
                 now: float) -> "Output":
    """The ``forged_record`` audit record of a refused record (user ``internal:<topic>``; the same
    id for the same topic, partition and offset, so every worker that refuses it writes one id).

    The record key is reported (at most 200 characters) but never used as the audit's user: a
    forger chooses it.
    """
    from streams.engine.decisions import audit

    logical, _ = metric_labels(topic, err.reason)
    shown = None if key is None else key[:200].decode("utf-8", "replace")
    return audit("forged_record", f"internal:{logical}", None, now, f"{topic}:{partition}:{offset}", {
        "topic": topic, "partition": partition, "offset": offset, "key": shown, "reason": err.reason,
        "detail": err.detail, "action": "refused"})


def refuse(metrics: Any, topic: str, partition: int | None, offset: int | None, key: bytes | None,
           err: ForgedRecord, now: float) -> "Output":
    """Count a refused record (``metrics.forged_records``), log it, and return its audit record."""
    if metrics is not None:
        metrics.forged_records.labels(*metric_labels(topic, err.reason)).inc()
    log.error("lapse: refused a record on %s[%s] at offset %s: %s", topic, partition, offset, err)
    return forged_audit(topic, partition, offset, key, err, now)
