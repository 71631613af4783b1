"""The IDS join: an IDS alert meets the sessions that used its IP, or the session it names.

One join, run by the worker (its state in a Faust table, sharded by join key, a batch's changes
in a :class:`JoinView`) and by :class:`~streams.engine.engine.Replay` (a dict, changed in place),
so the two agree by construction. The rules, on the join's clock (wall time in the worker, the
newest event time in a replay):

* **Sightings.** :class:`SightingGate` says when a ``(user, session)`` using an IP must be told to
  the join: on its first use of that IP or session id, then again once per :func:`refresh_s` of
  event time (``max(5 s, lookback / 20)``, 75-100 % of it per pair, so that sessions started
  together do not all refresh in one instant). Both keys, ``<ip>`` and ``session:<id>``, are
  refreshed and expire alike. An event older than its keys' last sightings (delivered out of
  order) is not told again: the join keeps each pair's newest sighting, which meets every alert
  an older one would.
* **Meeting.** An alert meets a sighting of its key when the sighting's time is at or after
  ``alert.ts - lookback - refresh`` (a session active at the edge of the lookback may have been
  noted up to one refresh interval earlier). Whichever arrives first, the other meets it: an
  alert waits :data:`ALERT_GRACE_S` of the join's clock for sightings that travel more slowly.
* **Once.** A waiting alert remembers the sessions it met (:data:`MAX_MET_PER_ALERT`), so a late
  or refreshed sighting never decides one twice.
* **Bounded.** A key holds at most :data:`MAX_SIGHTINGS_PER_KEY` sightings per record; past that
  it spills into further records (their count in the first record's ``"n"``), so no
  live session is evicted to make room. A spill record's key, ``#<n>#<key>``, is never a key an
  input message may have (an IP has no ``#``; a session key starts ``session:``), and lives on its
  key's partition (:func:`home_key`). A record keeps its sightings within a share of the
  record-size limit and at most :data:`MAX_WAITING` waiting alerts in another share. A key none of
  whose sightings an alert can still meet, and with no alert waiting, is deleted by
  :meth:`IdsJoin.expire`.

A record is JSON: ``{"s": [[user, session, ts], ...], "a": [[alert, alert_ts, received, met],
...], "n": spills}``.
"""

from __future__ import annotations

from itertools import islice
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, NamedTuple

import orjson

from .events import Event, InvalidEvent, parse_event
from .policy import IdsPolicy
from .state import session_digest

__all__ = [
    "ALERT_GRACE_S", "IdsJoin", "JoinView", "MAX_MET_PER_ALERT", "MAX_SIGHTINGS_PER_KEY", "MAX_WAITING",
    "SightingGate", "Target", "alert_from", "home_key", "refresh_s", "resolve_targets", "spill_key",
]

INF = float("inf")
#: how long (on the join's clock) an alert waits for sightings that travelled more slowly
ALERT_GRACE_S = 120.0
#: sightings one join record holds before the key spills into a further record
MAX_SIGHTINGS_PER_KEY = 1024
#: sessions a waiting alert remembers having met (past it, a late sighting may meet it twice:
#: the same decision id again, which enforcement points deduplicate)
MAX_MET_PER_ALERT = 2048
#: alerts one key keeps waiting (the newest)
MAX_WAITING = 16
#: the share of the record-size limit a join record gives its sightings (ids may have 1,024
#: characters each) and the alerts waiting for late sightings (one may be 64 KiB): the two
#: together, and the record's brackets, stay under the limit
SIGHTING_SHARE, WAITING_SHARE = 0.6, 0.3
#: the longest key of a join message: ``session:`` and a session id
MAX_KEY_CHARS = len("session:") + 1024


def spill_key(key: str, n: int) -> str:
    """The key of ``key``'s ``n``-th spill record.

    >>> spill_key("10.0.0.5", 2), home_key(spill_key("session:a#1", 1)), home_key("session:a#1")
    ('#2#10.0.0.5', 'session:a#1', 'session:a#1')
    """
    return f"#{n}#{key}"


def home_key(key: str) -> str:
    """The key whose partition holds ``key``'s record: itself, or for a spill record its key's."""
    if key.startswith("#"):
        parts = key.split("#", 2)
        if len(parts) == 3 and parts[1].isdigit():
            return parts[2]
    return key


