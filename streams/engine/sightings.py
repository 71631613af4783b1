"""Which sessions used an IP (or a session id) recently: resolves IDS alerts to sessions.

Keys are ``"ip:<addr>"`` and ``"session:<id>"``; each maps ``(user, session)`` to the newest time
it was seen. Entries older than ``lookback`` are pruned, so memory is bounded by the traffic of one
lookback window. The Faust shell shards it by key, hence :meth:`entries` / :meth:`load`.

Memory: a key almost always holds one ``(user, session)`` (a session id is used by one user; an IP,
in the common case, by one session), so each key is one small record holding that pair inline and
any further pairs in a dict made only when needed. Records are kept per kind of key, by the bare id
or address, so no ``"session:..."`` string is built per key; the prune queue holds the records
themselves. A session's record also remembers what :meth:`SightingIndex.note` refreshed last.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .events import Event

INF = float("inf")

__all__ = ["SightingIndex"]


class _Key:
    """The sightings under one key: one ``(user, session) -> ts`` inline, any others in ``more``."""

    __slots__ = ("name", "user", "session", "ts", "more")

    def __init__(self, name: str, user: str, session: str, ts: float) -> None:
        self.name = name   # the key without its "ip:" / "session:" prefix
        self.user = user
        self.session = session
        self.ts = ts
        self.more: dict[tuple[str, str], float] | None = None

    def get(self, user: str, session: str) -> float | None:
        if self.user == user and self.session == session:
            return self.ts
        more = self.more
        return more.get((user, session)) if more else None

    def put(self, user: str, session: str, ts: float) -> None:
        """Record ``ts`` for the pair unless a newer time is already there."""
        if self.user == user and self.session == session:
            if ts > self.ts:
                self.ts = ts
            return
        more = self.more
        if more is None:
            self.more = {(user, session): ts}
            return
        old = more.get((user, session))
        if old is None or ts > old:
            more[(user, session)] = ts

    def items(self) -> list[tuple[tuple[str, str], float]]:
        out = [((self.user, self.session), self.ts)]
        if self.more:
            out.extend(self.more.items())
        return out

    def prune(self, cutoff: float) -> float | None:
        """Drop pairs seen before ``cutoff``; the newest time left (``None``: nothing is)."""
        more = self.more
        if more:
            for pair in [p for p, ts in more.items() if ts < cutoff]:
                del more[pair]
        if self.ts < cutoff:
            if not more:
                return None
            (self.user, self.session), self.ts = more.popitem()
        if not more:
            self.more = None
            return self.ts
        return max(self.ts, max(more.values()))


class _SessionKey(_Key):
    """A ``session:<id>`` key, plus what :meth:`SightingIndex.note` refreshed for it last: both
    the session's and the IP's entries hold a time >= ``last_t`` (a fast "nothing to refresh")."""

    __slots__ = ("last_t", "last_user", "last_ip")

    def __init__(self, name: str, user: str, session: str, ts: float) -> None:
        super().__init__(name, user, session, ts)
        self.last_t: float | None = None
        self.last_user: str | None = None
        self.last_ip: str | None = None


class _OtherKey(_Key):
    """A key of another form (only ever made by :meth:`SightingIndex.load`)."""

    __slots__ = ()


def _refresh(rec: _Key, user: str, session: str, ts: float, grain: float) -> float:
    """Note ``(user, session)`` at ``ts`` under ``rec`` unless seen within ``grain``; its time now."""
    if rec.more is None and rec.user == user and rec.session == session:  # the usual case, inline
        old = rec.ts
        if old < ts - grain and ts > old:
            rec.ts = ts
            return ts
        return old
    old = rec.get(user, session)
    if old is None or old < ts - grain:
        rec.put(user, session, ts)
    return rec.get(user, session)  # type: ignore[return-value]


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
    >>> idx.to_dict()
    {'lookback': 3600.0, 'keys': {'ip:10.0.0.5': [['u1', 's1', 100.0]], 'session:s1': [['u1', 's1', 100.0]]}}
    """

    __slots__ = ("lookback", "grain", "_sessions", "_ips", "_other", "_queue_ts", "_queue", "_noted", "_cutoff")

    def __init__(self, lookback_s: float) -> None:
        self.lookback = float(lookback_s)
        self.grain = min(60.0, self.lookback / 60.0)
        self._sessions: dict[str, _SessionKey] = {}   # "session:<id>" by id
        self._ips: dict[str, _Key] = {}               # "ip:<addr>" by address
        self._other: dict[str, _Key] = {}             # anything else load() was given, by full key
        # one entry per key, roughly by time: (newest time when queued, its record), side by side
        self._queue_ts: deque[float] = deque()
        self._queue: deque[_Key] = deque()
        self._noted = 0
        self._cutoff = -INF  # newest prune cutoff: entries at or after it are all still there

    def __len__(self) -> int:
        return len(self._sessions) + len(self._ips) + len(self._other)

    def _home(self, key: str) -> tuple[dict[str, Any], str, type[_Key]]:
        """The dict holding ``key``, the name it is held under there, and its record class."""
        if key.startswith("session:"):
            return self._sessions, key[8:], _SessionKey
        if key.startswith("ip:"):
            return self._ips, key[3:], _Key
        return self._other, key, _OtherKey

    def _home_of(self, rec: _Key) -> dict[str, Any]:
        if type(rec) is _SessionKey:
            return self._sessions
        return self._other if type(rec) is _OtherKey else self._ips

    @staticmethod
    def _full(rec: _Key) -> str:
        if type(rec) is _SessionKey:
            return "session:" + rec.name
        return rec.name if type(rec) is _OtherKey else "ip:" + rec.name

    def _new(self, home: dict[str, Any], cls: type[_Key], name: str, user: str, session: str, ts: float) -> Any:
        rec = home[name] = cls(name, user, session, ts)
        self._queue_ts.append(ts)
        self._queue.append(rec)
        return rec

    def _put(self, key: str, pair: tuple[str, str], ts: float) -> None:
        home, name, cls = self._home(key)
        rec = home.get(name)
        if rec is None:
            self._new(home, cls, name, pair[0], pair[1], ts)
        else:
            rec.put(pair[0], pair[1], ts)

    def note(self, event: Event) -> None:
        """Record that ``event.user``/``event.session`` used ``event.ip`` at ``event.ts``."""
        user, session = event.user, event.session
        if user is None or session is None:
            return
        ts = event.ts
        ip = event.ip or None
        rec = self._sessions.get(session)
        # fast path: the same user and IP, both entries refreshed within `grain`, none pruned since
        if rec is None or rec.last_t is None or rec.last_t < ts - self.grain or rec.last_user != user \
                or rec.last_ip != ip or rec.last_t < self._cutoff:
            grain = self.grain
            # refresh a sighting at most once per `grain` seconds (resolve widens its window to match)
            if rec is None:
                rec = self._new(self._sessions, _SessionKey, session, user, session, ts)
                t = ts
            else:
                t = _refresh(rec, user, session, ts, grain)
            if ip is not None:
                irec = self._ips.get(ip)
                if irec is None:
                    irec = self._new(self._ips, _Key, ip, user, session, ts)
                    t2 = ts
                else:
                    t2 = _refresh(irec, user, session, ts, grain)
                if t2 < t:
                    t = t2
            rec.last_t, rec.last_user, rec.last_ip = t, user, ip
        self._noted += 1
        if self._noted & 1023 == 0:
            self.prune(ts)

    def prune(self, now: float) -> None:
        """Drop sightings older than ``now - lookback`` (amortised: one queue entry per key)."""
        cutoff = now - self.lookback - self.grain
        if cutoff > self._cutoff:
            self._cutoff = cutoff
        qt, q = self._queue_ts, self._queue
        while qt and qt[0] < cutoff:
            qt.popleft()
            rec = q.popleft()
            home = self._home_of(rec)
            if home.get(rec.name) is not rec:
                continue
            newest = rec.prune(cutoff)
            if newest is not None:
                qt.append(newest)
                q.append(rec)
            else:
                del home[rec.name]

    def lookup(self, key: str, since: float) -> list[tuple[str, str, float]]:
        """``(user, session, ts)`` seen under ``key`` at or after ``since``."""
        home, name, _ = self._home(key)
        rec = home.get(name)
        if rec is None:
            return []
        return sorted((u, s, ts) for (u, s), ts in rec.items() if ts >= since)

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
        home, name, _ = self._home(key)
        rec = home.get(name)
        return [] if rec is None else [[u, s, ts] for (u, s), ts in sorted(rec.items())]

    def load(self, key: str, entries: list[list[Any]]) -> None:
        """Merge entries (as from :meth:`entries`) under ``key``."""
        for u, s, ts in entries:
            self._put(key, (u, s), float(ts))

    def to_dict(self) -> dict[str, Any]:
        keys = sorted([self._full(r) for r in self._sessions.values()] + [self._full(r) for r in self._ips.values()]
                      + list(self._other))
        return {"lookback": self.lookback, "keys": {k: self.entries(k) for k in keys}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SightingIndex:
        idx = cls(d["lookback"])
        for k, entries in d.get("keys", {}).items():
            idx.load(k, entries)
        return idx
