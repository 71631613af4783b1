"""Session policy: TOML validated on load, strictest-wins limits, presets from published figures.

A session's limits are the smallest ``idle`` and ``absolute`` over ``[defaults]`` and every rule
whose conditions all hold. Static conditions (``roles``, ``network``, ``channel``, ``app``, ``aal``)
are matched once per attribute tuple and cached; activity conditions (``privileged``,
``bytes_over``, ``rate_over``, ``risk``) are evaluated at a given time on the session itself.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from .durations import DurationError, format_duration, parse_duration
from .windows import window_estimate, window_until

__all__ = [
    "PRESETS",
    "Preset",
    "Policy",
    "PolicyError",
    "Rule",
    "Limits",
    "IdsPolicy",
    "AdaptivePolicy",
    "ActivityPolicy",
    "load_policy",
    "loads_policy",
    "policy_from_dict",
    "default_policy",
    "RATE_WINDOW_S",
]

RATE_WINDOW_S = 60.0
INF = math.inf


@dataclass(frozen=True, slots=True)
class Preset:
    """Published session limits (seconds; ``None`` = the source sets none) and where they come from."""

    idle: float | None
    absolute: float | None
    citation: str


PRESETS: dict[str, Preset] = {
    "nist-800-63b-aal1": Preset(None, 30 * 86400.0,
        "NIST SP 800-63B (rev. 3, 2017) §4.1.3: AAL1 reauthentication at least once per 30 days"),
    "nist-800-63b-aal2": Preset(1800.0, 12 * 3600.0,
        "NIST SP 800-63B (rev. 3, 2017) §4.2.3: AAL2 reauthentication every 12 hours and after 30 minutes of inactivity"),
    "nist-800-63b-aal3": Preset(900.0, 12 * 3600.0,
        "NIST SP 800-63B (rev. 3, 2017) §4.3.3: AAL3 reauthentication every 12 hours and after 15 minutes of inactivity"),
    "nist-800-63b-4-aal2": Preset(3600.0, 24 * 3600.0,
        "NIST SP 800-63B-4 (2025), AAL2 reauthentication: every 24 hours, inactivity timeout 1 hour"),
    "nist-800-63b-4-aal3": Preset(900.0, 12 * 3600.0,
        "NIST SP 800-63B-4 (2025), AAL3 reauthentication: every 12 hours, inactivity timeout 15 minutes"),
    "pci-dss-4": Preset(900.0, None,
        "PCI DSS v4.0 requirement 8.2.8: re-authenticate after more than 15 minutes of session idle time"),
    "psd2": Preset(300.0, None,
        "Commission Delegated Regulation (EU) 2018/389 (PSD2 RTS on SCA), Art. 4(3)(d): no activity for more than 5 minutes"),
    "owasp-high-value": Preset(300.0, None,
        "OWASP Session Management Cheat Sheet, Session Expiration: 2-5 minutes idle for high-value applications"),
    "owasp-low-risk": Preset(1800.0, None,
        "OWASP Session Management Cheat Sheet, Session Expiration: 15-30 minutes idle for low-risk applications"),
}

RISK_BANDS = ("elevated", "high")


class PolicyError(ValueError):
    """Every problem found in a policy, each naming its key.

    Examples
    --------
    >>> try:
    ...     loads_policy('[[rules]]\\nname = "a"\\nidle = 15\\n[ids]\\nrevoke = ["bad"]')
    ... except PolicyError as exc:
    ...     print("\\n".join(exc.errors))
    rules[0].idle: expected a duration like "15m", got 15
    ids.revoke[0]: expected one of critical, high, medium, low, got 'bad'
    """

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid policy:\n  " + "\n  ".join(self.errors))


class SessionLike(Protocol):
    """What the policy reads from a session (see :class:`streams.engine.state.SessionState`)."""

    roles: tuple[str, ...] | None
    ip: str | None
    channel: str | None
    app: str | None
    aal: int | None
    priv_last: float | None
    rate_w: Sequence[float] | None
    bytes_w: Sequence[float] | None
    risk: float | None


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rules]]`` entry (``defaults`` is a rule without conditions)."""

    name: str
    idle: float | None = None
    absolute: float | None = None
    preset: str | None = None
    roles: frozenset[str] | None = None
    network: str | None = None
    network_negated: bool = False
    channel: str | None = None
    app: str | None = None
    aal: int | None = None
    privileged: bool | None = None
    privileged_within: float = 900.0
    bytes_over: int | None = None
    rate_over: float | None = None
    risk: str | None = None
    index: int = -1

    @property
    def dynamic(self) -> bool:
        """True when the rule has an activity condition (evaluated in time, per session)."""
        return self.privileged is not None or self.bytes_over is not None or self.rate_over is not None or self.risk is not None

    def conditions(self) -> dict[str, Any]:
        """The rule's conditions as written (for ``explain`` and evidence)."""
        out: dict[str, Any] = {}
        if self.roles is not None:
            out["roles"] = sorted(self.roles)
        if self.network is not None:
            out["network"] = ("!" if self.network_negated else "") + self.network
        for k in ("channel", "app", "aal", "privileged", "bytes_over", "rate_over", "risk"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        if self.privileged is not None:
            out["privileged_within"] = format_duration(self.privileged_within)
        return out


@dataclass(frozen=True, slots=True)
class Limits:
    """Effective limits of a session at one moment.

    ``rules`` names ``defaults`` and every matching rule in policy order; ``idle_by``/``absolute_by``
    name the rule that set each limit; ``conditions`` lists ``(rule, condition)`` activity conditions
    that hold; ``until`` is when one of them next stops holding (``inf`` if none).

    What more activity could change before ``until`` (the engine re-evaluates only then): a
    privileged action, if a ``privileged = true`` rule the session's static attributes allow does
    not hold (``priv_open``); a rate or bytes estimate above ``rate_next`` / ``bytes_next``, the
    lowest threshold of the rules of that kind that do not hold (``inf``: none). Rules that hold
    keep holding until ``until`` whatever the session does next: counters only rise and a
    privileged action only extends its window. ``saturated``: nothing is open. (A rule found
    holding only by float rounding at a window's edge gets ``until`` a second later; those limits
    open what a re-evaluation on every event would look at, so they end at the same event.)
    """

    idle: float | None
    absolute: float | None
    rules: tuple[str, ...]
    idle_by: str
    absolute_by: str
    conditions: tuple[tuple[str, str], ...] = ()
    until: float = INF
    priv_open: bool = field(default=False, compare=False)
    rate_next: float = field(default=INF, compare=False)
    bytes_next: float = field(default=INF, compare=False)

    @property
    def saturated(self) -> bool:
        """No activity can change these limits before ``until``."""
        return not self.priv_open and self.rate_next == INF and self.bytes_next == INF


def _open(rules: Sequence[Rule]) -> tuple[bool, float, float]:
    """``(priv_open, rate_next, bytes_next)`` of the activity rules that do not hold.

    >>> _open([Rule("a", rate_over=5.0), Rule("b", rate_over=3.0, privileged=True)])
    (True, 3.0, inf)
    """
    return (any(r.privileged is True for r in rules),
            min((r.rate_over for r in rules if r.rate_over is not None), default=INF),
            min((r.bytes_over for r in rules if r.bytes_over is not None), default=INF))


_SATURATED = (False, INF, INF)
_new = object.__new__
_LIMITS_SET = tuple(getattr(Limits, f).__set__ for f in Limits.__slots__)


def _make_limits(idle: float | None, absolute: float | None, rules: tuple[str, ...], idle_by: str,
                 absolute_by: str, conditions: tuple[tuple[str, str], ...], until: float,
                 is_open: tuple[bool, float, float] = _SATURATED) -> Limits:
    """``Limits(...)`` at a third of the cost: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` by name for each field; this sets the slots directly (limits are rebuilt
    on every event that can change an activity condition).

    >>> _make_limits(1.0, None, ("defaults",), "defaults", "defaults", (), 5.0) == Limits(1.0, None, ("defaults",), "defaults", "defaults", (), 5.0)
    True
    """
    lim = _new(Limits)
    a, b, c, d, e, f, g, h, i, j = _LIMITS_SET
    a(lim, idle)
    b(lim, absolute)
    c(lim, rules)
    d(lim, idle_by)
    e(lim, absolute_by)
    f(lim, conditions)
    g(lim, until)
    h(lim, is_open[0])
    i(lim, is_open[1])
    j(lim, is_open[2])
    return lim


@dataclass(frozen=True, slots=True)
class IdsPolicy:
    revoke: frozenset[str] = frozenset({"critical", "high"})
    step_up: frozenset[str] = frozenset({"medium"})
    lookback: float = 3600.0


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    """``[adaptive]``: the model's calibrated score (``models.scorer.scorer_for``).

    ``value >= revoke_at`` with strong or combined evidence revokes, ``>= step_up_at`` steps up
    (once per session until a re-authentication) and shortens idle by ``idle_factor``;
    ``warmup`` is the events a user must have sent before the score decides anything (the
    model has its own cold start, so none are needed). The defaults are the thresholds the
    held-out check validates (``docs/adaptive.md``). ``elevated_at`` defaults to
    ``min(0.7, step_up_at)``.

    >>> ad = loads_policy("[adaptive]\\nenabled = true").adaptive
    >>> ad.step_up_at, ad.revoke_at, ad.warmup, ad.elevated_at
    (0.9, 0.95, 0, 0.7)
    >>> loads_policy("[adaptive]\\nstep_up_at = 0.5\\nrevoke_at = 0.8").adaptive.elevated_at
    0.5
    """

    enabled: bool = False
    step_up_at: float = 0.9
    revoke_at: float = 0.95
    elevated_at: float = 0.7
    warmup: int = 0
    idle_factor: float = 0.5

    def band(self, score: float | None) -> int:
        """0 normal, 1 elevated, 2 high."""
        if score is None:
            return 0
        if score >= self.step_up_at:
            return 2
        return 1 if score >= self.elevated_at else 0


@dataclass(frozen=True, slots=True)
class ActivityPolicy:
    """``[activity]``: what counts as background traffic, what as a privileged action.

    ``refresh_resets_idle``: whether a ``refresh`` identity event (a client renewing its tokens,
    e.g. Keycloak ``REFRESH_TOKEN``) counts as a person's activity. By default it does not: it is
    background traffic, so a forgotten tab or a stolen refresh token cannot outlast the idle limit.

    >>> loads_policy("[activity]\\nrefresh_resets_idle = true").activity.refresh_resets_idle
    True
    >>> loads_policy("").activity.refresh_resets_idle
    False
    """

    automatic: tuple[str, ...] = ()
    privileged: tuple[str, ...] = ()
    bytes_window: float = 300.0
    refresh_resets_idle: bool = False
    _auto_re: Any = field(default=None, compare=False, repr=False)
    _priv_re: Any = field(default=None, compare=False, repr=False)


def _compile(patterns: tuple[str, ...]) -> Any:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


_NO_NETS: frozenset[str] = frozenset()


def _memo_match(memo: dict[str | None, bool], rx: Any, value: str | None) -> bool:
    got = memo.get(value)
    if got is None:
        got = value is not None and rx.match(value) is not None
        if len(memo) >= 16384:
            memo.clear()
        memo[value] = got
    return got


def _ipv4_int(ip: str) -> int | None:
    """A dotted-quad IPv4 address as an int, accepting exactly what ``ipaddress`` accepts; else ``None``."""
    parts = ip.split(".")
    if len(parts) != 4:
        return None
    n = 0
    for p in parts:
        if not (p.isascii() and p.isdigit()) or len(p) > 3 or (p[0] == "0" and p != "0"):
            return None
        v = int(p)
        if v > 255:
            return None
        n = (n << 8) | v
    return n


@dataclass(frozen=True, slots=True)
class _Static:
    limits: Limits
    dynamic: tuple[Rule, ...]
    #: per dynamic rule: its ``(rule, condition)`` pairs, as :meth:`Policy.condition_holds` names them
    pairs: tuple[tuple[tuple[str, str], ...], ...] = ()


def _condition_names(r: Rule) -> tuple[str, ...]:
    return tuple(c for c, v in (("privileged", r.privileged), ("bytes_over", r.bytes_over),
                                ("rate_over", r.rate_over), ("risk", r.risk)) if v is not None)


class Policy:
    """A validated policy. Build with :func:`load_policy`, :func:`loads_policy` or :func:`policy_from_dict`.

    Examples
    --------
    >>> p = loads_policy('''
    ... [defaults]
    ... preset = "nist-800-63b-aal2"
    ... [[rules]]
    ... name = "admins"
    ... roles = ["admin"]
    ... idle = "15m"
    ... ''')
    >>> lim = p.static_limits(("admin",), None, None, None, None)
    >>> lim.idle, lim.absolute, lim.rules, lim.idle_by
    (900.0, 43200.0, ('defaults', 'admins'), 'admins')
    """

    def __init__(self, defaults: Rule, rules: tuple[Rule, ...], networks: dict[str, tuple[Any, ...]],
                 ids: IdsPolicy, adaptive: AdaptivePolicy, activity: ActivityPolicy, normalised: dict[str, Any],
                 source: str = "<policy>") -> None:
        self.defaults = defaults
        self.rules = rules
        self.networks = networks
        self.ids = ids
        self.adaptive = adaptive
        self.activity = activity
        self.normalised = normalised
        self.source = source
        self.version = hashlib.blake2b(orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest()
        self.has_dynamic = any(r.dynamic for r in rules)
        self.tracks_privileged = any(r.privileged is not None for r in rules)
        self.tracks_bytes = any(r.bytes_over is not None for r in rules)
        self.tracks_rate = any(r.rate_over is not None for r in rules)
        self.uses_risk = any(r.risk is not None for r in rules)
        # Activity conditions are re-evaluated only when one could change (see Engine): a counter
        # rising above the lowest threshold of its kind, a privileged action, a window passing.
        self.bytes_min = min((r.bytes_over for r in rules if r.bytes_over is not None), default=INF)
        self.rate_min = min((r.rate_over for r in rules if r.rate_over is not None), default=INF)
        #: a rule holding while something is *absent* (privileged = false) can start holding as time
        #: passes: such policies are re-evaluated on every event, as before
        self.dynamic_every_event = any(r.privileged is False for r in rules)
        self._auto_memo: dict[str | None, bool] = {}
        self._order = {r.name: r.index for r in rules}
        self._names_memo: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}
        self._priv_memo: dict[str | None, bool] = {}
        self._cache: dict[tuple[Any, ...], _Static] = {}
        self._ip_cache: dict[str | None, frozenset[str]] = {}
        self._nets_intern: dict[frozenset[str], frozenset[str]] = {}
        # IPv4 networks as inclusive integer ranges (an IPv4 address is checked without ipaddress)
        self._v4 = tuple((name, tuple((int(n.network_address), int(n.broadcast_address)) for n in nets if n.version == 4))
                         for name, nets in networks.items())

    def __repr__(self) -> str:
        return f"Policy(source={self.source!r}, version={self.version!r}, rules={[r.name for r in self.rules]})"

    # -- activity patterns -------------------------------------------------------------------------
    def is_automatic(self, action: str | None, resource: str | None) -> bool:
        """True when ``action`` or ``resource`` matches an ``[activity] automatic`` pattern (memoised)."""
        rx = self.activity._auto_re
        if rx is None:
            return False
        return _memo_match(self._auto_memo, rx, action) or _memo_match(self._auto_memo, rx, resource)

    def is_privileged(self, action: str | None, resource: str | None) -> bool:
        """True when ``action`` or ``resource`` matches an ``[activity] privileged`` pattern (memoised)."""
        rx = self.activity._priv_re
        if rx is None:
            return False
        return _memo_match(self._priv_memo, rx, action) or _memo_match(self._priv_memo, rx, resource)

    # -- matching ----------------------------------------------------------------------------------
    def networks_of(self, ip: str | None) -> frozenset[str]:
        """Names of the ``[networks]`` that contain ``ip`` (cached, bounded)."""
        got = self._ip_cache.get(ip)
        if got is not None:
            return got
        out = _NO_NETS
        if ip and self.networks:
            addr = _ipv4_int(ip)
            if addr is not None:
                names = [name for name, ranges in self._v4 if any(lo <= addr <= hi for lo, hi in ranges)]
            else:
                try:
                    a = ipaddress.ip_address(ip)
                except ValueError:
                    a = None
                names = [] if a is None else [
                    name for name, nets in self.networks.items() if any(a.version == n.version and a in n for n in nets)]
            if names:
                out = frozenset(names)
                out = self._nets_intern.setdefault(out, out)
        if len(self._ip_cache) >= 65536:
            self._ip_cache.clear()
        self._ip_cache[ip] = out
        return out

    def _static_match(self, rule: Rule, roles: tuple[str, ...] | None, nets: frozenset[str], channel: str | None,
                      app: str | None, aal: int | None) -> bool:
        if rule.roles is not None and not (roles and not rule.roles.isdisjoint(roles)):
            return False
        if rule.network is not None and (rule.network in nets) == rule.network_negated:
            return False
        if rule.channel is not None and rule.channel != channel:
            return False
        if rule.app is not None and rule.app != app:
            return False
        if rule.aal is not None and rule.aal != aal:
            return False
        return True

    def _static(self, roles: tuple[str, ...] | None, ip: str | None, channel: str | None, app: str | None,
                aal: int | None) -> _Static:
        # keyed by the set of named networks the IP is in, not the IP: a handful of entries
        key = (roles, self.networks_of(ip) if self.networks else _NO_NETS, channel, app, aal)
        got = self._cache.get(key)
        if got is not None:
            return got
        nets = key[1]
        d = self.defaults
        idle, absolute, idle_by, abs_by = d.idle, d.absolute, "defaults", "defaults"
        names = ["defaults"]
        dyn = []
        for r in self.rules:
            if not self._static_match(r, roles, nets, channel, app, aal):
                continue
            if r.dynamic:
                dyn.append(r)
                continue
            names.append(r.name)
            if r.idle is not None and (idle is None or r.idle < idle):
                idle, idle_by = r.idle, r.name
            if r.absolute is not None and (absolute is None or r.absolute < absolute):
                absolute, abs_by = r.absolute, r.name
        got = _Static(_make_limits(idle, absolute, tuple(names), idle_by, abs_by, (), INF, _open(dyn)), tuple(dyn),
                      tuple(tuple((r.name, c) for c in _condition_names(r)) for r in dyn))
        if len(self._cache) >= 65536:
            self._cache.clear()
        self._cache[key] = got
        return got

    def static_limits(self, roles: tuple[str, ...] | None, ip: str | None, channel: str | None, app: str | None,
                      aal: int | None) -> Limits:
        """Limits from static conditions only (activity conditions ignored)."""
        return self._static(roles, ip, channel, app, aal).limits

    def condition_holds(self, rule: Rule, s: SessionLike, t: float) -> tuple[bool, float, list[str]]:
        """Whether all of ``rule``'s activity conditions hold on ``s`` at ``t``; until when; which."""
        until = INF
        names: list[str] = []
        if rule.privileged is not None:
            active = s.priv_last is not None and t < s.priv_last + rule.privileged_within
            if active != rule.privileged:
                return False, t, names
            if active:
                until = min(until, s.priv_last + rule.privileged_within)  # type: ignore[operator]
            names.append("privileged")
        if rule.bytes_over is not None:
            w = self.activity.bytes_window
            if window_estimate(s.bytes_w, t, w) <= rule.bytes_over:
                return False, t, names
            until = min(until, window_until(s.bytes_w, t, rule.bytes_over, w))
            names.append("bytes_over")
        if rule.rate_over is not None:
            if window_estimate(s.rate_w, t, RATE_WINDOW_S) <= rule.rate_over:
                return False, t, names
            until = min(until, window_until(s.rate_w, t, rule.rate_over, RATE_WINDOW_S))
            names.append("rate_over")
        if rule.risk is not None:
            if self.adaptive.band(s.risk) < RISK_BANDS.index(rule.risk) + 1:
                return False, t, names
            names.append("risk")
        if until <= t:  # float rounding at a window edge: look again a moment later, never spin
            until = t + 1.0
        return True, until, names

    def limits(self, s: SessionLike, t: float) -> Limits:
        """Effective limits of session ``s`` at time ``t`` (strictest over every matching rule).

        The static part is cached per attribute tuple, so a policy without activity conditions
        costs one dict lookup here. Activity conditions are evaluated inline, exactly as
        :meth:`condition_holds` does (this runs on every event that can change one).

        Examples
        --------
        >>> from streams.engine.state import SessionState
        >>> p = loads_policy('[[rules]]\\nname = "priv"\\nprivileged = true\\nprivileged_within = "5m"\\nidle = "5m"')
        >>> s = SessionState("s1", "u1", 0.0)
        >>> s.priv_last = 100.0
        >>> lim = p.limits(s, 120.0)
        >>> lim.idle, lim.rules, lim.conditions, lim.until
        (300.0, ('defaults', 'priv'), (('priv', 'privileged'),), 400.0)
        >>> p.limits(s, 400.0).rules
        ('defaults',)
        """
        st = self._static(s.roles, s.ip, s.channel, s.app, s.aal)
        if not st.dynamic:
            return st.limits
        base = st.limits
        idle, absolute, idle_by, abs_by = base.idle, base.absolute, base.idle_by, base.absolute_by
        extra: tuple[str, ...] = ()
        conds: tuple[tuple[str, str], ...] = ()
        until = INF
        edge = False
        for r, pairs in zip(st.dynamic, st.pairs):
            r_until = INF
            if r.privileged is not None:
                pl = s.priv_last
                active = pl is not None and t < pl + r.privileged_within
                if active != r.privileged:
                    continue
                if active:
                    r_until = pl + r.privileged_within  # type: ignore[operator]
            # a window's previous + current bucket bound its estimate from above (counts are never
            # negative): below the threshold, the estimate is not computed
            if r.bytes_over is not None:
                w = s.bytes_w
                if w is None or w[1] + w[2] <= r.bytes_over:
                    continue
                width = self.activity.bytes_window
                if window_estimate(w, t, width) <= r.bytes_over:
                    continue
                x = window_until(w, t, r.bytes_over, width)
                if x < r_until:
                    r_until = x
            if r.rate_over is not None:
                w = s.rate_w
                if w is None or w[1] + w[2] <= r.rate_over:
                    continue
                if window_estimate(w, t, RATE_WINDOW_S) <= r.rate_over:
                    continue
                x = window_until(w, t, r.rate_over, RATE_WINDOW_S)
                if x < r_until:
                    r_until = x
            if r.risk is not None and self.adaptive.band(s.risk) < RISK_BANDS.index(r.risk) + 1:
                continue
            if r_until <= t:  # float rounding at a window edge: look again a moment later, never spin
                r_until = t + 1.0
                edge = True
            extra += (r.name,)
            conds += pairs
            if r_until < until:
                until = r_until
            if r.idle is not None and (idle is None or r.idle < idle):
                idle, idle_by = r.idle, r.name
            if r.absolute is not None and (absolute is None or r.absolute < absolute):
                absolute, abs_by = r.absolute, r.name
        if not extra:
            return base
        nkey = (base.rules, extra)
        names_all = self._names_memo.get(nkey)
        if names_all is None:
            order = self._order
            names_all = tuple(sorted(nkey[0] + nkey[1], key=lambda n: order.get(n, -1)))
            if len(self._names_memo) >= 4096:
                self._names_memo.clear()
            self._names_memo[nkey] = names_all
        if edge:
            # a rule holds only by rounding, until a moment later: open everything as the
            # per-event re-evaluation would (any privileged action; a counter of a kind that
            # holds, or above the lowest threshold of its kind)
            held = [r for r in st.dynamic if r.name in extra]
            is_open = (True,
                       -INF if any(r.rate_over is not None for r in held) else self.rate_min,
                       -INF if any(r.bytes_over is not None for r in held) else self.bytes_min)
        elif len(extra) == len(st.dynamic):
            is_open = _SATURATED
        else:
            is_open = _open([r for r in st.dynamic if r.name not in extra])
        return _make_limits(idle, absolute, names_all, idle_by, abs_by, conds, until, is_open)

    def explain_rules(self, s: SessionLike, t: float) -> list[dict[str, Any]]:
        """For each rule: does it match, and why not (first failing condition)."""
        out = []
        nets = sorted(self.networks_of(s.ip))
        for r in self.rules:
            why: list[str] = []
            if r.roles is not None and not (s.roles and not r.roles.isdisjoint(s.roles)):
                why.append(f"roles {sorted(r.roles)} not in session roles {list(s.roles or ())}")
            if r.network is not None and (r.network in self.networks_of(s.ip)) == r.network_negated:
                why.append(f"network {'!' if r.network_negated else ''}{r.network}: ip {s.ip} is in {nets or 'no named network'}")
            for k in ("channel", "app", "aal"):
                want = getattr(r, k)
                if want is not None and want != getattr(s, k):
                    why.append(f"{k} {want!r} != {getattr(s, k)!r}")
            dyn: list[str] = []
            if r.dynamic and not why:
                ok, _until, dyn = self.condition_holds(r, s, t)
                if not ok:
                    why.append("activity conditions do not hold: " + ", ".join(
                        f"{k}={v}" for k, v in r.conditions().items()
                        if k in ("privileged", "bytes_over", "rate_over", "risk")))
            out.append({"rule": r.name, "matches": not why, "why_not": why, "activity_conditions": dyn,
                        "idle": format_duration(r.idle), "absolute": format_duration(r.absolute),
                        "conditions": r.conditions()})
        return out


# -- loading and validation -----------------------------------------------------------------------

_TOP = {"defaults", "networks", "rules", "ids", "adaptive", "activity"}
_RULE_KEYS = {"name", "idle", "absolute", "preset", "roles", "network", "channel", "app", "aal", "privileged",
              "privileged_within", "bytes_over", "rate_over", "risk"}


class _V:
    """Collects errors while reading a policy dict."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, key: str, msg: str) -> None:
        self.errors.append(f"{key}: {msg}")

    def table(self, data: Any, key: str) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.err(key, f"expected a table, got {type(data).__name__}")
            return {}
        return data

    def unknown(self, data: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for k in data:
            if k not in allowed:
                self.err(f"{prefix}{k}", f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def duration(self, data: dict[str, Any], k: str, prefix: str, default: float | None = None,
                 allow_none: bool = False) -> float | None:
        if k not in data:
            return default
        v = data[k]
        if allow_none and v == "none":
            return None
        try:
            out = parse_duration(v)
        except DurationError as exc:
            self.err(prefix + k, str(exc))
            return default
        if out <= 0:
            self.err(prefix + k, f"must be positive, got {v!r}")
            return default
        return out

    def number(self, data: dict[str, Any], k: str, prefix: str, default: float, lo: float = 0.0,
               hi: float = INF, integer: bool = False) -> float:
        if k not in data:
            return default
        v = data[k]
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type:
            self.err(prefix + k, f"expected {'an integer' if integer else 'a number'}, got {v!r}")
            return default
        if not lo <= v <= hi:
            self.err(prefix + k, f"expected a value between {lo:g} and {hi:g}, got {v!r}")
            return default
        return v

    def string(self, data: dict[str, Any], k: str, prefix: str) -> str | None:
        v = data.get(k)
        if v is not None and not isinstance(v, str):
            self.err(prefix + k, f"expected a string, got {v!r}")
            return None
        return v

    def strings(self, data: dict[str, Any], k: str, prefix: str) -> tuple[str, ...] | None:
        if k not in data:
            return None
        v = data[k]
        if not isinstance(v, list):
            self.err(prefix + k, f"expected a list of strings, got {v!r}")
            return None
        out = []
        for i, x in enumerate(v):
            if not isinstance(x, str):
                self.err(f"{prefix}{k}[{i}]", f"expected a string, got {x!r}")
            else:
                out.append(x)
        return tuple(out)


def _limits_with_preset(v: _V, data: dict[str, Any], prefix: str, idle: float | None,
                        absolute: float | None) -> tuple[float | None, float | None, str | None]:
    preset = v.string(data, "preset", prefix)
    if preset is not None:
        p = PRESETS.get(preset)
        if p is None:
            v.err(prefix + "preset", f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        else:
            idle, absolute = p.idle, p.absolute
    idle = v.duration(data, "idle", prefix, idle, allow_none=True)
    absolute = v.duration(data, "absolute", prefix, absolute, allow_none=True)
    return idle, absolute, preset


def policy_from_dict(data: dict[str, Any], source: str = "<dict>") -> Policy:
    """Validate a decoded policy and build a :class:`Policy`; raise :class:`PolicyError` listing every error.

    Explicit ``idle``/``absolute`` keys override a ``preset`` in the same table.
    """
    v = _V()
    if not isinstance(data, dict):
        raise PolicyError([f"(top): expected a table, got {type(data).__name__}"])
    v.unknown(data, _TOP, "")

    dd = v.table(data.get("defaults"), "defaults")
    v.unknown(dd, {"idle", "absolute", "preset"}, "defaults.")
    d_idle, d_abs, d_preset = _limits_with_preset(v, dd, "defaults.", 1800.0, 12 * 3600.0)
    defaults = Rule("defaults", d_idle, d_abs, d_preset)

    networks: dict[str, tuple[Any, ...]] = {}
    for name, cidrs in v.table(data.get("networks"), "networks").items():
        if not isinstance(cidrs, list):
            cidrs = [cidrs]
        nets = []
        for i, c in enumerate(cidrs):
            try:
                nets.append(ipaddress.ip_network(c, strict=False))
            except (ValueError, TypeError):
                v.err(f"networks.{name}[{i}]", f"expected a CIDR like \"10.0.0.0/8\", got {c!r}")
        networks[name] = tuple(nets)

    act = v.table(data.get("activity"), "activity")
    v.unknown(act, {"automatic", "privileged", "bytes_window", "refresh_resets_idle"}, "activity.")
    auto_p = v.strings(act, "automatic", "activity.") or ()
    priv_p = v.strings(act, "privileged", "activity.") or ()
    bytes_window = v.duration(act, "bytes_window", "activity.", 300.0) or 300.0
    refresh_resets_idle = act.get("refresh_resets_idle", False)
    if not isinstance(refresh_resets_idle, bool):
        v.err("activity.refresh_resets_idle", f"expected true or false, got {refresh_resets_idle!r}")
        refresh_resets_idle = False
    activity = ActivityPolicy(auto_p, priv_p, bytes_window, refresh_resets_idle, _compile(auto_p), _compile(priv_p))

    rules: list[Rule] = []
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        v.err("rules", "expected an array of tables ([[rules]])")
        raw_rules = []
    seen: set[str] = {"defaults"}
    for i, rd in enumerate(raw_rules):
        pre = f"rules[{i}]."
        if not isinstance(rd, dict):
            v.err(f"rules[{i}]", "expected a table")
            continue
        v.unknown(rd, _RULE_KEYS, pre)
        name = v.string(rd, "name", pre)
        if name is None:
            if "name" not in rd:
                v.err(pre + "name", "missing")
            name = f"rule{i}"
        elif name in seen:
            v.err(pre + "name", f"duplicate rule name {name!r}")
        seen.add(name)
        idle, absolute, preset = _limits_with_preset(v, rd, pre, None, None)
        if idle is None and absolute is None and not any(k in rd for k in ("idle", "absolute", "preset")):
            v.err(f"rules[{i}]", "sets no limit (give idle, absolute or preset)")
        roles = v.strings(rd, "roles", pre)
        network = v.string(rd, "network", pre)
        negated = False
        if network is not None:
            negated = network.startswith("!")
            network = network.lstrip("!").strip()
            if network not in networks:
                v.err(pre + "network", f"unknown network {network!r} (define it under [networks])")
        channel = v.string(rd, "channel", pre)
        if channel is not None and channel not in ("web", "mobile", "api"):
            v.err(pre + "channel", f"expected web, mobile or api, got {channel!r}")
        aal = None
        if "aal" in rd:
            aal = int(v.number(rd, "aal", pre, 0, 1, 3, integer=True)) or None
        privileged = rd.get("privileged")
        if privileged is not None and not isinstance(privileged, bool):
            v.err(pre + "privileged", f"expected true or false, got {privileged!r}")
            privileged = None
        within = v.duration(rd, "privileged_within", pre, 900.0) or 900.0
        if "privileged_within" in rd and privileged is None:
            v.err(pre + "privileged_within", "only meaningful with privileged = true")
        bytes_over = int(v.number(rd, "bytes_over", pre, -1, 0, integer=True)) if "bytes_over" in rd else None
        if bytes_over == -1:
            bytes_over = None
        rate_over = float(v.number(rd, "rate_over", pre, -1, 0)) if "rate_over" in rd else None
        if rate_over == -1:
            rate_over = None
        risk = v.string(rd, "risk", pre)
        if risk is not None and risk not in RISK_BANDS:
            v.err(pre + "risk", f"expected \"elevated\" or \"high\", got {risk!r}")
            risk = None
        rules.append(Rule(name, idle, absolute, preset, frozenset(roles) if roles is not None else None, network,
                          negated, channel, v.string(rd, "app", pre), aal, privileged, within, bytes_over,
                          rate_over, risk, i))

    ids_d = v.table(data.get("ids"), "ids")
    v.unknown(ids_d, {"revoke", "step_up", "lookback"}, "ids.")
    sev = {}
    for k, default in (("revoke", ("critical", "high")), ("step_up", ("medium",))):
        vals = v.strings(ids_d, k, "ids.")
        if vals is None:
            vals = default
        for j, s in enumerate(vals):
            if s not in ("critical", "high", "medium", "low"):
                v.err(f"ids.{k}[{j}]", f"expected one of critical, high, medium, low, got {s!r}")
        sev[k] = frozenset(x for x in vals if x in ("critical", "high", "medium", "low"))
    for s in sev["revoke"] & sev["step_up"]:
        v.err("ids.step_up", f"severity {s!r} is also in ids.revoke")
    ids = IdsPolicy(sev["revoke"], sev["step_up"], v.duration(ids_d, "lookback", "ids.", 3600.0) or 3600.0)

    ad = v.table(data.get("adaptive"), "adaptive")
    v.unknown(ad, {"enabled", "step_up_at", "revoke_at", "elevated_at", "warmup", "idle_factor"}, "adaptive.")
    enabled = ad.get("enabled", False)
    if not isinstance(enabled, bool):
        v.err("adaptive.enabled", f"expected true or false, got {enabled!r}")
        enabled = False
    d_ad = AdaptivePolicy()
    step_up_at = float(v.number(ad, "step_up_at", "adaptive.", d_ad.step_up_at, 0, 1))
    adaptive = AdaptivePolicy(
        enabled,
        step_up_at,
        float(v.number(ad, "revoke_at", "adaptive.", d_ad.revoke_at, 0, 1)),
        float(v.number(ad, "elevated_at", "adaptive.", min(d_ad.elevated_at, step_up_at), 0, 1)),
        int(v.number(ad, "warmup", "adaptive.", d_ad.warmup, 0, integer=True)),
        float(v.number(ad, "idle_factor", "adaptive.", d_ad.idle_factor, 0.01, 1)),
    )
    if adaptive.step_up_at > adaptive.revoke_at:
        v.err("adaptive.step_up_at", f"must not exceed revoke_at ({adaptive.revoke_at}), got {adaptive.step_up_at}")
    if adaptive.elevated_at > adaptive.step_up_at:
        v.err("adaptive.elevated_at", f"must not exceed step_up_at ({adaptive.step_up_at}), got {adaptive.elevated_at}")

    if v.errors:
        raise PolicyError(v.errors)
    normalised = {
        "defaults": {"idle": d_idle, "absolute": d_abs},
        "networks": {k: [str(n) for n in ns] for k, ns in networks.items()},
        "rules": [{"name": r.name, "idle": r.idle, "absolute": r.absolute, **r.conditions()} for r in rules],
        "ids": {"revoke": sorted(ids.revoke), "step_up": sorted(ids.step_up), "lookback": ids.lookback},
        "adaptive": {k: getattr(adaptive, k) for k in AdaptivePolicy.__slots__},
        "activity": {"automatic": list(auto_p), "privileged": list(priv_p), "bytes_window": bytes_window,
                     "refresh_resets_idle": refresh_resets_idle},
    }
    return Policy(defaults, tuple(rules), networks, ids, adaptive, activity, normalised, source)


def loads_policy(text: str, source: str = "<string>") -> Policy:
    """Parse and validate TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"{source}: not valid TOML: {exc}"]) from None
    return policy_from_dict(data, source)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file (``None``: the shipped ``streams/policy.default.toml``)."""
    if path is None:
        return default_policy()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    return loads_policy(text, str(p))


def default_policy() -> Policy:
    """The shipped default policy.

    Examples
    --------
    >>> p = default_policy()
    >>> p.static_limits(None, "10.1.2.3", "web", None, None).idle, p.static_limits(None, "8.8.8.8", "web", None, None).idle
    (1800.0, 1200.0)
    """
    text = resources.files("streams").joinpath("policy.default.toml").read_text(encoding="utf-8")
    return loads_policy(text, "policy.default.toml")
