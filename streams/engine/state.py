"""Per-session and per-user state: compact (slots), JSON-ready through ``to_dict``/``from_dict``.

The Faust shell keeps one :class:`UserState` per user in a changelog-backed table, so everything
here round-trips through orjson. ``SessionState.lim`` and ``.key`` are caches and not stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .decisions import decision, rfc3339, timeout_evidence

_dumps = orjson.dumps

__all__ = ["SessionState", "UserState", "session_digest"]


def session_digest(session: str) -> str:
    """A session id's compact, fixed-size name in a user's memory of ended sessions (72 bits: a
    collision between two of one user's sessions is out of reach, and a long hostile id costs
    as little as a short one).

    >>> session_digest("s1") == session_digest("s1"), len(session_digest("x" * 10_000))
    (True, 18)
    """
    return hashlib.blake2b(session.encode("utf-8", "surrogatepass"), digest_size=9).hexdigest()

# slot name -> short key in the JSON form (omitted when None / default)
_FIELDS = (
    ("session", "s"), ("user", "u"), ("sso", "sso"), ("app", "app"), ("channel", "ch"), ("ip", "ip"),
    ("device", "dev"), ("roles", "roles"), ("aal", "aal"), ("started", "t0"), ("auth_at", "ta"),
    ("last_seen", "tl"), ("last_active", "tx"), ("lim_since", "tls"), ("shorten", "sh"), ("risk", "rk"),
    ("priv_since", "ps"), ("priv_last", "pl"), ("rate_w", "rw"), ("bytes_w", "bw"), ("auto_n", "an"),
    ("events_n", "n"), ("ended", "te"), ("end_reason", "er"), ("terminal", "dec"), ("cond_since", "cs"),
    ("id_ts", "ti"), ("email", "em"), ("issuer", "iss"),
)
_DEFAULTS: dict[str, Any] = {"shorten": 1.0, "auto_n": 0, "events_n": 0}


class SessionState:
    """One session: attributes for policy matching, the times that drive its deadlines, and its end.

    Examples
    --------
    >>> s = SessionState("s1", "u1", 100.0)
    >>> s.roles = ("admin",)
    >>> SessionState.from_dict(s.to_dict()).to_dict() == s.to_dict()
    True
    >>> s.to_dict()
    {'s': 's1', 'u': 'u1', 'roles': ['admin'], 't0': 100.0, 'ta': 100.0, 'tl': 100.0, 'tx': 100.0, 'tls': 100.0}
    """

    __slots__ = tuple(f for f, _ in _FIELDS if f not in ("terminal", "rate_w", "bytes_w")) + ("_dec", "win", "lim", "key")

    def __init__(self, session: str, user: str, ts: float) -> None:
        self.session = session
        self.user = user
        self.sso: str | None = None
        self.app: str | None = None
        self.channel: str | None = None
        self.ip: str | None = None
        self.device: str | None = None
        self.roles: tuple[str, ...] | None = None
        self.aal: int | None = None
        self.started = ts          # first event
        self.auth_at = ts          # login or latest reauth: drives the absolute deadline
        self.last_seen = ts        # newest event of any kind
        self.last_active = ts      # newest event a person caused: drives the idle deadline
        self.lim_since = ts        # when the current limits took effect
        self.shorten = 1.0         # idle multiplier after an adaptive step-up (until reauth)
        self.risk: float | None = None
        self.priv_since: float | None = None
        self.priv_last: float | None = None
        # rate and bytes windows side by side, [rate start, prev, cur, bytes start, prev, cur] (None
        # until one is used): one object updated in place on every event (see rate_w / bytes_w)
        self.win: list[Any] | None = None
        self.auto_n = 0            # automatic (background) events seen
        self.events_n = 0
        self.ended: float | None = None
        self.end_reason: str | None = None
        self._dec: Any = None      # the revocation, re-issued on enforcement gaps (see `terminal`)
        self.cond_since: dict[str, float] | None = None
        self.id_ts: float | None = None  # newest identity event applied (None: adopted, no login yet)
        self.email: str | None = None    # the user's address and identity provider, as the identity
        self.issuer: str | None = None   # events name them (the SETs' user subject)
        self.lim: Any = None       # cached policy Limits (not stored)
        self.key = (user, session)

    @property
    def live(self) -> bool:
        return self.ended is None

    @property
    def rate_w(self) -> tuple[float, float, float] | None:
        """The requests-per-minute window ``(start, previous, current)`` (see ``windows``), or ``None``.

        >>> s = SessionState("s1", "u1", 0.0)
        >>> s.rate_w = (0.0, 0, 3)
        >>> s.rate_w, s.bytes_w, s.to_dict()["rw"]
        ((0.0, 0, 3), None, [0.0, 0.0, 3.0])
        >>> s.rate_w = None
        >>> s.win is None
        True
        """
        w = self.win
        return None if w is None or w[0] is None else (w[0], w[1], w[2])

    @rate_w.setter
    def rate_w(self, value: Any) -> None:
        self._set_window(0, value)

    @property
    def bytes_w(self) -> tuple[float, float, float] | None:
        """The bytes window ``(start, previous, current)``, or ``None``."""
        w = self.win
        return None if w is None or w[3] is None else (w[3], w[4], w[5])

    @bytes_w.setter
    def bytes_w(self, value: Any) -> None:
        self._set_window(3, value)

    def _set_window(self, i: int, value: Any) -> None:
        w = self.win
        if value is None:
            if w is not None:
                w[i], w[i + 1], w[i + 2] = None, 0, 0
                if w[0] is None and w[3] is None:
                    self.win = None
            return
        if w is None:
            w = self.win = [None, 0, 0, None, 0, 0]
        w[i], w[i + 1], w[i + 2] = value

    @property
    def terminal(self) -> dict[str, Any] | None:
        """The revocation that ended the session (re-issued on enforcement gaps), or ``None``.

        An ended session is mostly a tombstone kept for an hour, as many as there are live
        sessions, so it does not hold the decision it published: it holds the policy version and,
        unless the session timed out, the trigger, score and evidence; the rest is the session's
        own (unchanging once ended) state, from which :func:`~streams.engine.decisions.decision`
        rebuilds the same value. A decision read back from the changelog is kept as it is.

        Examples
        --------
        >>> from streams.engine import Engine, loads_policy, parse_event
        >>> eng = Engine(loads_policy('[defaults]\\nidle = "30m"'))
        >>> _ = eng.handle(parse_event({"type": "login", "ts": 0, "user": "u1", "session": "s1"}), 0.0)
        >>> published = [o.value for o in eng.expire(1800.0) if o.kind == "decision"]
        >>> eng.store["u1"].sessions["s1"].terminal == published[0]
        True
        """
        d = self._dec
        if d is None or type(d) is dict:
            return d
        reason, at, lim = self.end_reason, self.ended, self.lim
        if type(d) is str:  # a timeout (d is the policy version): trigger and evidence follow from the session
            version, trigger, score = d, f"{reason}@{rfc3339(at)}", None  # type: ignore[arg-type]
            evidence = timeout_evidence(self, lim, reason[:-8], at)  # type: ignore[index, arg-type]  # "idle_timeout" -> "idle"
        else:
            version, trigger, score, evidence = d
        return decision("revoke", reason, self.session, self.user, at, trigger, sso_session=self.sso,  # type: ignore[arg-type]
                        app=self.app, policy=lim.rules, policy_version=version, score=score, evidence=evidence,
                        email=self.email, issuer=self.issuer).value

    @terminal.setter
    def terminal(self, value: dict[str, Any] | None) -> None:
        self._dec = value

    def keep_terminal(self, policy_version: str, recipe: tuple[str, float | None, dict[str, Any] | None] | None) -> None:
        """Remember how to rebuild the revocation just published (``self.ended``, ``.end_reason``
        and ``.lim`` set): ``recipe`` = ``(trigger, score, evidence)``, ``None`` for a timeout."""
        self._dec = policy_version if recipe is None else (policy_version, *recipe)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with short keys; ``None`` and defaults are left out.

        Written out field by field in ``_FIELDS`` order (a loop over ``_FIELDS`` with ``getattr``
        cost 3x as much, and this runs for every touched user of every batch the worker commits).
        """
        out: dict[str, Any] = {"s": self.session, "u": self.user}
        if self.sso is not None:
            out["sso"] = self.sso
        if self.app is not None:
            out["app"] = self.app
        if self.channel is not None:
            out["ch"] = self.channel
        if self.ip is not None:
            out["ip"] = self.ip
        if self.device is not None:
            out["dev"] = self.device
        if self.roles is not None:
            out["roles"] = list(self.roles)
        if self.aal is not None:
            out["aal"] = self.aal
        out["t0"] = self.started
        out["ta"] = self.auth_at
        out["tl"] = self.last_seen
        out["tx"] = self.last_active
        out["tls"] = self.lim_since
        if self.shorten != 1.0:
            out["sh"] = self.shorten
        if self.risk is not None:
            out["rk"] = self.risk
        if self.priv_since is not None:
            out["ps"] = self.priv_since
        if self.priv_last is not None:
            out["pl"] = self.priv_last
        w = self.win
        if w is not None:  # counts may be kept as ints (window_push)
            if w[0] is not None:
                out["rw"] = [w[0], float(w[1]), float(w[2])]
            if w[3] is not None:
                out["bw"] = [w[3], float(w[4]), float(w[5])]
        if self.auto_n != 0:
            out["an"] = self.auto_n
        if self.events_n != 0:
            out["n"] = self.events_n
        if self.ended is not None:
            out["te"] = self.ended
        if self.end_reason is not None:
            out["er"] = self.end_reason
        if self._dec is not None:
            out["dec"] = self.terminal
        if self.cond_since is not None:
            out["cs"] = self.cond_since
        if self.id_ts is not None:
            out["ti"] = self.id_ts
        if self.email is not None:
            out["em"] = self.email
        if self.issuer is not None:
            out["iss"] = self.issuer
        return out

    def to_row(self) -> list[Any]:
        """The changelog form: every field of ``_FIELDS`` by position (``None`` where unset).

        Cheaper than :meth:`to_dict` (one list display, no per-field test), which the worker pays
        for every user a batch touched; :meth:`from_row` reads it back.

        >>> s = SessionState("s1", "u1", 100.0)
        >>> s.roles, s.rate_w = ("admin",), (60.0, 2, 3)
        >>> SessionState.from_row(s.to_row()).to_dict() == s.to_dict()
        True
        """
        w = self.win
        return [self.session, self.user, self.sso, self.app, self.channel, self.ip, self.device,
                list(self.roles) if self.roles is not None else None, self.aal, self.started, self.auth_at,
                self.last_seen, self.last_active, self.lim_since, self.shorten, self.risk, self.priv_since,
                self.priv_last,
                [w[0], float(w[1]), float(w[2])] if w is not None and w[0] is not None else None,
                [w[3], float(w[4]), float(w[5])] if w is not None and w[3] is not None else None,
                self.auto_n, self.events_n, self.ended, self.end_reason,
                self.terminal if self._dec is not None else None, self.cond_since, self.id_ts, self.email,
                self.issuer]

    @classmethod
    def from_row(cls, row: list[Any]) -> SessionState:
        s = cls(row[0], row[1], row[9])
        for (f, _), v in zip(_FIELDS[2:], row[2:]):
            if v is not None:
                setattr(s, f, tuple(v) if f == "roles" or f == "rate_w" or f == "bytes_w" else v)
        return s

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionState:
        s = cls(d["s"], d["u"], d["t0"])
        for f, k in _FIELDS[2:]:
            if k in d:
                v = d[k]
                setattr(s, f, tuple(v) if f == "roles" or f == "rate_w" or f == "bytes_w" else v)
        return s

    def __repr__(self) -> str:
        state = "live" if self.ended is None else f"ended:{self.end_reason}"
        return f"SessionState({self.session!r}, user={self.user!r}, {state})"


