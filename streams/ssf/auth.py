"""Bearer tokens of SSF receivers, each with scopes and the audiences its streams may use.

One receiver a line (``LAPSE_SSF_TOKENS`` or the file named by ``LAPSE_SSF_TOKENS_FILE``)::

    # name      token (>= 32 characters)               scopes                  audiences (optional)
    crm         3f0c...                                ssf.manage,ssf.read     https://crm.example.com/
    auditor     9a1b...                                ssf.read
    ops         77e2...                                ssf.admin

Scopes: ``ssf.read`` reads a stream's configuration and status and polls its events;
``ssf.manage`` creates, updates, replaces and deletes streams, changes status and subjects and
asks for verification (it implies ``ssf.read``); ``ssf.admin`` does both for every receiver's
streams (operators). A receiver sees only the streams it created. The first audience is the
default ``aud`` of the receiver's streams (else its name); a stream may ask for any of them.

Tokens are compared by SHA-256 digest (never kept or logged in clear after parsing);
``lapse ssf token`` prints a fresh random one.

>>> t = Tokens.parse("crm " + "a" * 32 + " ssf.manage https://crm.example.com/")
>>> p = t.check("Bearer " + "a" * 32)
>>> p.name, sorted(p.scopes), p.audiences
('crm', ['ssf.manage', 'ssf.read'], ('https://crm.example.com/',))
>>> t.check("Bearer nope") is None, t.check(None) is None
(True, True)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from streams.config import ConfigError

READ, MANAGE, ADMIN = "ssf.read", "ssf.manage", "ssf.admin"
SCOPES = frozenset({READ, MANAGE, ADMIN})
MIN_TOKEN_CHARS = 32


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    audiences: tuple[str, ...]

    @property
    def admin(self) -> bool:
        return ADMIN in self.scopes

    def can(self, scope: str) -> bool:
        return scope in self.scopes or self.admin

    @property
    def default_aud(self) -> str:
        return self.audiences[0] if self.audiences else self.name


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Tokens:
    def __init__(self, principals: dict[bytes, Principal]) -> None:
        self._by_digest = principals

    def __len__(self) -> int:
        return len(self._by_digest)

    @classmethod
    def parse(cls, text: str, origin: str = "LAPSE_SSF_TOKENS") -> "Tokens":
        out: dict[bytes, Principal] = {}
        names: set[str] = set()
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (3, 4):
                raise ConfigError(f"{origin} line {n}: expected 'name token scopes [audiences]', got {len(parts)} fields")
            name, token, scopes_s = parts[:3]
            if len(token) < MIN_TOKEN_CHARS:
                raise ConfigError(f"{origin} line {n}: the token of {name!r} is shorter than {MIN_TOKEN_CHARS} "
                                  "characters (`lapse ssf token` makes one)")
            scopes = frozenset(scopes_s.split(","))
            unknown = scopes - SCOPES
            if unknown:
                raise ConfigError(f"{origin} line {n}: unknown scopes {sorted(unknown)} (known: {sorted(SCOPES)})")
            if MANAGE in scopes:
                scopes = scopes | {READ}
            if name in names:
                raise ConfigError(f"{origin} line {n}: receiver {name!r} appears twice")
            names.add(name)
            d = _digest(token)
            if d in out:
                raise ConfigError(f"{origin} line {n}: two receivers share one token")
            auds = tuple(a for a in parts[3].split(",") if a) if len(parts) == 4 else ()
            out[d] = Principal(name, scopes, auds)
        return cls(out)

    def check(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer <token>`` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        d = _digest(token.strip())
        for known, principal in self._by_digest.items():  # constant time over the digests
            if hmac.compare_digest(known, d):
                return principal
        return None


def new_token() -> str:
    """A random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)
