"""The edge of the service: Kafka message bytes -> an engine ``Event``, or a dead letter.

Nothing in here raises for bad input: malformed JSON, wrong types, missing fields, unknown event
types, oversized messages and times outside the window around the worker's clock all become a
``Rejected`` with a reason naming the field.

``parse_event`` already bounds every event on its own (``ts`` from 1970 to the year 9000, nesting,
lengths, numbers, addresses); :func:`decode` adds the window around the worker's clock: at most
``max_skew_s`` ahead of it and at most ``max_age_s`` behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.engine import Event, InvalidEvent, parse_event
from streams.engine.events import MAX_EVENT_BYTES

__all__ = [
    "DEFAULT_MAX_SKEW_S",
    "DEFAULT_MAX_AGE_S",
    "PAST_MARGIN_S",
    "Rejected",
    "decode",
    "longest_absolute_s",
    "past_bound",
]

#: an event stamped further than this into the future (per the worker's clock) is refused
DEFAULT_MAX_SKEW_S = 300.0
#: an event stamped further than this into the past is refused: 35 days, the longest published
#: absolute limit (NIST 800-63B AAL1, 30 days) and a margin. The service widens it to cover its
#: policy's longest absolute limit (:func:`past_bound`).
DEFAULT_MAX_AGE_S = 35 * 86400.0
#: what :func:`past_bound` adds to a policy's longest absolute limit: a day of late delivery
PAST_MARGIN_S = 86400.0


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    field: str | None


def longest_absolute_s(policy: Any) -> float | None:
    """The longest absolute session limit a policy states, over ``defaults`` and every rule.

    A session's absolute limit is the smallest over the defaults and the rules that hold for it,
    so none exceeds this. ``None`` when the policy states none (sessions end on idle only).

    Examples
    --------
    >>> from streams.engine import loads_policy
    >>> longest_absolute_s(loads_policy('[defaults]\\nabsolute = "12h"\\n[[rules]]\\nname = "a"\\nroles = ["x"]\\nabsolute = "1d"'))
    86400.0
    >>> longest_absolute_s(loads_policy('[defaults]\\nabsolute = "none"')) is None
    True
    """
    limits = [r.absolute for r in (policy.defaults, *policy.rules) if r.absolute is not None]
    return max(limits) if limits else None


def past_bound(policy_max_absolute_s: float | None, configured_s: float = DEFAULT_MAX_AGE_S,
               margin_s: float = PAST_MARGIN_S) -> float:
    """The ``max_age_s`` to give :func:`decode`: the configured bound, widened when the policy's
    longest absolute limit (plus ``margin_s``) exceeds it, so that no event about a session that
    may still be live is refused for its age.

    Parameters
    ----------
    policy_max_absolute_s : float or None
        :func:`longest_absolute_s` of the policy (``None``: it states no absolute limit).
    configured_s : float
        The operator's bound (default :data:`DEFAULT_MAX_AGE_S`).
    margin_s : float
        Added to the policy's limit (default :data:`PAST_MARGIN_S`, one day).

    Examples
    --------
    >>> past_bound(12 * 3600.0) == DEFAULT_MAX_AGE_S, past_bound(90 * 86400.0) / 86400, past_bound(None, 3600.0)
    (True, 91.0, 3600.0)
    """
    if policy_max_absolute_s is None:
        return configured_s
    return max(configured_s, policy_max_absolute_s + margin_s)


def decode(raw: bytes | None, now: float, max_skew_s: float = DEFAULT_MAX_SKEW_S,
           max_age_s: float = DEFAULT_MAX_AGE_S) -> Event | Rejected:
    """Parse one message value.

    Parameters
    ----------
    raw : bytes or None
        The message value.
    now : float
        The worker's clock, epoch seconds.
    max_skew_s : float
        How far ahead of ``now`` an event's ``ts`` may be.
    max_age_s : float
        How far behind ``now`` an event's ``ts`` may be (see :func:`past_bound`).

    Examples
    --------
    >>> decode(b'{"type": "login", "ts": 100, "user": "u", "session": "s"}', now=100).session
    's'
    >>> decode(b'{"type": "login"', now=0).reason.startswith("not valid JSON")
    True
    >>> decode(b'{"type": "login", "ts": 1000, "user": "u", "session": "s"}', now=0)
    Rejected(reason='clock skew: ts is 1000s ahead of the worker clock (limit 300s)', field='ts')
    >>> decode(b'{"type": "login", "ts": 0, "user": "u", "session": "s"}', now=86400, max_age_s=3600)
    Rejected(reason='too old: ts is 86400s behind the worker clock (limit 3600s)', field='ts')
    """
    if raw is None:
        return Rejected("empty message (null value)", None)
    if len(raw) > MAX_EVENT_BYTES:
        return Rejected(f"oversized: {len(raw)} bytes > {MAX_EVENT_BYTES}", None)
    try:
        event = parse_event(raw)
    except InvalidEvent as exc:
        return Rejected(exc.reason, exc.field)
    except Exception as exc:  # pragma: no cover - parse_event promises InvalidEvent only
        return Rejected(f"unparseable: {type(exc).__name__}: {exc}", None)
    if event.ts > now + max_skew_s:
        return Rejected(f"clock skew: ts is {event.ts - now:.0f}s ahead of the worker clock (limit {max_skew_s:.0f}s)", "ts")
    if event.ts < now - max_age_s:
        return Rejected(f"too old: ts is {now - event.ts:.0f}s behind the worker clock (limit {max_age_s:.0f}s)", "ts")
    return event
