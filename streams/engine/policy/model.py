"""The policy data model: the validated values a policy is made of, and what it reads from a session.

Frozen records only (:class:`Rule`, :class:`Limits`, the ``[ids]`` / ``[adaptive]`` /
``[activity]`` tables), the error a bad policy raises, and the constants that give rule conditions
their meaning (``RATE_WINDOW_S``, ``RISK_BANDS``). No matching and no parsing: both the evaluator
(:mod:`.evaluate`) and the loader (:mod:`.load`) build on these types, so they live below both and
import neither.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..durations import format_duration

__all__ = [
    "RATE_WINDOW_S",
    "INF",
    "RISK_BANDS",
    "PolicyError",
    "SessionLike",
    "Rule",
    "Limits",
    "IdsPolicy",
    "AdaptivePolicy",
    "ActivityPolicy",
]

RATE_WINDOW_S = 60.0
INF = math.inf
RISK_BANDS = ("elevated", "high")


class PolicyError(ValueError):
    """Every problem found in a policy, each naming its key.

    Examples
    --------
    >>> from streams.engine.policy import loads_policy
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

    >>> from streams.engine.policy import loads_policy
    >>> ad = loads_policy("[adaptive]\\nenabled = true").adaptive
    >>> ad.step_up_at, ad.revoke_at, ad.warmup, ad.elevated_at
    (0.35, 0.51, 0, 0.35)
    >>> loads_policy("[adaptive]\\nstep_up_at = 0.5\\nrevoke_at = 0.8").adaptive.elevated_at
    0.5
    """

    enabled: bool = False
    step_up_at: float = 0.35
    revoke_at: float = 0.51
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

    >>> from streams.engine.policy import loads_policy
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
