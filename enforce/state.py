"""The enforcement point's local view of lapse's decisions: pure, no Kafka, no asyncio.

``RevocationState.apply(message_value)`` verifies the SET inside a revocations-topic message and
updates two maps (session -> expiry): revoked sessions and sessions that must step up.
``is_revoked`` / ``requires_step_up`` are dict lookups plus one clock read: O(1).

Entries live ``ttl_s`` after the event time; ``ttl_s`` must be at least the longest absolute
session timeout of any policy, so a revoked session cannot outlive its revocation. Tokens are
deduplicated by ``jti`` (kept as long as the entries they created).

``apply_record(key, value, partition)`` also handles the worker's heartbeats (key
``wire.HEARTBEAT_KEY``): a verified one moves that partition's "alive at" time forward, and
``feed_age(partitions)`` is the age of the stalest partition. A heartbeat is never applied as a
revocation, and a record that fails heartbeat verification changes nothing but a counter.

User-level SETs (a subject that names a user and no session: ``iss_sub``, ``email``,
``phone_number``, ``account``, or a complex subject with ``user`` only) carrying a revoking event
(:data:`enforce.wire.USER_REVOKING_EVENTS`: session-revoked, credential-change, RISC account
disabled / purged / credential change required / sessions revoked) become a user-level entry.
``is_user_revoked(subject, authenticated_at)`` answers for a session that authenticated at that
time (a session signed in after the revocation is a new one); sessions told to
``bind_session(session, subject, authenticated_at)`` are refused by ``is_revoked`` as well.
A SET with several event types applies each.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import enforce.wire as wire
from enforce.verify import SetVerificationError, SetVerifier, subject_member, the_events, user_subject_key

log = logging.getLogger(__name__)

COUNTERS = (
    "messages",       # every message seen
    "revoked",        # session-revoked SETs applied
    "user_revoked",   # user-level SETs applied (iss_sub / email / ... subject, no session)
    "step_up",        # risk-level-change SETs applied (MEDIUM/HIGH: step up; LOW: cleared)
    "duplicates",     # jti seen before
    "stale",          # verified, but older than ttl_s: nothing to enforce any more
    "ignored",        # verified, but an event type or subject this client does not act on
    "malformed",      # not {"decision", "set"}, or not a compact JWS with JSON parts
    "forged",         # signature does not verify with the named key
    "unknown_kid",    # kid missing or not in the JWKS
    "bad_alg",        # alg not allowed or not the key's
    "invalid_claims", # wrong typ/iss/aud, sub/exp present, not exactly one event, bad jti/iat/sub_id
    "heartbeats",     # verified heartbeats (feed freshness)
    "bad_heartbeats", # heartbeat-keyed records that failed verification: ignored, never refresh the feed
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
        #: user subject key (enforce.wire.subject_key) -> user-level revocation
        self._users: dict[str, Revocation] = {}
        #: session -> (user subject key, authenticated at or None), told by bind_session
        self._bound: dict[str, tuple[str, float | None, float]] = {}
        self._expiry: list[tuple[float, int, str, str]] = []  # (expires_at, seq, map, key)
        self._seq = 0
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_error: str | None = None
        #: partition -> newest time a verified heartbeat shows the feed alive (epoch seconds)
        self.alive_at: dict[int, float] = {}

    # -- queries (hot path) -------------------------------------------------------------------
    def is_revoked(self, session: str) -> bool:
        r = self._revoked.get(session)
        if r is not None and r.expires_at > self.clock():
            return True
        return bool(self._users) and self._bound_revocation(session) is not None

    def _bound_revocation(self, session: str) -> Revocation | None:
        b = self._bound.get(session)
        if b is None:
            return None
        return self._user_revocation(b[0], b[1])

    def _user_revocation(self, key: str | None, authenticated_at: float | None) -> Revocation | None:
        r = self._users.get(key) if key is not None else None
        if r is None or r.expires_at <= self.clock():
            return None
        if authenticated_at is not None and authenticated_at > r.event_timestamp:
            return None  # the user signed in again after the revocation: that session is new
        return r

    def is_user_revoked(self, user: str | dict[str, Any], authenticated_at: float | None = None) -> bool:
        """Whether a user-level SET (credential change, account disabled, every session revoked...)
        ends sessions of ``user`` (a subject identifier such as ``{"format": "email", "email": ...}``
        or its :func:`enforce.wire.subject_key`) that authenticated at ``authenticated_at`` (epoch
        seconds; None: unknown, so any time up to the revocation counts as before it). O(1)."""
        key = user if isinstance(user, str) else wire.subject_key(user)
        return self._user_revocation(key, authenticated_at) is not None

    def user_revocation(self, user: str | dict[str, Any], authenticated_at: float | None = None) -> Revocation | None:
        key = user if isinstance(user, str) else wire.subject_key(user)
        return self._user_revocation(key, authenticated_at)

    def bind_session(self, session: str, user: str | dict[str, Any], authenticated_at: float | None = None) -> None:
        """Tell the state which user ``session`` belongs to (and when it authenticated), so that
        :meth:`is_revoked` refuses it once a user-level SET names that user. Kept ``ttl_s``."""
        key = user if isinstance(user, str) else wire.subject_key(user)
        if key is None:
            raise EnforceConfigError(f"bind_session: {user!r} is not a user subject identifier")
        if len(session) > wire.MAX_SESSION_CHARS:
            return
        until = self.clock() + self.ttl_s
        self._bound[session] = (key, authenticated_at, until)
        self._schedule(until, "bound", session)

    def requires_step_up(self, session: str) -> bool:
        r = self._step_up.get(session)
        return r is not None and r.expires_at > self.clock()

    def revocation(self, session: str) -> Revocation | None:
        r = self._revoked.get(session)
        if r is not None and r.expires_at > self.clock():
            return r
        return self._bound_revocation(session) if self._users else None

    def clear_step_up(self, session: str) -> None:
        """The session has re-authenticated strongly enough; stop challenging it."""
        self._step_up.pop(session, None)

    def __len__(self) -> int:
        return len(self._revoked) + len(self._step_up) + len(self._users)

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
        maps = {"revoked": self._revoked, "step_up": self._step_up, "jti": self._jti, "users": self._users,
                "bound": self._bound}
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, _, which, key = heapq.heappop(self._expiry)
            m = maps[which]
            cur = m.get(key)
            if isinstance(cur, tuple):  # a session binding: (user key, authenticated at, until)
                cur_exp = cur[2]
            else:
                cur_exp = cur if isinstance(cur, float) else getattr(cur, "expires_at", None)
            if cur_exp is not None and cur_exp <= now:
                del m[key]
                n += 1
            if which == "step_up":
                at = self._step_up_at.get(key)
                if at is not None and at + self.ttl_s <= now:
                    del self._step_up_at[key]
        return n

    def feed_age(self, partitions: Iterable[int] | None) -> float:
        """Seconds since the stalest of ``partitions`` was last shown alive by a verified heartbeat.

        ``math.inf`` when the partitions are not known yet (``None`` or empty) or one of them has
        had no verified heartbeat: an unknown feed is never a fresh one.
        """
        if partitions is None:
            return math.inf
        oldest = math.inf
        seen = False
        for p in partitions:
            seen = True
            at = self.alive_at.get(p)
            if at is None:
                return math.inf
            oldest = min(oldest, at)
        if not seen:
            return math.inf
        return max(0.0, self.clock() - oldest)

    def apply_record(self, key: bytes | None, value: bytes | None, partition: int) -> str:
        """Handle one revocations-topic record; returns the counter it was counted under.

        Records are told apart by key only: :data:`wire.HEARTBEAT_KEY` is a heartbeat (verified as
        one, never as a SET), anything else goes through :meth:`apply`.
        """
        if key == wire.HEARTBEAT_KEY:
            self.counters["messages"] += 1
            return self.apply_heartbeat(value, partition)
        return self.apply(value)

    def apply_heartbeat(self, value: bytes | None, partition: int) -> str:
        """Verify a heartbeat read from ``partition``; only a verified one refreshes that partition."""
        try:
            claims = self.verifier.verify_heartbeat(wire.decode_heartbeat(value))
        except (wire.MalformedMessage, SetVerificationError) as exc:
            reason = exc.reason if isinstance(exc, SetVerificationError) else "malformed"
            self.last_error = f"heartbeat {reason}: {exc}"
            log.warning("rejected heartbeat on partition %d (%s): %s", partition, reason, exc)
            return self._count("bad_heartbeats")
        bound = claims.get("partition")
        if bound is not None and bound != partition:
            # a genuine heartbeat copied to another partition says nothing about that partition
            self.last_error = f"heartbeat for partition {bound} read from partition {partition}"
            log.warning("rejected heartbeat: %s", self.last_error)
            return self._count("bad_heartbeats")
        # The signed iat is when the worker was alive; a replayed old heartbeat is therefore
        # worth nothing. Never more than "now": a signer clock running ahead (iat up to the
        # verifier's max_future_s) must not buy the feed extra freshness.
        at = min(float(claims["iat"]), self.clock())
        if at > self.alive_at.get(partition, -math.inf):
            self.alive_at[partition] = at
        return self._count("heartbeats")

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
        """Apply verified claims (see :meth:`SetVerifier.verify`).

        A SET may carry several event types about its subject; each is applied, and the SET is
        counted once, under the strongest outcome (revoked, user_revoked, step_up, stale, ignored).
        """
        jti = claims["jti"]
        if jti in self._jti:
            return self._count("duplicates")
        session = subject_member(claims, "session")
        user_key = None if session is not None else user_subject_key(claims)
        if session is None and user_key is None:
            return self._count("ignored")
        if session is not None and len(session) > wire.MAX_SESSION_CHARS:
            # no request reading that long is ever looked up (enforce.sessions): say so, loudly
            self.last_error = f"session id of {len(session)} characters exceeds {wire.MAX_SESSION_CHARS}"
            log.warning("ignored SET %s: %s", jti, self.last_error)
            return self._count("ignored")
        outcomes = [self._apply_event(claims, uri, event, session, user_key) for uri, event in the_events(claims)]
        best = min(outcomes, key=_OUTCOME_ORDER.index)
        if best != "ignored":
            self.sweep()
        return self._count(best)

    def _apply_event(self, claims: dict[str, Any], uri: str, event: dict[str, Any], session: str | None,
                     user_key: str | None) -> str:
        if session is None:
            if uri not in wire.USER_REVOKING_EVENTS:
                return "ignored"
        elif uri not in (wire.SESSION_REVOKED, wire.RISK_LEVEL_CHANGE):
            return "ignored"
        jti = claims["jti"]
        ts = event.get("event_timestamp")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or ts != ts:
            ts = claims["iat"]
        now = self.clock()
        expires_at = float(ts) + self.ttl_s
        if expires_at <= now:
            return "stale"
        if jti not in self._jti:
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
        if session is None:
            # a user-level revocation: every session of that user authenticated up to ``ts``
            old = self._users.get(user_key)  # type: ignore[arg-type]
            if old is None or old.event_timestamp < entry.event_timestamp:
                self._users[user_key] = entry  # type: ignore[index]
                self._schedule(expires_at, "users", user_key)  # type: ignore[arg-type]
            return "user_revoked"
        if uri == wire.SESSION_REVOKED:
            old = self._revoked.get(session)
            if old is None or old.expires_at < expires_at:
                self._revoked[session] = entry
                self._schedule(expires_at, "revoked", session)
            return "revoked"
        # risk-level-change about the session: MEDIUM/HIGH -> step up, LOW -> cleared.
        if event.get("principal") not in ("SESSION", None):
            return "ignored"
        level = event.get("current_level")
        if level not in wire.RISK_LEVELS:
            return "ignored"
        if self._step_up_at.get(session, float("-inf")) > ts:
            return "stale"  # an older risk event arriving after a newer one
        self._step_up_at[session] = float(ts)
        if level == "LOW":
            self._step_up.pop(session, None)
        else:
            self._step_up[session] = entry
        self._schedule(expires_at, "step_up", session)
        return "step_up"


#: which outcome names a SET with several events: the strongest first
_OUTCOME_ORDER = ("revoked", "user_revoked", "step_up", "stale", "ignored")
