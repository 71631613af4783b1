"""The enforcement point's local view of lapse's decisions: pure, no Kafka, no asyncio.

``RevocationState.apply(message_value)`` verifies the SET inside a revocations-topic message and
updates two maps (session -> expiry): revoked sessions and sessions that must step up.
``is_revoked`` / ``requires_step_up`` are dict lookups plus one clock read: O(1).

Entries live ``ttl_s`` after the event time; ``ttl_s`` must be at least the longest absolute
session timeout of any policy, so a revoked session cannot outlive its revocation. Tokens are
deduplicated by ``jti`` (kept as long as the entries they created).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enforce import wire
from enforce.verify import SetVerificationError, SetVerifier, subject_member, the_event

log = logging.getLogger(__name__)

COUNTERS = (
    "messages",       # every message seen
    "revoked",        # session-revoked SETs applied
    "step_up",        # risk-level-change SETs applied (MEDIUM/HIGH: step up; LOW: cleared)
    "duplicates",     # jti seen before
    "stale",          # verified, but older than ttl_s: nothing to enforce any more
    "ignored",        # verified, but an event type or subject this client does not act on
    "malformed",      # not {"decision", "set"}, or not a compact JWS with JSON parts
    "forged",         # signature does not verify with the named key
    "unknown_kid",    # kid missing or not in the JWKS
    "bad_alg",        # alg not allowed or not the key's
    "invalid_claims", # wrong typ/iss/aud, sub/exp present, not exactly one event, bad jti/iat/sub_id
)


class EnforceConfigError(ValueError):
    """Bad configuration of the enforcement client or middleware."""


@dataclass(frozen=True)
class Revocation:
    """Why a session is refused (from the verified SET)."""

    jti: str
    expires_at: float
    event_timestamp: float
    reason_user: str | None
    initiating_entity: str | None


class RevocationState:
    def __init__(
        self,
        verifier: SetVerifier,
        ttl_s: float,
        *,
        absolute_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(verifier, SetVerifier):
            raise EnforceConfigError("verifier must be an enforce.verify.SetVerifier")
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or ttl_s <= 0:
            raise EnforceConfigError(f"ttl_s must be a positive number of seconds, not {ttl_s!r}")
        if absolute_timeout_s is not None and ttl_s < absolute_timeout_s:
            raise EnforceConfigError(
                f"ttl_s={ttl_s} is shorter than the longest absolute timeout ({absolute_timeout_s} s): "
                "a revoked session could outlive its revocation"
            )
        self.verifier = verifier
        self.ttl_s = float(ttl_s)
        self.clock = clock
        self._revoked: dict[str, Revocation] = {}
        self._step_up: dict[str, Revocation] = {}
        self._step_up_at: dict[str, float] = {}  # newest risk event time per session (ordering)
        self._jti: dict[str, float] = {}
        self._expiry: list[tuple[float, int, str, str]] = []  # (expires_at, seq, map, key)
        self._seq = 0
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_error: str | None = None

    # -- queries (hot path) -------------------------------------------------------------------
    def is_revoked(self, session: str) -> bool:
        r = self._revoked.get(session)
        return r is not None and r.expires_at > self.clock()

    def requires_step_up(self, session: str) -> bool:
        r = self._step_up.get(session)
        return r is not None and r.expires_at > self.clock()

    def revocation(self, session: str) -> Revocation | None:
        r = self._revoked.get(session)
        return r if r is not None and r.expires_at > self.clock() else None

    def clear_step_up(self, session: str) -> None:
        """The session has re-authenticated strongly enough; stop challenging it."""
        self._step_up.pop(session, None)

    def __len__(self) -> int:
        return len(self._revoked) + len(self._step_up)

    # -- updates ------------------------------------------------------------------------------
    def _count(self, name: str) -> str:
        self.counters[name] += 1
        return name

    def _schedule(self, expires_at: float, which: str, key: str) -> None:
        self._seq += 1
        heapq.heappush(self._expiry, (expires_at, self._seq, which, key))

    def sweep(self) -> int:
        """Drop expired entries; amortised O(log n) each."""
        now = self.clock()
        n = 0
        maps = {"revoked": self._revoked, "step_up": self._step_up, "jti": self._jti}
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, _, which, key = heapq.heappop(self._expiry)
            m = maps[which]
            cur = m.get(key)
            cur_exp = cur if isinstance(cur, float) else getattr(cur, "expires_at", None)
            if cur_exp is not None and cur_exp <= now:
                del m[key]
                n += 1
            if which == "step_up":
                at = self._step_up_at.get(key)
                if at is not None and at + self.ttl_s <= now:
                    del self._step_up_at[key]
        return n

    def apply(self, value: bytes | None) -> str:
        """Handle one revocations-topic message value; returns the counter it was counted under."""
        self.counters["messages"] += 1
        try:
            _, token = wire.decode(value)
        except wire.MalformedMessage as exc:
            self.last_error = f"malformed: {exc}"
            return self._count("malformed")
        return self.apply_token(token)

    def apply_token(self, token: str) -> str:
        try:
            claims = self.verifier.verify(token)
        except SetVerificationError as exc:
            self.last_error = f"{exc.reason}: {exc}"
            name = exc.reason if exc.reason in self.counters else "invalid_claims"
            log.warning("rejected revocation token (%s): %s", name, exc)
            return self._count(name)
        return self.apply_claims(claims)

    def apply_claims(self, claims: dict[str, Any]) -> str:
        """Apply verified claims (see :meth:`SetVerifier.verify`)."""
        jti = claims["jti"]
        if jti in self._jti:
            return self._count("duplicates")
        uri, event = the_event(claims)
        session = subject_member(claims, "session")
        if session is None or uri not in (wire.SESSION_REVOKED, wire.RISK_LEVEL_CHANGE):
            return self._count("ignored")
        ts = event.get("event_timestamp")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)):
            ts = claims["iat"]
        now = self.clock()
        expires_at = float(ts) + self.ttl_s
        if expires_at <= now:
            return self._count("stale")
        self._jti[jti] = expires_at
        self._schedule(expires_at, "jti", jti)
        reason_user = event.get("reason_user")
        entry = Revocation(
            jti=jti,
            expires_at=expires_at,
            event_timestamp=float(ts),
            reason_user=reason_user.get("en") if isinstance(reason_user, dict) else None,
            initiating_entity=event.get("initiating_entity"),
        )
        if uri == wire.SESSION_REVOKED:
            old = self._revoked.get(session)
            if old is None or old.expires_at < expires_at:
                self._revoked[session] = entry
                self._schedule(expires_at, "revoked", session)
            self.sweep()
            return self._count("revoked")
        # risk-level-change about the session: MEDIUM/HIGH -> step up, LOW -> cleared.
        if event.get("principal") not in ("SESSION", None):
            return self._count("ignored")
        level = event.get("current_level")
        if level not in wire.RISK_LEVELS:
            return self._count("ignored")
        if self._step_up_at.get(session, float("-inf")) > ts:
            return self._count("stale")  # an older risk event arriving after a newer one
        self._step_up_at[session] = float(ts)
        if level == "LOW":
            self._step_up.pop(session, None)
        else:
            self._step_up[session] = entry
        self._schedule(expires_at, "step_up", session)
        self.sweep()
        return self._count("step_up")