class UserState:
    """A user's sessions, a profile owned by the scorer (opaque here) and an event counter.

    Examples
    --------
    >>> import orjson
    >>> u = UserState()
    >>> u.sessions["s1"] = SessionState("s1", "u1", 0.0)
    >>> u.profile["anything"] = [1, 2]
    >>> UserState.from_dict(orjson.loads(orjson.dumps(u.to_dict()))).to_dict() == u.to_dict()
    True
    """

    __slots__ = ("sessions", "_profile", "events", "ended")

    def __init__(self) -> None:
        self.sessions: dict[str, SessionState] = {}
        self._profile: dict[str, Any] | None = None  # made on first use: most users never get one
        self.events = 0
        #: sessions that ended longer ago than the full tombstone is kept, in compact form:
        #: ``session_digest(session) -> [ended, reason, forget_at]``, oldest first (None: none)
        self.ended: dict[str, list[Any]] | None = None

    @property
    def profile(self) -> dict[str, Any]:
        """The scorer's per-user profile (a dict it updates in place)."""
        p = self._profile
        if p is None:
            p = self._profile = {}
        return p

    @profile.setter
    def profile(self, value: dict[str, Any]) -> None:
        self._profile = value

    def is_empty(self) -> bool:
        """No sessions, no remembered ends and no profile: nothing worth keeping."""
        return not self.sessions and not self._profile and not self.ended

    def remembered(self, session: str) -> list[Any] | None:
        """The compact record ``[ended, reason, forget_at]`` of an ended ``session``, if remembered."""
        e = self.ended
        return e.get(session_digest(session)) if e else None

    def to_dict(self) -> dict[str, Any]:
        out = {"sessions": {k: s.to_dict() for k, s in self.sessions.items()},
               "profile": self._profile if self._profile is not None else {}, "events": self.events}
        if self.ended:
            out["ended"] = self.ended
        return out

    def to_json(self) -> bytes:
        """The changelog value: :meth:`to_dict` with each session as a row (``SessionState.to_row``).
        :meth:`from_dict` reads both forms.

        >>> import orjson
        >>> u = UserState()
        >>> u.sessions["s1"] = SessionState("s1", "u1", 0.0)
        >>> UserState.from_dict(orjson.loads(u.to_json())).to_dict() == u.to_dict()
        True
        """
        if self.ended:
            return _dumps({"sessions": {k: s.to_row() for k, s in self.sessions.items()},
                           "profile": self._profile if self._profile is not None else {}, "events": self.events,
                           "ended": self.ended})
        return _dumps({"sessions": {k: s.to_row() for k, s in self.sessions.items()},
                       "profile": self._profile if self._profile is not None else {}, "events": self.events})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserState:
        u = cls()
        u.sessions = {k: SessionState.from_row(v) if type(v) is list else SessionState.from_dict(v)
                      for k, v in d.get("sessions", {}).items()}
        u._profile = d.get("profile") or None
        u.events = int(d.get("events", 0))
        u.ended = d.get("ended") or None
        return u
