"""Per-session and per-user state: compact (slots), JSON-ready through ``to_dict``/``from_dict``.

The Faust shell keeps one :class:`UserState` per user in a changelog-backed table, so everything
here round-trips through orjson. ``SessionState.lim`` and ``.key`` are caches and not stored.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SessionState", "UserState"]

# slot name -> short key in the JSON form (omitted when None / default)
_FIELDS = (
    ("session", "s"), ("user", "u"), ("sso", "sso"), ("app", "app"), ("channel", "ch"), ("ip", "ip"),
    ("device", "dev"), ("roles", "roles"), ("aal", "aal"), ("started", "t0"), ("auth_at", "ta"),
    ("last_seen", "tl"), ("last_active", "tx"), ("lim_since", "tls"), ("shorten", "sh"), ("risk", "rk"),
    ("priv_since", "ps"), ("priv_last", "pl"), ("rate_w", "rw"), ("bytes_w", "bw"), ("auto_n", "an"),
    ("events_n", "n"), ("ended", "te"), ("end_reason", "er"), ("terminal", "dec"), ("cond_since", "cs"),
    ("id_ts", "ti"),
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

    __slots__ = tuple(f for f, _ in _FIELDS) + ("lim", "key")

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
        self.rate_w: list[float] | None = None
        self.bytes_w: list[float] | None = None
        self.auto_n = 0            # automatic (background) events seen
        self.events_n = 0
        self.ended: float | None = None
        self.end_reason: str | None = None
        self.terminal: dict[str, Any] | None = None   # the revocation, re-issued on enforcement gaps
        self.cond_since: dict[str, float] | None = None
        self.id_ts: float | None = None  # newest identity event applied (None: adopted, no login yet)
        self.lim: Any = None       # cached policy Limits (not stored)
        self.key = (user, session)

    @property
    def live(self) -> bool:
        return self.ended is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with short keys; ``None`` and defaults are left out."""
        out: dict[str, Any] = {}
        for f, k in _FIELDS:
            v = getattr(self, f)
            if v is None or (f in _DEFAULTS and v == _DEFAULTS[f]):
                continue
            out[k] = list(v) if f == "roles" else v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionState:
        s = cls(d["s"], d["u"], d["t0"])
        for f, k in _FIELDS[2:]:
            if k in d:
                v = d[k]
                setattr(s, f, tuple(v) if f == "roles" else v)
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

    __slots__ = ("sessions", "profile", "events")

    def __init__(self) -> None:
        self.sessions: dict[str, SessionState] = {}
        self.profile: dict[str, Any] = {}
        self.events = 0

    def to_dict(self) -> dict[str, Any]:
        return {"sessions": {k: s.to_dict() for k, s in self.sessions.items()}, "profile": self.profile,
                "events": self.events}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserState:
        u = cls()
        u.sessions = {k: SessionState.from_dict(v) for k, v in d.get("sessions", {}).items()}
        u.profile = d.get("profile") or {}
        u.events = int(d.get("events", 0))
        return u