def refresh_s(lookback: float) -> float:
    """How often (event time) a session's sighting on a key is refreshed at most.

    >>> refresh_s(3600), refresh_s(30)
    (180.0, 5.0)
    """
    return max(5.0, lookback / 20)


class Target(NamedTuple):
    """An alert aimed at one ``(user, session)`` (``session`` ``None``: all that user's sessions);
    ``via`` names what led to it (``"user"``, or the join key)."""

    alert: Event
    user: str
    session: str | None
    via: str


def alert_from(body: Any) -> Event | None:
    """A forwarded or waiting alert (validated once already) back into an :class:`Event`."""
    if not isinstance(body, dict):
        return None
    try:
        ev = parse_event(body)
    except InvalidEvent:
        return None
    return ev if ev.type == "alert" else None


def resolve_targets(targets: Iterable[Target]) -> list[Target]:
    """``targets`` without repeats, in order; a session of a user the same alert targets whole
    is left out (the whole-user target covers it).

    >>> a = parse_event({"type": "alert", "ts": 1, "severity": 1, "user": "u"})
    >>> [(t.user, t.session) for t in resolve_targets([Target(a, "u", None, "user"), Target(a, "u", "s1", "10.0.0.1"),
    ...                                               Target(a, "v", "s2", "10.0.0.1"), Target(a, "v", "s2", "session:s2")])]
    [('u', None), ('v', 's2')]
    """
    targets = list(targets)
    whole = {(id(t.alert), t.user) for t in targets if t.session is None}
    seen: set[tuple[int, str, str | None]] = set()
    out = []
    for t in targets:
        k = (id(t.alert), t.user, t.session)
        if k in seen or (t.session is not None and (id(t.alert), t.user) in whole):
            continue
        seen.add(k)
        out.append(t)
    return out


class JoinView:
    """The join's records as one step sees them: read from ``base``, changed ones in ``touched``
    (``None``: deleted). With ``in_place`` the changes go straight to ``base`` (a replay's dict).

    >>> v = JoinView({"10.0.0.1": {"s": [["u", "s", 1.0]], "a": []}})
    >>> v.entry("10.0.0.1")["s"], v.entry("10.0.0.9"), sorted(v.touched)
    ([['u', 's', 1.0]], {'s': []}, ['10.0.0.1', '10.0.0.9'])
    """

    __slots__ = ("base", "touched", "in_place")

    def __init__(self, base: MutableMapping[str, Any], *, in_place: bool = False) -> None:
        self.base = base
        self.in_place = in_place
        self.touched: dict[str, dict | None] = {}

    def peek(self, key: str) -> dict | None:
        """A key's record, or ``None``, without marking it changed."""
        if not self.in_place and key in self.touched:
            return self.touched[key]
        return self.base.get(key)

    def entry(self, key: str) -> dict:
        """A key's record (a new, empty one if it has none), marked changed."""
        if self.in_place:
            e = self.base.get(key)
            if e is None:
                e = self.base[key] = {"s": []}
            return e
        touched = self.touched
        e = touched.get(key)
        if e is None:
            e = None if key in touched else self.base.get(key)
            if e is None:
                e = {"s": []}
            touched[key] = e
        return e

    def delete(self, key: str) -> None:
        if self.in_place:
            self.base.pop(key, None)
        else:
            self.touched[key] = None


