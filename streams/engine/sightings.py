"""Which sessions used an IP (or a session id) recently: resolves IDS alerts to sessions.

Keys are ``"ip:<addr>"`` and ``"session:<id>"``; each maps ``(user, session)`` to the newest time
it was seen. Entries older than ``lookback`` are pruned, so memory is bounded by the traffic of one
lookback window. The Faust shell shards it by key, hence :meth:`entries` / :meth:`load`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .events import Event

INF = float("inf")

__all__ = ["SightingIndex"]


class SightingIndex:
    """Recent ``(user, session, ts)`` per IP and per session id.

    Examples
    --------
    >>> from streams.engine.events import parse_event
    >>> idx = SightingIndex(3600)
    >>> idx.note(parse_event({"type": "activity", "ts": 100, "user": "u1", "session": "s1", "ip": "10.0.0.5"}))
    >>> alert = parse_event({"type": "alert", "ts": 200, "severity": "high", "src_ip": "10.0.0.5"})
    >>> [(e.user, e.session) for e in idx.resolve(alert)]
    [('u1', 's1')]
    >>> alert_late = parse_event({"type": "alert", "ts": 5000, "severity": "high", "src_ip": "10.0.0.5"})
    >>> idx.resolve(alert_late)
    []
    """

    __slots__ = ("lookback", "grain", "_by_key", "_queue", "_noted", "_last", "_cutoff")

    def __init__(self, lookback_s: float) -> None:
        self.lookback = float(lookback_s)
        self.grain = min(60.0, self.lookback / 60.0)
        self._by_key: dict[str, dict[tuple[str, str], float]] = {}
        self._queue: deque[tuple[float, str]] = deque()   # one entry per key, roughly by time
        self._noted = 0
        # session -> (t, user, ip): both of its entries hold a time >= t (a fast "nothing to refresh")
        self._last: dict[str, tuple[float, str, str | None]] = {}
        self._cutoff = -INF  # newest prune cutoff: entries at or after it are all still there

    def __len__(self) -> int:
        return len(self._by_key)

    def _put(self, key: str, pair: tuple[str, str], ts: float) -> None:
        d = self._by_key.get(key)
        if d is None:
            self._by_key[key] = {pair: ts}
            self._queue.append((ts, key))
            return
        old = d.get(pair)
        if old is None or ts > old:
            d[pair] = ts

    def note(self, event: Event) -> None:
        """Record that ``event.user``/``event.session`` used ``event.ip`` at ``event.ts``."""
        user, session = event.user, event.session
        if user is None or session is None:
            return
        ts = event.ts
        ip = event.ip or None
        last = self._last.get(session)
        # fast path: the same user and IP, both entries refreshed within `grain`, none pruned since
        if last is None or last[0] < ts - self.grain or last[1] != user or last[2] != ip or last[0] < self._cutoff:
            pair = (user, session)
            by_key = self._by_key
            key = "session:" + session
            d = by_key.get(key)
            # refresh a sighting at most once per `grain` seconds (resolve widens its window to match)
            if d is None or d.get(pair, -INF) < ts - self.grain:
                self._put(key, pair, ts)
            t = by_key[key].get(pair, -INF)
            if ip is not None:
                key = "ip:" + ip
                d = by_key.get(key)
                if d is None or d.get(pair, -INF) < ts - self.grain:
                    self._put(key, pair, ts)
                t2 = by_key[key].get(pair, -INF)
                if t2 < t:
                    t = t2
            self._last[session] = (t, user, ip)
        self._noted += 1
        if self._noted & 1023 == 0:
            self.prune(ts)

    def prune(self, now: float) -> None:
        """Drop sightings older than ``now - lookback`` (amortised: one queue entry per key)."""
        cutoff = now - self.lookback - self.grain
        if cutoff > self._cutoff:
            self._cutoff = cutoff
        q, by_key = self._queue, self._by_key
        while q and q[0][0] < cutoff:
            _, key = q.popleft()
            d = by_key.get(key)
            if d is None:
                continue
            for pair in [p for p, ts in d.items() if ts < cutoff]:
                del d[pair]
            if d:
                q.append((max(d.values()), key))
            else:
                del by_key[key]
                if key.startswith("session:"):
                    self._last.pop(key[8:], None)

    def lookup(self, key: str, since: float) -> list[tuple[str, str, float]]:
        """``(user, session, ts)`` seen under ``key`` at or after ``since``."""
        d = self._by_key.get(key)
        if not d:
            return []
        return sorted((u, s, ts) for (u, s), ts in d.items() if ts >= since)

    def resolve(self, alert: Event) -> list[Event]:
        """Copies of ``alert`` aimed at each ``(user, session)`` it concerns.

        Its own ``user`` (all that user's sessions, ``session=None``) or ``user``+``session``,
        a ``session`` alone (resolved to its user), and every session seen on ``src_ip`` or
        ``dest_ip`` within ``lookback`` before the alert. Deduplicated, in a stable order.
        """
        since = alert.ts - self.lookback - self.grain
        targets: dict[tuple[str, str | None], None] = {}
        whole_users: set[str] = set()
        if alert.user is not None:
            targets[(alert.user, alert.session)] = None
            if alert.session is None:
                whole_users.add(alert.user)
        elif alert.session is not None:
            for u, s, _ in self.lookup("session:" + alert.session, -float("inf")):
                targets[(u, s)] = None
        for ip in (alert.src_ip, alert.dest_ip):
            if ip:
                for u, s, _ in self.lookup("ip:" + ip, since):
                    if u not in whole_users:
                        targets[(u, s)] = None
        return [alert.targeted(u, s) for u, s in targets]

    # -- serialisation (one key at a time, or whole) ------------------------------------------------
    def entries(self, key: str) -> list[list[Any]]:
        """JSON-ready ``[[user, session, ts], ...]`` for one key."""
        return [[u, s, ts] for (u, s), ts in sorted(self._by_key.get(key, {}).items())]

    def load(self, key: str, entries: list[list[Any]]) -> None:
        """Merge entries (as from :meth:`entries`) under ``key``."""
        for u, s, ts in entries:
            self._put(key, (u, s), float(ts))

    def to_dict(self) -> dict[str, Any]:
        return {"lookback": self.lookback, "keys": {k: self.entries(k) for k in sorted(self._by_key)}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SightingIndex:
        idx = cls(d["lookback"])
        for k, entries in d.get("keys", {}).items():
            idx.load(k, entries)
        return idx
