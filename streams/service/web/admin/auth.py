"""Who may use the operator API: admin bearer tokens, how they are configured, parsed and checked.

One concept: authentication. Everything else in the package asks this module one question
(:meth:`Tokens.check`: which status, which operator name) and never handles a token itself, so
the constant-time comparison lives in one place.

* **Tokens** come from ``LAPSE_ADMIN_TOKEN`` or ``LAPSE_ADMIN_TOKEN_FILE``: one bare token
  (shared; the operator names themself in the request) or lines ``name:token`` (the token *is*
  the identity). Each is at least ``MIN_TOKEN_CHARS`` long.
* Constant-time comparison against every configured token. Missing or wrong token -> 401; no
  token configured -> every ``/api/*`` route answers 503 "admin API disabled".
* ``_NAME`` is the shape of an operator name (a token's name, or the name given under the shared
  token); :mod:`.requests` and :mod:`.views` check names against the same pattern.
"""

from __future__ import annotations

import hmac
import os
import re
from pathlib import Path

from streams.config import ConfigError

MIN_TOKEN_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")


class Tokens:
    """Admin bearer tokens.

    >>> t = Tokens.parse("ann:0123456789abcdef0123\\nbob:fedcba9876543210fedc")
    >>> t.check("Bearer 0123456789abcdef0123"), t.check("Bearer nope"), t.check(None)
    ((200, 'ann'), (401, None), (401, None))
    >>> Tokens.parse("0123456789abcdef0123").check("Bearer 0123456789abcdef0123")
    (200, None)
    >>> Tokens(None).check("Bearer anything")
    (503, None)
    """

    def __init__(self, entries: list[tuple[str | None, str]] | None) -> None:
        self.entries = [(name, tok.encode()) for name, tok in (entries or [])]

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    @classmethod
    def parse(cls, text: str, origin: str = "LAPSE_ADMIN_TOKEN") -> "Tokens":
        entries: list[tuple[str | None, str]] = []
        for i, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, tok = line.partition(":")
            if sep and _NAME.match(name.strip()):
                entry: tuple[str | None, str] = (name.strip(), tok.strip())
            else:
                entry = (None, line)
            if len(entry[1]) < MIN_TOKEN_CHARS:
                raise ConfigError(f"{origin}: token on line {i} is shorter than {MIN_TOKEN_CHARS} characters")
            entries.append(entry)
        return cls(entries)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Tokens":
        env = dict(os.environ if env is None else env)
        if env.get("LAPSE_ADMIN_TOKEN"):
            return cls.parse(env["LAPSE_ADMIN_TOKEN"])
        path = env.get("LAPSE_ADMIN_TOKEN_FILE")
        if path:
            try:
                return cls.parse(Path(path).read_text(), "LAPSE_ADMIN_TOKEN_FILE")
            except OSError as exc:
                raise ConfigError(f"LAPSE_ADMIN_TOKEN_FILE: cannot read {path}: {exc.strerror}") from None
        return cls(None)

    def check(self, authorization: str | None) -> tuple[int, str | None]:
        """``(200, operator name or None)``, ``(401, None)`` or ``(503, None)`` (disabled).

        Compares against every token (no early exit) with ``hmac.compare_digest``.
        """
        if not self.entries:
            return 503, None
        if not authorization or not authorization.startswith("Bearer "):
            return 401, None
        given = authorization[7:].strip().encode()
        found: str | None = None
        ok = False
        for name, tok in self.entries:
            if hmac.compare_digest(given, tok):
                ok, found = True, name if found is None else found
        return (200, found) if ok else (401, None)