class SightingGate:
    """When an event's use of its IP and session id must be told to the join (:func:`refresh_s`).

    Nearly every event repeats a recent sighting; it is answered by one lookup of its session's
    entry, whose window for the current ``(user, ip)`` says nothing is due. One small list per
    session (its user, that window, when its key was noted, and when each of its last
    :attr:`MAX_IPS` IPs was); at most ``max_entries`` sessions, the oldest let go first (a
    forgotten session costs one extra sighting).

    >>> from streams.engine.events import parse_event
    >>> g = SightingGate(lambda: 3600.0)
    >>> ev = lambda t: parse_event({"type": "activity", "ts": t, "user": "u", "session": "s", "ip": "10.0.0.5"})
    >>> g.due(ev(0)), g.due(ev(60)), g.due(ev(200))
    (['session:s', '10.0.0.5'], [], ['session:s', '10.0.0.5'])
    """

    __slots__ = ("lookback", "max_entries", "_by_session")

    #: IPs per session whose last sighting the gate remembers
    MAX_IPS = 4

    def __init__(self, lookback: Callable[[], float], max_entries: int = 200_000) -> None:
        if not callable(lookback):
            raise TypeError("SightingGate: lookback must be callable() -> the IDS lookback in seconds")
        if max_entries < 64:
            raise ValueError(f"SightingGate: max_entries must be >= 64, got {max_entries!r}")
        self.lookback = lookback
        self.max_entries = max_entries
        # session -> [user, window ip, window end, refresh interval, session noted at,
        #             ip, noted at, ip, noted at, ...]: nothing is due for the window ip before
        #             the window end
        self._by_session: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._by_session)

    def due(self, event: Event) -> list[str]:
        """The join keys to note ``event`` under now (none for most events).

        An event older than its keys' last sightings needs none: the join keeps each pair's
        newest sighting time, and a later sighting meets every alert an earlier one would (an
        alert meets sightings from a time before it on). Events delivered out of order, from
        gateways whose streams interleave, are covered by the sighting of the newest."""
        e = self._by_session.get(event.session)  # type: ignore[arg-type]
        if e is not None and e[0] == event.user and e[1] == event.ip and event.ts < e[2]:
            return []
        return self._due(event, e)

    def _due(self, event: Event, e: list[Any] | None) -> list[str]:
        user, session, ip, ts = event.user, event.session, event.ip or None, event.ts
        by_session = self._by_session
        if e is None or e[0] != user:
            # one jitter per session (75-100 % of the interval): both its keys refresh in one
            # event, and sessions that started together do not all refresh in the same instant
            every = refresh_s(self.lookback()) * (0.75 + (hash((user, session)) & 1023) / 4096)
            e = [user, None, 0.0, every, None]
            by_session[session] = e  # type: ignore[index]
            if len(by_session) > self.max_entries:
                for k in list(islice(by_session, max(1, self.max_entries // 64))):
                    del by_session[k]
        else:
            every = e[3]
        out = []
        t = e[4]
        if t is not None and ts - t < every:  # noted since, or later than this event (see due)
            end = t + every
        else:
            e[4] = ts
            out.append("session:" + session)  # type: ignore[operator]
            end = ts + every
        if ip is not None:
            try:
                i = e.index(ip, 5)
            except ValueError:
                if len(e) >= 5 + 2 * self.MAX_IPS:
                    del e[5:7]  # the IP noted longest ago
                e.extend((ip, ts))
                out.append(ip)
                end = min(end, ts + every)
            else:
                t = e[i + 1]
                if ts - t < every:
                    end = min(end, t + every)
                else:
                    e[i + 1] = ts
                    out.append(ip)
                    end = min(end, ts + every)
        e[1], e[2] = ip, end
        return out


def _pair_digest(user: str, session: str) -> str:
    """A (user, session) pair's short name in a waiting alert's list of sessions it met."""
    return session_digest(f"{user}\x00{session}")


class IdsJoin:
    """IDS alerts meet the sessions seen on their keys (see the module's rules).

    Parameters
    ----------
    ids
        The IDS policy, or a callable that returns the current one (a worker's policy changes).
    max_record_bytes
        The largest JSON record a key may take (sightings and waiting alerts share it).
    grace_s
        How long an alert waits for sightings that arrive after it.

    Examples
    --------
    >>> from streams.engine import loads_policy, parse_event
    >>> join = IdsJoin(loads_policy("").ids)
    >>> state = {}
    >>> view = JoinView(state, in_place=True)
    >>> alert = parse_event({"type": "alert", "ts": 100, "severity": 1, "src_ip": "10.0.0.5"})
    >>> join.alert(view, "10.0.0.5", alert, alert.raw, now=100)   # no sighting yet: it waits
    []
    >>> [(t.user, t.session) for t in join.sighting(view, "10.0.0.5", "u1", "s1", 90.0, now=101)]  # a late one
    [('u1', 's1')]
    >>> join.sighting(view, "10.0.0.5", "u1", "s1", 95.0, now=102)   # the same session: not twice
    []
    >>> join.expire(view, now=100 + 3600 + 180 + 120 + 1), state
    (1, {})
    """

    def __init__(self, ids: IdsPolicy | Callable[[], IdsPolicy], *, max_record_bytes: int = 900_000,
                 grace_s: float = ALERT_GRACE_S) -> None:
        if grace_s < 0:
            raise ValueError(f"IdsJoin: grace_s must be >= 0, got {grace_s!r}")
        if max_record_bytes < 16_384:
            raise ValueError(f"IdsJoin: max_record_bytes must be >= 16384, got {max_record_bytes!r}")
        self._ids = ids if callable(ids) else (lambda: ids)
        self.grace_s = float(grace_s)
        self.max_sighting_bytes = int(max_record_bytes * SIGHTING_SHARE) - 2048
        self.max_waiting_bytes = int(max_record_bytes * WAITING_SHARE)
        self._sweep: list[str] = []   # the keys the current expiry sweep has still to look at
        self._next_sweep = -INF

    @property
    def ids(self) -> IdsPolicy:
        return self._ids()

    def window(self) -> float:
        """How far before an alert's time a sighting still meets it."""
        lookback = self.ids.lookback
        return lookback + refresh_s(lookback)

    def sweep_s(self) -> float:
        """How often a sweep of :meth:`expire` starts: a quarter of the lookback, at least one
        refresh interval."""
        lookback = self.ids.lookback
        return max(refresh_s(lookback), lookback / 4)

    def keys_of(self, alert: Event) -> list[str]:
        """The join keys an alert concerns: its session when it names no user, and its IPs; none
        when its severity leads to no action."""
        ids = self.ids
        if alert.severity not in ids.revoke and alert.severity not in ids.step_up:
            return []
        keys = []
        if alert.session and not alert.user:
            keys.append("session:" + alert.session)
        for ip in (alert.src_ip, alert.dest_ip):
            if ip and ip not in keys:
                keys.append(ip)
        return keys

    def direct(self, alert: Event) -> list[Target]:
        """The target an alert names itself (its ``user``, and ``session`` if given)."""
        return [Target(alert, alert.user, alert.session, "user")] if alert.user else []

    # -- the two ways to meet ---------------------------------------------------------------
    def sighting(self, view: JoinView, key: str, user: str, session: str, ts: float, now: float) -> list[Target]:
        """Record that ``(user, session)`` used ``key`` at ``ts``; the waiting alerts it meets."""
        entry = view.entry(key)
        if len(entry) == 1:  # sightings only: no spill records, no alert waiting
            ss = entry["s"]
            if not ss:
                ss.append([user, session, ts])
                return []
            if len(ss) == 1:
                e = ss[0]
                if e[0] == user and e[1] == session:  # the usual key: one session, seen again
                    if ts > e[2]:
                        e[2] = ts
                    return []
        window = self.window()
        self._put(view, key, entry, user, session, ts, window)
        out: list[Target] = []
        waits = entry.get("a")
        if not waits:
            return out
        if waits[0][2] < now - self.grace_s:  # the oldest alerts have stopped waiting
            waits = [a for a in waits if a[2] >= now - self.grace_s]
            if waits:
                entry["a"] = waits
            else:
                del entry["a"]
        pair = None
        for waiting in waits:
            body, alert_ts = waiting[0], waiting[1]
            if ts >= alert_ts - window:
                pair = pair or _pair_digest(user, session)
                met = waiting[3] if len(waiting) > 3 else None
                if met is not None and pair in met:
                    continue  # this session already met this alert: one decision, not two
                alert = alert_from(body)
                if alert is not None:
                    out.append(Target(alert, user, session, key))
                    if met is not None and len(met) < MAX_MET_PER_ALERT:
                        met.append(pair)
        return out

    def alert(self, view: JoinView, key: str, alert: Event, body: dict, now: float) -> list[Target]:
        """The sessions seen on ``key`` that ``alert`` meets; the alert then waits there."""
        entry = view.entry(key)
        since = alert.ts - self.window()
        out: list[Target] = []
        met: list[str] = []
        for record in self._records(view, key, entry):
            for user, session, ts in record["s"]:
                if ts >= since:
                    out.append(Target(alert, user, session, key))
                    if len(met) < MAX_MET_PER_ALERT:
                        met.append(_pair_digest(user, session))
        grace = self.grace_s
        waiting = [a for a in entry.get("a", ()) if a[2] >= now - grace][-(MAX_WAITING - 1):] + [[body, alert.ts, now, met]]
        size, kept = 0, []
        for a in reversed(waiting):  # the oldest stop waiting first
            size += len(orjson.dumps(a))
            if size > self.max_waiting_bytes and kept:
                break
            kept.append(a)
        entry["a"] = kept[::-1]
        return out

    # -- expiry -----------------------------------------------------------------------------
    def expire(self, view: JoinView, now: float, *, owns: Callable[[str], bool] | None = None,
               limit: int | None = None) -> int:
        """Delete the keys (with their spill records) that no alert can meet any more and where
        no alert waits. A sweep over every key held starts once per quarter of the lookback (a
        key outlives what can meet it by at most that); each call
        looks at up to ``limit`` keys of it (all: ``None``), so recovered keys are swept too and
        the join keeps no index of its own. Keys ``owns`` rejects are let go untouched (another
        worker holds them now). Returns how many keys were deleted."""
        sweep = self._sweep
        if not sweep:
            if now < self._next_sweep:
                return 0
            self._next_sweep = now + self.sweep_s()
            sweep = self._sweep = [k for k in view.base.keys() if k[:1] != "#"]  # spills go with their key
            sweep.reverse()  # popped from the end: oldest first
        cutoff = now - self.window() - self.grace_s  # a sighting before it meets no alert any more
        waited = now - self.grace_s                 # an alert received before it waits no more
        deleted = 0
        peek = view.peek
        n = len(sweep) if limit is None else min(limit, len(sweep))
        for _ in range(n):
            key = sweep.pop()
            if owns is not None and not owns(key):
                continue
            entry = peek(key)
            if entry is None:
                continue
            if len(entry) == 1:  # sightings only, no spills: the usual key
                if any(s[2] > cutoff for s in entry["s"]):
                    continue
            else:
                spills = [peek(spill_key(key, i)) for i in range(1, entry.get("n", 0) + 1)]
                if any(s[2] > cutoff for r in [entry, *spills] if r for s in r["s"]) \
                        or any(a[2] > waited for a in entry.get("a", ())):
                    continue
                for i in range(1, len(spills) + 1):
                    view.delete(spill_key(key, i))
            view.delete(key)
            deleted += 1
        return deleted

    # -- records ----------------------------------------------------------------------------
    @staticmethod
    def _records(view: JoinView, key: str, entry: dict) -> list[dict]:
        """A key's first record and the records it spilled into."""
        n = entry.get("n", 0)
        return [entry] + [view.entry(spill_key(key, i)) for i in range(1, n + 1)] if n else [entry]

    def _put(self, view: JoinView, key: str, entry: dict, user: str, session: str, ts: float,
             window: float) -> None:
        records = self._records(view, key, entry)
        newest = max([ts] + [e[2] for r in records for e in r["s"]])
        home = None
        # a sighting is kept as long as an alert may still meet it: an alert up to the grace
        # older than the newest sighting here, arriving after it, looks back ``window`` from its own time
        keep_since = newest - window - self.grace_s
        for r in records:  # the pair's own record, if it is in one; expired sightings dropped
            kept = []
            for e in r["s"]:
                if e[0] == user and e[1] == session:
                    home = r
                    if ts < e[2]:
                        ts = e[2]
                elif e[2] >= keep_since:
                    kept.append(e)
            r["s"] = kept
        if home is None:
            limit = self.max_sighting_bytes
            home = next((r for r in records if len(r["s"]) < MAX_SIGHTINGS_PER_KEY
                         and len(orjson.dumps(r["s"])) < limit), None)
        if home is None:  # every record is full of sightings within the lookback: one more
            n = entry["n"] = entry.get("n", 0) + 1
            home = view.entry(spill_key(key, n))
        home["s"].append([user, session, ts])
