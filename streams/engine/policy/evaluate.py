"""Policy evaluation: which rules hold for a session, and the strictest limits they give it.

A session's limits are the smallest ``idle`` and ``absolute`` over ``[defaults]`` and every rule
whose conditions all hold. Static conditions (``roles``, ``network``, ``channel``, ``app``, ``aal``)
are matched once per attribute tuple and cached; activity conditions (``privileged``,
``bytes_over``, ``rate_over``, ``risk``) are evaluated at a given time on the session itself.

:class:`Policy` lives here whole: it holds the validated model (from :mod:`.model`) but is mostly
the matching caches and the hot per-event paths (:meth:`Policy.limits` runs on every event that
can change an activity condition), and splitting its state from its methods would buy nothing.
It is built by :mod:`.load`, which imports this module, never the other way round.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..durations import format_duration
from ..windows import window_estimate, window_until
from .model import (
    _SATURATED,
    INF,
    RATE_WINDOW_S,
    RISK_BANDS,
    ActivityPolicy,
    AdaptivePolicy,
    IdsPolicy,
    Limits,
    Rule,
    SessionLike,
    _make_limits,
)

__all__ = ["Policy"]


def _open(rules: Sequence[Rule]) -> tuple[bool, float, float]:
    """``(priv_open, rate_next, bytes_next)`` of the activity rules that do not hold.

    >>> _open([Rule("a", rate_over=5.0), Rule("b", rate_over=3.0, privileged=True)])
    (True, 3.0, inf)
    """
    return (any(r.privileged is True for r in rules),
            min((r.rate_over for r in rules if r.rate_over is not None), default=INF),
            min((r.bytes_over for r in rules if r.bytes_over is not None), default=INF))


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
    >>> from streams.engine.policy import loads_policy
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
        >>> from streams.engine.policy import loads_policy
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
